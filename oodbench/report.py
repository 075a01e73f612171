"""Comparison tables, the published-numbers comparison and the CI regression check.

Everything here reads stored result rows (a DataFrame from `oodbench.results.load_rows`).
Stored metric values are fractions; tables show PERCENT with one decimal (CSV tables too).
The regression check works on fractions, like the rows and the baseline CSV.

Cells that hold several seeds show "mean ± std (n=N)": the mean over seeds and the sample
standard deviation (ddof=1). A rerun of the same (model, detector, pair, seed) replaces the
earlier row (the one with the latest `created_at` wins) instead of counting as another seed.
"""

from __future__ import annotations

import html
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.errors import DataNotFoundError, UserInputError
from oodbench.metrics import HIGHER_IS_BETTER, METRIC_NAMES, bootstrap
from oodbench.results import KEY_FIELDS, scores_pair

logger = logging.getLogger(__name__)

TABLE_METRICS: tuple[str, ...] = (*METRIC_NAMES, "classification_accuracy")
FORMATS = ("markdown", "csv", "latex", "html")
COLUMN_MODES = ("model+detector", "detector", "model")

DEFAULT_PUBLISHED_CSV = Path(__file__).resolve().parent.parent / "baselines" / "published_results.csv"
# Our model sources and the `training` column of published_results.csv. "checkpoint" (a user's
# own weights) has no published counterpart.
PUBLISHED_TRAINING = {
    "cross_entropy": "cross_entropy",
    "confidence": "confidence_seen_ood",
    "joint": "joint_confidence",
}
# Our metric name -> column of published_results.csv (values there are in percent).
PUBLISHED_COLUMN = {
    "tnr_at_tpr95": "tnr_at_tpr95",
    "auroc": "auroc",
    "aupr_in": "aupr_in",
    "aupr_out": "aupr_out",
    "detection_accuracy": "detection_accuracy",
    "classification_accuracy": "test_accuracy",
}
PUBLISHED_REQUIRED = ("source", "table", "model", "in_dataset", "out_dataset", "training", "detector")

