"""`oodbench report` (tables, comparisons, baseline check, report page) and `oodbench plot`."""

from __future__ import annotations

from pathlib import Path

import click

from oodbench.cli.app import cli
from oodbench.cli.options import (
    RESULTS_HELP,
    OneLineChoice,
    check_writable,
    rows_file_of,
)
from oodbench.errors import UserInputError
from oodbench.names import (
    COLUMN_MODES,
    METRICS_CONVENTIONS,
    MODEL_SOURCES,
    ROWS_FILENAME,
    TABLE_FORMATS,
    TABLE_METRICS,
)


def _repair(rows_path: Path) -> None:
    """`report --repair`: rows.jsonl and every sweep shard of its folder (or the one other file given)."""
    from oodbench.errors import DataNotFoundError
    from oodbench.results import repair_rows
    from oodbench.store import SHARDS_DIRNAME, rows_files

    files = [file for file in rows_files(rows_path) if file.is_file()]
    if not files:
        raise DataNotFoundError(f"No result rows at {rows_path} (nor sweep shards beside it) to repair.")
    kept_all = moved_all = 0
    for file in files:
        kept, moved, rejected = repair_rows(file)
        kept_all, moved_all = kept_all + kept, moved_all + moved
        if moved:
            # A shard's digest no longer matches its job meta: the next sweep recomputes the job.
            shard = file.parent.name == SHARDS_DIRNAME and file.name != ROWS_FILENAME
            redo = " The next run of its sweep recomputes that job." if shard else ""
            click.echo(
                f"{file}: {kept} readable row(s) kept; {moved} unreadable line(s) moved to {rejected}.{redo}"
            )
    if not moved_all:
        click.echo(f"{kept_all} readable row(s) kept in {len(files)} file(s); nothing to repair.")


