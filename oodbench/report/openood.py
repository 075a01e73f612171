"""Our OpenOOD v1.5 suite results as OpenOOD reports them: group means, beside its leaderboard.

OpenOOD's evaluator (``Evaluator.eval_ood``) reports, per OOD group (near / far), the
UNWEIGHTED mean of the per-set metrics over the group's sets,

    AUROC_near = (1 / |near|) * sum_{o in near} AUROC(ID test, o),

whatever the sets' sizes; `group_means` computes that per model, detector and replicate
(checkpoint / seed), then the mean and the sample standard deviation (ddof=1) over replicates.
OpenOOD's leaderboard gives mean ± std over its three released checkpoints (s0, s1, s2) for
CIFAR-10 / CIFAR-100 / ImageNet-200 (ResNet-18) and one torchvision ResNet-50 (V1 weights) for
ImageNet-1K.

The leaderboard (`openood_leaderboard.csv`, package data, PERCENT): AUROC near / far of 12
post-hoc methods and the ID accuracy, from the `leaderboard` branch of Jingkang50/OpenOOD
(``model_info/<benchmark>/*.json``), read 2026-12 (`source` and `date` columns). It has no
FPR@95: those columns are empty.

`against_openood(rows)` puts our group means beside it, one row per (suite, model, detector,
group), each marked comparable or not with every reason (`why_not`):

- architecture: the leaderboard's network (`LEADERBOARD_ARCH`);
- checkpoints: the rows' `checkpoint_sha256` must be official digests (`OFFICIAL_CHECKPOINTS`;
  none recorded yet, so no cell can be confirmed), and as many as the leaderboard averages;
- list digests: every image list a row read (`list_sha256`: {set name: sha256}, recorded by
  `oodbench run` on suite files; a JSON object in text columns) must be pinned in the suite file
  and equal to its pin. No official digest is pinned today, so no cell is comparable on this
  count ("no official list digest pinned"); oodbench never invents one;
- full spectrum: rows of `--full-spectrum` (csID sets on the ID side) are never compared with
  the leaderboard's standard OOD numbers;
- metric convention: AUROC is the same number in the exact and openood conventions (ties
  count 1/2 in both); the legacy grid is not;
- tuning: methods with a hyperparameter search in OpenOOD (`OPENOOD_TUNED`) must be tuned by the
  suite's `[tuning]` grid on the validation split (ID val + OOD val) only, as OpenOOD's APS;
  methods without one must not be tuned on anything else; `eval_limit` / `fit_limit` (subsets)
  are never comparable.
"""

from __future__ import annotations

import importlib.resources
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from oodbench.errors import UserInputError

LEADERBOARD_RESOURCE = "openood_leaderboard.csv"
LEADERBOARD_REQUIRED = (
    "suite",
    "method",
    "model",
    "checkpoints",
    "near_auroc",
    "far_auroc",
    "source",
    "date",
)
# oodbench detector name -> OpenOOD leaderboard method.
DETECTOR_TO_METHOD: dict[str, str] = {
    "msp": "MSP",
    "odin": "ODIN",
    "energy": "EBO",
    "max_logit": "MLS",
    "mahalanobis": "MDS",
    "pytorch-ood:ReAct": "ReAct",
    "pytorch-ood:KNN": "KNN",
    "pytorch-ood:ViM": "ViM",
    "pytorch-ood:ASH": "ASH",
    "pytorch-ood:SCALE": "SCALE",
    "pytorch-ood:GEN": "GEN",
    "pytorch-ood:RMD": "RMDS",
}
# Methods whose hyperparameters OpenOOD v1.5 searches on ID val + OOD val (configs/postprocessors).
OPENOOD_TUNED = ("ODIN", "ReAct", "KNN", "ViM", "ASH", "SCALE")
# The leaderboard's network per suite, as oodbench's `model_arch` names it (--arch).
LEADERBOARD_ARCH: dict[str, tuple[str, ...]] = {
    "openood-cifar10": ("openood:resnet18_32x32",),
    "openood-cifar100": ("openood:resnet18_32x32",),
    "openood-imagenet200": ("openood:resnet18_224x224",),
    "openood-imagenet1k": ("torchvision:resnet50",),
}
# sha256 of the official checkpoints per suite. Unknown here (not downloaded): empty.
OFFICIAL_CHECKPOINTS: dict[str, frozenset[str]] = {}
# Conventions in which our AUROC is OpenOOD's (scikit-learn roc_curve + auc, ties count 1/2).
AUROC_CONVENTIONS = ("exact", "openood")
GROUP_COLUMNS = ["suite", "model", "detector", "convention", "group", "sets", "mean", "std", "n", "missing",
                 "full_spectrum"]  # fmt: skip
