"""Export result rows to Weights & Biases: one W&B run per (model, seed), the same content as
the MLflow export (`oodbench.export.common`).

    oodbench export wandb --results runs --project oodbench
    WANDB_MODE=offline oodbench run ... --wandb      # local run folders, `wandb sync` later

config = the params; summary = the metrics (`<metric>/<detector>/<out_set>`); files = rows.jsonl,
report.html and plots/. The W&B run id is derived from the run's identity, and runs are opened
with resume="allow", so exporting again logs into the same W&B run instead of creating another.
Needs `pip install "oodbench[wandb]"`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from oodbench.export.common import CONTENT_TAG, IDENTITY_TAG, missing_extra, tracked_runs
from oodbench.export.mlflow import Exported

DEFAULT_PROJECT = "oodbench"


def check_available() -> None:
    """Fail with the one-line install hint when wandb is missing."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise missing_extra("Weights & Biases", "wandb") from None


def wandb_run_id(identity: str) -> str:
    """A W&B run id from the identity hash (W&B ids: up to 64 characters, no / \\ # ? % :)."""
    return "oodbench-" + identity[:32]


def export_wandb(
    results: str | os.PathLike,
    *,
    project: str = DEFAULT_PROJECT,
    entity: str | None = None,
    directory: str | os.PathLike | None = None,
    convention: str | None = None,
) -> list[Exported]:
    """Export the rows of a results folder (or rows file) to W&B; see the module doc.

    The mode (online, offline) is W&B's own setting (WANDB_MODE); `directory` is where W&B
    writes its run folders (default: W&B's).
    """
    check_available()
    import wandb

    from oodbench.results import load_rows

    source = Path(results)
    folder = source if source.is_dir() else source.parent
    runs = tracked_runs(load_rows(source), results_dir=folder, convention=convention)
    report = folder / "report.html"
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
    done = []
    for tracked in runs:
        run = wandb.init(
            project=project,
            entity=entity,
            id=wandb_run_id(tracked.identity),
            name=tracked.name,
            config={**tracked.params, **tracked.tags},
            dir=None if directory is None else str(directory),
            resume="allow",
            reinit="finish_previous",
        )
        try:
            run.config.update(
                {CONTENT_TAG: tracked.content, IDENTITY_TAG: tracked.identity}, allow_val_change=True
            )
            run.summary.update(tracked.metrics)
            files = Path(run.dir)
            (files / "rows.jsonl").write_text(tracked.rows_jsonl, encoding="utf-8")
            if report.is_file():
                shutil.copyfile(report, files / "report.html")
            if tracked.plots:
                (files / "plots").mkdir(exist_ok=True)
                for plot in tracked.plots:
                    shutil.copyfile(plot, files / "plots" / plot.name)
        finally:
            run.finish()
        done.append(Exported(tracked.name, run.id, "logged"))
    return done


__all__ = ["DEFAULT_PROJECT", "check_available", "export_wandb", "wandb_run_id"]
