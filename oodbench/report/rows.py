"""Result rows made ready for reports: columns checked, one convention, reruns de-duplicated,
and each row's model identity and display label.

A MODEL is identified by (model_source, model_label, model_arch, training_recipe,
train_overrides, eval_limit, fit_limit, model_input: how its input was read, e.g. --normalize,
--resize, --channels) and its checkpoint (checkpoint_sha256). Two rows are the same
result, and the later one (latest `created_at`) replaces the earlier, only when the model, its
checkpoint hash, the detector AND its parameters, the in/out pair, the data fingerprints of both
sets, the seed and the metric convention all agree. So two different checkpoints, two
parameter settings of one detector (ODIN at T=1 and T=1000) or two versions of an --out folder
never collapse into one value. Such rows get their own columns: `detector_labels` names the
parameters (and, if needed, the data) that tell them apart.

Table cells pool seeds of one model: trained models differ by seed (each seed has its own
checkpoint), so their checkpoint hash is not part of a cell's key. It is when the rows come from
external checkpoints (model_source "external" or "checkpoint": a seed says nothing about which
weights were scored) or when one seed of a model has several checkpoints (e.g. a retrain after
a code change): then each checkpoint gets its own column, labelled with its hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd

from oodbench.errors import UserInputError
from oodbench.metrics import METRIC_NAMES

logger = logging.getLogger(__name__)

# Model sources whose rows come from weights oodbench did not train.
EXTERNAL_SOURCES = ("external", "checkpoint")
IDENTITY_FIELDS = (
    "model_source",
    "model_label",
    "model_arch",
    "training_recipe",
    "train_overrides",
    "eval_limit",
    "fit_limit",
)
# Columns that older rows lack, with the value they mean.
_DEFAULTS: dict[str, Any] = {
    "model_label": "",
    "checkpoint_sha256": "",
    "train_overrides": {},
    "eval_limit": None,
    "fit_limit": None,
    "detector_params": {},
    "in_fingerprint": "",
    "out_fingerprint": "",
    "scores_sha256": "",
    "model_input": "",
}
_REQUIRED = (
    "model_source",
    "model_arch",
    "training_recipe",
    "detector",
    "in_dataset",
    "out_dataset",
    "seed",
    "metrics_convention",
    *METRIC_NAMES,
    "classification_accuracy",
    "created_at",
    "scores_file",
)
# Internal string keys (hashable, NaN-free) of the identity columns, added by `prepare_rows`.
_KEY_COLUMNS = (
    "model_source", "model_label", "model_arch", "training_recipe", "_overrides", "_limit", "_fit_limit",
    "model_input",
)  # fmt: skip
_RUN_KEY = (*_KEY_COLUMNS, "checkpoint_sha256", "detector", "_params", "in_dataset", "out_dataset",
            "in_fingerprint", "out_fingerprint", "seed", "metrics_convention")  # fmt: skip
# Short names of common hyperparameters in column labels, e.g. odin(T=1000).
_PARAM_SHORT = {"temperature": "T", "epsilon": "eps"}


def _overrides_text(value: object) -> str:
    """train_overrides (or detector_params) as sorted-key JSON ("{}" when empty or missing)."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if value is None or (isinstance(value, float) and pd.isna(value)):
        value = {}
    return json.dumps(value, sort_keys=True)


def _limit_text(value: object) -> str:
    """eval_limit / fit_limit as text: "" for the full sets (None), else the integer."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(int(value))


def with_identity(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with the identity columns present (defaults for old rows) and their string keys."""
    frame = df.copy()
    for name, default in _DEFAULTS.items():
        if name not in frame.columns:
            frame[name] = [default] * len(frame) if isinstance(default, dict) else default
    for name in (
        "model_label",
        "checkpoint_sha256",
        "in_fingerprint",
        "out_fingerprint",
        "scores_sha256",
        "model_input",
    ):
        frame[name] = frame[name].fillna("").astype(str)
    frame["_overrides"] = frame["train_overrides"].map(_overrides_text)
    frame["_params"] = frame["detector_params"].map(_overrides_text)
    frame["_limit"] = frame["eval_limit"].map(_limit_text)
    frame["_fit_limit"] = frame["fit_limit"].map(_limit_text)
    return frame