@cli.command("report")
@click.option("--results", type=click.Path(path_type=Path), default=None, help=RESULTS_HELP)
@click.option(
    "--metric",
    type=OneLineChoice(TABLE_METRICS),
    default="auroc",
    show_default=True,
    help="Metric shown in the cells (tables show percent).",
)
@click.option(
    "--format",
    "fmt",
    type=OneLineChoice(TABLE_FORMATS),
    default="markdown",
    show_default=True,
    help="Table format; LaTeX uses booktabs, best value per row in bold. html: the whole report page "
    "(tables, figures, --compare, published numbers) to --output, default report.html beside the rows.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the table to FILE (atomically) instead of stdout.",
)
@click.option(
    "--columns",
    type=OneLineChoice(COLUMN_MODES),
    default="model+detector",
    show_default=True,
    help="What the table columns are: model and detector ('joint / msp'), detector, or model.",
)
@click.option(
    "--convention",
    type=OneLineChoice(METRICS_CONVENTIONS),
    default=None,
    help="Use only rows with this metric convention (needed when the rows mix them); "
    "openood: exact values with OpenOOD v1.5's trapezoidal AUPR.",
)
@click.option(
    "--groups",
    is_flag=True,
    help="Per OOD group (near / far) of the suite: the unweighted mean over the group's sets, "
    "mean ± std over replicates (checkpoints of one --label).",
)
@click.option(
    "--replicates",
    is_flag=True,
    help="Pool the checkpoints of one --label (e.g. OpenOOD's s0, s1, s2) as replicates: cells give "
    "mean ± std over them and --compare pairs them.",
)
@click.option("--ci", is_flag=True, help="Add 95% bootstrap intervals computed from the stored scores.")
@click.option(
    "--against",
    type=OneLineChoice(("published", "openood")),
    default=None,
    help="'published': our cells beside matching published numbers, marked comparable or not; "
    "'openood': our near/far AUROC group means beside OpenOOD v1.5's leaderboard, marked the same way.",
)
@click.option(
    "--comparable-only",
    is_flag=True,
    help="With --against published: only cells made like the paper's (architecture, recipe, data, metrics).",
)
@click.option(
    "--as",
    "as_training",
    type=OneLineChoice(("cross_entropy", "confidence", "joint")),
    default=None,
    help="With --against published: match rows of external checkpoints as this training method.",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="NAME",
    help="Only rows of models with this model label (repeatable).",
)
@click.option(
    "--compare",
    nargs=2,
    default=None,
    metavar="A B",
    help="B - A with 95% paired bootstrap intervals: two detectors (msp odin) or two models "
    "(cross_entropy joint, or model labels), on every in/out pair.",
)
@click.option(
    "--resamples",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Bootstrap resamples for --ci and --compare.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Regression check against this baseline CSV: exit 1 on regressions or missing rows.",
)
@click.option(
    "--tolerance",
    default="0.01",
    show_default=True,
    metavar="FLOAT",
    help="Allowed change for --baseline, in fraction units (0.01 = 1 point).",
)
@click.option(
    "--write-baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the current rows (averaged over seeds) as a baseline CSV and exit.",
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help="With --baseline: rows in only one of baseline and current rows are listed but do not fail.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Move unreadable lines of the rows file and of every sweep shard to <file>.rejected "
    "(nothing is lost) and exit; a repaired shard's job is redone by the next sweep.",
)
@click.pass_context
def report_command(
    ctx: click.Context, results: Path | None, tolerance: str, repair: bool, labels: tuple[str, ...], **fields
) -> None:
    """Comparison tables from stored rows, paired comparisons (--compare), the published
    comparison (--against published), or the CI regression check (--baseline)."""
    # The report library itself, not oodbench.api: reading rows needs no torch (a faster start).
    from oodbench.report.make import ReportOptions, check_resamples, make_report

    # Refusals first: nothing is read, computed or written for a command that cannot finish.
    check_resamples(fields["resamples"])
    for option, target in (("--output", fields["output"]), ("--write-baseline", fields["write_baseline"])):
        if target is not None:
            check_writable(target, option)
    if repair:
        _repair(rows_file_of(results))
        return
    try:
        tol = float(tolerance)
    except ValueError:
        raise UserInputError(f"--tolerance must be a number >= 0. Got {tolerance!r} instead.") from None
    if not tol >= 0 or tol == float("inf"):
        raise UserInputError(f"--tolerance must be a number >= 0. Got {tolerance!r} instead.")
    # The other options are named as the fields of ReportOptions and go there as they are.
    outcome = make_report(rows_file_of(results), ReportOptions(tolerance=tol, labels=tuple(labels), **fields))
    for line in outcome.messages:
        click.echo(line)
    for note in outcome.notes:
        click.echo(note, err=True)
    if outcome.text is not None:
        click.echo(outcome.text, nl=False)
    if outcome.failed:
        ctx.exit(1)


@cli.command("plot")
@click.option("--results", type=click.Path(path_type=Path), default=None, help=RESULTS_HELP)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the PNG files. Default: plots/ beside the rows file.",
)
@click.option(
    "--model-source",
    type=OneLineChoice(MODEL_SOURCES),
    default=None,
    help="Only rows of this model source.",
)
@click.option("--detector", default=None, help="Only rows of this detector.")
def plot_command(
    results: Path | None, output_dir: Path | None, model_source: str | None, detector: str | None
) -> None:
    """Score histograms and ROC curves (PNG) per model, detector, in-dist set and seed."""
    from oodbench.plots import plot_rows
    from oodbench.results import load_rows

    rows_path = rows_file_of(results)
    out_dir = output_dir if output_dir is not None else rows_path.parent / "plots"
    check_writable(out_dir, "--output-dir", folder=True)
    written = plot_rows(
        load_rows(rows_path),
        scores_root=rows_path.parent,
        out_dir=out_dir,
        model_source=model_source,
        detector=detector,
    )
    for path in written:
        click.echo(str(path))
