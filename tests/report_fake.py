"""A made-up results folder with stored scores, for the report page tests and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from oodbench.metrics import compute
from oodbench.results import ResultRow, save_row_scores, write_rows


def fake_results(
    folder: Path,
    *,
    detectors: int | Sequence[str],
    sets: int,
    n: int = 1000,
    seeds: int = 1,
    models: Sequence[str] = ("cross_entropy",),
    params: dict[str, dict] | None = None,
) -> Path:
    """A results folder of models x detectors x sets rows (per seed) with stored scores.

    Detector d's OOD scores are N(-shift, 1) with a shift that varies with d and the set, plus
    0.5 per model index (later models separate better). `params`: detector -> tuned
    hyperparameters (those rows say tuning "validation split"). Returns the folder.
    """
    names = [f"detector_{d:02d}" for d in range(detectors)] if isinstance(detectors, int) else list(detectors)
    params = params or {}
    rng = np.random.default_rng(0)
    rows = []
    for m, model in enumerate(models):
        for seed in range(seeds):
            scores_in = {name: rng.normal(0.0, 1.0, n) for name in names}
            for s in range(sets):
                for d, name in enumerate(names):
                    shift = 0.2 + 2.5 * ((d * 7 + s * 3) % 11) / 10 + 0.5 * m
                    scores_out = rng.normal(-shift, 1.0 + 0.1 * (s % 3), n)
                    metrics = compute(scores_in[name], scores_out)
                    row = ResultRow(
                        suite="fake", in_dataset="fake_in", out_dataset=f"ood_set_{s:02d}",
                        model_source=model, model_arch="small_cnn", training_recipe="embedded",
                        detector=name, seed=seed, classification_accuracy=0.95 - 0.01 * seed,
                        n_in=n, n_out=n, device="cpu", detector_params=params.get(name, {}),
                        tuning="validation split: fake_val + noise" if name in params else "none",
                        **{k: float(metrics[k]) for k in ("tnr_at_tpr95", "auroc", "aupr_in", "aupr_out",
                                                           "detection_accuracy", "fpr95_openood")},
                    )  # fmt: skip
                    save_row_scores(folder, row, scores_in[name], scores_out)
                    rows.append(row)
    write_rows(folder / "rows.jsonl", rows)
    return folder
