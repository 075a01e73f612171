"""Speed of oodbench.metrics.compute against one np.argsort, scikit-learn and pytorch-ood.

    python benchmarks/bench_metrics.py [--n 1000000] [--repeats 5] [--seed 0]

Data: n/2 ID scores ~ N(1, 1) and n/2 OOD scores ~ N(0, 1) (float64, no ties). Every
contender runs once per round, in the same order, for `repeats` rounds; the table shows
the median seconds per contender and the ratios the performance target of issue 2 names:
compute <= 2x one argsort of the pooled scores, and faster than scikit-learn
(roc_auc_score + average_precision_score twice + roc_curve) and pytorch-ood's OODMetrics.
pytorch-ood is optional (`pip install pytorch-ood`); it is skipped with a message if missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from oodbench import metrics


def _median_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Run every function once per round (interleaved, so load changes hit all alike)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm-up: imports, allocator, caches
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="total number of scores (half ID, half OOD)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per contender")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 4 or args.repeats < 1:
        parser.error("--n must be >= 4 and --repeats >= 1")

    rng = np.random.default_rng(args.seed)
    n_in = args.n // 2
    s_in = rng.normal(1.0, 1.0, n_in)
    s_out = rng.normal(0.0, 1.0, args.n - n_in)
    pooled = np.concatenate((s_in, s_out))
    is_id = np.r_[np.ones(s_in.size, dtype=np.int64), np.zeros(s_out.size, dtype=np.int64)]

    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    def sklearn_calls() -> dict[str, float]:
        roc_curve(is_id, pooled)
        return {
            "auroc": roc_auc_score(is_id, pooled),
            "aupr_in": average_precision_score(is_id, pooled),
            "aupr_out": average_precision_score(1 - is_id, -pooled),
        }

    contenders: dict[str, Callable[[], object]] = {
        "np.argsort (1 sort)": lambda: np.argsort(pooled),
        "oodbench compute": lambda: metrics.compute(s_in, s_out),
        "oodbench compute legacy": lambda: metrics.compute(s_in, s_out, legacy=True),
        "scikit-learn": sklearn_calls,
    }

    try:
        import torch
        from pytorch_ood.metrics import OODMetrics
    except ImportError as exc:
        print(f"pytorch-ood not available ({exc}); skipping it (pip install pytorch-ood).", file=sys.stderr)
    else:
        # pytorch-ood: larger score = more OOD, labels < 0 mark OOD; so negate our scores.
        outlier = torch.from_numpy(-pooled)
        labels = torch.from_numpy(np.where(is_id == 1, 0, -1))

        def pytorch_ood_calls() -> dict[str, float]:
            ood_metrics = OODMetrics()
            ood_metrics.update(outlier, labels)
            return ood_metrics.compute()

        contenders["pytorch-ood OODMetrics"] = pytorch_ood_calls

    # Same numbers from every library (sanity check, not timed).
    ours = metrics.compute(s_in, s_out)
    theirs = sklearn_calls()
    agreement = max(abs(ours[k] - theirs[k]) for k in theirs)
    if "pytorch-ood OODMetrics" in contenders:
        peer = contenders["pytorch-ood OODMetrics"]()
        # Its FPR95TPR takes OOD as positive, i.e. our fpr95_openood; its AUPRs use other conventions.
        agreement = max(
            agreement, abs(ours["auroc"] - peer["AUROC"]), abs(ours["fpr95_openood"] - peer["FPR95TPR"])
        )

    median = _median_seconds(contenders, args.repeats)

    print(
        f"n = {args.n:,} scores ({s_in.size:,} ID + {s_out.size:,} OOD), {args.repeats} rounds, median s; "
        f"numpy {np.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPU cores"
    )
    print(
        "max |difference| vs scikit-learn (auroc, aupr_in, aupr_out) and pytorch-ood (AUROC, "
        f"FPR95TPR = our fpr95_openood): {agreement:.1e}"
    )
    print()
    print("| contender | median s | vs compute |")
    print("|---|---:|---:|")
    base = median["oodbench compute"]
    for name, seconds in median.items():
        print(f"| {name} | {seconds:.3f} | {seconds / base:.2f}x |")
    print()
    print(f"compute / argsort       = {base / median['np.argsort (1 sort)']:.2f}  (target <= 2)")
    print(
        f"legacy / argsort        = {median['oodbench compute legacy'] / median['np.argsort (1 sort)']:.2f}"
    )
    print(f"scikit-learn / compute  = {median['scikit-learn'] / base:.2f}  (target > 1)")
    if "pytorch-ood OODMetrics" in median:
        print(f"pytorch-ood / compute   = {median['pytorch-ood OODMetrics'] / base:.2f}  (target > 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
