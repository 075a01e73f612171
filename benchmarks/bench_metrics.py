"""Speed of oodbench.metrics against one np.argsort, scikit-learn and pytorch-ood.

    python benchmarks/bench_metrics.py [--sizes 10000 100000 1000000] [--repeats 7] [--seed 0]
        [--baseline OLD/oodbench/metrics.py] [--full-bootstrap 1000] [--peers]
    python benchmarks/bench_metrics.py --crossover [--sizes 10 100 1000 ...] [--repeats 9]
    python benchmarks/bench_metrics.py --tied-auroc --sizes 5800000 10500000 [--baseline OLD.py]

Data: n/2 ID scores ~ N(1, 1) and n/2 OOD scores ~ N(0, 1) (float64, no ties), or with
``--data saturated`` float32 max-softmax scores of random logits (many ties at 1.0). For every
size, every contender runs once per round, in the same order, for `repeats` rounds after one
warm-up; the table shows the median and the minimum seconds, each with its ratio to the same
statistic of one ``np.argsort`` of the pooled scores in the same rounds (on a shared machine
the minimum is the least disturbed by other jobs), and with its ratio to one ``np.sort`` of
them (the one sort ``compute`` needs: a floor that depends less on how fast this machine's
argsort is). Targets (issues 2 and 9): ``compute`` <= 0.5x argsort and one bootstrap resample
<= 0.2x argsort on 10^6 scores; faster than scikit-learn (roc_auc_score +
average_precision_score twice + roc_curve) and pytorch-ood's OODMetrics.

One resample = (bootstrap(n_resamples=1 + k) - bootstrap(n_resamples=1)) / k, with k = 10,
timed through the public API, so the one-off sort of bootstrap is not counted.

``--baseline PATH`` loads another version of metrics.py (e.g. the commit before a change,
extracted with ``git show OLD:oodbench/metrics.py > /tmp/metrics_old.py``) and times its
compute, legacy compute and resample in the same rounds ("before" rows). ``--full-bootstrap N``
then times one N-resample ``bootstrap`` and ``paired_bootstrap`` on the largest size (current
version only). ``--peers`` adds scikit-learn and pytorch-ood (optional: skipped if missing).

``--crossover`` (issue 16) times only the simple exact path (each set sorted, binary search)
against the fast one (one integer sort of the pooled keys), side by side per size, on distinct
and on rounded (tied) scores, to find the size below which the simple path would be faster.
``--tied-auroc`` checks AUROC against scikit-learn on many tied scores of each size (the data of
the slow test; with ``--baseline``, that version too).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType

import numpy as np

from oodbench import metrics

RESAMPLES_TIMED = 10


def _seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Run every function once per round (interleaved, so load changes hit all alike)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm-up: imports, allocator, caches
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("oodbench_metrics_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data(kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n_in = n // 2
    if kind == "normal":
        return rng.normal(1.0, 1.0, n_in), rng.normal(0.0, 1.0, n - n_in)

    def softmax_max(count: int, scale: float) -> np.ndarray:
        logits = (rng.normal(size=(count, 10)) * scale).astype(np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p.max(axis=1) / p.sum(axis=1)).astype(np.float64)

    return softmax_max(n_in, 8.0), softmax_max(n - n_in, 3.0)


def _contenders(module: ModuleType, s_in: np.ndarray, s_out: np.ndarray, label: str) -> dict:
    def resample() -> None:
        module.bootstrap(s_in, s_out, n_resamples=1 + RESAMPLES_TIMED, seed=0)

    return {
        f"compute{label}": lambda: module.compute(s_in, s_out),
        f"compute legacy{label}": lambda: module.compute(s_in, s_out, legacy=True),
        f"bootstrap 1{label}": lambda: module.bootstrap(s_in, s_out, n_resamples=1, seed=0),
        f"bootstrap {1 + RESAMPLES_TIMED}{label}": resample,
    }


def _peers(s_in: np.ndarray, s_out: np.ndarray) -> dict[str, Callable[[], object]]:
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

    peers: dict[str, Callable[[], object]] = {"scikit-learn": sklearn_calls}
    ours = metrics.compute(s_in, s_out)
    agreement = max(abs(ours[k] - v) for k, v in sklearn_calls().items())
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

        peers["pytorch-ood OODMetrics"] = pytorch_ood_calls
        peer = pytorch_ood_calls()
        # Its FPR95TPR takes OOD as positive, i.e. our fpr95_openood.
        agreement = max(
            agreement, abs(ours["auroc"] - peer["AUROC"]), abs(ours["fpr95_openood"] - peer["FPR95TPR"])
        )
    print(f"max |difference| vs scikit-learn / pytorch-ood: {agreement:.1e}")
    return peers


def _report(n: int, times: dict[str, list[float]], labels: list[str]) -> None:
    """Median and minimum seconds, each also as a ratio to the same statistic of np.argsort.
    (On a shared machine the minimum is the least disturbed by other jobs.)"""
    stats = {"median": statistics.median, "min": min}
    rows = {name: {key: f(ts) for key, f in stats.items()} for name, ts in times.items()}
    for label in labels:  # per-resample seconds from the two bootstrap timings
        one, many = rows.pop(f"bootstrap 1{label}"), rows.pop(f"bootstrap {1 + RESAMPLES_TIMED}{label}")
        rows[f"one resample{label}"] = {k: max(many[k] - one[k], 0.0) / RESAMPLES_TIMED for k in stats}
    base, sort = rows["np.argsort"], rows["np.sort"]
    print()
    print(f"n = {n:,}")
    print("| contender | median s | / argsort | / np.sort | min s | / argsort | / np.sort |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['median']:.5f} | {row['median'] / base['median']:.3f} "
            f"| {row['median'] / sort['median']:.2f} | {row['min']:.5f} | {row['min'] / base['min']:.3f} "
            f"| {row['min'] / sort['min']:.2f} |"
        )
    for label in labels:
        for key in stats:
            compute, resample = rows[f"compute{label}"][key], rows[f"one resample{label}"][key]
            print(
                f"{key}: compute{label} / argsort = {compute / base[key]:.3f} (target <= 0.5), "
                f"= {compute / sort[key]:.2f} np.sort; one resample{label} / argsort = "
                f"{resample / base[key]:.3f} (target <= 0.2), = {resample / sort[key]:.2f} np.sort"
            )


def _crossover(sizes: list[int], repeats: int, seed: int) -> None:
    """Simple path (_exact_simple: sort each set + binary search) against the fast path (_exact:
    one integer sort), side by side: per size and data, both run once per round (interleaved; at
    least `repeats` rounds, more for short calls), median / min seconds and their ratio simple /
    fast (< 1: the simple path is faster)."""
    rng = np.random.default_rng(seed)
    print("| pooled n | data | fast median s | simple median s | simple / fast (median) | (min) |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in sizes:
        s_in, s_out = rng.normal(1.0, 1.0, n // 2), rng.normal(0.0, 1.0, n - n // 2)
        # Distinct scores, and ties: rounded to 3 decimals and to 1 (at 10**6 scores 7,849 and 100
        # distinct values; at 10**4, 4,031 and 77).
        for data, digits in (("distinct", None), ("round 3", 3), ("round 1", 1)):
            a, b = (s_in, s_out) if digits is None else (np.round(s_in, digits), np.round(s_out, digits))
            rounds = max(repeats, min(2001, 2_000_000 // n))  # more rounds where a call is short
            paths = {
                "fast": lambda a=a, b=b: metrics._exact(a, b),
                "simple": lambda a=a, b=b: metrics._exact_simple(a, b),
            }
            times = _seconds(paths, rounds)
            med = {k: statistics.median(v) for k, v in times.items()}
            low = {k: min(v) for k, v in times.items()}
            print(
                f"| {n:,} | {data} | {med['fast']:.2e} | {med['simple']:.2e} "
                f"| {med['simple'] / med['fast']:.2f} | {low['simple'] / low['fast']:.2f} |"
            )


def _tied_auroc(sizes: list[int], baseline: ModuleType | None) -> None:
    """AUROC on many tied scores (ID round(N(1, 1), 2), OOD round(N(0, 1), 2), half each, seed 16:
    the data of the slow test) against scikit-learn, for this module and the baseline."""
    from sklearn.metrics import roc_auc_score

    modules = {"this": metrics} | ({"baseline": baseline} if baseline is not None else {})
    for n in sizes:
        rng = np.random.default_rng(16)
        s_in, s_out = np.round(rng.normal(1.0, 1.0, n // 2), 2), np.round(rng.normal(0.0, 1.0, n - n // 2), 2)
        reference = roc_auc_score(np.r_[np.ones(s_in.size), np.zeros(s_out.size)], np.r_[s_in, s_out])
        print(f"n = {n:,}: scikit-learn AUROC {reference!r}")
        for name, module in modules.items():
            auroc = module.compute(s_in, s_out)["auroc"]
            print(f"  {name}: {auroc!r}, |difference| {abs(auroc - reference):.1e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per contender")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", choices=["normal", "saturated"], default="normal")
    parser.add_argument("--baseline", help="path of another metrics.py to time side by side")
    parser.add_argument("--full-bootstrap", type=int, default=0, metavar="N")
    parser.add_argument("--peers", action="store_true", help="add scikit-learn and pytorch-ood")
    parser.add_argument(
        "--crossover", action="store_true", help="only time the simple path against the fast path per size"
    )
    parser.add_argument(
        "--tied-auroc", action="store_true", help="only check AUROC against scikit-learn on tied scores"
    )
    args = parser.parse_args(argv)
    if min(args.sizes) < 4 or args.repeats < 1:
        parser.error("--sizes must be >= 4 and --repeats >= 1")
    if args.tied_auroc:  # first, while this process's work buffers are fresh
        _tied_auroc(args.sizes, _load(args.baseline) if args.baseline else None)
        return 0
    if args.crossover:
        print(f"numpy {np.__version__}, {os.cpu_count()} CPU cores, load {os.getloadavg()}")
        _crossover(args.sizes, args.repeats, args.seed)
        print(f"load at the end {os.getloadavg()}")
        return 0
    baseline = _load(args.baseline) if args.baseline else None

    print(
        f"{args.data} scores, {args.repeats} rounds, median s; numpy {np.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPU cores, load {os.getloadavg()}"
    )
    rng = np.random.default_rng(args.seed)
    for n in args.sizes:
        s_in, s_out = _data(args.data, n, rng)
        pooled = np.concatenate((s_in, s_out))

        def draws(n_in: int = s_in.size, n_out: int = s_out.size) -> None:
            # The floor of one resample: drawing the indices and counting them, nothing else.
            g = np.random.default_rng(0)
            np.bincount(g.integers(0, n_in, size=n_in), minlength=n_in)
            np.bincount(g.integers(0, n_out, size=n_out), minlength=n_out)

        contenders: dict[str, Callable[[], object]] = {
            "np.argsort": lambda pooled=pooled: np.argsort(pooled),
            "np.sort": lambda pooled=pooled: np.sort(pooled),
            "resample draws only (rng.integers + np.bincount)": draws,
        }
        contenders |= _contenders(metrics, s_in, s_out, "")
        labels = [""]
        if baseline is not None:
            contenders |= _contenders(baseline, s_in, s_out, " (before)")
            labels.append(" (before)")
            for legacy in (False, True):
                old, new = (
                    baseline.compute(s_in, s_out, legacy=legacy),
                    metrics.compute(s_in, s_out, legacy=legacy),
                )
                print(
                    f"n = {n:,}, legacy={legacy}: max |after - before| = "
                    f"{max(abs(old[k] - new[k]) for k in new):.1e}"
                )
        if args.peers:
            contenders |= _peers(s_in, s_out)
        _report(n, _seconds(contenders, args.repeats), labels)

    if args.full_bootstrap:
        n = max(args.sizes)
        s_in, s_out = _data(args.data, n, rng)
        b_in = np.round(s_in + rng.normal(0.0, 0.5, s_in.size), 3)  # a second detector, same samples
        b_out = np.round(s_out + rng.normal(0.0, 0.5, s_out.size), 3)
        print()
        for name, call in (
            ("bootstrap", lambda: metrics.bootstrap(s_in, s_out, n_resamples=args.full_bootstrap)),
            (
                "paired_bootstrap",
                lambda: metrics.paired_bootstrap(s_in, s_out, b_in, b_out, n_resamples=args.full_bootstrap),
            ),
        ):
            start = time.perf_counter()
            call()
            seconds = time.perf_counter() - start
            print(f"{name}: {args.full_bootstrap} resamples on {n:,} scores: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
