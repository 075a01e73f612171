"""The `oodbench` command line. Each command: validate -> one library call -> print.

Problems the user can fix (a `UserInputError`, an unreadable or unwritable path) end in one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import dataclasses as _dataclasses
import difflib
import errno
import json
import logging
import math
import sys
import time as _time
from collections.abc import Callable
from pathlib import Path

import click

from oodbench import __version__
from oodbench import paths as _paths
from oodbench.errors import UserInputError
from oodbench.export import cli as _export_cli

# Only light modules are imported here (no torch, pandas or scipy), so that `oodbench --help`,
# `oodbench list ...` and usage errors answer at once; each command imports what it needs.
from oodbench.names import COLUMN_MODES as _COLUMN_MODES
from oodbench.names import MODEL_SOURCES as _MODEL_SOURCES
from oodbench.names import ROWS_FILENAME as _ROWS_FILENAME
from oodbench.names import SHORTHAND_DETECTORS as _SHORTHANDS
from oodbench.names import TABLE_FORMATS as _FORMATS
from oodbench.names import TABLE_METRICS as _TABLE_METRICS
from oodbench.names import TRAINED_SOURCES as _TRAINED_SOURCES

_MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit; larger ones overflow
_PARAM_MAX_CHARS = 10_000  # one --param value
_PARAM_MAX_DEPTH = 32  # nesting of a --param JSON value ([[...]] / {...})
_MAX_RESAMPLES = 100_000  # report --resamples: more only narrows the Monte Carlo error further
_BOOTSTRAP_BYTES_PER_RESAMPLE = 48  # = 6 float64 metric values per resample and detector (metrics.py)


def _suite_names() -> list[str]:
    import oodbench.data  # noqa: F401  (registers the suites)
    from oodbench.data.spec import SUITES

    return SUITES.names()


def _detector_names() -> list[str]:
    from oodbench.detectors import DETECTORS

    return DETECTORS.names()


def _recipe_names() -> list[str]:
    from oodbench.training.recipes import RECIPES

    return RECIPES.names()


def _method_names() -> list[str]:
    from oodbench.training.recipes import METHODS

    return METHODS.names()


class _InputError(click.ClickException):
    """One line 'Error: ...' and exit code 2 (a usage error)."""

    exit_code = 2


# Write failures the user fixes outside oodbench: no space, over quota, read-only file system.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class OodbenchGroup(click.Group):
    """A click group that turns user-fixable errors into one-line messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserInputError as error:
            _traceback_if_verbose(ctx, error)
            raise _InputError(str(error)) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as error:
            raise _InputError(f"{error.strerror or error}: {error.filename}") from None
        except OSError as error:
            if error.errno not in _WRITE_ERRNOS:
                raise
            # A full disk or a read-only file system: files are written atomically, so what
            # was there before is intact; say so in one line instead of a traceback.
            where = f": {error.filename}" if error.filename else ""
            raise _InputError(
                f"{error.strerror or error}{where}; nothing written earlier was damaged "
                "(free some space or choose another folder, then run again)."
            ) from None
        except click.UsageError as error:
            # click prints usage, a hint and the error on three lines; ours is one line with the fix.
            raise _InputError(_one_line_usage(error)) from None

    def main(self, *args, **kwargs):
        try:
            # standalone_mode=False lets us format usage errors; click then returns ctx.exit codes.
            code = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.UsageError as error:  # errors in the top-level options, before invoke
            _InputError(_one_line_usage(error)).show()
            sys.exit(2)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.exceptions.Exit as exit_:
            sys.exit(exit_.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _traceback_if_verbose(ctx: click.Context, error: BaseException) -> None:
    """Under -v, the traceback behind a one-line error first (for user code: where it failed)."""
    if ctx.find_root().params.get("verbose"):
        import traceback

        traceback.print_exception(error.__cause__ or error, file=sys.stderr)


def _one_line_usage(error: click.UsageError) -> str:
    message = error.format_message().strip()
    command = error.ctx.command_path if error.ctx is not None else "oodbench"
    return f"{message}{'' if message.endswith(('.', '?', ')')) else '.'} See `{command} --help`."


@click.group(cls=OodbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="oodbench")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Log progress details to stderr, and print the traceback behind an error (e.g. in a plug-in).",
)
def cli(verbose: bool) -> None:
    """oodbench: benchmark out-of-distribution detectors on in/out data set pairs."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@cli.group(name="list", cls=OodbenchGroup)
def list_group() -> None:
    """List what is registered: datasets, suites, detectors, models, recipes."""


# Option blocks shared by several commands are defined once here, so they cannot drift apart.

_DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data sets folder (else $OODBENCH_DATA, else ~/.cache/oodbench/data).",
)
_DOWNLOAD_OPTION = click.option("--download", is_flag=True, help="Download missing data sets (checksummed).")
_CACHE_DIR_OPTION = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Checkpoints and score caches (else $OODBENCH_CACHE, else ~/.cache/oodbench).",
)
_RESULTS_DIR_OPTION = click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where rows.jsonl, scores/, tables/ and plots/ go (else $OODBENCH_RESULTS, else ./runs).",
)
_DEVICE_OPTION = click.option(
    "--device",
    default="auto",
    show_default=True,
    envvar="OODBENCH_DEVICE",
    help="auto, cpu or cuda[:N] ($OODBENCH_DEVICE).",
)
_QUIET_OPTION = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")


def _suite_option(help_text: str):
    return click.option(
        "--in",
        "-i",
        "suite",
        type=_OneLineChoice(_suite_names, metavar="SUITE"),
        default="mnist",
        show_default=True,
        help=help_text + " See `oodbench list suites`.",
    )


def _recipe_option(help_text: str = "Training recipe (default: the suite's; see `oodbench list recipes`)."):
    return click.option(
        "--recipe", "-r", type=_OneLineChoice(_recipe_names, metavar="RECIPE"), default=None, help=help_text
    )


def _options(*decorators: Callable) -> Callable:
    """Apply several click option decorators in the order given (top to bottom)."""

    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


# ---------------------------------------------------------------------------------------------
# Area "results/report": `oodbench report` (tables, --against published, CI regression check)
# and `oodbench plot` (score histograms and ROC curves from stored scores).


class _OneLineChoice(click.Choice):
    """A Choice whose bad value ends in one 'Error: ...' line and exit 2, not a usage screen.

    `choices` may be a function: it is called when a value is checked (registries are read when
    the command runs, not when the CLI is imported), and --help shows `metavar` instead.
    """

    def __init__(self, choices, metavar: str | None = None) -> None:
        self._loader = choices if callable(choices) else None
        self._metavar = metavar
        super().__init__([] if self._loader else list(choices))

    def _load(self) -> None:
        if self._loader is not None:  # read the registry each time: plug-ins may have been added
            self.choices = list(self._loader())

    def get_metavar(self, param, ctx=None):
        if self._loader is not None and self._metavar:
            return self._metavar
        return super().get_metavar(param, ctx) if ctx is not None else super().get_metavar(param)

    def shell_complete(self, ctx, param, incomplete):
        self._load()
        return super().shell_complete(ctx, param, incomplete)

    def convert(self, value, param, ctx):
        self._load()
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            option = param.opts[0] if param is not None and param.opts else "value"
            choices = [str(choice) for choice in self.choices]
            close = difflib.get_close_matches(str(value), choices, n=3, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise UserInputError(
                f"Unknown {option} {value!r}.{hint} Available: {', '.join(choices)}."
            ) from None


_CONVENTION_OPTION = click.option(
    "--convention",
    type=_OneLineChoice(("exact", "legacy")),
    default="exact",
    show_default=True,
    help="Metrics: exact and tie-aware, or legacy (the papers' 200,000-step threshold grid).",
)


_SEEDS_OPTION = click.option(
    "--seeds",
    default=None,
    help="Training seeds, e.g. 0,1,2 (mean ± std in tables). Default: the recipe's seed "
    "(0 for embedded, 1 for the lee2018 recipes, as in the paper's code).",
)
_PARAM_OPTION = click.option(
    "--param",
    "params",
    multiple=True,
    metavar="DETECTOR.NAME=VALUE",
    help="Fix a detector hyperparameter, e.g. odin.temperature=1000 or pytorch-ood:ViM.d=64 (DETECTOR "
    "as given to -d, split at the last dot; else defaults/tuning).",
)
_LIMIT_OPTION = click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Evaluate at most N images of the ID test set and of each OOD test set (--out sets too). "
    "Detectors are still fitted and tuned on their full splits (see --fit-limit); training is capped "
    "by --train-limit.",
)
_EVAL_BATCH_OPTION = click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)


def _check_writable(path: Path, option: str, *, folder: bool = False) -> None:
    """Refuse in one line, before any work, an output `path` that cannot be written: under a file
    (a.csv/t.md), or in a folder the user may not write to. The folder is probed by creating an
    unnamed temporary file (nothing appears; os.access alone says yes to root on read-only mounts)."""
    import os
    import tempfile

    if not folder and path.is_dir():
        raise UserInputError(f"{option} {path} is a folder; give a file name.")
    wanted = path if folder else path.parent
    existing = wanted
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserInputError(f"{option} {path}: {existing} is a file, not a folder.")
    if folder and path.exists() and not path.is_dir():
        raise UserInputError(f"{option} {path} is a file, not a folder.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UserInputError(
            f"{option} {path}: cannot write in {existing} ({error.strerror or error}); choose another place."
        ) from None
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"{option} {path}: {existing} is not writable; choose another place.")


def _rows_path(results: Path | None) -> Path:
    """--results as given (a folder means its rows.jsonl), else the default results folder's."""
    if results is None:
        return _paths.results_dir() / _ROWS_FILENAME
    return results / _ROWS_FILENAME if results.is_dir() else results


