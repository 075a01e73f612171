"""The HTML report: one self-contained page per results folder (`runs/report.html`).

Written by `oodbench run`, `oodbench sweep` and `oodbench report --format html`. The page opens
offline: CSS inline, figures inline as data: URIs, no script, and a Content-Security-Policy of
default-src 'none' so that a browser would refuse any request anyway. It is rendered with
Jinja2 from `templates/report.html.j2` (package data).

Sections: summary (with warnings), one table per metric, small-multiple figures per in/out pair,
comparisons (paired bootstrap `--compare`, published numbers), provenance (collapsed).
Tables and comparisons come from the other report modules (`table`, `compare`, `published`);
this module only arranges them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from oodbench.errors import DataNotFoundError, UserInputError
from oodbench.metrics import METRIC_NAMES
from oodbench.report.common import higher_is_better
from oodbench.report.compare import compare as paired_compare
from oodbench.report.published import load_published, published_comparison
from oodbench.report.render import Grid, table_grid
from oodbench.report.rows import detector_labels, model_keys, model_labels, pair_labels, prepare_rows
from oodbench.report.svg import data_uri, legend_figure, pair_figure
from oodbench.report.table import comparison_table, row_scores
from oodbench.report.tuning import recorded_flags, tuning_warnings

logger = logging.getLogger(__name__)

REPORT_FILENAME = "report.html"
TEMPLATE = "report.html.j2"
# The page's Content-Security-Policy: nothing may be fetched; images only from data: URIs.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
METRIC_TITLES = {
    "tnr_at_tpr95": "TNR at 95% TPR",
    "auroc": "AUROC",
    "aupr_in": "AUPR-In",
    "aupr_out": "AUPR-Out",
    "detection_accuracy": "Detection accuracy",
    "fpr95_openood": "FPR at 95% TPR (OpenOOD)",
}
# Tuning grids whose edges make a pick suspicious (the best value may lie outside the grid).
_ODIN_T = (1, 1000)


@dataclass
class Figure:
    """One small multiple: a detector on one in/out pair of one model and seed."""

    detector: str
    uri: str
    auroc: str
    missing: str = ""  # why there is no figure (scores file missing)


@dataclass
class FigureGroup:
    """The small multiples of one in/out pair for one model and seed."""

    title: str
    figures: list[Figure] = field(default_factory=list)


@dataclass
class ReportPage:
    """Everything the template shows; built by `build_page`."""

    title: str
    summary: list[tuple[str, str]]
    accuracy: Grid | None
    warnings: list[str]
    tables: list[tuple[str, str, Grid]]  # (anchor, heading, grid)
    best_rule: str
    figure_groups: list[FigureGroup]
    figure_note: str
    legend_uri: str
    comparison: Grid | None
    comparison_note: str
    comparison_classes: list[list[str]]  # per body cell: "better" / "worse" (B vs A) / ""
    published: list[dict[str, Any]]
    published_note: str
    provenance: list[tuple[str, Grid]]
    generated_at: str
    csp: str = CSP


def _grid_from_frame(frame: pd.DataFrame, *, caption: str = "", n_index: int = 1) -> Grid:
    """A Grid of strings from a small frame of display values (no bold)."""
    body = [["" if pd.isna(v) else str(v) for v in row] for row in frame.itertuples(index=False)]
    return Grid(
        header=[str(c) for c in frame.columns],
        body=body,
        bold=[[False] * len(frame.columns) for _ in body],
        n_index=n_index,
        caption=caption,
        text_columns=tuple(range(len(frame.columns))),
    )


def _join(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values) if len(values) else "—"


def _summary(frame: pd.DataFrame) -> list[tuple[str, str]]:
    models = frame.drop_duplicates("_mkey")
    described = []
    for _, row in models.iterrows():
        if row["model_source"] in ("external", "checkpoint"):
            how = f"checkpoint sha256 {str(row['checkpoint_sha256'])[:12]}"
        else:
            how = f"{row['model_arch']}, recipe {row['training_recipe']}"
            if row["_overrides"] != "{}":
                how += f", overrides {row['_overrides']}"
        described.append(f"{row['_model']} ({how})")
    limits = sorted({text or "all" for text in frame["_limit"]}, key=lambda t: (t == "all", t.zfill(12)))
    return [
        ("Suite", _join(sorted(frame["suite"].astype(str).unique()))),
        ("In-distribution", _join(sorted(frame["in_dataset"].astype(str).unique()))),
        ("OOD test sets", _join(list(dict.fromkeys(frame["out_dataset"].astype(str))))),
        ("Models", _join(described)),
        ("Detectors", _join(list(dict.fromkeys(frame["detector"].astype(str))))),
        ("Seeds", _join(sorted(int(s) for s in frame["seed"].unique()))),
        ("Metric convention", _join(sorted(frame["metrics_convention"].unique()))),
        ("Evaluated images", "full test sets" if limits == ["all"] else f"at most {_join(limits)} per set"),
        ("Result rows", str(len(frame))),
    ]


def _accuracy(frame: pd.DataFrame) -> Grid | None:
    """Classification accuracy per model: mean ± std over seeds (one value per model and seed)."""
    per_seed = frame.dropna(subset=["classification_accuracy"]).drop_duplicates(["_mkey", "seed"])
    if per_seed.empty:
        return None
    records = []
    for model, rows in per_seed.groupby("_model", sort=False):
        values = rows["classification_accuracy"].to_numpy(dtype=float)
        text = f"{100 * values.mean():.1f}"
        if values.size > 1:
            text += f" ± {100 * values.std(ddof=1):.1f} (n={values.size})"
        records.append({"model": model, "test set": rows["in_dataset"].iloc[0], "accuracy (%)": text,
                        "n test images": int(rows["n_in"].iloc[0])})  # fmt: skip
    return _grid_from_frame(pd.DataFrame.from_records(records))


def _degenerate_picks(frame: pd.DataFrame) -> list[str]:
    """Rows' recorded `tuning_flags` (oodbench.report.tuning); for rows written before that field,
    the old heuristic: tuned hyperparameters at the edge of ODIN's grid, or tuned input
    perturbation switched off."""
    recorded = frame["tuning_flags"].map(recorded_flags) if "tuning_flags" in frame.columns else None
    old = frame if recorded is None else frame[recorded.isna()]
    out = [] if recorded is None else tuning_warnings(frame[recorded.notna()], frame["_model"])
    tuned = old[old["tuning"].astype(str) != "none"].drop_duplicates(["_mkey", "seed", "detector"])
    for _, row in tuned.iterrows():
        try:
            params = json.loads(row["detector_params"]) if isinstance(row["detector_params"], str) else {}
        except json.JSONDecodeError:
            continue
        notes = []
        if params.get("epsilon") == 0:
            notes.append("epsilon 0: the tuned input perturbation is off")
        if row["detector"] == "odin" and params.get("temperature") in _ODIN_T:
            notes.append(f"temperature {params['temperature']:g} is at the edge of the grid")
        if notes:
            out.append(f"{row['_model']} / {row['detector']} (seed {row['seed']}): " + "; ".join(notes))
    return out


def _figure_groups(
    frame: pd.DataFrame, scores_root: Path, detectors: Sequence[str] | None
) -> tuple[list[FigureGroup], list[str]]:
    """Small multiples per (model, seed, in/out pair); missing score files become warnings."""
    groups: list[FigureGroup] = []
    missing: list[str] = []
    unverified: list[str] = []
    chosen = frame if detectors is None else frame[frame["detector"].isin(list(detectors))]
    several_seeds = frame["seed"].nunique() > 1
    for (model, seed, pair), rows in chosen.groupby(["_model", "seed", "_pair"], sort=False):
        title = f"{model}: {pair}" + (f" (seed {seed})" if several_seeds else "")
        group = FigureGroup(title=title)
        for _, row in rows.iterrows():
            auroc = f"AUROC {100 * float(row['auroc']):.1f}"
            try:
                scores_in, scores_out = row_scores(row, scores_root, unverified)
            except (UserInputError, DataNotFoundError) as error:
                missing.append(f"{model} / {row['_det']} {pair} seed {seed}: {error}")
                group.figures.append(Figure(row["_det"], "", auroc, missing="no stored scores"))
                continue
            group.figures.append(Figure(row["_det"], data_uri(pair_figure(scores_in, scores_out)), auroc))
        groups.append(group)
    if unverified:
        missing.append(
            f"{len(unverified)} score file(s) read unverified: their rows record no scores digest "
            "(written before oodbench schema 3); rerun them to record one"
        )
    return groups, missing


def _published(frame: pd.DataFrame, convention: str | None) -> tuple[list[dict[str, Any]], int]:
    """Our cells beside published numbers (AUROC and TNR), only where a published row exists."""
    found: list[dict[str, Any]] = []
    not_comparable = 0
    published = load_published()
    for metric in ("tnr_at_tpr95", "auroc"):
        table = published_comparison(frame, published, metric=metric, convention=convention)
        table = table[table["published"].notna()]
        for _, row in table.iterrows():
            ours = "—" if row["ours_n"] == 0 else f"{row['ours']:.1f}"
            if row["ours_n"] > 1:
                ours += f" ± {row['ours_std']:.1f} (n={row['ours_n']})"
            found.append({"metric": METRIC_TITLES.get(metric, metric), "pair": row["in->out"],
                          "model": row["model"], "detector": row["detector"], "ours": ours,
                          "published": f"{row['published']:.1f}", "source": row["source"],
                          "comparable": bool(row["comparable"]), "why_not": row["why_not"]})  # fmt: skip
            not_comparable += not row["comparable"]
    found += _openood(frame)
    not_comparable += sum(
        not row["comparable"] for row in found if row["metric"].startswith("AUROC, OpenOOD")
    )
    return found, not_comparable


def _openood(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Our near / far group means beside OpenOOD v1.5's leaderboard (rows of its suites only)."""
    from oodbench.report.openood import against_openood, load_leaderboard

    if not frame["suite"].isin(set(load_leaderboard()["suite"])).any():
        return []
    found = []
    for _, row in against_openood(frame).iterrows():
        if pd.isna(row["openood"]):
            continue
        ours = "—" if not row["ours_n"] else f"{row['ours']:.2f}"
        if row["ours_n"] > 1:
            ours += f" ± {row['ours_std']:.2f} (n={row['ours_n']})"
        theirs = f"{row['openood']:.2f}" + (
            "" if pd.isna(row["openood_std"]) else f" ± {row['openood_std']:.2f}"
        )
        found.append({"metric": f"AUROC, OpenOOD {row['group']}", "pair": row["suite"], "model": row["model"],
                      "detector": row["detector"], "ours": ours, "published": theirs, "source": row["source"],
                      "comparable": bool(row["comparable"]), "why_not": row["why_not"]})  # fmt: skip
    return found


