"""Sweep executors side by side: the same 6-job sweep run sequentially, on 2 local worker
processes, and on a local Ray cluster, each from empty caches (every job trains its model).

    python benchmarks/bench_sweep.py                       # 3 models x 2 seeds, 2 epochs, 4 modes
    python benchmarks/bench_sweep.py --modes local2,ray    # a subset

Jobs: embedded suite, models cross_entropy, confidence, joint, seeds 0 and 1, training override
--epochs (default 2; joint needs >= 2 because of its 1-epoch GAN warm-up), detectors msp,
energy and max_logit. Modes:
  sequential  run_sweep(executor="local", workers=1): in this process, torch threads = all CPUs
              (the default of `oodbench sweep --workers 1`)
  sequential1 the same with 1 torch thread (isolates thread-count effects from parallelism)
  local2      run_sweep(executor="local", workers=2): 2 spawned processes, 1 torch thread each
  ray         run_sweep(executor="ray"): a local Ray cluster (num_cpus = CPUs), 1 CPU and 1 torch
              thread per task; the wall time includes starting and stopping the cluster
Each mode gets fresh cache and results folders. The 1-thread modes (sequential1, local2, ray) must give
identical rows (checked and printed); the sequential mode uses another thread count, so its
trained weights and metrics may differ in the last bits.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from oodbench.results import METRIC_FIELDS, load_rows
from oodbench.sweep import expand_jobs, run_sweep
from oodbench.sweep.executors import available_cpus

KEY = ["model_source", "detector", "out_dataset", "seed"]


def _jobs(root: Path, mode: str, threads: int, epochs: int):
    return expand_jobs(
        ["mnist"],
        models=["cross_entropy", "confidence", "joint"],
        detectors=["msp", "energy", "max_logit"],
        seeds=[0, 1],
        train_overrides={"epochs": epochs},
        torch_threads=threads,
        results_dir=root / mode / "runs",
        cache_dir=root / mode / "cache",
    )


def run_mode(mode: str, root: Path, epochs: int, cpus: int) -> dict:
    threads = cpus if mode == "sequential" else 1
    jobs = _jobs(root, mode, threads, epochs)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    if mode in ("sequential", "sequential1"):
        outcomes = run_sweep(jobs, executor="local", workers=1)
    elif mode == "local2":
        outcomes = run_sweep(jobs, executor="local", workers=2)
    elif mode == "ray":
        outcomes = run_sweep(jobs, executor="ray")  # starts and stops a local cluster
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    wall = time.perf_counter() - started
    failed = [o for o in outcomes if o.status != "done"]
    if failed:
        raise SystemExit(f"{mode}: jobs did not finish: {failed}")
    job_seconds = sum(o.seconds for o in outcomes)
    return {
        "mode": mode,
        "threads": threads,
        "wall": wall,
        "job_seconds": job_seconds,
        "load": (load, os.getloadavg()[0]),
        "root": root / mode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modes", default="sequential,sequential1,local2,ray")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    cpus = available_cpus()
    # Ray's workers must import this checkout's oodbench.
    repo = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    print(f"python {platform.python_version()}, torch {torch.__version__}, {cpus} CPUs, {platform.machine()}")
    print("uptime before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        rows = [run_mode(mode, Path(tmp), args.epochs, cpus) for mode in modes]
        print("uptime after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
        base = next((r["wall"] for r in rows if r["mode"] == "sequential"), rows[0]["wall"])
        print(f"\n6 jobs (3 models x 2 seeds), --epochs {args.epochs}, detectors msp, energy, max_logit\n")
        print(
            "| mode | torch threads/job | wall s | sum of job s | sequential / mode | 1-min load start, end |"
        )
        print("|---|---:|---:|---:|---:|---|")
        for r in rows:
            print(
                f"| {r['mode']} | {r['threads']} | {r['wall']:.1f} | {r['job_seconds']:.1f} | "
                f"{base / r['wall']:.2f}x | {r['load'][0]:.1f}, {r['load'][1]:.1f} |"
            )
        one_thread = [r for r in rows if r["threads"] == 1]
        if len(one_thread) >= 2:
            frames = [
                load_rows(r["root"] / "runs").sort_values(KEY).reset_index(drop=True) for r in one_thread
            ]
            columns = (*METRIC_FIELDS, "checkpoint_sha256")
            same = all(f[c].tolist() == frames[0][c].tolist() for f in frames for c in columns)
            names = ", ".join(r["mode"] for r in one_thread)
            print(f"\n1-thread modes ({names}) give identical rows: {same} ({len(frames[0])} rows each)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