_RESULTS_HELP = (
    f"Result rows (JSONL) written by `oodbench run`, or their folder. Default: "
    f"$OODBENCH_RESULTS/{_ROWS_FILENAME}, else runs/{_ROWS_FILENAME}."
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
            shard = file.parent.name == SHARDS_DIRNAME and file.name != _ROWS_FILENAME
            redo = " The next run of its sweep recomputes that job." if shard else ""
            click.echo(
                f"{file}: {kept} readable row(s) kept; {moved} unreadable line(s) moved to {rejected}.{redo}"
            )
    if not moved_all:
        click.echo(f"{kept_all} readable row(s) kept in {len(files)} file(s); nothing to repair.")


@cli.command("report")
@click.option("--results", type=click.Path(path_type=Path), default=None, help=_RESULTS_HELP)
@click.option(
    "--metric",
    type=_OneLineChoice(_TABLE_METRICS),
    default="auroc",
    show_default=True,
    help="Metric shown in the cells (tables show percent).",
)
@click.option(
    "--format",
    "fmt",
    type=_OneLineChoice(_FORMATS),
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
    type=_OneLineChoice(_COLUMN_MODES),
    default="model+detector",
    show_default=True,
    help="What the table columns are: model and detector ('joint / msp'), detector, or model.",
)
@click.option(
    "--convention",
    type=_OneLineChoice(("exact", "legacy")),
    default=None,
    help="Use only rows with this metric convention (needed when the rows mix them).",
)
@click.option("--ci", is_flag=True, help="Add 95% bootstrap intervals computed from the stored scores.")
@click.option(
    "--against",
    type=_OneLineChoice(("published",)),
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
    type=_OneLineChoice(("cross_entropy", "confidence", "joint")),
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
    if resamples > _MAX_RESAMPLES:
        gib = resamples * _BOOTSTRAP_BYTES_PER_RESAMPLE / 2**30
        raise UserInputError(
            f"--resamples {resamples:,} would hold at least {gib:,.1f} GiB of bootstrap values (and run for "
            f"hours); use at most {_MAX_RESAMPLES:,} (default 1,000)."
        )
    for option, target in (("--output", output), ("--write-baseline", write_baseline)):
        if target is not None:
            _check_writable(target, option)
    if repair:
        _repair(_rows_path(results))
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

    rows_path = _rows_path(results)
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
@click.option("--results", type=click.Path(path_type=Path), default=None, help=_RESULTS_HELP)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the PNG files. Default: plots/ beside the rows file.",
)
@click.option(
    "--model-source",
    type=_OneLineChoice(_MODEL_SOURCES),
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

    rows_path = _rows_path(results)
    out_dir = output_dir if output_dir is not None else rows_path.parent / "plots"
    _check_writable(out_dir, "--output-dir", folder=True)
    written = plot_rows(
        load_rows(rows_path),
        scores_root=rows_path.parent,
        out_dir=out_dir,
        model_source=model_source,
        detector=detector,
    )
    for path in written:
        click.echo(str(path))


# End of area "results/report".
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Area "data": `oodbench list datasets` and `oodbench list suites`.

_DATA_DIR_HELP = "Data root. Default: $OODBENCH_DATA, else <cache>/data ($OODBENCH_CACHE, ~/.cache/oodbench)."


def _data_root_line(data_dir: Path | None) -> str:
    import os

    origin = "$OODBENCH_DATA" if os.environ.get("OODBENCH_DATA") else "default"
    if data_dir:
        origin = "--data-dir"
    return f"Data root: {_paths.data_dir(data_dir)} (from {origin})"


@list_group.command("datasets")
@_options(_DATA_DIR_OPTION)
@click.option(
    "--details", is_flag=True, help="Also show source, licence, split sizes and how to get the files."
)
def list_datasets_command(data_dir: Path | None, details: bool) -> None:
    """Every data set: shape, classes, splits, whether its files are present, and where oodbench looks."""
    from oodbench.data import DATASETS

    click.echo(_data_root_line(data_dir))
    header = ("name", "shape", "classes", "splits", "files", "where")
    rows = []
    for name, spec in DATASETS.items():
        status = spec.kind if spec.kind != "files" else ("present" if spec.present(data_dir) else "missing")
        rows.append(
            (
                name,
                "x".join(map(str, spec.image_shape)) + ("*" if spec.kind == "generated" else ""),
                "-" if spec.num_classes is None else str(spec.num_classes),
                ",".join(spec.splits),
                status,
                spec.location(data_dir),
            )
        )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]))
    click.echo(
        "* generated at the in-distribution shape.  "
        "Missing files: `oodbench run --download`, or see --details."
    )
    if details:
        for name, spec in DATASETS.items():
            sizes = ", ".join(f"{split} {count:,}" for split, count in spec.sizes) or "any size"
            click.echo(
                f"\n{name}\n  source:  {spec.source}\n  licence: {spec.licence}\n  sizes:   {sizes}"
                f"\n  files:   {spec.files_hint}"
            )


