"""Suite orchestration: per seed and model, train or reuse, load, evaluate, append rows."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from oodbench.detectors.base import Detector
from oodbench.errors import UserInputError
from oodbench.models.loading import LoadedModel
from oodbench.names import ROWS_FILENAME
from oodbench.options import RunOptions, check_replicates, run_options
from oodbench.results import ResultRow, append_rows
from oodbench.runner.evaluation import evaluate, process_group
from oodbench.runner.model import DetectorRequest, ModelUnderTest

if TYPE_CHECKING:
    from oodbench.data.spec import SuiteData


def run_suite(
    suite_name: str,
    *,
    models: Sequence[str],
    detectors: Sequence[DetectorRequest | Detector],
    seeds: Sequence[int],
    options: RunOptions | None = None,
    rows_file: Path | None = None,
    on_training_estimate: Callable[[Any], None] | None = None,
    **fields: Any,
) -> list[ResultRow]:
    """Train (or reuse) each model per seed, evaluate every detector, append rows to the rows file.

    `models` are model sources ("cross_entropy", "confidence", "joint"), trained with the suite's
    recipe (plus `options.train_overrides`, e.g. {"epochs": 1}). With `options.checkpoint`, that
    file is the only model (any format of oodbench.models.loading, read as `options` says); several
    files are replicates of one label, each evaluated as if alone.
    `options.extra_out` adds custom OOD sets ("[NAME=]folder:PATH" or "[NAME=]npz:PATH").
    `options` may be given as its fields (keywords). Rows go to `rows_file` (default:
    results_dir/rows.jsonl). The options' other selections (models, detectors, seeds) are not read:
    the resolved ones are the arguments.
    """
    from oodbench.data import SUITES, load_custom_outs, load_suite
    from oodbench.data.custom import parse_outs

    if options is None:
        fields.setdefault("device", "cpu")  # the keyword form's default, as before RunOptions
    options = run_options(options, **fields)
    check_replicates(options)
    checkpoints = options.checkpoints  # several: replicates of one model, evaluated one by one
    checkpoint = checkpoints[0] if checkpoints else None
    _refuse_equal_replicates(checkpoints)  # before any data is read
    device, limit, progress = options.device, options.limit, options.progress
    if checkpoint is not None and len(seeds) > 1:
        raise UserInputError(
            "--seeds trains one model per seed, but --checkpoint is one fixed model; drop --seeds "
            "(or pass one checkpoint per seed in separate runs)."
        )
    if options.suite_file is not None:
        # A user's suite file: evaluated sets stream from their files (oodbench.data.streamed).
        from oodbench.data.streamed import load_suite_file_data, suite_file_normalize

        if checkpoint is None:
            raise UserInputError(
                "--suite evaluates a given model; add --checkpoint (and --arch for weights)."
            )
        if options.download:  # the openood-* suites' archives (oodbench.data.openood_download)
            from oodbench.data.openood_download import download_for_suite_file

            download_for_suite_file(options.suite_file, options.data_dir, progress=progress)
        data = load_suite_file_data(
            options.suite_file,
            data_dir=options.data_dir,
            limit=limit,
            fit_limit=options.fit_limit,
            workers=options.workers,
            strict=options.strict,
            accept_changed_lists=options.accept_changed_lists,
            full_spectrum=options.full_spectrum,
        )
        parse_outs(options.extra_out, taken=tuple(data.test_out))
        if options.normalize is None:  # the suite file's normalisation, unless --normalize is given
            options = options.replace(normalize=suite_file_normalize(options.suite_file))
    else:
        if options.full_spectrum:
            raise UserInputError(
                "--full-spectrum needs a suite file with [[covariate_shift]] sets, e.g. --suite "
                "openood-imagenet200; drop it for built-in suites."
            )
        # --out sets: names checked before any data is read, sets loaded (capped at `limit`,
        # refused when empty) before any training starts.
        parse_outs(options.extra_out, taken=SUITES.get(suite_name).out_datasets)
        # `limit` caps the evaluated sets only; `fit_limit` the fit/tuning splits (oodbench.data.suites).
        data = load_suite(
            suite_name,
            data_dir=options.data_dir,
            download=options.download,
            limit=limit,
            fit_limit=options.fit_limit,
            progress=progress,
            stream=True,  # evaluated sets through the loader interface (oodbench.data.streamed)
        )
    data.test_out.update(
        load_custom_outs(
            options.extra_out,
            shape=data.spec.image_shape,
            taken=data.test_out,
            limit=limit,
            progress=progress,
            workers=options.workers,
            strict=options.strict,
        )
    )
    # Progress lines go through tqdm so they do not break the training progress bars.
    say = (lambda message: tqdm.write(message, file=sys.stderr)) if progress else None
    results_dir = Path(options.results_dir)
    with _process_group_of_checkpoint_runs(checkpoint is not None, device) as device:
        options = options.replace(device=device)
        rows = _evaluate_models(
            suite_name, models, detectors, seeds, options, data, checkpoints, results_dir, rows_file,
            on_training_estimate, say,
        )  # fmt: skip
    return rows


@contextmanager
def _process_group_of_checkpoint_runs(given: bool, device: Any) -> Iterator[Any]:
    """Under torchrun (RANK set) a given checkpoint's run joins the process group, so that every
    rank scores a shard of each set (runner.evaluation); yields this rank's device."""
    from oodbench.training import distributed

    if not given or not distributed.requested():
        yield device
        return
    context, device = distributed.setup(torch.device(device))
    try:
        yield device
    finally:
        distributed.teardown(context)