MISSING = "—"
# Rows that describe the same model: a key field plus what tells two models apart.
_MODEL_FIELDS = ("model_source", "model_arch", "training_recipe")
_RUN_FIELDS = (*_MODEL_FIELDS, "detector", "in_dataset", "out_dataset", "seed", "metrics_convention")
_EPS = 1e-12  # float slack so that a change of exactly the tolerance is not flagged


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: True for all but fpr95_openood; classification accuracy: True."""
    if metric == "classification_accuracy":
        return True
    return HIGHER_IS_BETTER[metric]


def _check_metric(metric: str, allowed: Sequence[str] = TABLE_METRICS) -> None:
    if metric not in allowed:
        raise UserInputError(f"Unknown metric {metric!r}. Available: {', '.join(allowed)}.")


def _percent(value: float) -> str:
    return f"{100.0 * value:.1f}"


# ---------------------------------------------------------------------------------------------
# Row preparation shared by the tables and the regression check


def prepare_rows(df: pd.DataFrame, *, convention: str | None = None) -> pd.DataFrame:
    """Validate the columns, keep one metric convention and drop superseded reruns."""
    if df.empty:
        raise UserInputError("There are no result rows to report. Create some with `oodbench run`.")
    needed = (*_RUN_FIELDS, *METRIC_NAMES, "classification_accuracy", "created_at", "scores_file")
    missing = [name for name in needed if name not in df.columns]
    if missing:
        raise UserInputError(f"The result rows lack column(s): {', '.join(missing)}.")
    frame = df.copy()
    if convention is not None:
        frame = frame[frame["metrics_convention"] == convention]
        if frame.empty:
            raise UserInputError(f"No rows use the {convention!r} metrics convention.")
    conventions = sorted(frame["metrics_convention"].unique())
    if len(conventions) > 1:
        raise UserInputError(
            "The rows mix metric conventions (" + ", ".join(conventions) + "); choose one with "
            "--convention exact|legacy so that a table never mixes them."
        )
    frame = frame.sort_values("created_at", kind="stable")
    before = len(frame)
    frame = frame.drop_duplicates(subset=list(_RUN_FIELDS), keep="last").sort_index()
    if len(frame) < before:
        logger.warning(
            "%d rerun row(s) replaced by later rows with the same key and seed", before - len(frame)
        )
    return frame


def _model_labels(frame: pd.DataFrame) -> pd.Series:
    """model_source, plus architecture/recipe in parentheses where those differ between rows."""
    varying = [name for name in ("model_arch", "training_recipe") if frame[name].nunique() > 1]
    if not varying:
        return frame["model_source"].astype(str)
    extra = frame[varying].astype(str).agg(", ".join, axis=1)
    return frame["model_source"].astype(str) + " (" + extra + ")"


def _pair_labels(frame: pd.DataFrame) -> pd.Series:
    return frame["in_dataset"].astype(str) + "->" + frame["out_dataset"].astype(str)


# ---------------------------------------------------------------------------------------------
# Comparison table


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
        out = _percent(self.mean)
        if self.n > 1:
            out += f" ± {_percent(self.std)} (n={self.n})"
        if self.ci is not None:
            out += f" [{_percent(self.ci[0])}, {_percent(self.ci[1])}]"
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

    columns: "model+detector" (labels like "joint / msp"), "detector" or "model"; what is not in
    the columns goes into the row labels when it varies. ci: add the 95% bootstrap percentile
    interval (oodbench.metrics.bootstrap, seed 0) of single-run cells, computed from the row's
    scores NPZ (`scores_file`, relative to `scores_root`, normally the folder of rows.jsonl).
    """
    _check_metric(metric)
    if columns not in COLUMN_MODES:
        raise UserInputError(f"Unknown column layout {columns!r}. Available: {', '.join(COLUMN_MODES)}.")
    if ci and metric == "classification_accuracy":
        raise UserInputError("--ci gives intervals of the OOD metrics only, not of classification_accuracy.")
    frame = prepare_rows(df, convention=convention)
    frame = frame.assign(_model=_model_labels(frame), _pair=_pair_labels(frame))
    if columns == "model+detector":
        frame["_col"] = frame["_model"] + " / " + frame["detector"].astype(str)
        index_fields = ["_pair"]
    elif columns == "detector":
        frame["_col"] = frame["detector"].astype(str)
        index_fields = ["_pair", "_model"] if frame["_model"].nunique() > 1 else ["_pair"]
    else:
        frame["_col"] = frame["_model"]
        index_fields = ["_pair", "detector"] if frame["detector"].nunique() > 1 else ["_pair"]
    names = {"_pair": "in->out", "_model": "model", "detector": "detector"}

    row_keys: dict[tuple[str, ...], None] = {}
    column_labels: dict[str, None] = {}
    grouped: dict[tuple[tuple[str, ...], str], list[pd.Series]] = {}
    for _, row in frame.iterrows():
        key = tuple(str(row[name]) for name in index_fields)
        row_keys.setdefault(key, None)
        column_labels.setdefault(row["_col"], None)
        grouped.setdefault((key, row["_col"]), []).append(row)

    cells: dict[tuple[tuple[str, ...], str], Cell] = {}
    for where, rows in grouped.items():
        values = [float(r[metric]) for r in rows if pd.notna(r[metric])]
        cell = Cell(values=values)
        if ci and len(rows) == 1:
            cell.ci = _bootstrap_interval(rows[0], metric, scores_root, n_resamples)
        cells[where] = cell

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


def _bootstrap_interval(
    row: pd.Series, metric: str, scores_root: str | os.PathLike | None, n_resamples: int
) -> tuple[float, float]:
    label = f"{row['model_source']}/{row['detector']} {row['in_dataset']}->{row['out_dataset']}"
    if not row["scores_file"]:
        raise UserInputError(
            f"The row {label} (seed {row['seed']}) kept no scores file; --ci needs stored scores."
        )
    path = Path(row["scores_file"])
    if not path.is_absolute():
        path = Path(scores_root or ".") / path
    scores_in, scores_out = scores_pair(path)
    intervals = bootstrap(
        scores_in,
        scores_out,
        n_resamples=n_resamples,
        seed=0,
        legacy=row["metrics_convention"] == "legacy",
    )
    low, high = intervals[metric]
    return float(low), float(high)


