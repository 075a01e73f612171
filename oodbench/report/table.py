"""The comparison table model: cells of one metric over seeds, and bootstrap intervals.

Stored metric values are fractions; the table shows PERCENT with one decimal (CSV too). Cells
that hold several seeds show "mean ± std (n=N)": the mean over seeds and the sample standard
deviation (ddof=1). Rows are de-duplicated and labelled by `oodbench.report.rows`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.errors import UserInputError
from oodbench.metrics import bootstrap
from oodbench.names import COLUMN_MODES
from oodbench.report.common import MISSING, check_metric, higher_is_better, percent
from oodbench.report.rows import detector_labels, model_keys, model_labels, pair_labels, prepare_rows
from oodbench.results import checked_scores_pair, warn_unverified

# Metrics the openood convention computes by the trapezoid rule, which the bootstrap does not.
OPENOOD_TRAPEZOID = ("aupr_in", "aupr_out")


@dataclass
class Cell:
    """The values of one table cell: one fraction per seed, and maybe a bootstrap interval."""

    values: list[float] = field(default_factory=list)
    ci: tuple[float, float] | None = None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (ddof=1); 0 for a single seed."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else 0.0

    def text(self) -> str:
        if not self.values:
            return MISSING
        out = percent(self.mean)
        if self.n > 1:
            out += f" ± {percent(self.std)} (n={self.n})"
        if self.ci is not None:
            out += f" [{percent(self.ci[0])}, {percent(self.ci[1])}]"
        return out


@dataclass
class ComparisonTable:
    """Rows = in->out pair (and model or detector when they are not columns), columns = labels."""

    metric: str
    convention: str
    index_names: tuple[str, ...]
    row_keys: list[tuple[str, ...]]
    column_labels: list[str]
    cells: dict[tuple[tuple[str, ...], str], Cell]
    notes: list[str] = field(default_factory=list)

    def cell(self, row_key: tuple[str, ...], column: str) -> Cell:
        return self.cells.get((row_key, column), Cell())

    def best_columns(self, row_key: tuple[str, ...]) -> set[str]:
        """Columns holding the best displayed value of a row (ties all win); empty if < 2 values."""
        shown = {
            col: round(100.0 * self.cell(row_key, col).mean, 1)
            for col in self.column_labels
            if self.cell(row_key, col).n > 0
        }
        if len(shown) < 2:
            return set()
        pick = max if higher_is_better(self.metric) else min
        best = pick(shown.values())
        return {col for col, value in shown.items() if value == best}

    def caption(self) -> str:
        direction = "higher" if higher_is_better(self.metric) else "lower"
        text = (
            f"{self.metric} in percent ({direction} is better), {self.convention} metrics; "
            "best of each row in bold."
        )
        if any(cell.n > 1 for cell in self.cells.values()):
            text += " Several seeds: mean ± sample std (n seeds)."
        return " ".join([text, *self.notes])

    def to_frame(self) -> pd.DataFrame:
        """Numeric wide table in percent (for CSV): one value column per label, + std/n/CI columns."""
        with_seeds = any(cell.n > 1 for cell in self.cells.values())
        with_ci = any(cell.ci is not None for cell in self.cells.values())
        records = []
        for key in self.row_keys:
            record: dict[str, object] = dict(zip(self.index_names, key, strict=True))
            for col in self.column_labels:
                cell = self.cell(key, col)
                record[col] = round(100.0 * cell.mean, 1) if cell.n else math.nan
                if with_seeds:
                    record[f"{col} std"] = round(100.0 * cell.std, 1) if cell.n else math.nan
                    record[f"{col} n"] = cell.n
                if with_ci:
                    low, high = cell.ci if cell.ci is not None else (math.nan, math.nan)
                    record[f"{col} ci_low"] = round(100.0 * low, 1)
                    record[f"{col} ci_high"] = round(100.0 * high, 1)
            records.append(record)
        return pd.DataFrame.from_records(records)


def comparison_table(
    df: pd.DataFrame,
    *,
    metric: str = "auroc",
    columns: str = "model+detector",
    convention: str | None = None,
    ci: bool = False,
    scores_root: str | os.PathLike | None = None,
    n_resamples: int = 1000,
) -> ComparisonTable:
    """Build a comparison table of `metric` from result rows.

    columns: "model+detector" (labels like "joint / msp", or "my-resnet / msp" for a model
    label), "detector" or "model"; what is not in the columns goes into the row labels when it
    varies. A cell pools the seeds of ONE model (`oodbench.report.rows.model_keys`): rows of
    different checkpoints never share a cell. ci: add the 95% bootstrap percentile interval
    (oodbench.metrics.bootstrap, seed 0) of single-run cells, computed from the row's scores NPZ
    (`scores_file`, relative to `scores_root`, normally the folder of rows.jsonl).
    """
    check_metric(metric)
    if columns not in COLUMN_MODES:
        raise UserInputError(f"Unknown column layout {columns!r}. Available: {', '.join(COLUMN_MODES)}.")
    if ci and metric == "classification_accuracy":
        raise UserInputError("--ci gives intervals of the OOD metrics only, not of classification_accuracy.")
    frame = prepare_rows(df, convention=convention)
    frame = frame.assign(
        _model=model_labels(frame),
        _mkey=model_keys(frame),
        _pair=pair_labels(frame),
        _det=detector_labels(frame),  # the name, plus parameters where settings would merge
    )
    if columns == "model+detector":
        frame["_col"] = frame["_model"] + " / " + frame["_det"]
        index_fields = ["_pair"]
    elif columns == "detector":
        frame["_col"] = frame["_det"]
        index_fields = ["_pair", "_model"] if frame["_mkey"].nunique() > 1 else ["_pair"]
    else:
        frame["_col"] = frame["_model"]
        index_fields = ["_pair", "_det"] if frame["_det"].nunique() > 1 else ["_pair"]
    names = {"_pair": "in->out", "_model": "model", "_det": "detector"}

    row_keys: dict[tuple[str, ...], None] = {}
    column_labels: dict[str, None] = {}
    grouped: dict[tuple[tuple[str, ...], str], list[pd.Series]] = {}
    for _, row in frame.iterrows():
        key = tuple(str(row[name]) for name in index_fields)
        row_keys.setdefault(key, None)
        column_labels.setdefault(row["_col"], None)
        grouped.setdefault((key, row["_col"]), []).append(row)

    cells: dict[tuple[tuple[str, ...], str], Cell] = {}
    unverified: list[str] = []
    for where, rows in grouped.items():
        values = [float(r[metric]) for r in rows if pd.notna(r[metric])]
        cell = Cell(values=values)
        if ci and len(rows) == 1:
            cell.ci = _bootstrap_interval(rows[0], metric, scores_root, n_resamples, unverified)
        cells[where] = cell
    warn_unverified(len(unverified))

    notes = []
    if ci:
        notes.append(f"[low, high]: 95% bootstrap percentile interval ({n_resamples} resamples).")
        if any(len(rows) > 1 for rows in grouped.values()):
            notes.append("Cells over several seeds show the spread over seeds instead of an interval.")
    return ComparisonTable(
        metric=metric,
        convention=str(frame["metrics_convention"].iloc[0]),
        index_names=tuple(names[name] for name in index_fields),
        row_keys=list(row_keys),
        column_labels=list(column_labels),
        cells=cells,
        notes=notes,
    )


def row_scores(
    row: pd.Series, scores_root: str | os.PathLike | None, unverified: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The stored (scores_in, scores_out) of a row; `scores_file` is relative to `scores_root`.

    Refused (one line naming the fix) when the file's sizes or digest do not match the row
    (`oodbench.results.checked_scores_pair`). Rows without a recorded digest (older oodbench)
    are read unverified and their files appended to `unverified`, for one warning.
    """
    who = row["model_label"] if row.get("model_label") else row["model_source"]
    label = f"{who}/{row['detector']} {row['in_dataset']}->{row['out_dataset']} seed {row['seed']}"
    if not row["scores_file"]:
        raise UserInputError(f"The row {label} kept no scores file; this needs stored scores.")
    path = Path(row["scores_file"])
    if not path.is_absolute():
        path = Path(scores_root or ".") / path
    scores_in, scores_out, verified = checked_scores_pair(path, row, label=label)
    if not verified and unverified is not None:
        unverified.append(str(path))
    return scores_in, scores_out


def _bootstrap_interval(
    row: pd.Series,
    metric: str,
    scores_root: str | os.PathLike | None,
    n_resamples: int,
    unverified: list[str],
) -> tuple[float, float]:
    if row["metrics_convention"] == "openood" and metric in OPENOOD_TRAPEZOID:
        raise UserInputError(
            f"--ci has no {metric} interval in the openood convention (trapezoidal AUPR); "
            "use --metric auroc or fpr95_openood, or rows of the exact convention."
        )
    scores_in, scores_out = row_scores(row, scores_root, unverified)
    intervals = bootstrap(
        scores_in,
        scores_out,
        n_resamples=n_resamples,
        seed=0,
        legacy=row["metrics_convention"] == "legacy",
    )
    low, high = intervals[metric]
    return float(low), float(high)