@list_group.command("suites")
def list_suites_command() -> None:
    """Every suite: in-distribution set, OOD test sets, seen OOD training set, validation data, recipe."""
    from oodbench.data import DATASETS, DEFAULT_SUITE, SUITES
    from oodbench.data.suites import seen_split

    for i, (name, suite) in enumerate(SUITES.items()):
        spec = DATASETS.get(suite.in_dataset)
        shape = "x".join(map(str, spec.image_shape))
        title = name + (" (default)" if name == DEFAULT_SUITE else "")
        click.echo(("\n" if i else "") + f"{title}  - {suite.description}")
        click.echo(f"  in-dist:     {suite.in_dataset} ({shape}, {spec.num_classes} classes)")
        click.echo(f"  OOD test:    {', '.join(suite.out_datasets)}")
        click.echo(
            f"  seen OOD:    {suite.seen_ood} {seen_split(DATASETS.get(suite.seen_ood))} split"
            " (trains the confidence loss)"
        )
        click.echo(f"  validation:  {suite.validation}")
        click.echo(f"  recipe:      {suite.recipe}")


# End of area "data".
# ---------------------------------------------------------------------------------------------


# Area "run": `oodbench run`, the main job (train or reuse models, score every detector).


def _parse_seeds(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",")]
    try:
        seeds = [int(part) for part in parts] if len(text) <= 10_000 else []
    except ValueError:
        seeds = []
    if not seeds or any(not 0 <= seed <= _MAX_SEED for seed in seeds):
        raise UserInputError(
            f"--seeds takes integers from 0 to {_MAX_SEED} (2^32 - 1, what the random generators accept) "
            f"separated by commas, e.g. 0,1,2. Got {_clip(text)!r}."
        )
    return list(dict.fromkeys(seeds))


def _clip(text: str, width: int = 60) -> str:
    """`text` shortened for a one-line message (values may be megabytes long)."""
    return text if len(text) <= width else text[:width] + "..."