def _provenance(frame: pd.DataFrame) -> list[tuple[str, Grid]]:
    runs = frame.drop_duplicates(["_mkey", "seed"])
    run_cols = {
        "_model": "model", "seed": "seed", "checkpoint_sha256": "checkpoint sha256",
        "oodbench_version": "oodbench", "torch_version": "torch", "git_commit": "git commit",
        "device": "device", "torch_threads": "threads", "host_cpu": "CPU family",
        "created_at": "created (UTC)",
    }  # fmt: skip
    table = runs[list(run_cols)].rename(columns=run_cols)
    table["checkpoint sha256"] = table["checkpoint sha256"].map(lambda h: h or "—")
    detectors = frame.drop_duplicates(["_mkey", "seed", "detector"])[
        ["_model", "seed", "detector", "detector_params", "tuning"]
    ].rename(columns={"_model": "model", "detector_params": "hyperparameters"})
    return [
        ("Models, seeds and where they ran", _grid_from_frame(table)),
        ("Detector hyperparameters and tuning", _grid_from_frame(detectors)),
    ]


def best_rule() -> str:
    """The rule for the marked cells, stated on the page."""
    return (
        "Marked cells (bold, shaded): the best value of their row, i.e. the best detector for one "
        "model on one in/out pair, compared at the shown precision (ties are all marked; a row "
        "with one value marks nothing). Models are never compared with each other by the mark. "
        "Higher is better for every metric except FPR at 95% TPR."
    )


