"""Option blocks and option parsing shared by several commands, each written once.

Only click and oodbench.names are imported at module level: `oodbench --help`, `list` and usage
errors must answer without torch (tests/test_cli_startup.py). Registries are read when a value
is checked, not when the CLI is imported.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable
from pathlib import Path

import click

from oodbench import paths
from oodbench.errors import UserInputError
from oodbench.names import ROWS_FILENAME, SHORTHAND_DETECTORS

MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit; larger ones overflow
PARAM_MAX_CHARS = 10_000  # one --param value
PARAM_MAX_DEPTH = 32  # nesting of a --param JSON value ([[...]] / {...})


def suite_names() -> list[str]:
    import oodbench.data  # noqa: F401  (registers the suites)
    from oodbench.data.spec import SUITES

    return SUITES.names()


def detector_names() -> list[str]:
    from oodbench.detectors import DETECTORS

    return DETECTORS.names()


def recipe_names() -> list[str]:
    from oodbench.training.recipes import RECIPES

    return RECIPES.names()


def method_names() -> list[str]:
    from oodbench.training.recipes import METHODS

    return METHODS.names()


# Option blocks shared by several commands are defined once here, so they cannot drift apart.

DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data sets folder (else $OODBENCH_DATA, else ~/.cache/oodbench/data).",
)
DOWNLOAD_OPTION = click.option("--download", is_flag=True, help="Download missing data sets (checksummed).")
CACHE_DIR_OPTION = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Checkpoints and score caches (else $OODBENCH_CACHE, else ~/.cache/oodbench).",
)
RESULTS_DIR_OPTION = click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where rows.jsonl, scores/, tables/ and plots/ go (else $OODBENCH_RESULTS, else ./runs).",
)
DEVICE_OPTION = click.option(
    "--device",
    default="auto",
    show_default=True,
    envvar="OODBENCH_DEVICE",
    help="auto, cpu or cuda[:N] ($OODBENCH_DEVICE).",
)
QUIET_OPTION = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
SUITE_FILE_OPTION = click.option(
    "--suite",
    "suite_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.toml|NAME",
    help="A suite file instead of --in: your own (see `oodbench suite init`) or a packaged one by "
    "name (openood-cifar10, ...; `oodbench list suites`); needs --checkpoint.",
)
WORKERS_OPTION = click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Processes decoding a suite file's images (default: min(CPUs, 8); 0 = in this process).",
)
STRICT_OPTION = click.option(
    "--strict",
    is_flag=True,
    help="Check every image of a suite file before scoring and refuse unreadable ones "
    "(default: skip them, count them in the rows' n_skipped and name them in one warning).",
)


def suite_option(help_text: str):
    return click.option(
        "--in",
        "-i",
        "suite",
        type=OneLineChoice(suite_names, metavar="SUITE"),
        default="mnist",
        show_default=True,
        help=help_text + " See `oodbench list suites`.",
    )


def recipe_option(help_text: str = "Training recipe (default: the suite's; see `oodbench list recipes`)."):
    return click.option(
        "--recipe", "-r", type=OneLineChoice(recipe_names, metavar="RECIPE"), default=None, help=help_text
    )


def detectors_option(help_text: str):
    """-d/--detector (repeatable): names, plug-ins, specs and the paper's shorthands."""
    return click.option(
        "--detector",
        "-d",
        "detectors",
        multiple=True,
        type=DetectorChoice(detector_choices, metavar="DETECTOR"),
        help=help_text,
    )


def epochs_option(help_text: str = "Override the recipe's epochs."):
    return click.option("--epochs", type=click.IntRange(min=1), default=None, help=help_text)


def train_limit_option(help_text: str):
    return click.option("--train-limit", type=click.IntRange(min=1), default=None, help=help_text)


def beta_option(help_text: str):
    return click.option("--beta", type=click.FloatRange(min=0), default=None, help=help_text)


def lr_option(help_text: str):
    return click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help=help_text)


def gan_warmup_option(help_text: str):
    return click.option("--gan-warmup-epochs", type=click.IntRange(min=0), default=None, help=help_text)