def _json_depth(text: str) -> int:
    """The deepest nesting of [ and { in JSON text, outside strings (checked before parsing, which
    recurses once per level)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif in_string:
            escaped = char == "\\"
            in_string = char != '"'
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _param_value(item: str, raw: str) -> object:
    """A --param value: JSON if it parses (within size and depth limits, finite numbers), else text."""
    if len(raw) > _PARAM_MAX_CHARS or _json_depth(raw) > _PARAM_MAX_DEPTH:
        raise UserInputError(
            f"--param {_clip(item)!r}: values are limited to {_PARAM_MAX_CHARS:,} characters and "
            f"{_PARAM_MAX_DEPTH} levels of nesting."
        )

    def not_finite(token: str) -> float:
        raise UserInputError(f"--param {_clip(item)!r}: {token} is not a finite number; give a finite value.")

    def finite(token: str) -> float:
        value = float(token)
        return value if math.isfinite(value) else not_finite(token)

    try:
        return json.loads(raw, parse_constant=not_finite, parse_float=finite, parse_int=_bounded_int)
    except json.JSONDecodeError:
        return raw
    except UserInputError:
        raise
    except ValueError as error:  # an integer beyond int64
        raise UserInputError(f"--param {_clip(item)!r}: {error}.") from None


def _bounded_int(token: str) -> int:
    # Digits first: int() of a 5,000-digit literal fails with a message about sys limits.
    value = int(token) if len(token.lstrip("-")) <= 19 else 2**63
    if abs(value) > 2**63 - 1:  # beyond int64: no hyperparameter, and not storable by numpy or torch
        raise ValueError(f"integer {_clip(token)} is out of range (|value| <= 2^63 - 1)")
    return value


def _parse_params(items: tuple[str, ...]) -> dict[str, dict]:
    """--param DETECTOR.NAME=VALUE -> {DETECTOR: {NAME: VALUE}} (values read as JSON, else text).

    DETECTOR is split off at the LAST dot before '=' (hyperparameter names have no dots), so it may
    be a spec: odin.temperature=1000, pytorch-ood:ViM.d=64, my/det.py:MyDet.k=3. It must be written
    exactly as given to -d. JSON values must be finite (Infinity and NaN would be written to the
    rows, which are JSON) and small (limits on size and nesting depth).
    """
    from oodbench.detectors import DETECTORS
    from oodbench.detectors.plugins import entry_points, is_spec

    params: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        detector, dot, name = key.rpartition(".")
        if not sep or not dot or not detector or not name.isidentifier():
            raise UserInputError(
                "--param takes DETECTOR.NAME=VALUE, e.g. odin.temperature=1000 or pytorch-ood:ViM.d=64. "
                f"Got {_clip(item)!r}."
            )
        if not is_spec(detector) and detector not in entry_points():
            DETECTORS.get(detector)
        params.setdefault(detector, {})[name] = _param_value(item, raw)
    return params


class _DetectorChoice(_OneLineChoice):
    """-d: a registered name, an entry point, a shorthand, or a spec containing ':' (checked at run)."""

    def convert(self, value, param, ctx):
        from oodbench.detectors.plugins import SPEC_HELP, is_spec

        if is_spec(value):
            return value
        try:
            return super().convert(value, param, ctx)
        except UserInputError as error:
            raise UserInputError(f"{error} Or give {SPEC_HELP}.") from None


def _detector_choices() -> list[str]:
    from oodbench.detectors.plugins import entry_points

    return [*dict.fromkeys([*_detector_names(), *entry_points()]), *_SHORTHANDS]


@list_group.command("detectors")
def list_detectors_command() -> None:
    """Every detector oodbench can find: built-in, plug-ins, pytorch-ood's; what each uses, its paper."""
    from oodbench.detectors.plugins import PYTORCH_OOD_INSTALL, listing, pytorch_ood_installed

    lines = listing()
    width = max(len(line[0]) for line in lines)
    for name, source, uses, paper in lines:
        click.echo(f"{name:<{width}}  {source:<11}  uses {uses:<8}  {paper}")
    if not pytorch_ood_installed():
        click.echo(f"pytorch-ood's detectors (-d pytorch-ood:NAME): not installed; {PYTORCH_OOD_INSTALL}.")
    click.echo(
        "Shorthands: " + ", ".join(f"{k} = --model {m} --detector {d}" for k, (m, d) in _SHORTHANDS.items())
    )
    click.echo("Also: -d package.module:Class or -d path/to/file.py:Class (a Detector subclass).")


def _estimate_echo(command: str, extra: str = "") -> Callable:
    """A callback printing a long training's estimate and the smoke-test command (to stderr)."""

    def echo(estimate) -> None:
        from oodbench.training.estimate import SMOKE_OPTIONS

        if estimate.long:
            smoke = " ".join(part for part in (command, SMOKE_OPTIONS, extra) if part)
            click.echo(f"{estimate.describe()}; for a quick check: {smoke}", err=True)

    return echo


