"""Result rows made up for the report tests: one typical row, changed by keyword."""

from __future__ import annotations

import pandas as pd

from oodbench.results import ResultRow, rows_to_frame


def make_row(**overrides) -> ResultRow:
    """An embedded-suite row (msp on cross_entropy, mnist -> animals, seed 0) with `overrides`."""
    values = dict(
        suite="mnist", in_dataset="mnist", out_dataset="animals", model_source="cross_entropy",
        model_arch="small_cnn", training_recipe="embedded", detector="msp", seed=0,
        tnr_at_tpr95=0.5, auroc=0.9, aupr_in=0.8, aupr_out=0.85, detection_accuracy=0.82,
        fpr95_openood=0.3, classification_accuracy=0.97, n_in=100, n_out=80, device="cpu",
        oodbench_version="0.1.0", git_commit="abc", torch_version="2.0",
        created_at="2024-01-01T00:00:00+00:00",
    )  # fmt: skip
    values.update(overrides)
    return ResultRow(**values)


def frame_of(*rows: ResultRow) -> pd.DataFrame:
    return rows_to_frame(list(rows))