def build_page(
    df: pd.DataFrame,
    *,
    scores_root: str | os.PathLike,
    convention: str | None = None,
    compare: tuple[str, str] | None = None,
    n_resamples: int = 1000,
    figure_detectors: Sequence[str] | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> ReportPage:
    """Arrange the report of result rows `df` (scores under `scores_root`) into a `ReportPage`.

    compare: also the paired bootstrap B - A of two detectors or models (`report.compare`).
    figure_detectors: draw small multiples of these detectors only (default: all).
    notes: extra warnings shown in the summary (e.g. rows files that could not be read).
    """
    from oodbench.results import utc_now_iso

    root = Path(scores_root)
    frame = prepare_rows(df, convention=convention)
    frame = frame.assign(_model=model_labels(frame), _mkey=model_keys(frame), _pair=pair_labels(frame))
    frame["_det"] = detector_labels(frame)  # as the tables name them (odin(T=1) beside odin(T=1000))
    conv = str(frame["metrics_convention"].iloc[0])

    tables = []
    for metric in METRIC_NAMES:
        table = comparison_table(frame, metric=metric, columns="detector", convention=conv)
        direction = "higher" if higher_is_better(metric) else "lower"
        tables.append((f"t-{metric}", f"{METRIC_TITLES.get(metric, metric)} ({direction} is better)",
                       table_grid(table)))  # fmt: skip

    warnings = list(notes)
    warnings += [f"degenerate tuning pick: {line}" for line in _degenerate_picks(frame)]
    groups, missing = _figure_groups(frame, root, figure_detectors)
    warnings += [f"missing scores: {line}" for line in missing]
    published, not_comparable = _published(frame, conv)
    if not_comparable:
        warnings.append(
            f"{not_comparable} published comparison cell(s) are not comparable (see Comparisons)."
        )
    nan_rows = frame[list(METRIC_NAMES)].isna().any(axis=1).sum()
    if nan_rows:
        warnings.append(f"{nan_rows} row(s) lack a metric value (shown as —).")

    comparison, comparison_note, comparison_classes = None, "", []
    if compare is not None:
        paired = paired_compare(frame, *compare, scores_root=root, convention=conv, n_resamples=n_resamples)
        comparison = paired.grid()
        comparison_note = paired.caption()
        # Significant cells are coloured by whether B is better than A in that metric's direction.
        for key in paired.row_keys:
            line = [""] * len(key)
            for metric in paired.metrics:
                cell = paired.cells[(key, metric)]
                better = (cell.mean > 0) == higher_is_better(metric)
                line.append(("better" if better else "worse") if cell.significant else "")
            comparison_classes.append(line)

    seeds = frame["seed"].nunique()
    figure_note = (
        "Per in/out pair, one small multiple per detector: left, the densities of the ID (filled) "
        "and OOD (outlined) scores over shared bins spanning the 0.5-99.5% quantiles of both "
        "(scores outside counted in the end bins; higher = more in-distribution); right, the ROC "
        "curve with ID as the positive class."
    )
    if seeds > 1:
        figure_note += " One set of figures per seed."
    suites = ", ".join(sorted(frame["suite"].astype(str).unique()))
    return ReportPage(
        title=title or f"oodbench report: {suites}",
        summary=_summary(frame),
        accuracy=_accuracy(frame),
        warnings=warnings,
        tables=tables,
        best_rule=best_rule(),
        figure_groups=groups,
        figure_note=figure_note,
        legend_uri=data_uri(legend_figure()),
        comparison=comparison,
        comparison_note=comparison_note,
        comparison_classes=comparison_classes,
        published=published,
        published_note=(
            "Our cells beside published numbers for the same in/out pair, training and detector. "
            "Comparable only when made the same way (architecture, the paper's full recipe, full "
            "test sets, the papers' legacy metric grid, the papers' tuning protocol); otherwise "
            "the reason is given. Rows of OpenOOD v1.5 suites: our near / far AUROC group means "
            "(unweighted over the group's sets) beside OpenOOD's leaderboard, whose comparability "
            "also needs the official checkpoints and image lists (sha256)."
        ),
        provenance=_provenance(frame),
        generated_at=utc_now_iso(),
    )


def render_page(page: ReportPage) -> str:
    """The page as HTML, from the package's Jinja2 template (autoescaped)."""
    try:
        import jinja2
    except ImportError:  # pragma: no cover - jinja2 is a dependency (and torch's)
        raise UserInputError('The HTML report needs Jinja2: pip install "jinja2>=3.1".') from None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("oodbench.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field fails the tests, not silently blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE).render(page=page, isnan=math.isnan)


def skipped_files(folder: str | os.PathLike) -> list[str]:
    """Warnings about result files the page does not show: lines moved aside by `--repair`."""
    notes = []
    for rejected in sorted(Path(folder).glob("*.rejected")) + sorted(Path(folder).glob("rows/*.rejected")):
        with open(rejected, "rb") as handle:
            lines = sum(1 for _ in handle)
        notes.append(f"skipped file: {rejected.name} holds {lines} unreadable row line(s), not shown")
    return notes


def write_page(
    df: pd.DataFrame, *, scores_root: str | os.PathLike, output: str | os.PathLike, **options: Any
) -> Path:
    """Build the page of rows `df` and write it to `output` atomically; options: see `build_page`.

    Files skipped in the rows' folder (`skipped_files`) are added to the page's warnings.
    """
    from oodbench.atomic import atomic_write_text

    notes = [*options.pop("notes", ()), *skipped_files(scores_root)]
    page = build_page(df, scores_root=scores_root, notes=notes, **options)
    target = Path(output)
    atomic_write_text(target, render_page(page))
    return target


def write_report(
    results: str | os.PathLike,
    output: str | os.PathLike | None = None,
    **options: Any,
) -> Path:
    """Load the rows of a results folder (or rows file) and write its report page.

    output: default <folder of the rows>/report.html. options: see `build_page`.
    """
    from oodbench.results import load_rows

    source = Path(results)
    folder = source if source.is_dir() else source.parent
    target = Path(output) if output is not None else folder / REPORT_FILENAME
    return write_page(load_rows(source), scores_root=folder, output=target, **options)


def try_write_report(results: str | os.PathLike, **options: Any) -> Path | None:
    """`write_report` for `oodbench run` / `sweep`: a report that cannot be made is a warning,
    never a failed run (the rows are already written; `oodbench report --format html` retries)."""
    try:
        return write_report(results, **options)
    except (UserInputError, DataNotFoundError, OSError) as error:
        logger.warning("No report page written: %s", str(error).splitlines()[0] if str(error) else error)
        return None


__all__ = [
    "REPORT_FILENAME",
    "ReportPage",
    "build_page",
    "render_page",
    "try_write_report",
    "write_page",
    "write_report",
]
