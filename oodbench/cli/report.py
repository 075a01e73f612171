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
from oodbench.names import COLUMN_MODES, MODEL_SOURCES, ROWS_FILENAME, TABLE_FORMATS, TABLE_METRICS

MAX_RESAMPLES = 100_000  # report --resamples: more only narrows the Monte Carlo error further
BOOTSTRAP_BYTES_PER_RESAMPLE = 48  # = 6 float64 metric values per resample and detector (metrics.py)


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
    type=OneLineChoice(("exact", "legacy")),
    default=None,
    help="Use only rows with this metric convention (needed when the rows mix them).",
)
@click.option("--ci", is_flag=True, help="Add 95% bootstrap intervals computed from the stored scores.")
@click.option(
    "--against",
    type=OneLineChoice(("published",)),
    default=None,
    help="'published': our cells beside matching published numbers, marked comparable or not.",
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
    ctx: click.Context,
    results: Path | None,
    metric: str,
    fmt: str,
    output: Path | None,
    columns: str,
    convention: str | None,
    ci: bool,
    against: str | None,
    comparable_only: bool,
    as_training: str | None,
    labels: tuple[str, ...],
    compare: tuple[str, str] | None,
    resamples: int,
    baseline: Path | None,
    tolerance: str,
    write_baseline: Path | None,
    allow_missing: bool,
    repair: bool,
) -> None:
    """Comparison tables from stored rows, paired comparisons (--compare), the published
    comparison (--against published), or the CI regression check (--baseline)."""
    from oodbench import report
    from oodbench.atomic import atomic_write_text
    from oodbench.results import load_rows

    # Refusals first: nothing is read, computed or written for a command that cannot finish.
    if resamples > MAX_RESAMPLES:
        gib = resamples * BOOTSTRAP_BYTES_PER_RESAMPLE / 2**30
        raise UserInputError(
            f"--resamples {resamples:,} would hold at least {gib:,.1f} GiB of bootstrap values (and run for "
            f"hours); use at most {MAX_RESAMPLES:,} (default 1,000)."
        )
    for option, target in (("--output", output), ("--write-baseline", write_baseline)):
        if target is not None:
            check_writable(target, option)
    if repair:
        _repair(rows_file_of(results))
        return

    try:
        tol = float(tolerance)
    except ValueError:
        tol = float("nan")
    if not tol >= 0 or tol == float("inf"):
        raise UserInputError(f"--tolerance must be a number >= 0. Got {tolerance!r} instead.")
    modes = [
        name
        for name, on in (
            ("--baseline", baseline),
            ("--write-baseline", write_baseline),
            ("--against", against),
            ("--compare", compare),
        )
        if on
    ]
    if len(modes) > 1:
        raise UserInputError(f"Use one of {', '.join(modes)} at a time.")
    if ci and modes:
        raise UserInputError("--ci works with the comparison table only, not with " + modes[0] + ".")
    if (comparable_only or as_training) and against is None:
        flag = "--comparable-only" if comparable_only else "--as"
        raise UserInputError(f"{flag} works with --against published only.")
    if allow_missing and baseline is None:
        raise UserInputError("--allow-missing works with --baseline only.")
    if labels and (baseline is not None or write_baseline is not None):
        raise UserInputError("--label selects rows for tables; the baseline check takes every row.")

    rows_path = rows_file_of(results)
    frame = report.select_labels(load_rows(rows_path), labels)
    if write_baseline is not None:
        text = report.export_baseline(frame, convention=convention)
        atomic_write_text(write_baseline, text)
        click.echo(f"wrote baseline of {len(text.splitlines()) - 1} rows to {write_baseline}")
        return
    if baseline is not None:
        check = report.compare_to_baseline(
            frame, baseline, tol, convention=convention, allow_missing=allow_missing
        )
        for line in check.lines():
            click.echo(line)
        if check.failed:
            ctx.exit(1)
        return
    if fmt == "html":  # the whole page (oodbench.report.html): tables, figures, comparisons
        from oodbench.report.html import REPORT_FILENAME, write_page

        if ci:
            raise UserInputError("--ci is for the text tables; the HTML page shows --compare intervals.")
        target = output if output is not None else rows_path.parent / REPORT_FILENAME
        write_page(frame, scores_root=rows_path.parent, output=target, convention=convention,
                   compare=compare, n_resamples=resamples)  # fmt: skip
        click.echo(f"wrote {target}", err=True)
        return
    if against == "published":
        comparison = report.published_comparison(
            frame,
            report.load_published(),
            metric=metric,
            convention=convention,
            as_training=as_training,
            comparable_only=comparable_only,
        )
        text = report.render_published(comparison, fmt, metric=metric)
    elif compare is not None:
        paired = report.compare(
            frame,
            *compare,
            scores_root=rows_path.parent,
            convention=convention,
            n_resamples=resamples,
        )
        text = report.render_comparison(paired, fmt)
    else:
        table = report.comparison_table(
            frame,
            metric=metric,
            columns=columns,
            convention=convention,
            ci=ci,
            scores_root=rows_path.parent,
            n_resamples=resamples,
        )
        text = report.render_table(table, fmt)
    if output is not None:
        atomic_write_text(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


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
