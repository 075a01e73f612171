"""`oodbench run`: train or reuse models, score every detector, print and save tables."""

from __future__ import annotations

import os
from pathlib import Path

import click

from oodbench.cli import export
from oodbench.cli.app import cli
from oodbench.cli.options import (
    CACHE_DIR_OPTION,
    CONVENTION_OPTION,
    DATA_DIR_OPTION,
    DEVICE_OPTION,
    DOWNLOAD_OPTION,
    EVAL_BATCH_OPTION,
    LIMIT_OPTION,
    PARAM_OPTION,
    QUIET_OPTION,
    RESULTS_DIR_OPTION,
    SEEDS_OPTION,
    STRICT_OPTION,
    SUITE_FILE_OPTION,
    WORKERS_OPTION,
    OneLineChoice,
    apply_options,
    detectors_option,
    epochs_option,
    estimate_echo,
    parse_params,
    parse_seeds,
    recipe_option,
    suite_option,
    train_limit_option,
)
from oodbench.names import TRAINED_SOURCES
from oodbench.options import RunOptions


@cli.command("run")
@suite_option("The in/out suite; mnist is embedded and needs no download.")
@detectors_option(
    "Detector(s) to evaluate; default: all built-in (see `oodbench list detectors`). Also "
    "package.module:Class, path/to/file.py:Class or pytorch-ood:NAME. 'joint'/'confidence'/"
    "'baseline' are the paper's shorthands for that model scored by max-softmax."
)
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    type=OneLineChoice(TRAINED_SOURCES),
    help="Model source(s), trained with the suite's recipe or taken from the cache; default: all.",
)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Evaluate this model instead of the suite's: an oodbench checkpoint, TorchScript, a "
    "torch.export .pt2, or weights (state_dict / .safetensors) with --arch. Repeated: replicates "
    "of one model (e.g. training seeds), one label (--label), for `report --replicates`.",
)
@click.option(
    "--arch",
    default=None,
    metavar="NAME|torchvision:NAME|timm:NAME|openood:NAME|FILE.py:FUNC|MODULE:FUNC",
    help="The architecture of plain weights given with --checkpoint.",
)
@click.option(
    "--normalize",
    default=None,
    metavar="PRESET|MEAN/STD",
    help="The model's input normalisation (imagenet, cifar10, svhn, or e.g. 0.5,0.5,0.5/0.25,0.25,0.25), "
    "applied inside the model: detectors stay in [0, 1] pixel space.",
)
@click.option(
    "--resize", type=click.IntRange(min=1), default=None, help="Resize inputs to N x N inside the model."
)
@click.option(
    "--features",
    default=None,
    metavar="LAYER",
    help="The layer whose output feature-based detectors use (default: penultimate / forward_features / "
    "input of the last Linear).",
)
@click.option(
    "--logits-key",
    "logits",
    default=None,
    metavar="NAME|INDEX",
    help="For a model returning a tuple, dict or dataclass: the element holding the logits. Default: "
    "the one 2-D float tensor of shape (N, classes).",
)
@click.option(
    "--channels",
    type=OneLineChoice(("1", "3")),
    default=None,
    help="The channels the model takes: grayscale suites are given to a 3-channel model as RGB (the "
    "channel repeated), RGB suites to a 1-channel model as grey (ITU-R 601-2 luma). Default: read from "
    "the model (its first conv, else a trial pass). Recorded in each row's input_channels.",
)
@click.option(
    "--label", default=None, help="The model's name in results (default: the checkpoint file's stem)."
)
@apply_options(SEEDS_OPTION)
@click.option(
    "--out",
    "extra_out",
    multiple=True,
    metavar="[NAME=]folder:PATH|[NAME=]npz:PATH",
    help="Extra OOD test set: an image folder or an NPZ array, converted to the in-dist shape, capped "
    "by --limit. Named NAME (default: folder:<folder name> / npz:<file stem>); names must differ.",
)
@apply_options(PARAM_OPTION, recipe_option())
@epochs_option("Train with this many epochs (a smoke run).")
@train_limit_option(
    "Train on at most N in-dist images (a fixed stratified subset) and N seen OOD images. "
    "With --epochs 1: a quick check of the whole pipeline."
)
@apply_options(LIMIT_OPTION)
@click.option(
    "--fit-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Fit and tune detectors (Mahalanobis, ODIN, pytorch-ood) on at most N training images (a "
    "fixed stratified subset) and N images of each validation set; recorded in the rows. Default: all.",
)
@apply_options(SUITE_FILE_OPTION, WORKERS_OPTION, STRICT_OPTION)
@click.option(
    "--accept-changed-lists",
    is_flag=True,
    help="Evaluate a suite file's image lists even where they differ from its pinned sha256 "
    "(recorded in every row's list_changed_accepted; such rows are not comparable).",
)
@click.option(
    "--full-spectrum",
    is_flag=True,
    help="OpenOOD's full-spectrum mode: the suite file's covariate-shifted sets (e.g. ImageNet-V2/-C/-R) "
    "join the ID side; ID and csID accuracy are reported.",
)
@apply_options(DEVICE_OPTION, EVAL_BATCH_OPTION)
@apply_options(DATA_DIR_OPTION, DOWNLOAD_OPTION, CACHE_DIR_OPTION, RESULTS_DIR_OPTION)
@apply_options(CONVENTION_OPTION)
@click.option(
    "--plots",
    "plots",
    type=OneLineChoice(("auto", "all", "none")),
    default="auto",
    show_default=True,
    help="Histograms and ROC curves: auto = the msp rows when msp ran (else all), all, or none. "
    "`oodbench plot` draws any of them later from the stored scores.",
)
@apply_options(QUIET_OPTION, export.MLFLOW_OPTION, export.WANDB_OPTION)
def run_command(
    checkpoints: tuple[Path, ...],
    channels: str | None,
    seeds: str | None,
    params: tuple[str, ...],
    epochs: int | None,
    train_limit: int | None,
    convention: str,
    quiet: bool,
    mlflow_uri: str | None,
    wandb_project: str | None,
    **fields,
) -> None:
    """Train (or reuse) models, evaluate detectors on every OOD set, print and save tables.

    With no options: the embedded MNIST suite, three models (cross-entropy, confidence loss,
    joint confidence loss), every detector, every OOD set. With --checkpoint: your own model.
    """
    # Option text is checked before the library (and torch) is imported: usage errors stay fast.
    # The other options are named as the fields of RunOptions and go there as they are.
    refuse_in_with_suite_file(click.get_current_context(), fields.get("suite_file"))
    overrides = {k: v for k, v in {"epochs": epochs, "train_limit": train_limit}.items() if v is not None}
    options = RunOptions(
        params=parse_params(params),
        seeds=None if seeds is None else parse_seeds(seeds),
        # One file stays one path; several are replicates of one model.
        checkpoint=None if not checkpoints else checkpoints[0] if len(checkpoints) == 1 else checkpoints,
        channels=None if channels is None else int(channels),
        train_overrides=overrides,
        legacy=convention == "legacy",
        openood=convention == "openood",
        progress=not quiet,
        **fields,
    )
    export.check_trackers(mlflow_uri, wandb_project)
    from oodbench.api import run_benchmark

    run = run_benchmark(
        options=options,
        on_training_estimate=estimate_echo(f"oodbench run --in {options.suite}", "--limit 1000"),
    )
    if not run.tables and run.rows and os.environ.get("RANK", "0") not in ("", "0"):
        return  # another torchrun rank: rank 0 prints and writes
    for table in run.printed_tables:
        click.echo(table + "\n")
    click.echo(run.accuracy_summary)
    if run.rows:  # one line per row group whose tuning pick is degenerate (the rows' tuning_flags)
        from oodbench.report.tuning import tuning_warnings
        from oodbench.results import rows_to_frame

        for line in tuning_warnings(rows_to_frame(run.rows)):
            click.echo(f"warning: degenerate tuning pick: {line}", err=True)
    click.echo(
        f"{len(run.rows)} result rows appended to {run.rows_file}; "
        f"tables in {run.tables_dir}; {len(run.plots)} plots in {run.rows_file.parent / 'plots'}."
    )
    if run.report is not None:
        click.echo(f"report: {run.report}")
    export.export_after_run(
        run.rows_file.parent, mlflow_uri=mlflow_uri, wandb_project=wandb_project, convention=convention,
        echo=click.echo,
    )  # fmt: skip


def refuse_in_with_suite_file(ctx: click.Context, suite_file: Path | None) -> None:
    """--in names a built-in suite and --suite a suite file: both at once would ignore --in."""
    given = ctx.get_parameter_source("suite") is not click.core.ParameterSource.DEFAULT
    if suite_file is not None and given:
        raise click.UsageError(
            f"--in {ctx.params['suite']} and --suite {suite_file} name two suites; give one of them."
        )
