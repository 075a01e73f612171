"""`RunOptions`: every option of one benchmark run, in one frozen object.

The CLI builds it (its option names are the field names), `api.run_benchmark` checks and
resolves it, `runner.run_suite` and the sweep jobs read it. Adding an option means adding a
field here, its CLI option block (oodbench/cli/options.py) and the code that uses it.
Plain values only (no torch import here): the CLI stays light.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oodbench.errors import UserInputError

PLOT_CHOICES = ("auto", "all", "none")


@dataclass(frozen=True)
class RunOptions:
    """What to run (suite, models, detectors, seeds), the given model file and how to read it,
    how to train and evaluate, and where files go. Defaults are those of `oodbench run`."""

    suite: str = "mnist"
    suite_file: str | Path | None = None  # a user's suite file (TOML) instead of `suite`
    # What is evaluated.
    models: Sequence[str] = ()  # trained model sources; () = every one (or the shorthands')
    detectors: Sequence[Any] = ()  # names, specs or Detector objects; () = every built-in one
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # {detector: {name: value}}
    seeds: Sequence[int] | None = None  # None = the recipe's seed
    extra_out: Sequence[str] = ()  # "[NAME=]folder:PATH" / "[NAME=]npz:PATH"
    # A user's model instead of the suite's trained ones (see oodbench.models.loading); several
    # files are replicates of one model (e.g. OpenOOD's 3 checkpoints), evaluated one by one.
    checkpoint: str | Path | Sequence[str | Path] | None = None
    arch: str | None = None
    normalize: str | None = None
    resize: int | None = None
    features: str | None = None
    logits: str | int | None = None
    label: str | None = None
    channels: int | None = None  # the channels the model takes (1 or 3); None = read from the model
    # Training.
    recipe: str | None = None  # None = the suite's
    train_overrides: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"epochs": 1}
    # Evaluation.
    limit: int | None = None  # images per evaluated test set
    fit_limit: int | None = None  # images per fit / tuning split
    batch_size: int = 256
    legacy: bool = False  # the papers' threshold-grid metric convention
    openood: bool = False  # OpenOOD v1.5's metrics (exact, trapezoidal AUPR); not with legacy
    device: Any = "auto"  # "auto", "cpu", "cuda[:N]" or a torch.device
    # Suite files' streamed sets: decoding processes (None = min(CPUs, 8), 0 = in process), and
    # strict = check every file before scoring and refuse unreadable ones (else skip and count).
    workers: int | None = None
    strict: bool = False
    # Suite files' image lists: accept lists that differ from their pinned sha256 (recorded per row).
    accept_changed_lists: bool = False
    # OpenOOD's full-spectrum mode: the suite file's [[covariate_shift]] sets join the ID side.
    full_spectrum: bool = False
    # Files.
    data_dir: str | Path | None = None
    download: bool = False
    cache_dir: str | Path | None = None
    results_dir: str | Path | None = None
    # Output.
    plots: str = "auto"  # one of PLOT_CHOICES
    progress: bool = True

    @property
    def convention(self) -> str:
        """The metric convention's name: "legacy", "openood" or "exact"."""
        if self.legacy and self.openood:
            raise UserInputError("legacy and openood metrics exclude each other; choose one.")
        return "legacy" if self.legacy else "openood" if self.openood else "exact"

    @property
    def checkpoints(self) -> tuple[Path, ...]:
        """The given model files as paths: () when none, else one or several (replicates)."""
        given = self.checkpoint
        if given is None:
            return ()
        if isinstance(given, (str, os.PathLike)):
            return (Path(given),)
        return tuple(Path(path) for path in given)

    @property
    def model_file_options(self) -> dict[str, Any]:
        """How to read a model file: normalize, resize, features, logits and channels."""
        return dict(
            normalize=self.normalize,
            resize=self.resize,
            features=self.features,
            logits=self.logits,
            channels=self.channels,
        )

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with `changes` (the object itself is frozen)."""
        return dataclasses.replace(self, **changes)


def run_options(options: RunOptions | None, **fields: Any) -> RunOptions:
    """`options`, or a `RunOptions` of the keyword `fields` (the public functions take either)."""
    if options is None:
        return RunOptions(**fields)
    if fields:
        raise TypeError(f"give either options or keyword options, not both ({', '.join(sorted(fields))})")
    return options


def check_replicates(options: RunOptions) -> None:
    """Several --checkpoint files are replicates of one model: one label for all (else each file's
    stem would make a model of its own), no --seeds, and no file twice."""
    paths = options.checkpoints
    if len(paths) < 2:
        return
    if not options.label:
        raise UserInputError(
            f"{len(paths)} --checkpoint files are evaluated as replicates of one model; name it with --label."
        )
    if options.seeds is not None:
        raise UserInputError(
            "Several --checkpoint files are the replicates; drop --seeds (it trains one model per seed)."
        )
    seen: dict[Path, Path] = {}
    for path in paths:
        resolved = path.expanduser().resolve()
        if resolved in seen:
            raise UserInputError(f"--checkpoint {path} is given twice; each replicate is a different file.")
        seen[resolved] = path


def check_download(options: RunOptions, *, downloadable: bool = False) -> None:
    """--download fetches the built-in suites' data sets and, with --suite, the shipped OpenOOD
    suites' archives (`downloadable`: the caller looked the suite up in
    oodbench.data.openood_download); any other suite file names the user's own files, which
    oodbench cannot download."""
    if options.download and options.suite_file is not None and not downloadable:
        raise UserInputError(
            f"--download fetches the built-in suites' data and the openood-* suites' archives; "
            f"{options.suite_file} reads your own files, so drop --download."
        )
