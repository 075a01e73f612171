"""Degenerate tuning picks of result rows, as one warning line per flagged row group.

A row's `tuning_flags` (oodbench.detectors.grid) says when a grid search chose nothing (every
grid point scored the same validation AUROC) or chose a value at the edge of its grid. Rows of
one (model, seed, detector, parameters) were fitted once and share their flags, so they make one
line. Rows written before the field (`tuning_flags` None) are left to the caller's heuristic.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd


def recorded_flags(value: Any) -> list[str] | None:
    """A frame cell of `tuning_flags` as a list, or None when the row did not record it."""
    if isinstance(value, str):  # a frame read back from CSV / JSON text
        value = json.loads(value) if value.strip() else None
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return [str(flag) for flag in value]


def tuning_warnings(frame: pd.DataFrame, labels: pd.Series | None = None) -> list[str]:
    """'MODEL / DETECTOR {params} (seed S): FLAG; FLAG' for every row group with flags.
    `labels`: the model's display label per row (default: model_label, else model_source)."""
    if frame.empty or "tuning_flags" not in frame.columns:
        return []
    if labels is None:
        labels = frame.get("model_label", pd.Series("", index=frame.index)).fillna("").astype(str)
        labels = labels.where(labels != "", frame["model_source"].astype(str))
    out: list[str] = []
    seen: set[tuple] = set()
    for index, row in frame.iterrows():
        flags = recorded_flags(row["tuning_flags"])
        if not flags:
            continue
        params = row.get("detector_params", "")
        params = params if isinstance(params, str) else json.dumps(params, sort_keys=True)
        key = (labels[index], row["detector"], params, row["seed"], tuple(flags))
        if key in seen:
            continue
        seen.add(key)
        shown = "" if params in ("", "{}") else f" {params}"
        out.append(f"{labels[index]} / {row['detector']}{shown} (seed {row['seed']}): " + "; ".join(flags))
    return out