COLUMNS = [
    "suite",
    "model",
    "detector",
    "method",
    "group",
    "ours",
    "ours_std",
    "ours_n",
    "openood",
    "openood_std",
    "openood_n",
    "source",
    "date",
    "comparable",
    "why_not",
    "full_spectrum",
]
_MODEL_KEY = ("model_source", "model_label", "model_arch", "training_recipe")


def load_leaderboard(path: str | None = None) -> pd.DataFrame:
    """The OpenOOD leaderboard in PERCENT, one row per (suite, method) (default: shipped CSV)."""
    if path is None:
        resource = importlib.resources.files("oodbench.report").joinpath(LEADERBOARD_RESOURCE)
        frame = pd.read_csv(io.StringIO(resource.read_text(encoding="utf-8")))
        where = f"oodbench/report/{LEADERBOARD_RESOURCE}"
    else:
        frame = pd.read_csv(path)
        where = str(path)
    missing = [c for c in LEADERBOARD_REQUIRED if c not in frame.columns]
    if missing:
        raise UserInputError(f"{where} lacks required column(s): {', '.join(missing)}.")
    return frame


def suite_groups(suite: Any) -> dict[str, list[str]]:
    """OOD set names by group of `suite`: a SuiteFile, a built-in suite's name, or a mapping."""
    if isinstance(suite, Mapping):
        return {str(g): list(names) for g, names in suite.items()}
    if isinstance(suite, str):
        from oodbench.data.suite_file import builtin_suite_files, load_suite_file

        files = builtin_suite_files()
        if suite not in files:
            raise UserInputError(f"No built-in suite file {suite!r}; give the suite's groups.")
        suite = load_suite_file(files[suite])
    return suite.groups()


def _model_labels(frame: pd.DataFrame) -> pd.Series:
    """The model's name per row: its label, else "source (architecture)"."""
    fallback = frame["model_source"].astype(str) + " (" + frame["model_arch"].astype(str) + ")"
    return frame["model_label"].where(frame["model_label"] != "", fallback)


def group_means(rows_frame: pd.DataFrame, suite: Any, *, metric: str = "auroc") -> pd.DataFrame:
    """Per suite/model/detector/convention and OOD group: the unweighted mean of `metric` over
    the group's sets for each replicate (distinct checkpoint_sha256 and seed), then mean and
    sample std (ddof=1, 0 for one replicate) over replicates, as fractions. A replicate lacking
    some of the group's sets gives no value; `missing` names the sets absent from any replicate.
    `suite`: a SuiteFile, a built-in suite's name or {group: [set names]}."""
    groups = suite_groups(suite)
    frame = _with_defaults(rows_frame)
    records = []
    # Full-spectrum rows (csID on the ID side) are another measurement: never pooled with the rest.
    keys = ["suite", "_model", *_MODEL_KEY, "detector", "metrics_convention", "full_spectrum"]
    for _, rows in frame.groupby(keys, sort=False, dropna=False):
        first = rows.iloc[0]
        for group, sets in groups.items():
            values, absent = [], set()
            for _, rep in rows.groupby(["checkpoint_sha256", "seed"], sort=True, dropna=False):
                per_set = rep.groupby("out_dataset")[metric].mean()
                lacking = [s for s in sets if s not in per_set.index]
                absent.update(lacking)
                if not lacking:
                    values.append(float(per_set[sets].mean()))
            n = len(values)
            records.append(
                {
                    "suite": first["suite"],
                    "model": first["_model"],
                    "detector": first["detector"],
                    "convention": first["metrics_convention"],
                    "group": group,
                    "sets": ", ".join(sets),
                    "mean": float(sum(values) / n) if n else math.nan,
                    "std": float(pd.Series(values).std(ddof=1)) if n > 1 else (0.0 if n else math.nan),
                    "n": n,
                    "missing": ", ".join(s for s in sets if s in absent),
                    "full_spectrum": bool(first["full_spectrum"]),
                }
            )
    return pd.DataFrame.from_records(records, columns=GROUP_COLUMNS)


