"""Our cells beside the numbers printed in papers, each marked comparable or not, with why.

The published numbers (`published_results.csv`, package data of this module, in PERCENT) come
from each paper's own code, models, data and hyperparameter protocol. One of our cells is
COMPARABLE with a published row only when it was made the same way:

- the same architecture as the paper's model (`model_arch` == the row's `model`, e.g. vgg13);
- the paper's full training recipe: Lee et al. 2018 rows need `training_recipe` lee2018-svhn /
  lee2018-cifar10 (by in-distribution set) and no `train_overrides`; oodbench reproduces no
  other paper's training, and an external checkpoint's training is unknown;
- the full test sets (`eval_limit` is None);
- the same metric convention: the papers' code computes the 200,000-step threshold grid
  (oodbench's "legacy" convention, docs/methods.md), so exact-convention cells are marked;
  where a cell has rows of both conventions the legacy rows are used, and the `convention`
  column says which each cell uses;
- for ODIN and Mahalanobis, the papers tuned hyperparameters on held-out images of each OOD
  test set; oodbench tunes on a validation split, so those cells are never comparable.
"""

from __future__ import annotations

import importlib.resources
import io
import math
import os

import pandas as pd

from oodbench.errors import UserInputError
from oodbench.report.common import MISSING, read_csv
from oodbench.report.render import Grid, csv_text, render_grid
from oodbench.report.rows import EXTERNAL_SOURCES, model_keys, model_labels, pair_labels, prepare_rows
from oodbench.report.table import Cell

# The shipped CSV, read with importlib.resources (it lives inside the installed package).
PUBLISHED_RESOURCE = "published_results.csv"
# Our model sources and the `training` column of published_results.csv. External checkpoints
# have no counterpart unless the user says which training they had (`as_training`).
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
# The metric convention of every published number: the papers' threshold-grid code.
PUBLISHED_CONVENTION = "legacy"
# Lee et al. 2018 (the only published training oodbench reproduces): in-dist set -> recipe.
PAPER_RECIPES = {"svhn": "lee2018-svhn", "cifar10": "lee2018-cifar10"}
LEE2018_SOURCE = "Lee et al. ICLR 2018"
# Detectors whose published hyperparameters were tuned on held-out images of the test OOD set.
TUNED_ON_TEST_OOD = ("odin", "mahalanobis")
COLUMNS = [
    "in->out",
    "model",
    "detector",
    "convention",
    "ours",
    "ours_std",
    "ours_n",
    "published",
    "published_model",
    "source",
    "comparable",
    "why_not",
]


