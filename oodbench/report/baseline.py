"""The CI regression check: current rows against a committed baseline CSV (fractions).

A baseline has one row per (model_source, detector, in_dataset, out_dataset) and one column per
metric; current rows with several seeds per key are averaged first. Each metric is compared in
its own direction; a change worse than the tolerance is a regression (exit code 1 in the CLI).
The check also fails on a value that is missing (NaN or empty) on either side, and on a key
present on only one side (unless `allow_missing`): a check that compares nothing must not pass.
An empty (header-only) baseline is refused.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from oodbench.errors import UserInputError
from oodbench.metrics import METRIC_NAMES
from oodbench.report.common import TABLE_METRICS, higher_is_better, read_csv
from oodbench.report.rows import model_keys, model_labels, prepare_rows
from oodbench.results import KEY_FIELDS

_EPS = 1e-12  # float slack so that a change of exactly the tolerance is not flagged


def aggregate_by_key(df: pd.DataFrame, *, convention: str | None = None) -> pd.DataFrame:
    """One row per (model_source, detector, in_dataset, out_dataset): metrics averaged over seeds.

    Adds n_seeds. Refuses keys whose rows come from different models (architecture, recipe,
    model label, training overrides, evaluation or fit limit, or external checkpoints with
    different hashes), and keys with two rows of one seed (other detector parameters or other
    data under the same names): a baseline value must describe one model, detector and data.
    """
    frame = prepare_rows(df, convention=convention)
    frame = frame.assign(_mkey=model_keys(frame))
    metric_cols = [*METRIC_NAMES, "classification_accuracy"]
    records = []
    for key, rows in frame.groupby(list(KEY_FIELDS), sort=False):
        models = rows.assign(_model=model_labels(rows)).drop_duplicates("_mkey")
        if len(models) > 1:
            kinds = ", ".join(sorted(set(models["_model"])))
            raise UserInputError(
                f"Rows for {key[0]}/{key[1]} {key[2]}->{key[3]} come from different models ({kinds}); "
                "keep one model per key in the rows file."
            )
        # prepare_rows kept only true reruns apart, so two rows of one seed are two settings.
        if rows["seed"].duplicated().any():
            settings = sorted(set(rows["_params"]) | {f"data {p}" for p in set(rows["out_fingerprint"])})
            raise UserInputError(
                f"Rows for {key[0]}/{key[1]} {key[2]}->{key[3]} come from different detector "
                f"parameters or data ({'; '.join(settings)}); keep one setting per key in the rows file."
            )
        record = dict(zip(KEY_FIELDS, key, strict=True))
        record["model_arch"] = rows["model_arch"].iloc[0]
        record["training_recipe"] = rows["training_recipe"].iloc[0]
        record["metrics_convention"] = rows["metrics_convention"].iloc[0]
        record["n_seeds"] = int(rows["seed"].nunique())
        for name in metric_cols:
            record[name] = float(rows[name].mean()) if rows[name].notna().any() else math.nan
        records.append(record)
    return pd.DataFrame.from_records(records)


def export_baseline(df: pd.DataFrame, *, convention: str | None = None) -> str:
    """The current rows as a baseline CSV (fractions, full float64 precision), for `compare_to_baseline`.

    Full precision (17 significant digits round-trip exactly) so that an unchanged run compares
    equal even at tolerance 0; rounding here would show up as tiny false regressions.
    """
    table = aggregate_by_key(df, convention=convention)
    return table.to_csv(index=False, lineterminator="\n", float_format="%.17g")


def load_baseline(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a baseline CSV: key columns, metric columns as fractions, unique keys."""
    frame = read_csv(
        path,
        what="baseline",
        how=f"make one with `oodbench report --write-baseline {path}`",
        dtype={name: str for name in KEY_FIELDS},
    )
    missing = [name for name in KEY_FIELDS if name not in frame.columns]
    if missing:
        raise UserInputError(
            f"Baseline {path} lacks required column(s): {', '.join(missing)} "
            f"(needs {', '.join(KEY_FIELDS)} and metric columns such as auroc)."
        )
    metrics = [name for name in TABLE_METRICS if name in frame.columns]
    if not metrics:
        raise UserInputError(f"Baseline {path} has no metric column (any of {', '.join(TABLE_METRICS)}).")
    for name in metrics:
        values = pd.to_numeric(frame[name], errors="coerce")
        bad = values.isna() & frame[name].notna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # +1 header, +1 one-based
            raise UserInputError(f"{path}:{line}: {name} is not a number ({frame[name][bad].iloc[0]!r}).")
        out_of_range = (values < 0) | (values > 1)
        if out_of_range.any():
            line = int(np.flatnonzero(out_of_range.to_numpy())[0]) + 2
            raise UserInputError(
                f"{path}:{line}: {name} = {values[out_of_range].iloc[0]} is not a fraction in [0, 1] "
                "(baselines hold fractions, not percent)."
            )
        frame[name] = values
    if frame.empty:
        raise UserInputError(
            f"Baseline {path} has no rows (a header only): it would check nothing; "
            f"write one with `oodbench report --write-baseline {path}`."
        )
    duplicated = frame.duplicated(subset=list(KEY_FIELDS))
    if duplicated.any():
        line = int(np.flatnonzero(duplicated.to_numpy())[0]) + 2
        raise UserInputError(f"{path}:{line}: the key {', '.join(KEY_FIELDS)} appears twice.")
    return frame


def _shown(value: float) -> str:
    return "missing" if pd.isna(value) else f"{value:.3f}"