def _with_defaults(rows_frame: pd.DataFrame) -> pd.DataFrame:
    frame = rows_frame.copy()
    defaults: dict[str, Any] = {
        "model_label": "",
        "checkpoint_sha256": "",
        "metrics_convention": "exact",
        "tuning": "none",
        "eval_limit": None,
        "fit_limit": None,
        "list_sha256": "",
        "full_spectrum": False,
    }
    for name, value in defaults.items():
        if name not in frame.columns:
            frame[name] = value
    for name in ("model_label", "checkpoint_sha256", "tuning"):
        frame[name] = frame[name].fillna("").astype(str)
    frame["list_sha256"] = frame["list_sha256"].map(_lists_text)
    frame["full_spectrum"] = frame["full_spectrum"].fillna(False).astype(bool)
    frame["_model"] = _model_labels(frame)
    return frame


def against_openood(
    rows_frame: pd.DataFrame,
    *,
    leaderboard: pd.DataFrame | None = None,
    suites: Mapping[str, Any] | None = None,
    pins: Mapping[str, Mapping[str, str]] | None = None,
) -> pd.DataFrame:
    """Our near/far AUROC group means (percent) beside OpenOOD's leaderboard, each cell marked
    comparable or not with every reason. Rows of suites without a leaderboard are ignored; a
    detector without a leaderboard method gets a row with empty OpenOOD columns.

    leaderboard: default `load_leaderboard()`. suites: {suite name: SuiteFile or groups}
    (default: the built-in suite files). pins: {suite: {set name: sha256}} of the image lists
    (default: the suite files' `sha256` pins, where `suites` holds SuiteFiles)."""
    board = load_leaderboard() if leaderboard is None else leaderboard
    frame = _with_defaults(rows_frame)
    frame = frame[frame["suite"].isin(set(board["suite"]))]
    if frame.empty:
        raise UserInputError(
            "No result rows of an OpenOOD suite (" + ", ".join(sorted(set(board["suite"]))) + ")."
        )
    records = []
    for suite_name, rows in frame.groupby("suite", sort=False):
        spec = (suites or {}).get(suite_name, suite_name)
        suite_pins = dict((pins or {}).get(suite_name, {}) or _suite_pins(spec))
        means = group_means(rows, spec)
        for _, cell in means.iterrows():
            if cell["group"] not in ("near", "far"):
                continue
            mine = rows[
                (rows["detector"] == cell["detector"])
                & (rows["metrics_convention"] == cell["convention"])
                & (rows["_model"] == cell["model"])
                & (rows["full_spectrum"] == cell["full_spectrum"])
            ]
            method = DETECTOR_TO_METHOD.get(str(cell["detector"]), "")
            match = board[(board["suite"] == suite_name) & (board["method"] == method)]
            base = {
                "suite": suite_name,
                "model": cell["model"],
                "detector": cell["detector"],
                "method": method,
                "group": cell["group"],
                "ours": round(100.0 * cell["mean"], 2) if cell["n"] else math.nan,
                "ours_std": round(100.0 * cell["std"], 2) if cell["n"] else math.nan,
                "ours_n": int(cell["n"]),
                "full_spectrum": bool(cell["full_spectrum"]),
            }
            if match.empty:
                why = "no leaderboard method for this detector" if not method else "no leaderboard row"
                records.append(
                    {
                        **base,
                        "openood": math.nan,
                        "openood_std": math.nan,
                        "openood_n": 0,
                        "source": "",
                        "date": "",
                        "comparable": False,
                        "why_not": why,
                    }  # fmt: skip
                )
                continue
            top = match.iloc[0]
            reasons = _why_not(mine, top, cell, suite_name, suite_pins)
            records.append(
                {
                    **base,
                    "openood": float(top[f"{cell['group']}_auroc"]),
                    "openood_std": _float(top.get(f"{cell['group']}_auroc_std")),
                    "openood_n": int(top["checkpoints"]),
                    "source": str(top["source"]),
                    "date": str(top["date"]),
                    "comparable": not reasons,
                    "why_not": "; ".join(reasons),
                }
            )
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def _float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _suite_pins(spec: Any) -> dict[str, str]:
    pins = getattr(spec, "list_pins", None)
    return dict(pins()) if callable(pins) else {}


