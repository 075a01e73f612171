"""Size and build time of the HTML report for a large made-up results folder.

    python benchmarks/bench_report.py --detectors 20 --sets 10 --out /tmp/big-report

Writes fake rows and scores (one model, one seed, `--n` ID and OOD scores per row; each
detector's OOD scores are shifted by its own amount so the tables and figures differ), then
`oodbench.report.html.write_report`, and prints the page's size and build time. The browser
load time is measured by tests/test_report_browser.py's helper (`--browser`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from oodbench.metrics import compute
from oodbench.results import ResultRow, default_scores_file, save_scores, write_rows


def fake_results(folder: Path, *, detectors: int, sets: int, n: int = 1000, seeds: int = 1) -> Path:
    """A results folder of detectors x sets rows (per seed) with stored scores; returns the folder."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        scores_in = {d: rng.normal(0.0, 1.0, n) for d in range(detectors)}
        for s in range(sets):
            for d in range(detectors):
                shift = 0.2 + 2.5 * ((d * 7 + s * 3) % 11) / 10
                scores_out = rng.normal(-shift, 1.0 + 0.1 * (s % 3), n)
                metrics = compute(scores_in[d], scores_out)
                row = ResultRow(
                    suite="fake", in_dataset="fake_in", out_dataset=f"ood_set_{s:02d}",
                    model_source="cross_entropy", model_arch="small_cnn", training_recipe="embedded",
                    detector=f"detector_{d:02d}", seed=seed, classification_accuracy=0.95,
                    n_in=n, n_out=n, device="cpu", tuning="none",
                    **{k: float(metrics[k]) for k in ("tnr_at_tpr95", "auroc", "aupr_in", "aupr_out",
                                                       "detection_accuracy", "fpr95_openood")},
                )  # fmt: skip
                row.scores_file = default_scores_file(row)
                save_scores(folder / row.scores_file, scores_in=scores_in[d], scores_out=scores_out)
                rows.append(row)
    write_rows(folder / "rows.jsonl", rows)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=20)
    parser.add_argument("--sets", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/oodbench-big-report"))
    args = parser.parse_args()
    from oodbench.report.html import write_report

    folder = fake_results(args.out, detectors=args.detectors, sets=args.sets, n=args.n, seeds=args.seeds)
    started = time.perf_counter()
    page = write_report(folder)
    seconds = time.perf_counter() - started
    print(
        f"{page}: {page.stat().st_size / 1e6:.2f} MB, built in {seconds:.1f} s "
        f"({args.detectors} detectors x {args.sets} sets x {args.seeds} seed(s), {args.n} scores each)"
    )


if __name__ == "__main__":
    main()
