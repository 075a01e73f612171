"""Detector and runner speed, measured side by side in one run (ratios, not absolute targets).

    python benchmarks/bench_detectors.py [--n 4000] [--repeats 3] [--arch small_cnn]

1. k logit-based detectors from ONE shared forward pass vs one plain forward pass
   (target: <= 1.15x), and vs the naive way (each detector runs its own forward pass).
2. ODIN tuning on the paper grid (first N of the 10 T x all 21 eps): one backward per T serving every eps
   (oodbench.detectors.odin.tune_odin) vs the naive loop of one perturbation per (T, eps).
3. Scoring throughput against pytorch-ood's MaxSoftmax, ODIN and EnergyBased on the same
   model and data (ratio >= 1.0 means oodbench is at least as fast). Skipped if not installed.
Random weights: speed does not depend on what the model learned.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from oodbench import metrics
from oodbench.detectors import create_detector
from oodbench.detectors.base import collect_outputs
from oodbench.detectors.odin import PAPER_EPSILONS, PAPER_TEMPERATURES, odin_scores_for_epsilons, tune_odin
from oodbench.models import create_classifier


def timed(fn, repeats: int) -> float:
    """Median wall-clock seconds of `repeats` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def naive_odin_tuning(model, val_in, val_out, temperatures, epsilons, batch_size):
    """One full perturbation (backward + forward) per (T, eps): what the shared column avoids."""
    best = (np.inf, None)
    for t in temperatures:
        for eps in epsilons:
            s_in = odin_scores_for_epsilons(model, val_in, float(t), [eps], batch_size=batch_size)[0]
            s_out = odin_scores_for_epsilons(model, val_out, float(t), [eps], batch_size=batch_size)[0]
            fpr = 1 - metrics.compute(s_in, s_out)["tnr_at_tpr95"]
            best = min(best, (fpr, (t, eps)), key=lambda item: item[0])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=4000, help="images scored per measurement")
    parser.add_argument("--n-val", type=int, default=100, help="validation images per side for ODIN tuning")
    parser.add_argument(
        "--n-temperatures",
        type=int,
        default=3,
        help="first N temperatures of the paper grid (all 21 eps) for the tuning comparison",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arch", default="small_cnn", choices=["small_cnn", "vgg13"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = (1, 28, 28) if args.arch == "small_cnn" else (3, 32, 32)
    model = create_classifier(args.arch, in_shape=shape, num_classes=10).eval()
    x = torch.rand(args.n, *shape)
    bs = args.batch_size
    print(
        f"arch={args.arch} input={shape} n={args.n} batch={bs} threads={args.threads} "
        f"torch={torch.__version__}"
    )

    # 1. Shared forward pass.
    names = ["msp", "energy", "max_logit", "random"]
    detectors = [create_detector(name) for name in names]
    t_forward = timed(lambda: collect_outputs(model, x, batch_size=bs), args.repeats)

    def shared():
        outputs = collect_outputs(model, x, batch_size=bs)
        return [d.score_outputs(outputs) for d in detectors]

    def naive():
        return [d.score(model, x, batch_size=bs) for d in detectors]

    t_shared = timed(shared, args.repeats)
    t_naive = timed(naive, args.repeats)
    print("\n## 1. k = 4 logit-based detectors (msp, energy, max_logit, random)")
    print("| measurement | seconds | ratio to one forward pass |\n|---|---:|---:|")
    for label, t in [
        ("one forward pass", t_forward),
        ("4 detectors, shared pass (oodbench)", t_shared),
        ("4 detectors, one pass each (naive)", t_naive),
    ]:
        print(f"| {label} | {t:.3f} | {t / t_forward:.2f}x |")

    # 2. ODIN tuning.
    val_in, val_out = torch.rand(args.n_val, *shape), torch.rand(args.n_val, *shape)
    temps, epss = PAPER_TEMPERATURES[: args.n_temperatures], PAPER_EPSILONS
    t_tune = timed(lambda: tune_odin(model, val_in, val_out, temps, epss, batch_size=bs), 1)
    t_naive_tune = timed(lambda: naive_odin_tuning(model, val_in, val_out, temps, epss, bs), 1)
    print(f"\n## 2. ODIN tuning, {len(temps)} T x {len(epss)} eps, {args.n_val} + {args.n_val} images")
    print("| method | seconds |\n|---|---:|")
    print(f"| oodbench (one backward per T) | {t_tune:.2f} |")
    print(f"| naive (one perturbation per (T, eps)) | {t_naive_tune:.2f} |")
    print(f"| speed-up | {t_naive_tune / t_tune:.2f}x |")

    # 3. Against pytorch-ood.
    try:
        import pytorch_ood.detector as pood
    except ImportError:
        print("\n## 3. pytorch-ood not installed (pip install pytorch-ood): comparison skipped")
        return
    ours = {
        "MSP": lambda: create_detector("msp").score(model, x, batch_size=bs),
        "ODIN (T=1000, eps=0.0014)": lambda: create_detector("odin", temperature=1000, epsilon=0.0014).score(
            model, x, batch_size=bs
        ),
        "Energy": lambda: create_detector("energy").score(model, x, batch_size=bs),
    }
    theirs_detectors = {
        "MSP": pood.MaxSoftmax(model),
        "ODIN (T=1000, eps=0.0014)": pood.ODIN(model, eps=0.0014, temperature=1000.0),
        "Energy": pood.EnergyBased(model),
    }

    def run_theirs(detector):
        def go():
            out = []
            for start in range(0, len(x), bs):
                batch = x[start : start + bs]
                if isinstance(detector, pood.ODIN):
                    out.append(detector.predict(batch).detach())
                else:
                    with torch.no_grad():
                        out.append(detector.predict(batch))
            return torch.cat(out)

        return go

    print("\n## 3. Scoring throughput vs pytorch-ood (same model, data, batch size)")
    print("| detector | oodbench img/s | pytorch-ood img/s | ratio (>= 1.0: oodbench as fast or faster) |")
    print("|---|---:|---:|---:|")
    for label, fn in ours.items():
        t_ours = timed(fn, args.repeats)
        t_theirs = timed(run_theirs(theirs_detectors[label]), args.repeats)
        print(f"| {label} | {args.n / t_ours:,.0f} | {args.n / t_theirs:,.0f} | {t_theirs / t_ours:.2f} |")


if __name__ == "__main__":
    main()