@cli.command("run")
@_suite_option("The in/out suite; mnist is embedded and needs no download.")
@click.option(
    "--detector",
    "-d",
    "detectors",
    multiple=True,
    type=_DetectorChoice(_detector_choices, metavar="DETECTOR"),
    help="Detector(s) to evaluate; default: all built-in (see `oodbench list detectors`). Also "
    "package.module:Class, path/to/file.py:Class or pytorch-ood:NAME. 'joint'/'confidence'/"
    "'baseline' are the paper's shorthands for that model scored by max-softmax.",
)
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    type=_OneLineChoice(_TRAINED_SOURCES),
    help="Model source(s), trained with the suite's recipe or taken from the cache; default: all.",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Evaluate this model instead of the suite's: an oodbench checkpoint, TorchScript, a "
    "torch.export .pt2, or weights (state_dict / .safetensors) with --arch.",
)
@click.option(
    "--arch",
    default=None,
    metavar="NAME|torchvision:NAME|timm:NAME|FILE.py:FUNC|MODULE:FUNC",
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
    default=None,
    metavar="NAME|INDEX",
    help="For a model returning a tuple, dict or dataclass: the element holding the logits. Default: "
    "the one 2-D float tensor of shape (N, classes).",
)
@click.option(
    "--label", default=None, help="The model's name in results (default: the checkpoint file's stem)."
)
@_options(_SEEDS_OPTION)
@click.option(
    "--out",
    "extra_out",
    multiple=True,
    metavar="[NAME=]folder:PATH|[NAME=]npz:PATH",
    help="Extra OOD test set: an image folder or an NPZ array, converted to the in-dist shape, capped "
    "by --limit. Named NAME (default: folder:<folder name> / npz:<file stem>); names must differ.",
)
@_options(_PARAM_OPTION, _recipe_option())
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Train with this many epochs (a smoke run)."
)
@click.option(
    "--train-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Train on at most N in-dist images (a fixed stratified subset) and N seen OOD images. "
    "With --epochs 1: a quick check of the whole pipeline.",
)
@_options(_LIMIT_OPTION)
@click.option(
    "--fit-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Fit and tune detectors (Mahalanobis, ODIN, pytorch-ood) on at most N training images (a "
    "fixed stratified subset) and N images of each validation set; recorded in the rows. Default: all.",
)
@_options(_DEVICE_OPTION, _EVAL_BATCH_OPTION)
@_options(_DATA_DIR_OPTION, _DOWNLOAD_OPTION, _CACHE_DIR_OPTION, _RESULTS_DIR_OPTION)
@_options(_CONVENTION_OPTION)
@click.option(
    "--plots",
    "plot_choice",
    type=_OneLineChoice(("auto", "all", "none")),
    default="auto",
    show_default=True,
    help="Histograms and ROC curves: auto = the msp rows when msp ran (else all), all, or none. "
    "`oodbench plot` draws any of them later from the stored scores.",
)
@_options(_QUIET_OPTION, _export_cli.MLFLOW_OPTION, _export_cli.WANDB_OPTION)
def run_command(
    suite,
    detectors,
    models,
    checkpoint,
    arch,
    normalize,
    resize,
    features,
    logits_key,
    label,
    seeds,
    extra_out,
    params,
    recipe,
    epochs,
    train_limit,
    limit,
    fit_limit,
    device,
    batch_size,
    data_dir,
    download,
    cache_dir,
    results_dir,
    convention,
    plot_choice,
    quiet,
    mlflow_uri,
    wandb_project,
) -> None:
    """Train (or reuse) models, evaluate detectors on every OOD set, print and save tables.

    With no options: the embedded MNIST suite, three models (cross-entropy, confidence loss,
    joint confidence loss), every detector, every OOD set. With --checkpoint: your own model.
    """
    # Option text is checked before the library (and torch) is imported: usage errors stay fast.
    detector_params = _parse_params(params)
    seed_list = None if seeds is None else _parse_seeds(seeds)
    _export_cli.check_trackers(mlflow_uri, wandb_project)
    from oodbench.api import run_benchmark

    overrides = {k: v for k, v in {"epochs": epochs, "train_limit": train_limit}.items() if v is not None}
    run = run_benchmark(
        suite,
        models=models,
        detectors=detectors,
        params=detector_params,
        seeds=seed_list,
        checkpoint=checkpoint,
        arch=arch,
        normalize=normalize,
        resize=resize,
        features=features,
        logits=logits_key,
        label=label,
        extra_out=extra_out,
        recipe=recipe,
        train_overrides=overrides or None,
        on_training_estimate=_estimate_echo(f"oodbench run --in {suite}", "--limit 1000"),
        limit=limit,
        fit_limit=fit_limit,
        device=device,
        batch_size=batch_size,
        data_dir=data_dir,
        download=download,
        cache_dir=cache_dir,
        results_dir=results_dir,
        legacy=convention == "legacy",
        plots=plot_choice,
        progress=not quiet,
    )
    for table in run.printed_tables:
        click.echo(table + "\n")
    click.echo(run.accuracy_summary)
    click.echo(
        f"{len(run.rows)} result rows appended to {run.rows_file}; "
        f"tables in {run.tables_dir}; {len(run.plots)} plots in {run.rows_file.parent / 'plots'}."
    )
    if run.report is not None:
        click.echo(f"report: {run.report}")
    _export_cli.export_after_run(
        run.rows_file.parent, mlflow_uri=mlflow_uri, wandb_project=wandb_project, convention=convention,
        echo=click.echo,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Area "training": `oodbench train` (one model: cross_entropy, confidence or joint),
# `oodbench list recipes` and `oodbench list models`.


@cli.command("train")
@click.option(
    "--method",
    "-m",
    required=True,
    type=_OneLineChoice(_method_names, metavar="METHOD"),
    help="cross_entropy, confidence (KL to uniform on the suite's seen OOD set) or joint "
    "(joint confidence loss with a GAN, Lee et al. 2018).",
)
@_suite_option("The suite whose in-distribution training set (and seen OOD set) is used.")
@_recipe_option("Training recipe (default: the suite's, e.g. embedded for mnist, lee2018-svhn for svhn).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the recipe's epochs.")
@click.option(
    "--train-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Train on at most N in-dist images (a fixed stratified subset) and N seen OOD images.",
)
@click.option("--beta", type=click.FloatRange(min=0), default=None, help="Override the KL weight beta.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Override the batch size.")
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Override the Adam learning rate (all networks).",
)
@click.option(
    "--gan-warmup-epochs",
    type=click.IntRange(min=0),
    default=None,
    help="joint only: first N epochs train a plain GAN (beta 0) beside a cross-entropy classifier.",
)
@click.option(
    "--seed", type=click.IntRange(min=0, max=_MAX_SEED), default=None, help="Seed (default: the recipe's)."
)
@_options(_DEVICE_OPTION)
@click.option(
    "--resume", is_flag=True, help="Continue the checkpoint of this exact config from its last epoch."
)
@click.option("--bf16", is_flag=True, help="bf16 autocast (CUDA only; refused on CPU).")
@click.option(
    "--channels-last", is_flag=True, help="channels_last memory format (CUDA only; refused on CPU)."
)
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="torch.compile every network (slow first steps while it compiles; on CPU needs a C++ compiler).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the checkpoint here instead of the cache (then `oodbench run` will not find it).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Checkpoints go to <cache>/checkpoints (else $OODBENCH_CACHE, else ~/.cache/oodbench).",
)
@_options(_DATA_DIR_OPTION, _DOWNLOAD_OPTION, _QUIET_OPTION)
def train_command(
    method,
    suite,
    recipe,
    epochs,
    train_limit,
    beta,
    batch_size,
    lr,
    gan_warmup_epochs,
    seed,
    device,
    resume,
    bf16,
    channels_last,
    compile_,
    checkpoint,
    cache_dir,
    data_dir,
    download,
    quiet,
) -> None:
    """Train one classifier and write per-epoch checkpoints (resumable with --resume).

    Prints every effective hyperparameter first and the checkpoint path at the end. Checkpoints
    of the suite's recipe without overrides are the ones `oodbench run` reuses. Under
    `torchrun --nproc_per_node=N -m oodbench train ...` the model is trained with
    DistributedDataParallel on N processes (the batch size stays the global batch); rank 0
    alone prints and writes the checkpoint.
    """
    from oodbench.atomic import remove_stale_temp_files
    from oodbench.data import load_suite
    from oodbench.devices import resolve_device
    from oodbench.provenance import sha256_file
    from oodbench.training import format_config, train
    from oodbench.training.distributed import env_rank, env_world_size, per_rank_batch
    from oodbench.training.loop import check_runtime
    from oodbench.training.recipes import plan_training

    main_rank = env_rank() == 0  # under torchrun only rank 0 prints

    def echo(message: str) -> None:
        if main_rank:
            click.echo(message)

    if not main_rank:
        logging.getLogger().setLevel(logging.ERROR)

    given = {
        "epochs": epochs,
        "beta": beta,
        "batch_size": batch_size,
        "lr": lr,
        "gan_warmup_epochs": gan_warmup_epochs,
        "train_limit": train_limit,
    }
    torch_device = resolve_device(device)
    check_runtime(torch_device, bf16=bf16, channels_last=channels_last)
    # Option errors (e.g. --beta with cross_entropy) fail here, before any data is loaded.
    plan = plan_training(
        method, suite, recipe=recipe, seed=seed, overrides=given, cache_dir=cache_dir, checkpoint=checkpoint
    )
    recipe_obj, seed, overrides = plan.recipe, plan.seed, plan.overrides
    config, path = plan.config, plan.checkpoint
    remove_stale_temp_files(path.parent)  # left by killed checkpoint writes
    world_size = env_world_size()
    try:  # refuse an indivisible global batch before loading data; one line, from rank 0 only
        per_rank_batch(config["batch_size"], world_size)
    except UserInputError:
        if not main_rank:
            raise SystemExit(2) from None
        raise
    # Training reads only the in-dist train split and the seen OOD set.
    data = load_suite(suite, data_dir=data_dir, download=download, training_only=True)
    n_train = min(len(data.train.x), config.get("train_limit", len(data.train.x)))
    echo(
        f"Training {method} on suite {suite} ({n_train} training images) with recipe "
        f"{recipe_obj.name}. Effective configuration:"
    )
    echo(format_config(config))
    echo(
        f"runtime: device {torch_device}, bf16 {bf16}, channels_last {channels_last}, compile {compile_}, "
        f"processes {world_size}"
    )
    if main_rank and world_size == 1:  # the estimate is for one process (training/estimate.py)
        from oodbench.training.estimate import estimate_training

        done = _epochs_done(path, config) if resume else 0
        estimate = estimate_training(
            method, config, images=n_train, device=torch_device, epochs=config["epochs"] - done
        )
        _estimate_echo(f"oodbench train -m {method} --in {suite}")(estimate)
    if resume and not path.exists():
        echo(f"Note: --resume, but {path} does not exist yet; starting from epoch 0.")
    elif not resume and path.exists():
        echo(f"Note: replacing {path} (pass --resume to continue it instead).")
    train(
        method,
        data,
        recipe_obj,
        seed=seed,
        device=torch_device,
        checkpoint=path,
        resume=resume,
        progress=not quiet,
        bf16=bf16,
        channels_last=channels_last,
        compile=compile_,
        **overrides,
    )
    if not main_rank:
        return
    from oodbench.training import read_checkpoint

    last = read_checkpoint(path)["history"][-1]
    echo("Last epoch: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items()))
    echo(f"Checkpoint: {path}\nsha256: {sha256_file(path)}")


def _epochs_done(path: Path, config: dict) -> int:
    """Epochs already in a resumable checkpoint of this config (0 if none or another config)."""
    from oodbench.training import read_checkpoint

    if not path.is_file():
        return 0
    try:
        state = read_checkpoint(path)
    except UserInputError:
        return 0
    return int(state["epoch"]) if state["config"] == config else 0


@list_group.command("recipes")
def list_recipes_command() -> None:
    """Training recipes and their hyperparameters (`oodbench train` prints the full config)."""
    from oodbench.training.recipes import RECIPES

    for name, recipe in RECIPES.items():
        per_method = [f"{m} {e}" for m, e in sorted(recipe.method_epochs.items())]
        epochs = ", ".join([str(recipe.epochs), *per_method])
        decay = (
            f"x{recipe.lr_gamma:g} after epochs {list(recipe.lr_milestones)}"
            if recipe.lr_milestones
            else "constant"
        )
        click.echo(f"{name}: {recipe.description}")
        click.echo(
            f"    arch {recipe.arch}, epochs {epochs}, batch {recipe.batch_size}, Adam lr {recipe.lr:g} "
            f"({decay}), beta {recipe.beta:g}, "
            f"GAN {recipe.gen_arch}/{recipe.disc_arch} nz {recipe.nz}, "
            f"GAN warm-up epochs {recipe.gan_warmup_epochs}, seed {recipe.seed}"
        )


@list_group.command("models")
def list_models_command() -> None:
    """Registered classifier, generator and discriminator architectures."""
    from oodbench.models import CLASSIFIERS, DISCRIMINATORS, GENERATORS

    for kind, registry in (
        ("classifiers", CLASSIFIERS),
        ("generators", GENERATORS),
        ("discriminators", DISCRIMINATORS),
    ):
        click.echo(f"{kind}: {', '.join(registry.names())}")


# End of area "training".
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Area "figures": `oodbench figures toy` and `oodbench figures samples` (the paper's figures).


_FIGURES_DIR = Path("results") / "figures"


@cli.group(name="figures", cls=OodbenchGroup)
def figures_group() -> None:
    """Reproduce the paper's figures: the 2-D toy, GAN samples and max-softmax histograms."""


@figures_group.command("toy")
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=_MAX_SEED),
    default=0,
    show_default=True,
    help="Seed of the data, the OOD samples and every network.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_FIGURES_DIR,
    show_default=True,
    help="Folder for toy_confidence_loss.png, toy_gan.png, toy_metrics.json.",
)
@click.option(
    "--confidence-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Training steps of each confidence-loss MLP (default: ToyConfig's).",
)
@click.option(
    "--gan-warmup-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Plain-GAN steps before the KL term is switched on (default: ToyConfig's).",
)
@click.option(
    "--gan-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Steps with the KL term, for each of the two KL GANs (default: ToyConfig's).",
)
@click.option(
    "--grid-size",
    type=click.IntRange(min=2),
    default=None,
    help="Resolution of the max-softmax landscape (default: ToyConfig's).",
)
def figures_toy(seed, output_dir, confidence_steps, gan_warmup_steps, gan_steps, grid_size) -> None:
    """Two Gaussian classes in 2-D: far vs close OOD training, plain vs KL vs joint GAN (paper Figs. 1-2)."""
    from oodbench.figures.toy import ToyConfig, make_toy_figures

    sizes = {
        "confidence_steps": confidence_steps,
        "gan_warmup_steps": gan_warmup_steps,
        "gan_steps": gan_steps,
        "grid_size": grid_size,
    }
    config = _dataclasses.replace(ToyConfig(), **{k: v for k, v in sizes.items() if v is not None})
    started = _time.perf_counter()
    out = make_toy_figures(output_dir, seed=seed, config=config)
    m = out["metrics"]
    click.echo(
        "Mean max-softmax just outside the data: "
        f"far-OOD training {m['confidence_far_msp_near']:.3f}, "
        f"close-OOD training {m['confidence_close_msp_near']:.3f}"
    )
    for name in ("plain", "fixed", "joint"):
        click.echo(
            f"{name:>5} GAN samples: mean max-softmax of its classifier "
            f"{m[f'gan_msp_{name}_{name}']:.3f}, mean distance to the data "
            f"{m[f'gan_nn_distance_{name}']:.3f}"
        )
    click.echo(
        f"Uniform noise: mean distance to the data {m['gan_nn_distance_noise']:.3f} "
        f"(data bounding box), {m['gan_nn_distance_noise_window']:.3f} (figure window)"
    )
    for path in out["paths"]:
        click.echo(f"Wrote {path}")
    click.echo(f"Took {_time.perf_counter() - started:.1f} s")