def prepare_rows(
    df: pd.DataFrame, *, convention: str | None = None, one_convention: bool = True
) -> pd.DataFrame:
    """Validate the columns, keep one metric convention and drop superseded reruns.

    one_convention=False keeps rows of both conventions (the published comparison picks per cell).
    """
    if df.empty:
        raise UserInputError("There are no result rows to report. Create some with `oodbench run`.")
    missing = [name for name in _REQUIRED if name not in df.columns]
    if missing:
        raise UserInputError(f"The result rows lack column(s): {', '.join(missing)}.")
    frame = with_identity(df)
    if convention is not None:
        frame = frame[frame["metrics_convention"] == convention]
        if frame.empty:
            raise UserInputError(f"No rows use the {convention!r} metrics convention.")
    conventions = sorted(frame["metrics_convention"].unique())
    if one_convention and len(conventions) > 1:
        raise UserInputError(
            "The rows mix metric conventions (" + ", ".join(conventions) + "); choose one with "
            "--convention exact|legacy|openood so that a table never mixes them."
        )
    frame = frame.sort_values("created_at", kind="stable")
    replaced = frame.duplicated(subset=list(_RUN_KEY), keep="last")
    # Rows written before schema 3 record no data fingerprints: a later row that agrees on all
    # the rest replaces them (a rerun after an upgrade must not become a second column).
    unknown_data = (frame["in_fingerprint"] == "") | (frame["out_fingerprint"] == "")
    without_data = [name for name in _RUN_KEY if name not in ("in_fingerprint", "out_fingerprint")]
    replaced |= unknown_data & frame.duplicated(subset=without_data, keep="last")
    if replaced.any():
        logger.warning(_rerun_message(frame[replaced]))
    return frame[~replaced].sort_index()


def _rerun_message(old: pd.DataFrame, shown: int = 3) -> str:
    """What the de-duplication replaced, and why (the rows agree on everything but the time)."""
    examples = [
        f"{r['model_label'] or r['model_source']}/{r['detector']}"
        + (f"{_params_label(r['_params'])}" if r["_params"] != "{}" else "")
        + f" {r['in_dataset']}->{r['out_dataset']} seed {r['seed']} of {r['created_at']}"
        for _, r in old.head(shown).iterrows()
    ]
    more = f" and {len(old) - shown} more" if len(old) > shown else ""
    return (
        f"{len(old)} rerun row(s) replaced by later rows with the same model, checkpoint, detector "
        f"parameters, data and seed (reruns of one result; the latest counts): " + "; ".join(examples) + more
    )


def _value_text(value: object) -> str:
    """A parameter value as shown in a label: 1000.0 -> "1000", strings bare, the rest as JSON."""
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value)


def _params_label(params_text: str, keys: Sequence[str] | None = None) -> str:
    """ "(T=1000, eps=0)" from detector_params JSON; only `keys` when given."""
    params = json.loads(params_text)
    chosen = [k for k in params if keys is None or k in keys]
    return "(" + ", ".join(f"{_PARAM_SHORT.get(k, k)}={_value_text(params[k])}" for k in chosen) + ")"


def detector_labels(frame: pd.DataFrame) -> pd.Series:
    """Each row's detector as shown in a table: the name, plus the parameters that differ where
    rows of one model, detector, in/out pair and seed hold several parameter settings (e.g.
    `odin(T=1)` and `odin(T=1000)`), plus a data fingerprint where that still leaves a clash.

    `frame` comes from `prepare_rows` (needs its `_params` column and the identity columns).
    """
    keys = model_keys(frame)
    group = [keys, frame["detector"], frame["in_dataset"], frame["out_dataset"], frame["seed"]]
    clashing = frame.groupby(group)["_params"].transform("nunique") > 1
    labels = frame["detector"].astype(str).copy()
    for detector in frame.loc[clashing, "detector"].unique():
        mine = frame["detector"] == detector
        params = [json.loads(text) for text in frame.loc[mine, "_params"].unique()]
        names = sorted({k for p in params for k in p})
        varying = [k for k in names if len({json.dumps(p.get(k), sort_keys=True) for p in params}) > 1]
        labels[mine] = [detector + _params_label(text, varying) for text in frame.loc[mine, "_params"]]
    data = frame["in_fingerprint"].str[:6] + "/" + frame["out_fingerprint"].str[:6]
    # After de-duplication, rows still sharing all of this differ in their data fingerprints.
    size = frame.groupby([keys, labels, frame["in_dataset"], frame["out_dataset"], frame["seed"]])[
        "seed"
    ].transform("size")
    clash = size > 1
    return labels.where(~clash, labels + " [data " + data + "]")