def load_published(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The published numbers in PERCENT, one row per source/setting (default: the shipped CSV)."""
    if path is None:
        resource = importlib.resources.files("oodbench.report").joinpath(PUBLISHED_RESOURCE)
        frame = pd.read_csv(io.StringIO(resource.read_text(encoding="utf-8")))
        where = f"oodbench/report/{PUBLISHED_RESOURCE}"
    else:
        frame = read_csv(path, what="published results", how="pass the CSV shipped with oodbench")
        where = str(path)
    missing = [name for name in PUBLISHED_REQUIRED if name not in frame.columns]
    if missing:
        raise UserInputError(f"{where} lacks required column(s): {', '.join(missing)}.")
    return frame


def published_comparison(
    df: pd.DataFrame,
    published: pd.DataFrame,
    *,
    metric: str = "auroc",
    convention: str | None = None,
    as_training: str | None = None,
    comparable_only: bool = False,
) -> pd.DataFrame:
    """Our cells (mean over seeds) beside every published row with the same in/out pair,
    training method and detector, with a `comparable` flag and `why_not`. Values in percent.

    as_training: match rows of external checkpoints as this model source ("cross_entropy",
    "confidence" or "joint"); they stay not comparable (their recipe is unknown). A cell with
    no published match gets one row with empty published columns (not comparable).
    """
    allowed = tuple(PUBLISHED_COLUMN)
    if metric not in allowed:
        raise UserInputError(
            f"Published results give no {metric!r}; choose --metric from {', '.join(allowed)}."
        )
    if as_training is not None and as_training not in PUBLISHED_TRAINING:
        raise UserInputError(f"Unknown --as {as_training!r}. Available: {', '.join(PUBLISHED_TRAINING)}.")
    column = PUBLISHED_COLUMN[metric]
    if column not in published.columns:
        raise UserInputError(f"The published results have no {column!r} column.")
    frame = prepare_rows(df, convention=convention, one_convention=False)
    external = frame["model_source"].isin(EXTERNAL_SOURCES)
    if as_training is not None and not external.any():
        raise UserInputError(
            "--as matches rows of external checkpoints, and these rows have none "
            "(pick them with --label NAME, or drop --as)."
        )
    labels = model_labels(frame, always=("model_arch",))
    if as_training is not None:
        labels = labels.where(~external, labels + f" as {as_training}")
    frame = frame.assign(_model=labels, _mkey=model_keys(frame), _pair=pair_labels(frame))

    records = []
    for _, rows in frame.groupby(["_mkey", "detector", "in_dataset", "out_dataset"], sort=False):
        # Prefer the papers' convention where both exist: the comparison is then like with like.
        legacy = rows[rows["metrics_convention"] == PUBLISHED_CONVENTION]
        rows = legacy if not legacy.empty else rows
        first = rows.iloc[0]
        cell = Cell(values=[float(v) for v in rows[metric] if pd.notna(v)])
        ours = {
            "in->out": first["_pair"],
            "model": first["_model"],
            "detector": first["detector"],
            "convention": first["metrics_convention"],
            "ours": round(100.0 * cell.mean, 1) if cell.n else math.nan,
            "ours_std": round(100.0 * cell.std, 1) if cell.n else math.nan,
            "ours_n": cell.n,
        }
        source = str(first["model_source"])
        if source in EXTERNAL_SOURCES:
            training = PUBLISHED_TRAINING[as_training] if as_training is not None else None
        else:
            training = PUBLISHED_TRAINING.get(source)
        matches = published[
            (published["in_dataset"] == first["in_dataset"])
            & (published["out_dataset"] == first["out_dataset"])
            & (published["training"] == training)
            & (published["detector"] == first["detector"])
            & published[column].notna()
        ]
        # Rows of the same architecture first, then in file order.
        matches = matches.sort_values("model", key=lambda m: m != first["model_arch"], kind="stable")
        if matches.empty:
            why = "no published row" if training is not None else "external checkpoint: say --as METHOD"
            records.append(
                {
                    **ours,
                    "published": math.nan,
                    "published_model": "",
                    "source": "",
                    "comparable": False,
                    "why_not": why,
                }  # fmt: skip
            )
        for _, match in matches.iterrows():
            reasons = _why_not_comparable(first, match, metric)
            records.append(
                {
                    **ours,
                    "published": float(match[column]),
                    "published_model": str(match["model"]),
                    "source": f"{match['source']}, {match['table']}",
                    "comparable": not reasons,
                    "why_not": "; ".join(reasons),
                }
            )
    result = pd.DataFrame.from_records(records, columns=COLUMNS)
    if comparable_only:
        result = result[result["comparable"]].reset_index(drop=True)
    result.attrs["comparable_only"] = comparable_only
    return result


def _why_not_comparable(ours: pd.Series, match: pd.Series, metric: str) -> list[str]:
    """Every way in which our cell was made differently from the published row (empty: none)."""
    reasons = []
    if str(ours["model_arch"]) != str(match["model"]):
        reasons.append(f"architecture {ours['model_arch']}, paper {match['model']}")
    if ours["model_source"] in EXTERNAL_SOURCES:
        reasons.append("external checkpoint: training recipe unknown")
    elif not str(match["source"]).startswith(LEE2018_SOURCE):
        reasons.append("oodbench does not reproduce this paper's training")
    else:
        paper_recipe = PAPER_RECIPES.get(str(ours["in_dataset"]))
        if ours["training_recipe"] != paper_recipe:
            reasons.append(f"recipe {ours['training_recipe']}, paper {paper_recipe or 'none'}")
        if ours["_overrides"] != "{}":
            reasons.append(f"training overrides {ours['_overrides']}")
    if ours["_limit"]:
        reasons.append(f"evaluated on at most {ours['_limit']} images per set (eval_limit)")
    if ours.get("_fit_limit"):
        reasons.append(f"detectors fitted on at most {ours['_fit_limit']} images per split (fit_limit)")
    if metric != "classification_accuracy" and ours["metrics_convention"] != PUBLISHED_CONVENTION:
        reasons.append(f"{ours['metrics_convention']} metrics, paper legacy grid (run --convention legacy)")
    if ours["detector"] in TUNED_ON_TEST_OOD:
        reasons.append("paper tuned hyperparameters on held-out test-OOD images")
    return reasons


def render_published(comparison: pd.DataFrame, fmt: str, *, metric: str) -> str:
    """Render `published_comparison` output; CSV keeps the numeric columns."""
    if fmt == "csv":
        return csv_text(comparison)
    body = []
    for _, row in comparison.iterrows():
        if row["ours_n"] == 0:
            ours = MISSING
        elif row["ours_n"] > 1:
            ours = f"{row['ours']:.1f} ± {row['ours_std']:.1f} (n={row['ours_n']})"
        else:
            ours = f"{row['ours']:.1f}"
        published = MISSING if pd.isna(row["published"]) else f"{row['published']:.1f}"
        body.append(
            [
                row["in->out"],
                row["model"],
                row["detector"],
                ours,
                row["convention"],
                published,
                row["published_model"] or MISSING,
                row["source"] or "no published row",
                "yes" if row["comparable"] else "no",
                row["why_not"] or MISSING,
            ]
        )
    caption = (
        f"{metric} in percent. Ours: oodbench, in the metric convention of each row (legacy = the "
        "papers' threshold grid). Published: as printed (some converted, see baselines/README.md), "
        "from each paper's own code, models and data. Comparable: same architecture, the paper's "
        "full recipe, full test sets, same metric convention and tuning protocol."
    )
    if comparison.attrs.get("comparable_only"):
        caption += " Only comparable rows are shown."
    header = ["in->out", "model", "detector", "ours", "metrics", "published", "published model",
              "source", "comparable", "why not"]  # fmt: skip
    grid = Grid(
        header=header,
        body=body,
        bold=[[False] * len(header) for _ in body],
        n_index=3,
        text_columns=(4, 6, 7, 8, 9),
        caption=caption,
    )
    return render_grid(grid, fmt)
