"""`ReportOptions` and `make_report`: what `oodbench report` makes from a rows file, in one call.

One of: the comparison table (default), the published comparison (`against="published"`),
OpenOOD's leaderboard beside our group means (`against="openood"`), the OOD-group means
(`groups`; before the leaderboard comparison when both are asked),
a paired comparison (`compare=(A, B)`), the whole HTML page (`fmt="html"`), a baseline CSV
(`write_baseline`) or the CI regression check (`baseline`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from oodbench.errors import UserInputError

MAX_RESAMPLES = 100_000  # more only narrows the Monte Carlo error further
BOOTSTRAP_BYTES_PER_RESAMPLE = 48  # = 6 float64 metric values per resample and detector (metrics.py)


@dataclass(frozen=True)
class ReportOptions:
    """Every option of `oodbench report` but where the rows are (defaults are the command's)."""

    metric: str = "auroc"
    fmt: str = "markdown"
    output: Path | None = None  # the table (or page) goes there instead of being returned
    columns: str = "model+detector"
    convention: str | None = None
    ci: bool = False
    against: str | None = None
    comparable_only: bool = False
    as_training: str | None = None
    labels: tuple[str, ...] = ()
    compare: tuple[str, str] | None = None
    resamples: int = 1000
    baseline: Path | None = None
    tolerance: float = 0.01
    write_baseline: Path | None = None
    allow_missing: bool = False
    groups: bool = False  # per OOD group (near / far) means of the suites that define groups
    replicates: bool = False  # checkpoints of one --label pooled as seeds (oodbench.report.replicates)

    def check(self) -> None:
        """Refuse options that do not go together, before anything is read."""
        check_resamples(self.resamples)
        if not self.tolerance >= 0 or self.tolerance == float("inf"):
            raise UserInputError(f"--tolerance must be a number >= 0. Got {self.tolerance!r} instead.")
        given = (
            ("--baseline", self.baseline),
            ("--write-baseline", self.write_baseline),
            ("--against", self.against),
            ("--compare", self.compare),
        )
        modes = [name for name, on in given if on]
        if len(modes) > 1:
            raise UserInputError(f"Use one of {', '.join(modes)} at a time.")
        if self.ci and modes:
            raise UserInputError("--ci works with the comparison table only, not with " + modes[0] + ".")
        if (self.comparable_only or self.as_training) and self.against != "published":
            flag = "--comparable-only" if self.comparable_only else "--as"
            raise UserInputError(f"{flag} works with --against published only.")
        if self.groups and (set(modes) - {"--against"} or self.against == "published" or self.ci):
            raise UserInputError("--groups works with the plain table or --against openood only.")
        if self.replicates and (self.fmt == "html" or set(modes) - {"--compare"}):
            raise UserInputError("--replicates works with the text table and --compare only.")
        if self.groups and self.fmt == "html":
            raise UserInputError("--groups is for the text tables (markdown, csv, latex).")
        if self.allow_missing and self.baseline is None:
            raise UserInputError("--allow-missing works with --baseline only.")
        if self.labels and (self.baseline is not None or self.write_baseline is not None):
            raise UserInputError("--label selects rows for tables; the baseline check takes every row.")


@dataclass
class ReportOutcome:
    """What `make_report` made: `text` to print (None when written), messages, and whether a
    baseline check failed."""

    text: str | None = None
    messages: list[str] = field(default_factory=list)  # for stdout
    notes: list[str] = field(default_factory=list)  # for stderr ("wrote ...")
    failed: bool = False


def check_resamples(resamples: int) -> None:
    """Refuse a bootstrap that would not fit in memory (or would run for hours)."""
    if resamples > MAX_RESAMPLES:
        gib = resamples * BOOTSTRAP_BYTES_PER_RESAMPLE / 2**30
        raise UserInputError(
            f"--resamples {resamples:,} would hold at least {gib:,.1f} GiB of bootstrap values (and run for "
            f"hours); use at most {MAX_RESAMPLES:,} (default 1,000)."
        )


def make_report(rows_path: Path, options: ReportOptions) -> ReportOutcome:
    """The report of the rows at `rows_path` (scores are read beside it) that `options` ask for."""
    from oodbench import report
    from oodbench.atomic import atomic_write_text
    from oodbench.results import load_rows

    options.check()
    o = options
    frame = report.select_labels(load_rows(rows_path), o.labels)
    scores_root = rows_path.parent
    pooled: list[str] = []
    if o.replicates:
        from oodbench.report.replicates import pool_replicates

        frame, pooled = pool_replicates(frame)
        if not pooled:
            raise UserInputError(
                "--replicates found no model label with several checkpoints; evaluate each checkpoint "
                "with the same --label."
            )
    if o.write_baseline is not None:
        text = report.export_baseline(frame, convention=o.convention)
        atomic_write_text(o.write_baseline, text)
        wrote = f"wrote baseline of {len(text.splitlines()) - 1} rows to {o.write_baseline}"
        return ReportOutcome(messages=[wrote])
    if o.baseline is not None:
        check = report.compare_to_baseline(
            frame, o.baseline, o.tolerance, convention=o.convention, allow_missing=o.allow_missing
        )
        return ReportOutcome(messages=list(check.lines()), failed=check.failed)
    from oodbench.report.tuning import tuning_warnings

    # One stderr line per row group whose tuning pick is degenerate (its rows' tuning_flags).
    pooled = pooled + [f"warning: degenerate tuning pick: {line}" for line in tuning_warnings(frame)]
    if o.fmt == "html":  # the whole page (oodbench.report.html): tables, figures, comparisons
        from oodbench.report.html import REPORT_FILENAME, write_page

        if o.ci:
            raise UserInputError("--ci is for the text tables; the HTML page shows --compare intervals.")
        target = o.output if o.output is not None else scores_root / REPORT_FILENAME
        write_page(frame, scores_root=scores_root, output=target, convention=o.convention,
                   compare=o.compare, n_resamples=o.resamples)  # fmt: skip
        return ReportOutcome(notes=[*pooled, f"wrote {target}"])
    if o.groups or o.against == "openood":
        from oodbench.report import openood

        chosen = report.prepare_rows(frame, convention=o.convention)
        parts, notes = [], []
        if o.groups:
            groups, notes = openood.group_table(chosen, metric=o.metric)
            parts.append(openood.render_groups(groups, o.fmt, metric=o.metric))
        if o.against == "openood":
            parts.append(openood.render_openood(openood.against_openood(chosen), o.fmt))
        text = "\n".join(parts)
        if o.output is None:
            return ReportOutcome(text=text, notes=[*pooled, *notes])
        atomic_write_text(o.output, text)
        return ReportOutcome(notes=[*pooled, *notes, f"wrote {o.output}"])
    if o.against == "published":
        comparison = report.published_comparison(
            frame,
            report.load_published(),
            metric=o.metric,
            convention=o.convention,
            as_training=o.as_training,
            comparable_only=o.comparable_only,
        )
        text = report.render_published(comparison, o.fmt, metric=o.metric)
    elif o.compare is not None:
        paired = report.compare(
            frame, *o.compare, scores_root=scores_root, convention=o.convention, n_resamples=o.resamples
        )
        text = report.render_comparison(paired, o.fmt)
    else:
        table = report.comparison_table(
            frame,
            metric=o.metric,
            columns=o.columns,
            convention=o.convention,
            ci=o.ci,
            scores_root=scores_root,
            n_resamples=o.resamples,
        )
        text = report.render_table(table, o.fmt)
    if o.output is None:
        return ReportOutcome(text=text, notes=pooled)
    atomic_write_text(o.output, text)
    return ReportOutcome(notes=[*pooled, f"wrote {o.output}"])