def apply_options(*decorators: Callable) -> Callable:
    """Apply several click option decorators in the order given (top to bottom)."""

    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


class OneLineChoice(click.Choice):
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


CONVENTION_OPTION = click.option(
    "--convention",
    type=OneLineChoice(("exact", "legacy", "openood")),
    default="exact",
    show_default=True,
    help="Metrics: exact and tie-aware, legacy (the papers' 200,000-step threshold grid), or "
    "openood (exact, with OpenOOD v1.5's trapezoidal AUPR).",
)


SEEDS_OPTION = click.option(
    "--seeds",
    default=None,
    help="Training seeds, e.g. 0,1,2 (mean ± std in tables). Default: the recipe's seed "
    "(0 for embedded, 1 for the lee2018 recipes, as in the paper's code).",
)
PARAM_OPTION = click.option(
    "--param",
    "params",
    multiple=True,
    metavar="DETECTOR.NAME=VALUE",
    help="Fix a detector hyperparameter, e.g. odin.temperature=1000 or pytorch-ood:ViM.d=64 (DETECTOR "
    "as given to -d, split at the last dot; else defaults/tuning).",
)
LIMIT_OPTION = click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Evaluate at most N images of the ID test set and of each OOD test set (--out sets too). "
    "Detectors are still fitted and tuned on their full splits (see --fit-limit); training is capped "
    "by --train-limit.",
)
EVAL_BATCH_OPTION = click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)


def check_writable(path: Path, option: str, *, folder: bool = False) -> None:
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


def rows_file_of(results: Path | None) -> Path:
    """--results as given (a folder means its rows.jsonl), else the default results folder's."""
    if results is None:
        return paths.results_dir() / ROWS_FILENAME
    return results / ROWS_FILENAME if results.is_dir() else results


RESULTS_HELP = (
    f"Result rows (JSONL) written by `oodbench run`, or their folder. Default: "
    f"$OODBENCH_RESULTS/{ROWS_FILENAME}, else runs/{ROWS_FILENAME}."
)


def parse_seeds(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",")]
    try:
        seeds = [int(part) for part in parts] if len(text) <= 10_000 else []
    except ValueError:
        seeds = []
    if not seeds or any(not 0 <= seed <= MAX_SEED for seed in seeds):
        raise UserInputError(
            f"--seeds takes integers from 0 to {MAX_SEED} (2^32 - 1, what the random generators accept) "
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
    if len(raw) > PARAM_MAX_CHARS or _json_depth(raw) > PARAM_MAX_DEPTH:
        raise UserInputError(
            f"--param {_clip(item)!r}: values are limited to {PARAM_MAX_CHARS:,} characters and "
            f"{PARAM_MAX_DEPTH} levels of nesting."
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


def parse_params(items: tuple[str, ...]) -> dict[str, dict]:
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


class DetectorChoice(OneLineChoice):
    """-d: a registered name, an entry point, a shorthand, or a spec containing ':' (checked at run)."""

    def convert(self, value, param, ctx):
        from oodbench.detectors.plugins import SPEC_HELP, is_spec

        if is_spec(value):
            return value
        try:
            return super().convert(value, param, ctx)
        except UserInputError as error:
            raise UserInputError(f"{error} Or give {SPEC_HELP}.") from None


def detector_choices() -> list[str]:
    from oodbench.detectors.plugins import entry_points

    return [*dict.fromkeys([*detector_names(), *entry_points()]), *SHORTHAND_DETECTORS]


def estimate_echo(command: str, extra: str = "") -> Callable:
    """A callback printing a long training's estimate and the smoke-test command (to stderr)."""

    def echo(estimate) -> None:
        from oodbench.training.estimate import SMOKE_OPTIONS

        if estimate.long:
            smoke = " ".join(part for part in (command, SMOKE_OPTIONS, extra) if part)
            click.echo(f"{estimate.describe()}; for a quick check: {smoke}", err=True)

    return echo


RESULTS_HELP = (
    f"Result rows (JSONL) written by `oodbench run`, or their folder. Default: "
    f"$OODBENCH_RESULTS/{ROWS_FILENAME}, else runs/{ROWS_FILENAME}."
)