def _evaluate_models(
    suite_name: str,
    models: Sequence[str],
    detectors: Sequence[DetectorRequest | Detector],
    seeds: Sequence[int],
    options: RunOptions,
    data: SuiteData,
    checkpoints: Sequence[Path],
    results_dir: Path,
    rows_file: Path | None,
    on_training_estimate: Callable[[Any], None] | None,
    say: Callable[[str], None] | None,
) -> list[ResultRow]:
    """Per seed and model source: train or reuse, load, evaluate, append the rows (rank 0).
    Given `checkpoints` replace the sources; several are replicates of one label, each evaluated
    as if alone (its own rows, checkpoint_sha256 and score cache entries)."""
    device, limit = options.device, options.limit
    rows: list[ResultRow] = []
    for seed in seeds:
        sources = [("external", path) for path in checkpoints] or [(m, None) for m in models]
        for source, path in sources:
            if path is None:
                path = train_for_run(source, suite_name, seed, options, on_estimate=on_training_estimate)
            loaded = _load_for_suite(path, source, data, options)
            row_seed = int(loaded.config.get("seed", seed)) if checkpoints else seed
            new_rows = evaluate(
                ModelUnderTest.from_loaded(loaded),
                detectors,
                data,
                seed=row_seed,
                device=device,
                results_dir=results_dir,
                cache_dir=None if options.cache_dir is None else Path(options.cache_dir),
                batch_size=options.batch_size,
                legacy=options.legacy,
                convention=options.convention,
                eval_limit=limit,
                fit_limit=options.fit_limit,
                progress=say,
            )
            if process_group()[0] == 0:  # under torchrun every rank scores a shard; rank 0 writes
                append_rows(rows_file or results_dir / ROWS_FILENAME, new_rows)
            rows += new_rows
    return rows


def _refuse_equal_replicates(checkpoints: Sequence[Path]) -> None:
    """Replicates are different weights: two files with equal content would count one model twice."""
    from oodbench.provenance import sha256_file

    if len(checkpoints) < 2:
        return
    seen: dict[str, Path] = {}
    for path in checkpoints:
        digest = sha256_file(path) if path.is_file() else str(path)  # a missing file: load_model says so
        if digest in seen:
            raise UserInputError(
                f"--checkpoint {seen[digest]} and {path} hold the same weights (sha256 {digest[:12]}); "
                "each replicate must be a different model."
            )
        seen[digest] = path


def train_for_run(
    source: str, suite_name: str, seed: int, options: RunOptions, *, on_estimate: Callable | None = None
) -> Path:
    """The checkpoint of a trained model source: cached, or trained now (oodbench.training.ensure_model)."""
    import oodbench.training

    return oodbench.training.ensure_model(
        source,
        suite_name,
        seed=seed,
        recipe=options.recipe,
        device=options.device,
        cache_dir=options.cache_dir,
        data_dir=options.data_dir,
        progress=options.progress,
        overrides=dict(options.train_overrides or {}),
        on_estimate=on_estimate,
    )


def _load_for_suite(path: Path, source: str, data: SuiteData, options: RunOptions) -> LoadedModel:
    """A checkpoint read as `options` says, checked against the suite's shape and classes."""
    from oodbench.models.loading import check_against_suite, load_model

    shape = tuple(data.spec.image_shape)
    given = bool(options.checkpoints)
    loaded = load_model(
        path,
        options.arch,
        in_shape=shape,
        label=options.label if given else (options.label or source),
        expect_dataset=data.suite.in_dataset,
        device=options.device,
        **options.model_file_options,
    )
    check_against_suite(
        loaded,
        in_shape=shape,
        num_classes=data.spec.num_classes,
        device=options.device,
        channels=options.channels,
    )
    return loaded