# ---------------------------------------------------------------------------------------------
# Rendering: one grid of strings, four formats


@dataclass
class Grid:
    """Strings ready to render: header, body rows, bold flags, number of leading label columns."""

    header: list[str]
    body: list[list[str]]
    bold: list[list[bool]]
    n_index: int
    caption: str
    text_columns: tuple[int, ...] = ()  # further left-aligned (non-numeric) columns

    def left(self, i: int) -> bool:
        return i < self.n_index or i in self.text_columns


def _table_grid(table: ComparisonTable) -> Grid:
    body, bold = [], []
    for key in table.row_keys:
        best = table.best_columns(key)
        body.append([*key, *(table.cell(key, col).text() for col in table.column_labels)])
        bold.append([False] * len(key) + [col in best for col in table.column_labels])
    return Grid(
        header=[*table.index_names, *table.column_labels],
        body=body,
        bold=bold,
        n_index=len(table.index_names),
        caption=table.caption(),
    )


def _markdown(grid: Grid) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    body = [
        [f"**{esc(text)}**" if strong else esc(text) for text, strong in zip(row, flags, strict=True)]
        for row, flags in zip(grid.body, grid.bold, strict=True)
    ]
    header = [esc(text) for text in grid.header]
    widths = [max(3, len(header[i]), *(len(row[i]) for row in body)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if grid.left(i) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * width if grid.left(i) else "-" * (width - 1) + ":" for i, width in enumerate(widths)]
    lines = [grid.caption, "", line(header), "| " + " | ".join(rule) + " |", *(line(row) for row in body)]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    return out.replace("->", r"$\to$").replace("±", r"$\pm$").replace(MISSING, "--")


def _latex(grid: Grid) -> str:
    def row_tex(cells: list[str], flags: list[bool]) -> str:
        items = [
            rf"\textbf{{{_latex_escape(text)}}}" if strong else _latex_escape(text)
            for text, strong in zip(cells, flags, strict=True)
        ]
        return " & ".join(items) + r" \\"

    spec = "".join("l" if grid.left(i) else "r" for i in range(len(grid.header)))
    lines = [
        f"% {grid.caption}",
        r"% needs \usepackage{booktabs}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        row_tex(grid.header, [False] * len(grid.header)),
        r"\midrule",
        *(row_tex(row, flags) for row, flags in zip(grid.body, grid.bold, strict=True)),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def _html(grid: Grid) -> str:
    def cell(text: str, strong: bool, index: bool) -> str:
        inner = html.escape(text)
        if strong:
            inner = f"<strong>{inner}</strong>"
        return f'<th scope="row">{inner}</th>' if index else f"<td>{inner}</td>"

    head = "".join(f"<th>{html.escape(text)}</th>" for text in grid.header)
    rows = [
        "<tr>"
        + "".join(
            cell(text, strong, i < grid.n_index)
            for i, (text, strong) in enumerate(zip(row, flags, strict=True))
        )
        + "</tr>"
        for row, flags in zip(grid.body, grid.bold, strict=True)
    ]
    lines = [
        "<table>",
        f"<caption>{html.escape(grid.caption)}</caption>",
        f"<thead><tr>{head}</tr></thead>",
        "<tbody>",
        *rows,
        "</tbody>",
        "</table>",
    ]
    return "\n".join(lines) + "\n"


def _render_grid(grid: Grid, fmt: str) -> str:
    if fmt == "markdown":
        return _markdown(grid)
    if fmt == "latex":
        return _latex(grid)
    if fmt == "html":
        return _html(grid)
    raise UserInputError(f"Unknown format {fmt!r}. Available: {', '.join(FORMATS)}.")


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def render_table(table: ComparisonTable, fmt: str = "markdown") -> str:
    """The table as Markdown, CSV (numeric, percent), LaTeX (booktabs) or HTML."""
    if fmt == "csv":
        return _csv(table.to_frame())
    return _render_grid(_table_grid(table), fmt)


# ---------------------------------------------------------------------------------------------
# Our rows beside published rows


def load_published(path: str | os.PathLike = DEFAULT_PUBLISHED_CSV) -> pd.DataFrame:
    """baselines/published_results.csv: published numbers in PERCENT, one row per source/setting."""
    frame = _read_csv(path, what="published results", how="it ships with oodbench in baselines/")
    missing = [name for name in PUBLISHED_REQUIRED if name not in frame.columns]
    if missing:
        raise UserInputError(f"{path} lacks required column(s): {', '.join(missing)}.")
    return frame


def published_comparison(
    df: pd.DataFrame,
    published: pd.DataFrame,
    *,
    metric: str = "auroc",
    convention: str | None = None,
) -> pd.DataFrame:
    """Our cells (mean over seeds) beside every published row with the same in/out pair,
    training method (model_source) and detector. All values in percent.

    Columns: in->out, model, detector, ours, ours_std, ours_n, published, published_model, source.
    A cell of ours with no published match gets one row with empty published columns.
    """
    allowed = tuple(PUBLISHED_COLUMN)
    if metric not in allowed:
        raise UserInputError(
            f"Published results give no {metric!r}; choose --metric from {', '.join(allowed)}."
        )
    column = PUBLISHED_COLUMN[metric]
    if column not in published.columns:
        raise UserInputError(f"The published results have no {column!r} column.")
    frame = prepare_rows(df, convention=convention)
    records = []
    recipes_vary = frame["training_recipe"].nunique() > 1
    for (source, arch, recipe, detector, in_ds, out_ds), rows in frame.groupby(
        [*_MODEL_FIELDS, "detector", "in_dataset", "out_dataset"], sort=False
    ):
        cell = Cell(values=[float(v) for v in rows[metric] if pd.notna(v)])
        ours = {
            "in->out": f"{in_ds}->{out_ds}",
            # The architecture always shows here: published rows use other networks.
            "model": f"{source} ({arch}, {recipe})" if recipes_vary else f"{source} ({arch})",
            "detector": detector,
            "ours": round(100.0 * cell.mean, 1) if cell.n else math.nan,
            "ours_std": round(100.0 * cell.std, 1) if cell.n else math.nan,
            "ours_n": cell.n,
        }
        training = PUBLISHED_TRAINING.get(source)
        matches = published[
            (published["in_dataset"] == in_ds)
            & (published["out_dataset"] == out_ds)
            & (published["training"] == training)
            & (published["detector"] == detector)
            & published[column].notna()
        ]
        # Rows of the same architecture first, then in file order.
        matches = matches.sort_values("model", key=lambda m: m != arch, kind="stable")
        if matches.empty:
            records.append({**ours, "published": math.nan, "published_model": "", "source": ""})
        for _, match in matches.iterrows():
            records.append(
                {
                    **ours,
                    "published": float(match[column]),
                    "published_model": str(match["model"]),
                    "source": f"{match['source']}, {match['table']}",
                }
            )
    result = pd.DataFrame.from_records(
        records,
        columns=[
            "in->out",
            "model",
            "detector",
            "ours",
            "ours_std",
            "ours_n",
            "published",
            "published_model",
            "source",
        ],
    )
    result.attrs["convention"] = str(frame["metrics_convention"].iloc[0])
    return result


def render_published(comparison: pd.DataFrame, fmt: str, *, metric: str) -> str:
    """Render `published_comparison` output; CSV keeps the numeric columns."""
    convention = comparison.attrs.get("convention", "exact")
    if fmt == "csv":
        return _csv(comparison)
    body = []
    for _, row in comparison.iterrows():
        if row["ours_n"] == 0:
            ours = MISSING
        elif row["ours_n"] > 1:
            ours = f"{row['ours']:.1f} ± {row['ours_std']:.1f} (n={row['ours_n']})"
        else:
            ours = f"{row['ours']:.1f}"
        published = MISSING if pd.isna(row["published"]) else f"{row['published']:.1f}"
        source = row["source"] or "no published row"
        body.append(
            [
                row["in->out"],
                row["model"],
                row["detector"],
                ours,
                published,
                row["published_model"] or MISSING,
                source,
            ]
        )
    caption = (
        f"{metric} in percent. Ours: {convention} metrics of oodbench. Published: as printed "
        "(some converted, see baselines/README.md), from each paper's own code, models and data."
    )
    grid = Grid(
        header=["in->out", "model", "detector", "ours", "published", "published model", "source"],
        body=body,
        bold=[[False] * 7 for _ in body],
        n_index=3,
        text_columns=(5, 6),
        caption=caption,
    )
    return _render_grid(grid, fmt)


# ---------------------------------------------------------------------------------------------
# Regression check against a committed baseline CSV


def aggregate_by_key(df: pd.DataFrame, *, convention: str | None = None) -> pd.DataFrame:
    """One row per (model_source, detector, in_dataset, out_dataset): metrics averaged over seeds.

    Adds n_seeds. Refuses keys whose rows come from different architectures or recipes.
    """
    frame = prepare_rows(df, convention=convention)
    metric_cols = [*METRIC_NAMES, "classification_accuracy"]
    records = []
    for key, rows in frame.groupby(list(KEY_FIELDS), sort=False):
        models = rows[["model_arch", "training_recipe"]].drop_duplicates()
        if len(models) > 1:
            kinds = ", ".join(f"{a}/{r}" for a, r in models.itertuples(index=False))
            raise UserInputError(
                f"Rows for {key[0]}/{key[1]} {key[2]}->{key[3]} come from different models ({kinds}); "
                "keep one model per key in the rows file."
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
    frame = _read_csv(
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
    duplicated = frame.duplicated(subset=list(KEY_FIELDS))
    if duplicated.any():
        line = int(np.flatnonzero(duplicated.to_numpy())[0]) + 2
        raise UserInputError(f"{path}:{line}: the key {', '.join(KEY_FIELDS)} appears twice.")
    return frame


@dataclass
class BaselineCheck:
    """Outcome of `compare_to_baseline`; `lines()` is what the CLI prints."""

    tolerance: float
    n_compared: int
    regressions: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)
    missing_now: list[str] = field(default_factory=list)
    not_in_baseline: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Regressions, or baseline rows the current rows lack (a dropped row could hide one)."""
        return bool(self.regressions or self.missing_now)

    def summary(self) -> str:
        counts = f"({self.n_compared} rows, tolerance {self.tolerance:.3f})"
        if not self.failed:
            return f"no regressions {counts}"
        return (
            f"FAILED: {len(self.regressions)} regression(s), {len(self.missing_now)} baseline row(s) "
            f"missing {counts}"
        )

    def lines(self) -> list[str]:
        return [
            *self.regressions,
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
) -> BaselineCheck:
    """Compare current rows with a baseline table, metric by metric, in each metric's direction.

    A change worse than `tolerance` (in fraction units) is a regression, e.g.
    "auroc msp mnist->animals: baseline 0.931, now 0.902 (-0.029, tolerance 0.010)"; a change
    better than `tolerance` is listed as an improvement. Keys are (model_source, detector,
    in_dataset, out_dataset); the model source is written as "joint/msp" only when the rows
    hold more than one. Current rows with several seeds per key are averaged first.
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

    check = BaselineCheck(tolerance=float(tolerance), n_compared=0)
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
            old = brow[metric]
            if pd.isna(old):
                continue
            new = nrow[metric]
            if pd.isna(new):
                check.regressions.append(f"{metric} {label(key)}: baseline {old:.3f}, now missing")
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


# ---------------------------------------------------------------------------------------------


def _read_csv(path: str | os.PathLike, *, what: str, how: str, **kwargs) -> pd.DataFrame:
    target = Path(path)
    if not target.is_file():
        raise DataNotFoundError(f"No {what} CSV at {target}; {how}.")
    try:
        return pd.read_csv(target, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(f"{target} is not a readable CSV ({reason}).") from None


__all__ = [
    "COLUMN_MODES",
    "DEFAULT_PUBLISHED_CSV",
    "FORMATS",
    "TABLE_METRICS",
    "BaselineCheck",
    "Cell",
    "ComparisonTable",
    "aggregate_by_key",
    "compare_to_baseline",
    "comparison_table",
    "export_baseline",
    "higher_is_better",
    "load_baseline",
    "load_published",
    "published_comparison",
    "render_published",
    "render_table",
]
