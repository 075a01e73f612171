"""Memory of Mahalanobis fitting and scoring at ImageNet scale: in-memory (0.2.0) vs streamed.

    OMP_NUM_THREADS=1 python benchmarks/bench_mahalanobis_memory.py [--classes 1000] [--dim 2048]
        [--batch 256] [--train 20000]

Each measurement runs in its own process on random ReLU features (float32, as a network gives):
- score/old: one batch through the 0.2.0 form, einsum over the (batch, C, D) float64 differences;
- score/new: one batch through `QuadraticForm` (expanded, centred quadratic form);
- fit/old: the 0.2.0 fit, the training split's whole (N, D) feature matrix then centred copy;
- fit/new: `TiedGaussianStats`, fed one batch at a time.
"Peak above setup" = peak RSS (getrusage) minus the RSS once the inputs (means, precision, or
the feature generator) exist, so it is what the step itself allocates.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _child(mode: str, classes: int, dim: int, batch: int, train: int) -> dict:
    import torch

    from oodbench.detectors.mahalanobis import QuadraticForm, TiedGaussianStats

    torch.manual_seed(0)
    if mode.startswith("score"):
        means = torch.randn(classes, dim, dtype=torch.float64)
        a = torch.randn(dim, dim, dtype=torch.float64) / dim**0.5
        precision = a @ a.T
        f = torch.relu(torch.randn(batch, dim)).double()
        form = QuadraticForm(means, precision) if mode == "score/new" else None
        base, start = _rss_mib(), time.perf_counter()
        if mode == "score/old":
            diff = f[:, None, :] - means[None, :, :]
            torch.einsum("ncd,de,nce->nc", diff, precision, diff).min(dim=1)
        else:
            form(f)
    else:
        y = torch.randint(0, classes, (train,))
        base, start = _rss_mib(), time.perf_counter()
        batches = (
            (torch.relu(torch.randn(len(y[i : i + batch]), dim)), y[i : i + batch])
            for i in range(0, train, batch)
        )
        if mode == "fit/old":
            f = torch.cat([b for b, _ in batches]).double()  # collect_outputs, then .double()
            cls = torch.unique(y)
            means = torch.stack([f[y == c].mean(dim=0) for c in cls])
            centred = f - means[torch.searchsorted(cls, y)]
            _ = centred.T @ centred / len(f)
        else:
            stats = TiedGaussianStats()
            for b, labels in batches:
                stats.update(b, labels)
            stats.means(), stats.covariance()
    return {"mode": mode, "seconds": time.perf_counter() - start, "peak_above_setup_mib": _peak_mib() - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--modes", default="score/new,score/old,fit/new,fit/old")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.classes, args.dim, args.batch, args.train)))
        return
    print(f"classes={args.classes} features={args.dim} batch={args.batch} train={args.train}")
    for mode in args.modes.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--classes",
            str(args.classes),
            "--dim",
            str(args.dim),
        ]
        cmd += ["--batch", str(args.batch), "--train", str(args.train)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"{mode:10s} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout)
        print(f"{mode:10s} peak above setup {r['peak_above_setup_mib']:9.1f} MiB   {r['seconds']:7.2f} s")


if __name__ == "__main__":
    main()
