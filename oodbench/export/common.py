"""What an experiment tracker receives: one tracked run per (model, seed, metric convention).

Shared by the MLflow and W&B exporters so both log the same content:

- params: suite, in-distribution set, model (source, label, architecture, recipe or checkpoint
  hash, training overrides, evaluation limit), seed, metric convention, provenance (versions,
  git commit, device, threads, CPU family), and per detector its hyperparameters and tuning;
- metrics: `<metric>/<detector>/<out_set>` (fractions, as stored) and `classification_accuracy`;
- artifacts: the run's rows (JSONL), the results folder's report page, its plots;
- identity: a SHA-256 of what makes the run one run (suite, model key, seed, convention), kept
  in a tag so a second export finds it instead of creating a duplicate; and a content hash of
  its rows, so an unchanged run is left alone and a changed one (a rerun) is replaced.

Metric and parameter names keep only letters, digits and `_ . -` in each part (other
characters become `_`): MLflow allows `/ _ . - : space` and alphanumerics (no colon on Windows)
and refuses paths that normalise differently (`a//b`, `./a`); W&B treats `/` as a section.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from oodbench.errors import UserInputError
from oodbench.metrics import METRIC_NAMES
from oodbench.report.rows import model_keys, model_labels, prepare_rows
from oodbench.results import FIELD_NAMES, safe_file_name

IDENTITY_TAG = "oodbench.identity"
CONTENT_TAG = "oodbench.content"
# Row fields that are the same for every row of one tracked run, logged as params.
RUN_PARAMS = (
    "suite", "in_dataset", "model_source", "model_label", "model_arch", "training_recipe",
    "train_overrides", "checkpoint_sha256", "eval_limit", "seed", "metrics_convention",
    "oodbench_version", "git_commit", "torch_version", "device", "torch_threads", "host_cpu",
)  # fmt: skip


def name_part(text: str) -> str:
    """One part of a metric or param name: letters, digits and `_ . -`; never '.' or '..'."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(text)) or "_"
    return "_" if set(cleaned) == {"."} else cleaned


@dataclass
class TrackedRun:
    """Everything one tracked run holds (see the module doc)."""

    identity: str
    content: str
    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    rows_jsonl: str
    plots: list[Path] = field(default_factory=list)

    @property
    def tags(self) -> dict[str, str]:
        return {IDENTITY_TAG: self.identity, CONTENT_TAG: self.content}


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def _json_value(value: object) -> object:
    return json.loads(value) if isinstance(value, str) and value else value


def _plots_of(rows: pd.DataFrame, plots_dir: Path) -> list[Path]:
    """The PNGs `oodbench.plots.plot_rows` drew for these rows (named as it names them)."""
    if not plots_dir.is_dir():
        return []
    first = rows.iloc[0]
    source, label = str(first["model_source"]), str(first["model_label"])
    if label in ("", source):
        model = source
    elif source == "external":
        model = f"{source}-{label}-{str(first['checkpoint_sha256'])[:8]}"
    else:
        model = f"{source}-{label}"
    found = []
    for detector in dict.fromkeys(rows["detector"].astype(str)):
        stem = safe_file_name(f"{model}-{detector}-{first['in_dataset']}-seed{first['seed']}")
        found += [plots_dir / f"{stem}-{kind}.png" for kind in ("hist", "roc")]
    return [path for path in found if path.is_file()]


def tracked_runs(
    df: pd.DataFrame, *, results_dir: str | os.PathLike, convention: str | None = None
) -> list[TrackedRun]:
    """Group result rows into tracked runs: one per (model, seed, in-dist set, convention)."""
    frame = prepare_rows(df, convention=convention, one_convention=False)
    frame = frame.assign(_model=model_labels(frame), _mkey=model_keys(frame))
    plots_dir = Path(results_dir) / "plots"
    runs = []
    keys = ["_mkey", "seed", "suite", "in_dataset", "metrics_convention"]
    for (mkey, seed, suite, in_ds, conv), rows in frame.groupby(keys, sort=False):
        first = rows.iloc[0]
        identity = hashlib.sha256(
            json.dumps([mkey, int(seed), suite, in_ds, conv]).encode("utf-8")
        ).hexdigest()
        params = {name: _text(first[name]) for name in RUN_PARAMS}
        params["model"] = str(first["_model"])
        metrics: dict[str, float] = {}
        for _, row in rows.iterrows():
            detector = name_part(row["detector"])
            params[f"detector/{detector}/params"] = _text(row["detector_params"])
            params[f"detector/{detector}/tuning"] = _text(row["tuning"])
            for metric in METRIC_NAMES:
                if pd.notna(row[metric]):
                    metrics[f"{metric}/{detector}/{name_part(row['out_dataset'])}"] = float(row[metric])
        accuracy = rows["classification_accuracy"].dropna()
        if not accuracy.empty:
            metrics["classification_accuracy"] = float(accuracy.iloc[0])
        raw = rows[list(FIELD_NAMES)].sort_values(["detector", "out_dataset"], kind="stable")
        # The frame holds these two as JSON text; the artifact holds them as in rows.jsonl.
        raw = raw.assign(
            **{name: raw[name].map(_json_value) for name in ("detector_params", "train_overrides")}
        )
        rows_jsonl = raw.to_json(orient="records", lines=True, force_ascii=False)
        content = hashlib.sha256(rows_jsonl.encode("utf-8")).hexdigest()
        name = f"{first['_model']} seed {seed} ({in_ds}, {conv})"
        runs.append(
            TrackedRun(identity, content, name, params, metrics, rows_jsonl, _plots_of(rows, plots_dir))
        )
    return runs


def missing_extra(package: str, extra: str) -> UserInputError:
    """The one-line error for an optional dependency that is not installed."""
    return UserInputError(f'This needs {package}: pip install "oodbench[{extra}]"')


__all__ = ["CONTENT_TAG", "IDENTITY_TAG", "TrackedRun", "missing_extra", "name_part", "tracked_runs"]