@dataclass
class BaselineCheck:
    """Outcome of `compare_to_baseline`; `lines()` is what the CLI prints."""

    tolerance: float
    n_compared: int
    allow_missing: bool = False
    regressions: list[str] = field(default_factory=list)
    missing_values: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)
    missing_now: list[str] = field(default_factory=list)
    not_in_baseline: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Regressions, missing (NaN) values, nothing compared, or, unless `allow_missing`, a key
        on one side only (a dropped row could hide a regression, an added one was never checked)."""
        one_sided = not self.allow_missing and bool(self.missing_now or self.not_in_baseline)
        return bool(self.regressions or self.missing_values or one_sided or self.n_compared == 0)

    def summary(self) -> str:
        counts = f"({self.n_compared} rows, tolerance {self.tolerance:.3f})"
        if not self.failed:
            return f"no regressions {counts}"
        parts = [f"{len(self.regressions)} regression(s)"]
        if self.missing_values:
            parts.append(f"{len(self.missing_values)} missing value(s)")
        parts.append(f"{len(self.missing_now)} baseline row(s) missing")
        if self.not_in_baseline:
            parts.append(f"{len(self.not_in_baseline)} row(s) not in the baseline")
        one_sided = self.missing_now or self.not_in_baseline
        hint = (
            "; --allow-missing lets rows on one side only pass"
            if one_sided and not self.allow_missing
            else ""
        )
        nothing = "; no row compared" if self.n_compared == 0 else ""
        return f"FAILED: {', '.join(parts)}{nothing} {counts}{hint}"

    def lines(self) -> list[str]:
        return [
            *self.regressions,
            *(f"missing value: {line}" for line in self.missing_values),
            *(f"improved: {line}" for line in self.improvements),
            *(f"missing now: {line}" for line in self.missing_now),
            *(f"not in baseline: {line}" for line in self.not_in_baseline),
            *(f"note: {line}" for line in self.notes),
            self.summary(),
        ]


def compare_to_baseline(
    current: pd.DataFrame,
    baseline: str | os.PathLike | pd.DataFrame,
    tolerance: float = 0.01,
    *,
    convention: str | None = None,
    allow_missing: bool = False,
) -> BaselineCheck:
    """Compare current rows with a baseline table, metric by metric, in each metric's direction.

    A change worse than `tolerance` (in fraction units) is a regression, e.g.
    "auroc msp mnist->animals: baseline 0.931, now 0.902 (-0.029, tolerance 0.010)"; a change
    better than `tolerance` is listed as an improvement. Keys are (model_source, detector,
    in_dataset, out_dataset); the model source is written as "joint/msp" only when the rows
    hold more than one. Current rows with several seeds per key are averaged first.
    A NaN value on either side fails (classification_accuracy may be absent on both sides: a
    model without class labels has none), and so does a key on one side only unless `allow_missing`.
    """
    if not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) or tolerance < 0:
        raise UserInputError(f"The tolerance must be a number >= 0. Got {tolerance!r} instead.")
    base = baseline if isinstance(baseline, pd.DataFrame) else load_baseline(baseline)
    now = aggregate_by_key(current, convention=convention)
    metrics = [name for name in TABLE_METRICS if name in base.columns]

    def key_of(row: pd.Series) -> tuple[str, ...]:
        return tuple(str(row[name]) for name in KEY_FIELDS)

    base_rows = {key_of(row): row for _, row in base.iterrows()}
    now_rows = {key_of(row): row for _, row in now.iterrows()}
    sources = {key[0] for key in (*base_rows, *now_rows)}

    def label(key: tuple[str, ...]) -> str:
        source, detector, in_ds, out_ds = key
        who = f"{source}/{detector}" if len(sources) > 1 else detector
        return f"{who} {in_ds}->{out_ds}"

    check = BaselineCheck(tolerance=float(tolerance), n_compared=0, allow_missing=allow_missing)
    for key, brow in base_rows.items():
        if key not in now_rows:
            check.missing_now.append(f"{label(key)} (in the baseline, not in the current rows)")
            continue
        nrow = now_rows[key]
        check.n_compared += 1
        if "metrics_convention" in base.columns and pd.notna(brow["metrics_convention"]):
            if brow["metrics_convention"] != nrow["metrics_convention"]:
                raise UserInputError(
                    f"{label(key)}: the baseline uses {brow['metrics_convention']} metrics but the "
                    f"current rows use {nrow['metrics_convention']}; compare like with like."
                )
        for metric in metrics:
            old, new = brow[metric], nrow[metric]
            if pd.isna(old) and pd.isna(new) and metric == "classification_accuracy":
                continue
            if pd.isna(new):  # a value the baseline has and the current rows lost
                check.regressions.append(f"{metric} {label(key)}: baseline {_shown(old)}, now missing")
                continue
            if pd.isna(old):  # an empty baseline cell checks nothing: fail until it is filled in
                check.missing_values.append(
                    f"{metric} {label(key)}: baseline {_shown(old)}, now {_shown(new)}"
                )
                continue
            delta = float(new) - float(old)
            worse = -delta if higher_is_better(metric) else delta
            line = (
                f"{metric} {label(key)}: baseline {old:.3f}, now {new:.3f} "
                f"({delta:+.3f}, tolerance {tolerance:.3f})"
            )
            if worse > tolerance + _EPS:
                check.regressions.append(line)
            elif -worse > tolerance + _EPS:
                check.improvements.append(line)
    for key in now_rows:
        if key not in base_rows:
            check.not_in_baseline.append(f"{label(key)} (in the current rows, not in the baseline)")
    if len(now) and now["n_seeds"].max() > 1:
        check.notes.append(f"current values are means over seeds (up to {int(now['n_seeds'].max())} per key)")
    return check
