"""How a result was produced: versions, git commit, file hashes."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import torch

from oodbench import __version__


def git_commit() -> str:
    """The commit of the oodbench checkout (with '+dirty' if modified), or 'unknown'."""
    repo = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    return {"oodbench_version": __version__, "torch_version": torch.__version__}


def host_cpu() -> str:
    """The CPU family that decides CPU float results: vendor and torch's kernel level, e.g.
    "AuthenticAMD/AVX512".

    CPU training is bit-identical for a given torch thread count on one CPU family, not across
    families (MKL and oneDNN pick other kernels): the embedded reference run gives other weights on
    an AMD AVX512 machine than on the machine that made results/embedded. The CI regression check
    compares with the reference made on the same family (baselines/README.md).
    """
    vendor = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("vendor_id"):
                    vendor = line.split(":", 1)[1].strip()
                    break
    except OSError:
        import platform

        vendor = platform.processor() or platform.machine() or "unknown"
    return f"{vendor}/{torch.backends.cpu.get_cpu_capability()}"
