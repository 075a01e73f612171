"""Paired comparison of two detectors or two models on every in/out pair: B - A per metric.

`oodbench report --compare A B`. A and B are two detectors (`msp odin`: pairs of rows of the
same model, in/out pair and seed) or two models, named by model label or model source
(`cross_entropy joint`: pairs of rows of the same detector, in/out pair and seed).

For each pair of rows the point difference is B - A of the stored metric values. Its 95%
interval is a PAIRED percentile bootstrap: each resample draws n_in ID indices and n_out OOD
indices with replacement and applies the SAME indices to A's and B's stored scores (the NPZ of
each row: scores_in, scores_out), so the sample-to-sample variation the two share cancels;
interval = 2.5th and 97.5th percentiles of the resampled B - A. Pairing needs both to have been
scored on the same samples: rows whose n_in or n_out differ are refused.

Several seeds: the shown difference is the mean over seeds of the per-seed differences, with
their sample standard deviation (ddof=1); each bootstrap resample resamples every seed's pair
(its own indices, seed + k for the k-th seed) and averages the per-seed differences, so the
interval is that of the mean difference. A comparison is SIGNIFICANT when its interval
excludes 0 (low > 0 or high < 0).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from oodbench.errors import UserInputError
from oodbench.metrics import METRIC_NAMES, paired_bootstrap
from oodbench.report.render import Grid, csv_text, render_grid
from oodbench.report.rows import detector_labels, model_keys, model_labels, pair_labels, prepare_rows
from oodbench.report.table import OPENOOD_TRAPEZOID, row_scores
from oodbench.results import warn_unverified


@dataclass
class Difference:
    """B - A of one metric in one table row: per-seed point differences and the 95% interval."""

    per_seed: list[float]
    low: float
    high: float

    @property
    def n(self) -> int:
        return len(self.per_seed)

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_seed))

    @property
    def std(self) -> float:
        """Sample std of the per-seed differences (ddof=1); 0 for one seed."""
        return float(np.std(self.per_seed, ddof=1)) if self.n > 1 else 0.0

    @property
    def significant(self) -> bool:
        """The 95% interval excludes 0."""
        return self.low > 0 or self.high < 0

    def text(self) -> str:
        out = _points(self.mean)
        if self.n > 1:
            out += f" ± {100.0 * self.std:.1f} (n={self.n})"
        return out + f" [{_points(self.low)}, {_points(self.high)}]"


def _points(fraction: float) -> str:
    """A difference of fractions in signed percentage points; -0.0 shows as +0.0."""
    return f"{round(100.0 * fraction, 1) + 0.0:+.1f}"


@dataclass
class PairedComparison:
    """Rows = in->out pair (+ model or detector when several), columns = metrics."""

    a: str
    b: str
    kind: str  # "detector" | "model"
    convention: str
    n_resamples: int
    metrics: tuple[str, ...]
    index_names: tuple[str, ...]
    row_keys: list[tuple[str, ...]]
    cells: dict[tuple[tuple[str, ...], str], Difference]
    notes: list[str] = field(default_factory=list)

    def caption(self) -> str:
        text = (
            f"{self.b} - {self.a} ({self.kind}s), {self.convention} metrics: difference in "
            "percentage points (positive: B higher; fpr95_openood is better lower). [low, high]: "
            f"95% paired bootstrap interval ({self.n_resamples} resamples, the same ID and OOD "
            "resample indices for A and B); bold: the interval excludes 0 (significant)."
        )
        if any(cell.n > 1 for cell in self.cells.values()):
            text += (
                " Several seeds: mean difference ± sample std over seeds (n seeds); each resample "
                "resamples every seed's pair and averages."
            )
        return " ".join([text, *self.notes])

    def to_frame(self) -> pd.DataFrame:
        """Numeric table (percentage points, 2 decimals) with std, n, ci and significance columns."""
        records = []
        for key in self.row_keys:
            record: dict[str, object] = dict(zip(self.index_names, key, strict=True))
            for metric in self.metrics:
                cell = self.cells.get((key, metric))
                if cell is None:
                    continue
                record[metric] = round(100.0 * cell.mean, 2)
                record[f"{metric} std"] = round(100.0 * cell.std, 2)
                record[f"{metric} n"] = cell.n
                record[f"{metric} ci_low"] = round(100.0 * cell.low, 2)
                record[f"{metric} ci_high"] = round(100.0 * cell.high, 2)
                record[f"{metric} significant"] = cell.significant
            records.append(record)
        return pd.DataFrame.from_records(records)

    def grid(self) -> Grid:
        body, bold = [], []
        for key in self.row_keys:
            cells = [self.cells[(key, metric)] for metric in self.metrics]
            body.append([*key, *(cell.text() for cell in cells)])
            bold.append([False] * len(key) + [cell.significant for cell in cells])
        return Grid(
            header=[*self.index_names, *self.metrics],
            body=body,
            bold=bold,
            n_index=len(self.index_names),
            caption=self.caption(),
        )


def render_comparison(comparison: PairedComparison, fmt: str = "markdown") -> str:
    """Markdown, CSV, LaTeX or HTML, like the other tables."""
    if fmt == "csv":
        return csv_text(comparison.to_frame())
    return render_grid(comparison.grid(), fmt)


def compare(
    df: pd.DataFrame,
    a: str,
    b: str,
    *,
    scores_root: str | os.PathLike | None = None,
    convention: str | None = None,
    metrics: Sequence[str] = METRIC_NAMES,
    n_resamples: int = 1000,
    seed: int = 0,
) -> PairedComparison:
    """Compare detector/model B with A on every in/out pair both have rows for (module doc)."""
    if a == b:
        raise UserInputError(f"--compare needs two different names; got {a!r} twice.")
    frame = prepare_rows(df, convention=convention)
    frame = frame.assign(
        _name=frame["model_label"].where(frame["model_label"] != "", frame["model_source"]),
        _model=model_labels(frame),
        _mkey=model_keys(frame),
        _pair=pair_labels(frame),
        _det=detector_labels(frame),  # e.g. odin(T=1000) where one detector ran with several settings
    )
    labelled, detectors, models = set(frame["_det"]), set(frame["detector"]), set(frame["_name"])
    if a in labelled and b in labelled:
        kind, side, group = "detector", "_det", ["_mkey", "_pair"]
    elif a in detectors and b in detectors:
        kind, side, group = "detector", "detector", ["_mkey", "_pair"]
    elif a in models and b in models:
        kind, side, group = "model", "_name", ["_det", "_pair"]
    else:
        raise UserInputError(
            f"--compare {a} {b}: name two detectors ({', '.join(sorted(labelled | detectors))}) or two "
            f"models ({', '.join(sorted(models))}) of these rows."
        )
    sides = {name: frame[frame[side] == name] for name in (a, b)}
    for name, rows in sides.items():
        repeated = rows[rows.duplicated([*group, "seed"], keep=False)]
        if not repeated.empty:
            what = repeated.iloc[0]
            clash = sorted(set(repeated["_model"]) if kind == "model" else set(repeated["_det"]))
            raise UserInputError(
                f"{name!r} names rows of several models for {what['detector']} {what['_pair']} seed "
                f"{what['seed']} ({', '.join(clash)}); give them --label names and compare those."
            )
    by_key = {name: {tuple(k): r for k, r in rows.groupby([*group, "seed"], sort=False)}
              for name, rows in sides.items()}  # fmt: skip

    # Row labels: the pair, plus the model (or detector) when the rows hold several.
    several = frame[group[0]].nunique() > 1
    index = ["_pair", "_model" if kind == "detector" else "_det"] if several else ["_pair"]
    names = {"_pair": "in->out", "_model": "model", "_det": "detector"}

    paired: dict[tuple[str, ...], list[tuple[pd.Series, pd.Series]]] = {}
    unpaired = 0
    for key, rows_a in by_key[a].items():
        rows_b = by_key[b].get(key)
        if rows_b is None:
            unpaired += 1
            continue
        row_a, row_b = rows_a.iloc[0], rows_b.iloc[0]
        if (row_a["n_in"], row_a["n_out"]) != (row_b["n_in"], row_b["n_out"]):
            raise UserInputError(
                f"Cannot pair {a} and {b} on {row_a['_pair']} seed {row_a['seed']}: scored on different "
                f"samples (n_in {row_a['n_in']} vs {row_b['n_in']}, n_out {row_a['n_out']} vs "
                f"{row_b['n_out']}); compare rows of the same test sets."
            )
        shown = tuple(str(row_a[name]) for name in index)
        paired.setdefault(shown, []).append((row_a, row_b))
    unpaired += sum(1 for key in by_key[b] if key not in by_key[a])
    if not paired:
        raise UserInputError(f"No in/out pair and seed has rows of both {a} and {b}; nothing to compare.")

    legacy = str(frame["metrics_convention"].iloc[0]) == "legacy"
    if str(frame["metrics_convention"].iloc[0]) == "openood":
        # The bootstrap knows the exact and legacy metrics; OpenOOD's trapezoidal AUPR it has not.
        metrics = [name for name in metrics if name not in OPENOOD_TRAPEZOID]
    cells: dict[tuple[tuple[str, ...], str], Difference] = {}
    unverified: list[str] = []
    for shown, pairs in paired.items():
        resampled = {name: np.zeros(n_resamples) for name in metrics}
        for k, (row_a, row_b) in enumerate(pairs):
            # Each file is checked against its row (sizes, digest) before any pairing.
            a_in, a_out = row_scores(row_a, scores_root, unverified)
            b_in, b_out = row_scores(row_b, scores_root, unverified)
            # metrics.paired_bootstrap gives first - second: B first, for B - A.
            diffs = paired_bootstrap(
                b_in, b_out, a_in, a_out, n_resamples=n_resamples, seed=seed + k, metrics=metrics,
                legacy=legacy,
            )  # fmt: skip
            for name in metrics:
                resampled[name] += diffs[name] / len(pairs)
        for name in metrics:
            per_seed = [float(row_b[name]) - float(row_a[name]) for row_a, row_b in pairs]
            low, high = np.percentile(resampled[name], [2.5, 97.5])
            cells[(shown, name)] = Difference(per_seed=per_seed, low=float(low), high=float(high))

    warn_unverified(len(unverified))
    notes = []
    if unpaired:
        notes.append(f"{unpaired} row group(s) of only one of the two were left out.")
    if str(frame["metrics_convention"].iloc[0]) == "openood":
        notes.append("AUPR-In / AUPR-Out are left out: the bootstrap has no trapezoidal (openood) AUPR.")
    return PairedComparison(
        a=a,
        b=b,
        kind=kind,
        convention=str(frame["metrics_convention"].iloc[0]),
        n_resamples=n_resamples,
        metrics=tuple(metrics),
        index_names=tuple(names[name] for name in index),
        row_keys=list(paired),
        cells=cells,
        notes=notes,
    )


__all__ = ["Difference", "PairedComparison", "compare", "render_comparison"]