def _why_not(
    rows: pd.DataFrame, board: pd.Series, cell: pd.Series, suite: str, pins: Mapping[str, str]
) -> list[str]:
    """Every way our cell was made differently from the leaderboard's (empty: comparable)."""
    reasons: list[str] = []
    if cell["full_spectrum"]:
        reasons.append("full spectrum (csID sets on the ID side); the leaderboard is standard OOD detection")
    if cell["missing"]:
        reasons.append(f"OOD sets missing: {cell['missing']}")
    arches = sorted(set(rows["model_arch"].astype(str)))
    wanted = LEADERBOARD_ARCH.get(suite, ())
    if any(a not in wanted for a in arches):
        reasons.append(f"architecture {', '.join(arches)}, leaderboard {board['model']}")
    digests = set(rows["checkpoint_sha256"]) - {""}
    official = OFFICIAL_CHECKPOINTS.get(suite, frozenset())
    if not official:
        reasons.append("checkpoint digests unverifiable (no official sha256 recorded in oodbench)")
    elif not digests or not digests <= official:
        reasons.append("checkpoints are not the official ones (sha256 differs or unrecorded)")
    if int(cell["n"]) < int(board["checkpoints"]):
        reasons.append(f"{int(cell['n'])} checkpoint(s), leaderboard mean of {int(board['checkpoints'])}")
    reasons += _list_reasons(rows, pins)
    if cell["convention"] not in AUROC_CONVENTIONS:
        reasons.append(f"{cell['convention']} metrics (AUROC differs from OpenOOD's; use exact or openood)")
    tunings = set(rows["tuning"])
    if board["method"] in OPENOOD_TUNED:
        # OpenOOD's APS: the suite's [tuning] grid searched on ID val + OOD val by AUROC
        # (rows say "grid on validation: ..."); oodbench's paper grids ("validation split: ...",
        # ODIN's by FPR) are another protocol.
        if any(not t.startswith("grid on validation") for t in tunings):
            reasons.append(
                "not tuned by OpenOOD's grid search on the validation split (the suite's [tuning] grid)"
            )
    elif tunings - {"none"}:
        reasons.append(f"tuned ({', '.join(sorted(tunings - {'none'}))}); OpenOOD does not tune this method")
    if rows["eval_limit"].notna().any():
        reasons.append("evaluated on subsets (eval_limit)")
    if rows["fit_limit"].notna().any():
        reasons.append("fitted on subsets (fit_limit)")
    return reasons


