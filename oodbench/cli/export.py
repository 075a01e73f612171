"""`oodbench export mlflow|wandb` and the `--mlflow` / `--wandb` options of `oodbench run`.

Only click is imported here: the CLI imports this module at start-up, and `oodbench --help`
must stay fast (tests/test_cli_startup.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from oodbench.names import METRICS_CONVENTIONS

MLFLOW_OPTION = click.option(
    "--mlflow",
    "mlflow_uri",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[TRACKING_URI]",
    help="After the run, export the results folder to MLflow (one MLflow run per model and seed) at "
    'TRACKING_URI, else MLflow\'s default. Needs pip install "oodbench[mlflow]".',
)
WANDB_OPTION = click.option(
    "--wandb",
    "wandb_project",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[PROJECT]",
    help="After the run, export the results folder to Weights & Biases (project PROJECT, default "
    'oodbench; WANDB_MODE=offline works). Needs pip install "oodbench[wandb]".',
)


def check_trackers(mlflow_uri: str | None, wandb_project: str | None) -> None:
    """Refuse a tracker whose package is missing, before any training starts."""
    if mlflow_uri is not None:
        from oodbench.export.mlflow import check_available

        check_available()
    if wandb_project is not None:
        from oodbench.export.wandb import check_available as check_wandb

        check_wandb()


def export_after_run(
    results: Path,
    *,
    mlflow_uri: str | None,
    wandb_project: str | None,
    convention: str | None,
    echo: Callable[[str], None],
) -> None:
    """Export what `oodbench run` / `sweep` wrote, when --mlflow / --wandb asked for it."""
    if mlflow_uri is not None:
        from oodbench.export.mlflow import export_mlflow

        _summarise(
            "MLflow", export_mlflow(results, tracking_uri=mlflow_uri or None, convention=convention), echo
        )
    if wandb_project is not None:
        from oodbench.export.wandb import DEFAULT_PROJECT, export_wandb

        done = export_wandb(results, project=wandb_project or DEFAULT_PROJECT, convention=convention)
        _summarise("W&B", done, echo)


def _summarise(tracker: str, done: list, echo: Callable[[str], None]) -> None:
    counts = {
        status: sum(d.status == status for d in done)
        for status in ("created", "replaced", "unchanged", "logged")
    }
    text = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    echo(f"{tracker}: {len(done)} run(s): {text or 'nothing to export'}.")


_RESULTS = click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=None,
    help="The results folder (or its rows.jsonl). Default: $OODBENCH_RESULTS, else runs/.",
)
_CONVENTION = click.option(
    "--convention",
    type=click.Choice(METRICS_CONVENTIONS),
    default=None,
    help="Export only rows of this metric convention (default: every row).",
)


def _results(results: Path | None) -> Path:
    from oodbench import paths

    return paths.results_dir() if results is None else results


@click.group("export")
def export_group() -> None:
    """Export result rows to an experiment tracker (MLflow, Weights & Biases)."""


@export_group.command("mlflow")
@_RESULTS
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: MLflow's own default).")
@click.option("--experiment", default="oodbench", show_default=True, help="MLflow experiment name.")
@_CONVENTION
def export_mlflow_command(
    results: Path | None, tracking_uri: str | None, experiment: str, convention: str | None
) -> None:
    """One MLflow run per (model, seed): params, metrics <metric>/<detector>/<out_set>, artifacts.
    Exporting again creates no duplicates."""
    from oodbench.export.mlflow import check_available, export_mlflow

    check_available()
    done = export_mlflow(
        _results(results), tracking_uri=tracking_uri, experiment=experiment, convention=convention
    )
    for item in done:
        click.echo(f"{item.status:<9} {item.run_id}  {item.name}")
    _summarise("MLflow", done, click.echo)


@export_group.command("wandb")
@_RESULTS
@click.option("--project", default="oodbench", show_default=True, help="W&B project.")
@click.option("--entity", default=None, help="W&B entity (team or user; default: yours).")
@click.option("--dir", "wandb_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where W&B writes its run folders (default: W&B's, ./wandb).")  # fmt: skip
@_CONVENTION
def export_wandb_command(
    results: Path | None, project: str, entity: str | None, wandb_dir: Path | None, convention: str | None
) -> None:
    """The same content as the MLflow export, one W&B run per (model, seed); WANDB_MODE=offline
    writes local run folders to sync later. Exporting again resumes the same run ids."""
    from oodbench.export.wandb import check_available, export_wandb

    check_available()
    done = export_wandb(
        _results(results), project=project, entity=entity, directory=wandb_dir, convention=convention
    )
    for item in done:
        click.echo(f"{item.status:<9} {item.run_id}  {item.name}")
    _summarise("W&B", done, click.echo)
