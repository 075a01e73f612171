"""Export result rows to MLflow: one MLflow run per (model, seed), found again by its identity tag.

    oodbench export mlflow --results runs --tracking-uri http://127.0.0.1:5000 --experiment oodbench
    oodbench run ... --mlflow [TRACKING_URI]

A second export of the same rows changes nothing (the run's content tag matches); rows that
changed (a rerun of the same model and seed) replace the old MLflow run, which is deleted
(MLflow keeps deleted runs restorable until garbage collection). Needs `pip install "oodbench[mlflow]"`.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from oodbench.errors import UserInputError
from oodbench.export.common import CONTENT_TAG, IDENTITY_TAG, TrackedRun, missing_extra, tracked_runs

DEFAULT_EXPERIMENT = "oodbench"
_PARAMS_PER_BATCH = 100  # MLflow's limits per log_batch call (params+tags, metrics)
_METRICS_PER_BATCH = 1000


@dataclass
class Exported:
    """What happened to one tracked run: "created", "replaced" or "unchanged"."""

    name: str
    run_id: str
    status: str


def _client(tracking_uri: str | None):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise missing_extra("MLflow", "mlflow") from None
    return MlflowClient(tracking_uri=tracking_uri)


def _experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name)
    if experiment.lifecycle_stage != "active":
        raise UserInputError(f"The MLflow experiment {name!r} is deleted; restore it or pass --experiment.")
    return experiment.experiment_id


def _log(client, run_id: str, run: TrackedRun, report: Path | None) -> None:
    from mlflow.entities import Metric, Param

    params = [Param(key, value) for key, value in run.params.items()]
    for start in range(0, len(params), _PARAMS_PER_BATCH):
        client.log_batch(run_id, params=params[start : start + _PARAMS_PER_BATCH])
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, 0) for key, value in run.metrics.items()]
    for start in range(0, len(metrics), _METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _METRICS_PER_BATCH])
    with tempfile.TemporaryDirectory(prefix="oodbench-mlflow-") as tmp:
        rows = Path(tmp) / "rows.jsonl"
        rows.write_text(run.rows_jsonl, encoding="utf-8")
        client.log_artifact(run_id, str(rows), artifact_path="rows")
    if report is not None and report.is_file():
        client.log_artifact(run_id, str(report), artifact_path="report")
    for plot in run.plots:
        client.log_artifact(run_id, str(plot), artifact_path="plots")


def export_mlflow(
    results: str | os.PathLike,
    *,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    convention: str | None = None,
) -> list[Exported]:
    """Export the rows of a results folder (or rows file) to MLflow; see the module doc.

    tracking_uri: None = MLflow's default (MLFLOW_TRACKING_URI, else its local default).
    The folder's report.html is attached when it exists (`oodbench run` writes it).
    """
    from oodbench.results import load_rows

    client = _client(tracking_uri)
    source = Path(results)
    folder = source if source.is_dir() else source.parent
    runs = tracked_runs(load_rows(source), results_dir=folder, convention=convention)
    experiment_id = _experiment_id(client, experiment)
    report = folder / "report.html"
    done = []
    for run in runs:
        existing = client.search_runs(
            [experiment_id], filter_string=f"tags.`{IDENTITY_TAG}` = '{run.identity}'", max_results=10
        )
        if existing and existing[0].data.tags.get(CONTENT_TAG) == run.content:
            done.append(Exported(run.name, existing[0].info.run_id, "unchanged"))
            for extra in existing[1:]:  # left by an interrupted export: keep one
                client.delete_run(extra.info.run_id)
            continue
        created = client.create_run(experiment_id, tags=run.tags, run_name=run.name)
        run_id = created.info.run_id
        try:
            _log(client, run_id, run, report)
        except Exception:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED")
        for old in existing:  # only once the new run is complete
            client.delete_run(old.info.run_id)
        done.append(Exported(run.name, run_id, "replaced" if existing else "created"))
    return done


def check_available() -> None:
    """Fail with the one-line install hint when MLflow is missing (before a run starts)."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise missing_extra("MLflow", "mlflow") from None


__all__ = ["DEFAULT_EXPERIMENT", "Exported", "check_available", "export_mlflow"]