@figures_group.command("samples")
@_suite_option("The in/out suite; mnist is embedded and needs no download.")
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=_MAX_SEED),
    default=0,
    show_default=True,
    help="Training seed of the four models, and the seed of the generator noise.",
)
@_recipe_option("Training recipe (default: the suite's).")
@_options(_DEVICE_OPTION)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_FIGURES_DIR,
    show_default=True,
    help="Folder for the PNGs and <suite>_samples_metrics.json.",
)
@_options(_DATA_DIR_OPTION)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Cap each evaluation set at this many images (the models still train on everything).",
)
@click.option(
    "--n-eval",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Generator samples (and uniform-noise images) behind each reported mean.",
)
@_options(_QUIET_OPTION)
def figures_samples(suite, seed, recipe, device, output_dir, data_dir, limit, n_eval, quiet) -> None:
    """Plain vs joint-confidence GAN samples and max-softmax histograms (trains missing models first)."""
    from oodbench.figures.samples import METHODS as FIGURE_METHODS
    from oodbench.figures.samples import make_sample_figures

    started = _time.perf_counter()
    out = make_sample_figures(
        output_dir,
        suite=suite,
        seed=seed,
        recipe=recipe,
        device=device,
        data_dir=data_dir,
        limit=limit,
        n_eval=n_eval,
        progress=not quiet,
    )
    m = out["metrics"]
    for name in ("plain_gan", "joint_gan", "uniform_noise"):
        confidences = ", ".join(f"{method} {m[f'msp_{method}_{name}']:.3f}" for method in FIGURE_METHODS)
        click.echo(
            f"{name}: mean max-softmax {confidences}; mean L2 distance to the nearest training "
            f"image {m[f'nn_distance_{name}']:.2f}"
        )
    for path in out["paths"]:
        click.echo(f"Wrote {path}")
    click.echo(f"Took {_time.perf_counter() - started:.1f} s")