def model_keys(frame: pd.DataFrame) -> pd.Series:
    """One string per row naming the model a table cell pools seeds of (see the module doc)."""
    base = frame[list(_KEY_COLUMNS)].astype(str).agg("\x1f".join, axis=1)
    hashes_per_seed = frame.assign(_base=base).groupby(["_base", "seed"])["checkpoint_sha256"].nunique()
    split = set(hashes_per_seed[hashes_per_seed > 1].index.get_level_values("_base"))
    external = frame["model_source"].isin(EXTERNAL_SOURCES)
    with_hash = external | base.isin(split)
    return base.where(~with_hash, base + "\x1f" + frame["checkpoint_sha256"])


def model_labels(frame: pd.DataFrame, *, always: Sequence[str] = ()) -> pd.Series:
    """Display label of each row's model: the model label if set, else the model source, plus
    in parentheses whatever tells the models of these rows apart (architecture, recipe, training
    overrides, evaluation and fit limits, and the checkpoint hash where the rest does not). Columns in
    `always` ("model_arch", "training_recipe") show even when they do not vary.
    """
    keys = model_keys(frame)
    first = frame.assign(_key=keys).drop_duplicates("_key").set_index("_key")
    name = first["model_label"].where(first["model_label"] != "", first["model_source"])

    def varies(column: str) -> bool:
        return column in always or first[column].nunique() > 1

    extras: list[pd.Series] = []
    if varies("model_arch"):
        extras.append(first["model_arch"].astype(str))
    if varies("training_recipe"):
        extras.append(first["training_recipe"].astype(str))
    if varies("_overrides"):
        extras.append(first["_overrides"].map(lambda text: "overrides " + _short_overrides(text)))
    if varies("_limit"):
        extras.append(first["_limit"].map(lambda text: f"limit {text}" if text else "full data"))
    if varies("_fit_limit"):
        extras.append(first["_fit_limit"].map(lambda text: f"fit limit {text}" if text else "full fit"))
    if varies("model_input"):
        extras.append(first["model_input"].map(_input_text))

    def compose(parts: list[pd.Series]) -> pd.Series:
        if not parts:
            return name.copy()
        joined = pd.concat(parts, axis=1).agg(", ".join, axis=1)
        return name + " (" + joined + ")"

    labels = compose(extras)
    # A label given to models of several sources: name the source where labels clash.
    if labels.duplicated(keep=False).any() and first["model_source"].nunique() > 1:
        clash = labels.duplicated(keep=False)
        labels = labels.where(~clash, compose([first["model_source"].astype(str), *extras]))
    clash = labels.duplicated(keep=False)
    if clash.any():
        short = first["checkpoint_sha256"].map(lambda h: f"sha256 {h[:8]}" if h else "no hash")
        labels = labels.where(~clash, compose([*extras, short]))
    return keys.map(labels)


def _input_text(text: str) -> str:
    """A model input pipeline (row field model_input) in a label: a short digest, or why none."""
    if not text:
        return "input not recorded"
    return "input " + hashlib.sha256(text.encode()).hexdigest()[:8]


def _short_overrides(text: str) -> str:
    values = json.loads(text)
    if not values:
        return "none"
    return " ".join(f"{k}={v}" for k, v in values.items())


def pair_labels(frame: pd.DataFrame) -> pd.Series:
    return frame["in_dataset"].astype(str) + "->" + frame["out_dataset"].astype(str)


def select_labels(df: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """Rows whose model_label is one of `labels` (all rows when `labels` is empty)."""
    if not labels:
        return df
    present = df["model_label"] if "model_label" in df.columns else pd.Series([""] * len(df))
    chosen = df[present.isin(list(labels)).to_numpy()]
    if chosen.empty:
        known = sorted({str(v) for v in present if v})
        raise UserInputError(
            f"No rows with model label {', '.join(labels)}. Labels in these rows: "
            f"{', '.join(known) or 'none'}."
        )
    return chosen
