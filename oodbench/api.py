"""The public Python API: evaluate any model, load models and suites, run the benchmark.

    import oodbench
    df = oodbench.evaluate(model, suite="mnist", detectors=["msp", "odin", "mahalanobis"])
    model = oodbench.load_model("resnet18.safetensors", arch="torchvision:resnet18")
    data = oodbench.load_suite("mnist")

`evaluate` returns a pandas DataFrame with one row per (detector, OOD set) and the same columns
as `rows.jsonl`; it writes rows and score files only when `results_dir` is given, and caches
scores only when `cache_dir` is given. `run_benchmark` is what `oodbench run` does (train or
reuse the suite's models, evaluate, write tables and plots); the CLI only parses and prints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodbench.errors import UserInputError

# Loading any checkpoint format (oodbench, TorchScript, torch.export, state_dict / .safetensors
# with `arch`), wrapped with its preprocessing: the public name of models.loading.load_model.
from oodbench.models.loading import LoadedModel, load_model
from oodbench.names import ROWS_FILENAME, SHORTHAND_DETECTORS
from oodbench.options import PLOT_CHOICES, RunOptions, check_download, check_replicates, run_options

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from torch import nn

    from oodbench.data.spec import SuiteData
    from oodbench.detectors.base import Detector
    from oodbench.report.make import ReportOptions, ReportOutcome
    from oodbench.results import ResultRow
    from oodbench.training.estimate import TrainingEstimate

log = logging.getLogger(__name__)

# The metrics `run_benchmark` writes a table for (plus classification accuracy).
RUN_TABLE_METRICS = ("tnr_at_tpr95", "auroc", "detection_accuracy", "aupr_in", "aupr_out")
PRINTED_METRICS = ("tnr_at_tpr95", "auroc")


def load_suite(
    name: str = "mnist",
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    limit: int | None = None,
    fit_limit: int | None = None,
    workers: int | None = None,
    strict: bool = False,
    accept_changed_lists: bool = False,
    full_spectrum: bool = False,
) -> SuiteData:
    """Every split of a suite (train, validation, ID test, OOD test sets); see `oodbench list suites`.

    `limit` caps the test sets (ID and OOD), `fit_limit` the training and validation splits.
    A name ending in .toml, or a packaged suite file's name (openood-cifar10, ...), is a suite
    file (oodbench.data.suite_file): every set, fit splits included, streams from its files
    (`.x` is a StreamedSet: `batches`, `labelled_batches`, `in_memory`; `workers` decoding
    processes; `strict` refuses unreadable images); `{data_root}` in its paths is `data_dir`
    (else $OODBENCH_DATA, else the default data folder). `accept_changed_lists`: evaluate image
    lists that differ from their pinned sha256 (recorded in rows). `full_spectrum`: also load
    its covariate-shifted sets (`SuiteData.covariate_shift`).
    """
    from oodbench.data import load_suite as _load
    from oodbench.data.streamed import is_suite_file, load_suite_file_data

    if is_suite_file(name):
        return load_suite_file_data(
            name, data_dir=data_dir, limit=limit, fit_limit=fit_limit, workers=workers, strict=strict,
            accept_changed_lists=accept_changed_lists, full_spectrum=full_spectrum,
        )  # fmt: skip
    if full_spectrum:
        raise UserInputError(
            f"full_spectrum needs a suite file with [[covariate_shift]] sets (e.g. openood-imagenet200); "
            f"{name} has none."
        )

    return _load(name, data_dir=data_dir, download=download, limit=limit, fit_limit=fit_limit)


def _model_under_test(
    model: Any, *, arch, preprocess, features, label, in_shape, device, logits=None, channels=None
):
    """nn.Module, LoadedModel or a file path -> (ModelUnderTest, LoadedModel)."""
    from torch import nn

    from oodbench.models.evalmodel import parse_logits_key
    from oodbench.models.loading import wrap_module
    from oodbench.runner import ModelUnderTest

    normalize, resize = _preprocess_options(preprocess)
    if isinstance(model, LoadedModel):
        loaded = model
        if logits is not None:
            loaded.module.logits_key = parse_logits_key(logits)
    elif isinstance(model, (str, Path)):
        loaded = load_model(
            model,
            arch,
            in_shape=in_shape,
            normalize=normalize,
            resize=resize,
            features=features,
            label=label,
            device=device,
            logits=logits,
            channels=channels,
        )
    elif isinstance(model, nn.Module):
        loaded = wrap_module(
            model, normalize=normalize, resize=resize, features=features, label=label, logits=logits
        )
    else:
        raise UserInputError(
            "evaluate() takes a torch nn.Module, a LoadedModel or a checkpoint path; "
            f"got {type(model).__name__}."
        )
    return ModelUnderTest.from_loaded(loaded), loaded


def _preprocess_options(preprocess: Any) -> tuple[Any, int | None]:
    """preprocess: None, a --normalize text (preset or MEAN/STD), or {"normalize": ..., "resize": N}."""
    if preprocess is None:
        return None, None
    if isinstance(preprocess, str):
        return preprocess, None
    if isinstance(preprocess, Mapping):
        unknown = sorted(set(preprocess) - {"normalize", "resize"})
        if unknown:
            raise UserInputError(f"preprocess takes the keys normalize and resize; got {', '.join(unknown)}.")
        return preprocess.get("normalize"), preprocess.get("resize")
    raise UserInputError(
        "preprocess must be None, a normalisation preset such as 'imagenet', or "
        f"{{'normalize': ..., 'resize': N}}; got {type(preprocess).__name__}."
    )


def detector_requests(
    detectors: Sequence[str | Detector] | None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
) -> list:
    """Names or specs (with `params[name]`) or Detector objects -> what the runner takes; checked now.

    Built-in names become `DetectorRequest`s (their score cache key is name + parameters). Plug-ins
    (registered, entry points, `module:Class`, `file.py:Class`, `pytorch-ood:NAME`) are built here
    and passed as objects, so their cache key names their class's module (a file plug-in's module
    name holds a hash of its content) and pytorch-ood's version. Default: every built-in detector.
    `grids`: a suite file's [tuning], checked now; a parameter it searches need not be given.
    """
    from oodbench.detectors import DETECTORS, builtin_detectors, create_detector
    from oodbench.detectors.base import Detector
    from oodbench.detectors.suite_grids import check_grids, with_suite_grid
    from oodbench.runner import DetectorRequest

    grids = grids or {}
    check_grids(grids)

    params = dict(params or {})
    chosen = list(detectors) if detectors else builtin_detectors()
    names = [d for d in chosen if isinstance(d, str)]
    unused = sorted(set(params) - set(names))
    if unused:
        raise UserInputError(f"--param names detector(s) not being run: {', '.join(unused)}.")
    requests: list = []
    for item in chosen:
        if isinstance(item, Detector):
            with_suite_grid(item, grids).validate()
            requests.append(item)
        elif isinstance(item, str):
            given = dict(params.get(item, {}))
            detector = create_detector(item, **given)
            with_suite_grid(detector, grids, given=given).validate()  # fail before any work
            builtin = item in DETECTORS and DETECTORS.get(item).source == "built-in"
            requests.append(DetectorRequest(item, given) if builtin else detector)
        else:
            raise UserInputError(f"A detector is a name or a Detector object; got {type(item).__name__}.")
    return requests


def evaluate(
    model: nn.Module | LoadedModel | str | Path,
    suite: str = "mnist",
    detectors: Sequence[str | Detector] | None = None,
    *,
    preprocess: str | Mapping[str, Any] | None = None,
    features: str | None = None,
    logits: str | int | None = None,
    label: str | None = None,
    results_dir: str | Path | None = None,
    arch: str | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    limit: int | None = None,
    fit_limit: int | None = None,
    extra_out: Sequence[str] = (),
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    legacy: bool = False,
    workers: int | None = None,
    strict: bool = False,
    channels: int | None = None,
    convention: str | None = None,
    full_spectrum: bool = False,
    accept_changed_lists: bool = False,
) -> pd.DataFrame:
    """Score `detectors` for `model` on `suite`: one DataFrame row per (detector, OOD set).

    model: an `nn.Module` taking [0, 1] images of the suite's shape (or, with `preprocess`, the
        shape and normalisation it needs), a `LoadedModel`, or a checkpoint path (with `arch`
        for plain weights).
    preprocess: None, a normalisation preset ("imagenet", "cifar10", "svhn") or "MEAN/STD", or a
        dict {"normalize": ..., "resize": N}; applied inside the model, so detectors stay in
        pixel space.
    features: the layer feature-based detectors use (default: see oodbench.models.loading).
    logits: for a model returning a tuple, dict or dataclass, the name or index of its logits
        (default: the one 2-D float tensor of shape (N, classes); see oodbench.models.loading).
    detectors: names (see `oodbench list detectors`), specs ("package.module:Class",
        "path/to/file.py:Class", "pytorch-ood:NAME") or Detector objects; default: all built-in.
    params: {detector name or spec, as given in `detectors`: {hyperparameter: value}}.
    limit: evaluate at most this many images of the ID test set and of each OOD test set
        (`extra_out` included); fitting and tuning still use their full splits.
    fit_limit: fit and tune detectors on at most this many training images (a stratified subset)
        and validation images per set (fixed seed 0); recorded in each row's `fit_limit`.
    results_dir: if given, rows are appended to results_dir/rows.jsonl and scores saved there.
    cache_dir: if given, scores are cached there (keyed by the weights' hash) and reused.
    suite: a built-in suite's name, or a suite file (a path ending in .toml, or a packaged one's
        name such as "openood-cifar10", its data under `data_dir`; see `load_suite`);
        `workers` and `strict` are how its images are read.
    channels: the channels the model takes (1 or 3; default: its first conv's, else a trial
        pass); the suite's images are converted to them inside the model (grey -> RGB repeats the
        channel, RGB -> grey is ITU-R 601-2 luma), recorded in each row's `input_channels`.
    convention: the metric convention, "exact" (default), "legacy" (the papers' threshold grid;
        `legacy=True` says the same) or "openood" (OpenOOD v1.5's; oodbench.metrics).
    full_spectrum: OpenOOD's fsood: the suite file's covariate-shifted sets join the ID side
        (rows' in_dataset "<suite>+csid"; `csid_accuracy` per set).
    accept_changed_lists: evaluate image lists that differ from their pinned sha256 (recorded).
    """
    from oodbench import paths
    from oodbench.data import load_custom_outs
    from oodbench.data.streamed import is_suite_file, suite_file_normalize
    from oodbench.devices import resolve_device
    from oodbench.metrics import resolve_convention
    from oodbench.models.loading import check_against_suite
    from oodbench.results import ROWS_FILENAME, append_rows, check_rows_appendable, rows_to_frame
    from oodbench.runner import evaluate as run_evaluate
    from oodbench.runner.evaluation import process_group

    convention = resolve_convention(convention, legacy=legacy)  # a contradiction fails before any work
    torch_device = resolve_device(device)
    if is_suite_file(suite) and preprocess is None:  # the suite file's normalisation
        preprocess = suite_file_normalize(suite)
    data = load_suite(
        suite, data_dir=data_dir, limit=limit, fit_limit=fit_limit, workers=workers, strict=strict,
        accept_changed_lists=accept_changed_lists, full_spectrum=full_spectrum,
    )  # fmt: skip
    data.test_out.update(
        load_custom_outs(
            extra_out,
            shape=data.spec.image_shape,
            taken=data.test_out,
            limit=limit,
            workers=workers,
            strict=strict,
        )
    )
    shape = tuple(data.spec.image_shape)
    model_ut, loaded = _model_under_test(
        model,
        arch=arch,
        preprocess=preprocess,
        features=features,
        label=label,
        in_shape=shape,
        device=torch_device,
        logits=logits,
        channels=channels,
    )
    loaded.module.to(torch_device)
    check_against_suite(
        loaded, in_shape=shape, num_classes=data.spec.num_classes, device=torch_device, channels=channels
    )
    requests = detector_requests(detectors, params)
    results = None if results_dir is None else paths.results_dir(results_dir)
    if results is not None:
        check_rows_appendable(results / ROWS_FILENAME)
    rows = run_evaluate(
        model_ut,
        requests,
        data,
        seed=seed,
        device=torch_device,
        results_dir=results,
        cache_dir=None if cache_dir is None else Path(cache_dir),
        use_cache=cache_dir is not None,
        batch_size=batch_size,
        legacy=legacy,
        convention=convention,
        eval_limit=limit,
        fit_limit=fit_limit,
    )
    if results is not None and process_group()[0] == 0:  # under torchrun, rank 0 writes
        append_rows(results / ROWS_FILENAME, rows)
    return rows_to_frame(rows)


def default_seeds(suite: str, recipe: str | None = None) -> list[int]:
    """The recipe's own seed (0 for embedded, 1 for the lee2018 recipes, as in the paper's code)."""
    from oodbench.data.spec import SUITES
    from oodbench.training.recipes import RECIPES

    recipe_name = recipe or SUITES.get(suite).recipe
    return [RECIPES.get(recipe_name).seed] if recipe_name in RECIPES else [0]


@dataclass
class BenchmarkRun:
    """What `run_benchmark` produced: rows, rendered tables and where files went."""

    rows: list[ResultRow]
    tables: dict[str, str]  # metric -> Markdown table (also written to results_dir/tables/)
    accuracy_summary: str
    rows_file: Path
    tables_dir: Path
    plots: list[Path] = field(default_factory=list)
    report: Path | None = None  # results_dir/report.html (None when it could not be made)

    @property
    def printed_tables(self) -> list[str]:
        return [self.tables[m] for m in PRINTED_METRICS if m in self.tables]


def run_benchmark(
    suite: str | None = None,
    *,
    options: RunOptions | None = None,
    on_training_estimate: Callable[[TrainingEstimate], None] | None = None,
    **fields: Any,
) -> BenchmarkRun:
    """`oodbench run`: train (or reuse) the suite's models, or take `checkpoint`, evaluate every
    detector on every OOD set, append rows, write Markdown tables and plots.

    Takes a `RunOptions` or its fields as keywords (oodbench.options: models, detectors, params,
    seeds, checkpoint, arch, normalize, resize, features, logits, label, extra_out, recipe,
    train_overrides, limit, fit_limit, device, batch_size, data_dir, download, cache_dir,
    results_dir, legacy, plots, progress, suite_file, workers, strict, channels).
    `checkpoint`: one model file, or several: replicates of one model (`label` required), each
    evaluated as if alone. `channels`: the channels the model takes (1 or 3; default: read from
    it); the suite's images are converted to them inside the model (oodbench.models.loading).
    `suite_file`: a user's suite file (TOML) evaluated instead of `suite`, with `checkpoint`; its
    sets stream from their files (`workers` decoding processes; `strict` refuses unreadable images).
    `detectors` may hold the paper's shorthands ("joint" = the joint model scored by msp).
    `plots`: "auto" (the msp rows when msp ran, else all), "all" or "none".
    `train_overrides`: e.g. {"epochs": 1, "train_limit": 1000} (a smoke run; own checkpoints).
    `limit` caps the evaluated test sets; `fit_limit` the splits detectors are fitted and tuned on.
    `on_training_estimate(estimate)` is called before each model is trained (not when a cached
    one is reused) with its estimated duration (oodbench.training.estimate); without it, an
    estimate over 30 minutes is logged as a warning.
    """
    from oodbench.runner import run_suite

    if suite is not None:
        fields["suite"] = suite
    options = run_options(options, **fields)
    if suite is not None and options.suite_file is not None:
        raise UserInputError(f"suite {suite!r} and suite_file name two suites; give one of them.")
    sources, requests, seeds, options = prepare_run(options)
    rows = run_suite(
        options.suite,
        models=sources,
        detectors=requests,
        seeds=seeds,
        options=options,
        rows_file=Path(options.results_dir) / ROWS_FILENAME,
        on_training_estimate=on_training_estimate,
    )
    return finish_run(rows, options)


def prepare_run(options: RunOptions) -> tuple[list[str], list, list[int], RunOptions]:
    """Check `options` and the folders before any work: (model sources, detector requests, seeds,
    the options with the device and the results folder resolved)."""
    from oodbench import paths
    from oodbench.atomic import remove_stale_temp_files
    from oodbench.devices import resolve_device
    from oodbench.results import check_rows_appendable
    from oodbench.runner import expand_shorthands
    from oodbench.store import check_writable

    if options.plots not in PLOT_CHOICES:
        raise UserInputError(f"plots must be auto, all or none; got {options.plots!r}.")
    detectors, models = options.detectors, options.models
    if options.download and options.suite_file is not None:
        from oodbench.data.openood_download import downloadable_suite_of

        check_download(options, downloadable=downloadable_suite_of(options.suite_file) is not None)
    check_replicates(options)
    if options.checkpoints and (models or any(d in SHORTHAND_DETECTORS for d in detectors)):
        raise UserInputError(
            "--checkpoint evaluates one given model; drop --model and the shorthand detectors."
        )
    if options.suite_file is not None and not options.checkpoints:
        raise UserInputError("--suite evaluates a given model; add --checkpoint (and --arch for weights).")
    if options.checkpoints and options.seeds is not None:
        # Even one seed: it would be recorded in the rows as if it had made the given weights.
        raise UserInputError(
            "--seeds trains one model per seed, but --checkpoint is one fixed model; drop --seeds."
        )
    describes_checkpoint = [options.arch, options.normalize, options.resize, options.features, options.label]
    describes_checkpoint.append(options.channels)
    if not options.checkpoints and (any(describes_checkpoint) or options.logits is not None):
        raise UserInputError(
            "--arch, --normalize, --resize, --features, --logits-key, --channels and --label describe a "
            "--checkpoint; add one."
        )
    names = [d for d in detectors if isinstance(d, str)]
    objects = [d for d in detectors if not isinstance(d, str)]
    plain, sources = expand_shorthands(names, list(models))
    grids = {}
    if options.suite_file is not None:  # its [tuning] grids, checked before any work
        from oodbench.data.suite_file import load_suite_file, resolve_suite_file

        grids = load_suite_file(resolve_suite_file(options.suite_file), check_data=False).tuning
    requests = detector_requests([*plain, *objects] or None, options.params, grids)
    seeds = list(options.seeds) if options.seeds else default_seeds(options.suite, options.recipe)
    results = paths.results_dir(options.results_dir)
    check_writable(results)  # before any work; nothing existing is touched
    # Checkpoints and score caches are written there: a read-only cache fails now, not after training.
    check_writable(paths.cache_dir(options.cache_dir), "cache folder", "--cache-dir or OODBENCH_CACHE")
    check_rows_appendable(results / ROWS_FILENAME)  # a garbage line would break every later report
    for folder in (results, paths.cache_dir(options.cache_dir)):
        remove_stale_temp_files(folder)
    given = options.checkpoints  # one file stays one Path; several (replicates) a tuple of Paths
    checkpoint = None if not given else given[0] if len(given) == 1 else given
    resolved = options.replace(
        results_dir=results,
        device=resolve_device(options.device),
        checkpoint=checkpoint,
        train_overrides=dict(options.train_overrides or {}),
    )
    return sources, requests, seeds, resolved


def finish_run(rows: list[ResultRow], options: RunOptions) -> BenchmarkRun:
    """Tables, plots and the report page of a run's rows (the rows frame is built once)."""
    from oodbench.report.html import try_write_report
    from oodbench.results import rows_to_frame
    from oodbench.training.distributed import env_rank

    results = Path(options.results_dir)
    if env_rank() != 0:  # under torchrun rank 0 writes the tables, plots and report
        return BenchmarkRun(rows, {}, "", results / ROWS_FILENAME, results / "tables")
    frame = rows_to_frame(rows)
    # A suite file's rows carry its name; built-in runs name options.suite, as before.
    suite = rows[0].suite if rows and options.suite_file is not None else options.suite
    tables = write_run_tables(frame, results / "tables", suite=suite)
    drawn = draw_run_plots(frame, results, options.plots)
    page = try_write_report(results, convention=options.convention)
    return BenchmarkRun(
        rows=rows,
        tables=tables,
        accuracy_summary=accuracy_summary(rows, frame),
        rows_file=results / ROWS_FILENAME,
        tables_dir=results / "tables",
        plots=drawn,
        report=page,
    )


def train_model(method: str, suite: str = "mnist", *, seed: int | None = None, **options: Any) -> Path:
    """Train one classifier (`oodbench train`): plan, load the training data, estimate, train.

    The one training pipeline, `oodbench.training.pipeline.ensure_model`, also behind
    `run_benchmark` and the sweep jobs; `options` are its keywords: recipe, overrides (e.g.
    {"epochs": 1}), device, data_dir, download, cache_dir, checkpoint, resume (None: reuse the
    cached checkpoint of this config when complete, resume it when not; True/False: always
    train, continuing the checkpoint or replacing it), progress, bf16, channels_last, compile,
    on_estimate, say (receives what `oodbench train` prints). seed None: the recipe's.
    Returns the checkpoint's path.
    """
    from oodbench.training.pipeline import ensure_model

    return ensure_model(method, suite, seed=seed, **options)


def make_report(rows_path: str | Path, options: ReportOptions | None = None, **fields: Any) -> ReportOutcome:
    """`oodbench report`: the table, comparison, page, baseline CSV or regression check that
    `options` (a `oodbench.report.make.ReportOptions`, or its fields as keywords) ask for."""
    from oodbench.report.make import ReportOptions
    from oodbench.report.make import make_report as make

    return make(Path(rows_path), options if options is not None else ReportOptions(**fields))


def write_run_tables(frame: pd.DataFrame, tables_dir: Path, *, suite: str) -> dict[str, str]:
    """One Markdown table per metric (detectors as columns, models as rows) of the rows `frame`,
    written atomically."""
    from oodbench.atomic import atomic_write_text
    from oodbench.report import comparison_table, render_table

    tables = {}
    tables_dir.mkdir(parents=True, exist_ok=True)
    for metric in ("classification_accuracy", *RUN_TABLE_METRICS):
        markdown = render_table(comparison_table(frame, metric=metric, columns="detector"), "markdown")
        atomic_write_text(tables_dir / f"{suite}-{metric}.md", markdown)
        tables[metric] = markdown
    return tables


def accuracy_summary(rows: Sequence[ResultRow], frame: pd.DataFrame | None = None) -> str:
    """ "Classification accuracy on <set> test (n=N): <model> 95.1%, ..." (mean ± std over seeds).
    `frame`: the rows' frame when already built (rows_to_frame)."""
    from oodbench.results import rows_to_frame

    if not rows:
        return "No rows."
    frame = (rows_to_frame(rows) if frame is None else frame).copy()
    frame["model"] = [r.model_label or r.model_source for r in rows]
    stats = frame.groupby("model", sort=False)["classification_accuracy"].agg(["mean", "std"])
    first = rows[0]
    # Full spectrum: n_in counts the ID test set AND the csID sets; the accuracy is the ID test's.
    where = (
        f"{first.in_dataset.removesuffix('+csid')} ID test"
        if first.full_spectrum
        else f"{first.in_dataset} test (n={first.n_in})"
    )
    line = f"Classification accuracy on {where}: " + ", ".join(
        f"{model} {100 * s['mean']:.1f}%" + (f" ± {100 * s['std']:.1f}" if s["std"] > 0 else "")
        for model, s in stats.iterrows()
    )
    shifted = [r for r in rows if r.full_spectrum]
    if shifted:  # per model and csID set, the mean over its rows (as the ID accuracy above)
        per_model: dict[str, dict[str, list[float]]] = {}
        for r in shifted:
            model = per_model.setdefault(r.model_label or r.model_source, {})
            for name, acc in r.csid_accuracy.items():
                model.setdefault(name, []).append(acc)
        line += "; covariate-shifted ID (csID): " + "; ".join(
            f"{model} " + ", ".join(f"{name} {100 * sum(a) / len(a):.1f}%" for name, a in accs.items())
            for model, accs in per_model.items()
        )
        line += f" (full spectrum: {first.n_in} ID-side images)"
    return line


def draw_run_plots(frame: pd.DataFrame, results: Path, choice: str) -> list[Path]:
    """Histograms and ROC curves of the rows `frame`. Drawing costs more than a cached
    evaluation, so "auto" draws only the paper's detector (msp) when it ran."""
    from oodbench.plots import plot_rows

    if choice == "none" or frame.empty:
        return []
    detector = "msp" if choice == "auto" and "msp" in set(frame["detector"]) else None
    return plot_rows(frame, scores_root=results, out_dir=results / "plots", detector=detector)


__all__ = [
    "BenchmarkRun",
    "RunOptions",
    "accuracy_summary",
    "default_seeds",
    "evaluate",
    "load_model",
    "load_suite",
    "make_report",
    "run_benchmark",
    "train_model",
]