# End of area "figures".
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Area "sweep": `oodbench sweep`, independent jobs (suite, model, seed) on local processes, Ray
# or Slurm. Options are plain strings here and are checked in the body, so that `--help` needs
# no registry (no torch import); the library (oodbench.sweep) is imported in the body.


@cli.command("sweep")
@click.option(
    "--in",
    "-i",
    "suites",
    multiple=True,
    type=_OneLineChoice(_suite_names, metavar="SUITE"),
    help="Suite(s) (see `oodbench list suites`); repeat for several. Default: mnist (embedded).",
)
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    metavar="SOURCE",
    help="Model source(s): cross_entropy, confidence, joint. Default: all three.",
)
@click.option(
    "--detector",
    "-d",
    "detectors",
    multiple=True,
    type=_DetectorChoice(_detector_choices, metavar="DETECTOR"),
    help="Detector(s) as in `oodbench run`: names, entry-point plug-ins, package.module:Class, "
    "path/to/file.py:Class, pytorch-ood:NAME, or the shorthands joint/confidence/baseline. "
    "Default: all built-in.",
)
@_options(_SEEDS_OPTION, _PARAM_OPTION)
@_recipe_option("Training recipe (default: each suite's; see `oodbench list recipes`).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the recipe's epochs.")
@click.option(
    "--beta", type=click.FloatRange(min=0), default=None, help="Override beta (confidence and joint models)."
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Override the learning rate."
)
@click.option(
    "--gan-warmup-epochs", type=click.IntRange(min=0), default=None, help="Override the GAN warm-up (joint)."
)
@_options(_LIMIT_OPTION, _EVAL_BATCH_OPTION, _CONVENTION_OPTION)
@_options(_DEVICE_OPTION, _DATA_DIR_OPTION, _CACHE_DIR_OPTION, _RESULTS_DIR_OPTION)
@click.option(
    "--executor",
    type=_OneLineChoice(("local", "ray", "slurm")),
    default="local",
    show_default=True,
    help="local: processes on this machine; ray: a Ray cluster; slurm: a Slurm job array (submitit).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="local: jobs at once (1 = one after another in this process).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Torch threads (and CPUs asked for) per job. Default: local, the CPUs here / --workers; "
    "ray and slurm, 1 (Ray packs one job per CPU).",
)
@click.option(
    "--address", default=None, help="ray: the cluster to join ('auto' or HOST:PORT); else start one."
)
@click.option("--partition", default=None, help="slurm: the partition.")
@click.option("--time", "time_limit", default=None, help="slurm: time limit per job, e.g. 90 or 2:00:00.")
@click.option("--gpus-per-job", type=click.IntRange(min=0), default=None, help="slurm: GPUs per job.")
@click.option("--dry-run", is_flag=True, help="List the jobs and whether each is done; run nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Print only failed jobs and the summary.")
@click.pass_context
def sweep_command(
    ctx: click.Context,
    suites,
    models,
    detectors,
    seeds,
    params,
    recipe,
    epochs,
    beta,
    lr,
    gan_warmup_epochs,
    limit,
    batch_size,
    convention,
    device,
    data_dir,
    cache_dir,
    results_dir,
    executor,
    workers,
    threads,
    address,
    partition,
    time_limit,
    gpus_per_job,
    dry_run,
    quiet,
) -> None:
    """Run a grid of independent jobs, one per (suite, model, seed); finished jobs are skipped.

    Each job trains its model unless cached (an interrupted one resumes from its last epoch),
    scores every detector on every OOD set, and writes its rows to <results>/rows/<job>.jsonl.
    `oodbench report --results <results>` reads them all.
    """
    from oodbench.atomic import remove_stale_temp_files
    from oodbench.store import check_writable
    from oodbench.sweep import check_executor, expand_jobs, parse_time, run_sweep, threads_per_job

    for flag, value, owner in (
        ("--address", address, "ray"),
        ("--partition", partition, "slurm"),
        ("--time", time_limit, "slurm"),
        ("--gpus-per-job", gpus_per_job, "slurm"),
    ):
        if value is not None and executor != owner:
            raise UserInputError(f"{flag} is for --executor {owner}; drop it or pass --executor {owner}.")
    if workers > 1 and executor != "local":
        raise UserInputError("--workers is for --executor local; Ray and Slurm run every job at once.")
    time_min = parse_time(time_limit) if time_limit is not None else None
    if executor == "local":
        from oodbench.devices import resolve_device

        device = str(resolve_device(device))  # "auto" decided here, where the jobs run
    elif device != "auto":
        import torch

        try:  # only the spelling: CUDA is checked on the machine that runs the job
            torch.device(device)
        except RuntimeError:
            raise UserInputError(f"Unknown device {device!r}. Use 'auto', 'cpu' or 'cuda[:N]'.") from None
    torch_threads = threads or (threads_per_job(workers) if executor == "local" else 1)
    results = _paths.results_dir(results_dir)
    if not dry_run:  # before any work: a read-only folder fails now, not after training
        check_writable(results)
        check_writable(_paths.cache_dir(cache_dir), "cache folder", "--cache-dir or OODBENCH_CACHE")
    jobs = expand_jobs(
        list(suites) or ["mnist"],
        models=models,
        detectors=detectors,
        detector_params=_parse_params(params),
        seeds=_parse_seeds(seeds) if seeds is not None else None,
        recipe=recipe,
        train_overrides={"epochs": epochs, "beta": beta, "lr": lr, "gan_warmup_epochs": gan_warmup_epochs},
        limit=limit,
        legacy=convention == "legacy",
        batch_size=batch_size,
        device=device,
        torch_threads=torch_threads,
        results_dir=results,
        cache_dir=cache_dir,
        data_dir=data_dir,
    )
    if dry_run:
        states = [job.state() for job in jobs]
        for job, state in zip(jobs, states, strict=True):
            why = f" (redo: shard {state})" if state.startswith("damaged") else ""
            click.echo(f"{'done' if state == 'done' else 'to run':<7} {job.describe()}{why}")
        n_done = states.count("done")
        click.echo(f"{len(jobs)} job(s): {n_done} done, {len(jobs) - n_done} to run. Results: {results}")
        return
    check_executor(executor)
    for folder in (results, _paths.cache_dir(cache_dir)):
        remove_stale_temp_files(folder)  # left by killed writes
    where = f"{workers} worker(s), " if executor == "local" else ""
    if not quiet:
        click.echo(f"{len(jobs)} job(s) on {executor} ({where}{torch_threads} torch thread(s) per job)")

    def show(outcome) -> None:
        if quiet and outcome.status != "failed":
            return
        detail = f"{outcome.n_rows} rows, {outcome.seconds:.1f} s" if outcome.status == "done" else ""
        click.echo(f"{outcome.status:<7} {outcome.job_id}  {outcome.error or detail}".rstrip())

    started = _time.perf_counter()
    outcomes = run_sweep(
        jobs,
        executor=executor,
        workers=workers,
        address=address,
        partition=partition,
        time_min=time_min,
        gpus_per_job=gpus_per_job,
        on_result=show,
    )
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    click.echo(
        f"{counts['done']} done, {counts['skipped']} skipped (already done), {counts['failed']} failed "
        f"in {_time.perf_counter() - started:.1f} s. Rows: {results / 'rows'}; "
        f"tables: oodbench report --results {results}"
    )
    from oodbench.report.html import try_write_report

    page = try_write_report(results, convention=convention)
    if page is not None:
        click.echo(f"report: {page}")
    if counts["failed"]:
        click.echo("Re-run the same command to retry the failed jobs (training resumes).", err=True)
        ctx.exit(1)


# End of area "sweep".
# ---------------------------------------------------------------------------------------------


cli.add_command(_export_cli.export_group)  # `oodbench export mlflow|wandb` (oodbench.export.cli)


def main() -> None:
    cli(prog_name="oodbench")


if __name__ == "__main__":
    main()
