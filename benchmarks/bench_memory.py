"""Peak memory of evaluating large custom OOD sets: does it grow with N or with the batch size?

    python benchmarks/bench_memory.py [--sizes 10000,100000] [--skip-resize]

Each measurement is one `oodbench run` in its own process (peak RSS from os.wait4), on the
embedded mnist suite with a tiny oodbench checkpoint (trained once, 1 epoch) and detectors msp +
mahalanobis:
- base: the suite alone;
- npz N: the suite plus `--out npz:` with N random uint8 28x28 images;
- resize 224: a user model (factory file) that needs 224x224 inputs, `--resize 224`, on the
  suite alone (5 sets of 1,000 images).
"Beyond base" = peak RSS minus the base run's. With data kept as uint8 and features scored per
batch, what grows with N is the uint8 array (784 B/image), its logits (40 B/image) and scores.
Set PYTHONPATH to compare another checkout (the checkpoint is oodbench's own format).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FACTORY = """
from torch import nn


def build(num_classes=10):
    # Needs 224x224 inputs (the Linear's size); stride-4 convs keep it cheap on a CPU.
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, stride=4, padding=2), nn.ReLU(),
        nn.Conv2d(8, 16, 5, stride=4, padding=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 14 * 14, 64), nn.ReLU(), nn.Linear(64, num_classes),
    )
"""


def peak_rss_mb(args: list[str], env: dict[str, str]) -> float:
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{process.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--skip-resize", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oodbench-mem-"))
    env = {**os.environ, "OODBENCH_CACHE": str(work / "cache"), "OODBENCH_RESULTS": str(work / "runs")}
    oodbench = [sys.executable, "-m", "oodbench.cli"]
    checkpoint = work / "tiny.pt"
    subprocess.run(
        [
            *oodbench,
            "train",
            "-m",
            "cross_entropy",
            "--epochs",
            "1",
            "--quiet",
            "--checkpoint",
            str(checkpoint),
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    common = [
        "run",
        "--checkpoint",
        str(checkpoint),
        "-d",
        "msp",
        "-d",
        "mahalanobis",
        "--plots",
        "none",
        "--quiet",
    ]
    base = peak_rss_mb([*oodbench, *common], env)
    print(f"base (suite only): peak RSS {base:.0f} MB")
    rng = np.random.default_rng(0)
    for n in (int(v) for v in args.sizes.split(",")):
        path = work / f"ood{n}.npz"
        np.savez(path, x=rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        peak = peak_rss_mb([*oodbench, *common, "--out", f"npz:{path}"], env)
        print(f"npz {n:>7,}: peak RSS {peak:.0f} MB, beyond base {peak - base:+.0f} MB")
        path.unlink()
    if not args.skip_resize:
        (work / "big_input_net.py").write_text(FACTORY)
        sys.path.insert(0, str(work))
        import torch
        from big_input_net import build

        torch.manual_seed(0)
        torch.save(build().state_dict(), work / "big.pt")
        peak = peak_rss_mb(
            [
                *oodbench,
                "run",
                "--checkpoint",
                str(work / "big.pt"),
                "--arch",
                f"{work / 'big_input_net.py'}:build",
                "--resize",
                "224",
                "-d",
                "msp",
                "-d",
                "mahalanobis",
                "--plots",
                "none",
                "--quiet",
            ],
            env,
        )
        print(
            f"resize 224 (5 x 1,000 images at 224x224): peak RSS {peak:.0f} MB, "
            f"beyond base {peak - base:+.0f} MB"
        )


if __name__ == "__main__":
    main()