def _lists_text(value: Any) -> str:
    """A row's list_sha256 (a dict from rows, JSON text from CSV; empty / NaN = not recorded)
    as sorted-key JSON, "" when nothing is recorded."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        if not value.strip():
            return ""
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value  # _list_reasons names it unreadable
    if isinstance(value, Mapping):
        return json.dumps(dict(value), sort_keys=True) if value else ""
    return json.dumps(value)  # not an object: _list_reasons names it unreadable


def _list_reasons(rows: pd.DataFrame, pins: Mapping[str, str]) -> list[str]:
    """Comparable lists: every row recorded its lists' digests, and each recorded list is
    pinned in the suite file with that digest (a list without a pin cannot be verified)."""
    recorded = [r for r in rows["list_sha256"] if r]
    if len(recorded) < len(rows):
        return ["image-list digests not recorded in the rows"]
    if not pins:
        return ["image-list digests unverifiable: no official list digest pinned in the suite file"]
    bad, unpinned = set(), set()
    for text in recorded:
        try:
            seen = json.loads(text)
        except json.JSONDecodeError:
            return ["image-list digests unreadable (list_sha256 is not JSON)"]
        if not isinstance(seen, dict):
            return ["image-list digests unreadable (list_sha256 is not a JSON object)"]
        bad |= {name for name, digest in seen.items() if name in pins and pins[name] != digest}
        unpinned |= {name for name in seen if name not in pins}
    reasons = [f"image lists differ from the pinned ones: {', '.join(sorted(bad))}"] if bad else []
    if unpinned:
        reasons.append(
            "image-list digests unverifiable: no official list digest pinned for "
            + ", ".join(sorted(unpinned))
        )
    return reasons


def leaderboard_methods(detectors: Sequence[str]) -> dict[str, str]:
    """The leaderboard method of each oodbench detector name that has one."""
    return {d: DETECTOR_TO_METHOD[d] for d in detectors if d in DETECTOR_TO_METHOD}


def suites_with_groups(rows_frame: pd.DataFrame) -> tuple[dict[str, dict[str, list[str]]], list[str]]:
    """({suite: groups} for the rows' suites that have OOD groups, [suites without groups])."""
    from oodbench.data.suite_file import builtin_suite_files, load_suite_file

    files = builtin_suite_files()
    grouped: dict[str, dict[str, list[str]]] = {}
    plain: list[str] = []
    for name in dict.fromkeys(rows_frame["suite"].astype(str)):
        groups = load_suite_file(files[name]).groups() if name in files else {}
        if groups:
            grouped[name] = groups
        else:
            plain.append(name)
    return grouped, plain


def group_table(rows_frame: pd.DataFrame, *, metric: str = "auroc") -> tuple[pd.DataFrame, list[str]]:
    """`group_means` of every grouped suite in the rows, and one line per suite without groups.
    Raises UserInputError when no suite of the rows has groups."""
    grouped, plain = suites_with_groups(rows_frame)
    notes = [
        f"Suite {name} has no OOD groups (no built-in suite file of that name defines near/far); "
        "its rows are left out of --groups."
        for name in plain
    ]
    if not grouped:
        raise UserInputError(
            "No suite of these rows has OOD groups (" + ", ".join(plain) + "); --groups needs rows of a "
            "suite with groups, e.g. openood-cifar10 (`oodbench list suites`)."
        )
    frames = [group_means(rows_frame[rows_frame["suite"] == name], groups, metric=metric)
              for name, groups in grouped.items()]  # fmt: skip
    return pd.concat(frames, ignore_index=True), notes


def _mean_text(mean: float, std: float, n: int) -> str:
    """Percent "m", or "m ± s (n=k)" over replicates; MISSING without a value."""
    from oodbench.report.common import MISSING

    if not n or pd.isna(mean):
        return MISSING
    if n > 1:
        return f"{100 * mean:.2f} ± {100 * std:.2f} (n={n})"
    return f"{100 * mean:.2f}"


def _suite_text(suite: Any, full_spectrum: Any) -> str:
    """The suite's name in rendered tables; full-spectrum rows say so."""
    return f"{suite} (full spectrum)" if bool(full_spectrum) else str(suite)


def render_groups(table: pd.DataFrame, fmt: str, *, metric: str = "auroc") -> str:
    """`group_table` output, one row per suite/model/detector/convention and one column per group
    (in the suite files' order); CSV keeps the long numeric table (fractions)."""
    from oodbench.report.render import Grid, csv_text, render_grid

    if fmt == "csv":
        return csv_text(table)
    groups = list(dict.fromkeys(table["group"]))
    index = ["suite", "model", "detector", "convention"]
    body = []
    spectrum = table["full_spectrum"] if "full_spectrum" in table.columns else False
    for key, cells in table.assign(_fs=spectrum).groupby([*index, "_fs"], sort=False):
        by_group = {row["group"]: row for _, row in cells.iterrows()}
        texts = []
        for group in groups:
            row = by_group.get(group)
            texts.append("" if row is None else _mean_text(row["mean"], row["std"], int(row["n"])))
        body.append([_suite_text(key[0], key[-1]), *map(str, key[1:-1]), *texts])
    missing = table[table["missing"] != ""]
    caption = (
        f"{metric} in percent: per OOD group, the unweighted mean over the group's sets (as OpenOOD "
        "v1.5 reports near / far), then mean ± sample std over replicates (checkpoints / seeds of "
        "one model)."
    )
    if not missing.empty:
        caption += (
            " Replicates lacking a set of a group give no value (sets missing: "
            + "; ".join(sorted({f"{r['group']}: {r['missing']}" for _, r in missing.iterrows()}))
            + ")."
        )
    grid = Grid(header=[*index, *groups], body=body, bold=[[False] * (len(index) + len(groups))] * len(body),
                n_index=len(index), caption=caption)  # fmt: skip
    return render_grid(grid, fmt)


def render_openood(comparison: pd.DataFrame, fmt: str) -> str:
    """`against_openood` output as the --against published table is rendered; CSV keeps numbers."""
    from oodbench.report.common import MISSING
    from oodbench.report.render import Grid, csv_text, render_grid

    if fmt == "csv":
        return csv_text(comparison)
    body = []
    for _, row in comparison.iterrows():
        n = int(row["ours_n"])
        ours = MISSING if not n else (
            f"{row['ours']:.2f} ± {row['ours_std']:.2f} (n={n})" if n > 1 else f"{row['ours']:.2f}"
        )  # fmt: skip
        if pd.isna(row["openood"]):
            theirs = MISSING
        elif pd.isna(row["openood_std"]):
            theirs = f"{row['openood']:.2f} (n={int(row['openood_n'])})"
        else:
            theirs = f"{row['openood']:.2f} ± {row['openood_std']:.2f} (n={int(row['openood_n'])})"
        body.append([
            _suite_text(row["suite"], row.get("full_spectrum", False)), row["model"], row["detector"],
            row["group"], ours, theirs,
            row["method"] or MISSING, row["source"] or "no leaderboard row",
            "yes" if row["comparable"] else "no", row["why_not"] or MISSING,
        ])  # fmt: skip
    caption = (
        "AUROC in percent, per OOD group: the unweighted mean over the group's sets, mean ± std over "
        "replicates. OpenOOD: the v1.5 leaderboard (mean ± std over its released checkpoints). "
        "Comparable: the leaderboard's network, the official checkpoints and image lists (sha256), "
        "an AUROC convention equal to OpenOOD's, OpenOOD's tuning protocol and full sets."
    )
    if comparison["why_not"].str.contains("no official list digest pinned").any():
        caption += (
            " No official sha256 of OpenOOD's image lists is pinned in oodbench's suite files yet: those "
            "cells cannot be marked comparable (the rows record the lists' digests; none is invented)."
        )
    if comparison["full_spectrum"].astype(bool).any():
        caption += " Full-spectrum rows (csID on the ID side) are shown but never comparable."
    header = ["suite", "model", "detector", "group", "ours", "OpenOOD", "method", "source",
              "comparable", "why not"]  # fmt: skip
    grid = Grid(header=header, body=body, bold=[[False] * len(header) for _ in body], n_index=4,
                text_columns=(6, 7, 8, 9), caption=caption)  # fmt: skip
    return render_grid(grid, fmt)
