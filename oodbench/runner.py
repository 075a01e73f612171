"""evaluate(model, detectors, suite) -> result rows + stored raw scores.

Work is shared, not repeated:
- one forward pass over each data set feeds every logit- or feature-based detector
  (`uses = "logits"` / `"features"`); only gradient-based ones (ODIN, Mahalanobis with input
  pre-processing) run the model again;
- raw scores are cached as NPZ under a key of (checkpoint hash, data fingerprint, detector and
  all its attributes, the oodbench source and plug-in code, the fit/tuning data's
  fingerprint), so a re-run recomputes nothing. A detector's cached sets are used only when
  all come from one fit; otherwise it is fitted again and every set rescored. Each entry
  records where it was computed (device, torch version, CPU family, threads); rows copy that.
- every score array is checked (`check_scores`: 1-D, one per image, real, finite) before
  anything is written to the cache or the results.
Hyperparameters are tuned only on the suite's validation split, never on a test set.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from oodbench import __version__, metrics, paths
from oodbench.detectors import create_detector
from oodbench.detectors.base import Detector, ForwardOutputs, features_and_logits, iter_batches
from oodbench.detectors.plugins import guard_user_code
from oodbench.errors import UserInputError
from oodbench.models.external import LoadedModel
from oodbench.names import SHORTHAND_DETECTORS, TRAINED_SOURCES
from oodbench.options import RunOptions, run_options
from oodbench.progress import progress_bar
from oodbench.results import (
    ROWS_FILENAME,
    ResultRow,
    _cached_host_cpu,
    append_rows,
    load_scores,
    safe_file_name,
    save_row_scores,
    save_scores,
)

if TYPE_CHECKING:
    from oodbench.data.spec import SuiteData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorRequest:
    """A detector name and the hyperparameters the user gave (the rest are defaults or tuned)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        return self.name + json.dumps(self.params, sort_keys=True)


@dataclass(frozen=True)
class ModelUnderTest:
    """A classifier and where it came from (what every result row records about it)."""

    source: str  # "cross_entropy" | "confidence" | "joint" | "external"
    model: nn.Module
    checkpoint_sha256: str
    arch: str
    recipe: str
    label: str = ""
    train_overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel) -> ModelUnderTest:
        return cls(
            source=loaded.source,
            model=loaded.module,
            checkpoint_sha256=loaded.sha256,
            arch=loaded.arch,
            recipe=loaded.recipe,
            label=loaded.label,
            train_overrides=dict(loaded.train_overrides),
        )


def fingerprint(x: torch.Tensor) -> str:
    """A short content hash of a tensor (data set identity for the score cache)."""
    if hasattr(x, "content_hash"):  # images read from their file (oodbench.data.ondisk)
        return hashlib.sha1((x.content_hash() + str(tuple(x.shape))).encode()).hexdigest()[:16]
    # Hash the buffer in place: a .tobytes() copy would double the memory of a large set.
    digest = hashlib.sha1(np.ascontiguousarray(x.detach().cpu().numpy()).view(np.uint8).reshape(-1))
    digest.update(str(tuple(x.shape)).encode() + str(x.dtype).encode())
    return digest.hexdigest()[:16]


# Checks each detector's scores before anything is stored: (detector, scores, expected length)
# -> float64 array, or a UserInputError naming the detector, the model and the data set.
ScoreCheck = Callable[[Detector, Any, int], np.ndarray]


@torch.no_grad()
def collect_outputs(
    model: nn.Module,
    x: torch.Tensor,
    *,
    device: torch.device | str,
    batch_size: int,
    feature_detectors: Sequence[Detector] = (),
    progress_label: str | None = None,
    check: ScoreCheck | None = None,
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """ONE streamed pass over `x`: all logits (N, K), and the scores of every feature detector.

    Batches are converted to float one at a time (`iter_batches`); features are scored batch by
    batch and dropped, so memory grows with the batch size, not with N, apart from the logits.
    Feature detectors score each row on its own, so batching does not change their scores.
    `check` validates each batch's scores (see `evaluate`).
    """
    model.eval()
    # Results go into arrays allocated once: small per-batch tensors kept alive between the
    # large freed temporaries would fragment the heap, and the process would keep growing with
    # N (measured on 100,000 28x28 images: +630 MB with per-batch lists, +3 MB without).
    logits: torch.Tensor | None = None
    scores = [np.empty(len(x), dtype=np.float64) for _ in feature_detectors]
    batches = progress_bar(
        iter_batches(x, batch_size),
        n_images=len(x),
        total=(len(x) + batch_size - 1) // batch_size,
        desc=progress_label or "",
        unit="batch",
        show=progress_label is not None,
    )
    start = 0
    for batch in batches:
        batch = batch.to(device)
        if feature_detectors:
            feats, out = features_and_logits(model, batch)
            outputs = ForwardOutputs(logits=out.float().cpu(), features=feats.float().cpu())
            for detector, store in zip(feature_detectors, scores, strict=True):
                batch_scores = detector.score_outputs(outputs)
                if check is not None:  # a wrong shape would otherwise fail as a numpy error
                    batch_scores = check(detector, batch_scores, len(batch))
                store[start : start + len(batch)] = batch_scores
        else:
            out = model(batch)
        if logits is None:
            logits = torch.empty((len(x), out.shape[1]), dtype=torch.float32)
        logits[start : start + len(batch)] = out.float().cpu()
        start += len(batch)
    if logits is None:
        logits = torch.empty((0, 0), dtype=torch.float32)
    return logits, scores


# The oodbench package: built-in detectors depend on all of it (metrics, data conversion, models).
_PACKAGE_ROOT = Path(__file__).resolve().parent


@functools.cache
def _source_tree_digest(root: Path) -> str:
    """A hash of every .py file under `root` (computed once per process)."""
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.cache
def code_fingerprint(cls: type) -> str:
    """A hash of the oodbench version, the whole oodbench source tree and the source files of
    `cls` and its base classes outside it (a plug-in's own file): cached scores are reused
    only while the code that made them is unchanged."""
    digest = hashlib.sha1(__version__.encode() + _source_tree_digest(_PACKAGE_ROOT).encode())
    for klass in cls.__mro__:
        try:
            source = inspect.getsourcefile(klass)
        except TypeError:  # built-in classes (object)
            continue
        if not source or not Path(source).is_file():
            continue
        if Path(source).resolve().is_relative_to(_PACKAGE_ROOT):
            continue  # already in the tree digest
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:12]


def _load_cached(path: Path, use_cache: bool) -> dict[str, np.ndarray] | None:
    """A cache entry, or None when absent, disabled or unreadable (then warned about and rebuilt)."""
    if not use_cache or not path.exists():
        return None
    try:
        return load_scores(path)
    except UserInputError as error:
        log.warning("ignoring an unreadable cache entry (it will be rebuilt): %s", error)
        return None


def _fit_id(entry: dict[str, np.ndarray]) -> str | None:
    """The fit a cache entry's scores came from (None for entries of older oodbench versions)."""
    try:
        return json.loads(str(entry["meta"])).get("fit_id")
    except (KeyError, ValueError, AttributeError):
        return None


def _one_fit(cached: dict[str, dict[str, np.ndarray]], names: Sequence[str]) -> bool:
    """Whether every set has a cache entry and all come from one fit of the detector."""
    ids = {_fit_id(cached[name]) if name in cached else None for name in names}
    return len(ids) == 1 and None not in ids


def check_scores(scores: Any, n: int, *, where: str) -> np.ndarray:
    """A detector's output as float64 of shape (n,), or a one-line UserInputError.

    Refused: None, non-numeric or complex values, not 1-D, another length than the data set,
    NaN or inf. Integers are cast to float64. `where` names the detector, model and data set.
    """
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    if scores is None:
        raise UserInputError(f"{where}: the detector returned None instead of one score per image.")
    try:
        array = np.asarray(scores)
    except (ValueError, TypeError) as error:
        raise UserInputError(f"{where}: the scores are not an array of numbers ({error}).") from None
    if array.dtype.kind not in "fiu":
        raise UserInputError(
            f"{where}: the scores have dtype {array.dtype}; they must be real numbers (float64)."
        )
    if array.ndim != 1:
        raise UserInputError(f"{where}: the scores have shape {array.shape}; they must be 1-D ({n},).")
    if len(array) != n:
        raise UserInputError(f"{where}: {len(array)} scores for {n} images; one score per image is needed.")
    array = array.astype(np.float64, copy=False)
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise UserInputError(f"{where}: {bad} of {n} scores are NaN or infinite.")
    return array


def _as_eval_model(model: nn.Module) -> nn.Module:
    from oodbench.models.external import EvalModel

    return model if isinstance(model, EvalModel) else EvalModel(model)


def evaluate(
    model_ut: ModelUnderTest,
    detectors: Sequence[DetectorRequest | Detector],
    data,
    *,
    seed: int,
    device: torch.device | str,
    results_dir: Path | None,
    cache_dir: Path | None = None,
    batch_size: int = 256,
    legacy: bool = False,
    eval_limit: int | None = None,
    fit_limit: int | None = None,
    use_cache: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[ResultRow]:
    """Score every detector on the suite's ID test set and each OOD test set.

    `data` is a SuiteData (oodbench.data). Returns one ResultRow per (detector, OOD set); with
    `results_dir`, raw scores go to `results_dir/scores/...npz` (arrays "scores_in", "scores_out").
    Detectors are names with parameters (`DetectorRequest`) or ready `Detector` objects.
    With `use_cache=False` nothing is read from or written to the score cache.

    The ID and OOD scores of a detector always come from ONE fit: unless every set has a cache
    entry of the same fit, the detector is fitted again and every set rescored. Every score
    array is checked (`check_scores`) before anything is written to the cache or results.
    """
    model = _as_eval_model(model_ut.model).to(device).eval()
    model_name = model_ut.label or model_ut.source
    score_cache = paths.cache_dir(cache_dir) / "scores" / model_ut.checkpoint_sha256[:16]
    sets = {"in": data.test_in.x, **{f"out:{n}": s.x for n, s in data.test_out.items()}}
    set_names = {"in": f"{data.suite.in_dataset} (ID test)", **{f"out:{n}": n for n in data.test_out}}
    prints = {name: fingerprint(x) for name, x in sets.items()}
    fit_print = fingerprint(data.train.x) + fingerprint(data.val_in.x) + fingerprint(data.val_ood.x)
    # The model's preprocessing, feature layer and logits element change its scores: in the cache key.
    logits_key = getattr(model, "logits_key", None)  # added only when given: older keys stay valid
    model_key = json.dumps(
        [model.preprocess.describe(), model.feature_source, *([] if logits_key is None else [logits_key])],
        sort_keys=True,
    )
    # Where fresh scores are computed (stored in each cache entry; rows report the entry's).
    here = {
        "device": str(device),
        "torch_version": torch.__version__,
        "host_cpu": _cached_host_cpu(),
        "torch_threads": int(torch.get_num_threads()),
    }

    def checker(set_name: str) -> ScoreCheck:
        def check(detector: Detector, scores: Any, n: int) -> np.ndarray:
            where = f"detector {detector.name!r} on model {model_name!r}, data set {set_names[set_name]!r}"
            return check_scores(scores, n, where=where)

        return check

    # 1. Each detector: cached scores of one fit, or fitted now and every set scored below.
    plans = []
    for request in detectors:
        if isinstance(request, Detector):
            detector = request
            # A detector object from the API: its exceptions are one line like a named plug-in's.
            if not type(detector).__module__.startswith("oodbench."):
                guard_user_code(type(detector))
        else:
            detector = create_detector(request.name, **request.params)
        detector.validate()
        key_text = (request.name if isinstance(request, DetectorRequest) else "") + _detector_key(detector)
        # Version and code, hyperparameters, fit/tuning data and the model's input pipeline.
        key_text += code_fingerprint(type(detector)) + fit_print + model_key
        key = hashlib.sha1(key_text.encode()).hexdigest()[:16]
        folder = score_cache / _detector_folder(detector.name)
        files = {name: folder / key / f"{prints[name]}.npz" for name in sets}
        loaded = {name: _load_cached(path, use_cache) for name, path in files.items()}
        cached = {name: entry for name, entry in loaded.items() if entry is not None}
        if not _one_fit(cached, list(sets)):
            # A partial hit: the cached sets came from another fit; scoring the rest with a new
            # fit would pair scores of two fits in one row. Refit and rescore every set.
            cached = {}
            if progress:
                progress(f"{model_name}: fitting {detector.name}")
            detector.fit(
                model,
                train=data.train,
                val_in=data.val_in.x,
                val_out=data.val_ood.x,
                device=device,
                batch_size=batch_size,
            )
        meta = {
            "params": detector.params(),
            "tuned": detector.tuned_on_validation(),
            "fit_id": uuid.uuid4().hex,
            **here,
        }
        plans.append((detector, files, cached, meta))

    # 2. One forward pass per data set feeds every pending logit/feature detector (and accuracy).
    # Nothing is written until every score array has passed its check (below, after the loop).
    to_write: list[tuple[Path, dict[str, np.ndarray]]] = []
    accuracy_file = (
        score_cache
        / "classification"
        / f"{prints['in']}-{hashlib.sha1(model_key.encode()).hexdigest()[:8]}.npz"
    )
    accuracy_entry = _load_cached(accuracy_file, use_cache)
    accuracy = None if accuracy_entry is None else float(accuracy_entry["accuracy"])
    for name, x in sets.items():
        check = checker(name)
        pending = [p for p in plans if name not in p[2]]
        from_outputs = [p for p in pending if not p[0].needs_model()]
        if from_outputs or (name == "in" and accuracy is None):
            if progress:
                progress(f"{model_name}: scoring {name} ({len(x)} images)")
            feature_plans = [p for p in from_outputs if p[0].uses == "features"]
            logits, feature_scores = collect_outputs(
                model,
                x,
                device=device,
                batch_size=batch_size,
                feature_detectors=[p[0] for p in feature_plans],
                progress_label=None if progress is None else f"scoring {name}",
                check=check,
            )
            if name == "in" and accuracy is None:
                accuracy = float((logits.argmax(1) == data.test_in.y).double().mean())
                to_write.append((accuracy_file, {"accuracy": np.array(accuracy)}))
            outputs = ForwardOutputs(logits=logits)
            for detector, files, cached, meta in from_outputs:
                plan_index = next((i for i, p in enumerate(feature_plans) if p[0] is detector), None)
                scores = (
                    feature_scores[plan_index] if plan_index is not None else detector.score_outputs(outputs)
                )
                cached[name] = _entry(check(detector, scores, len(x)), meta)
                to_write.append((files[name], cached[name]))
        for detector, files, cached, meta in pending:
            if detector.needs_model():
                scores = detector.score(model, x, device=device, batch_size=batch_size)
                cached[name] = _entry(check(detector, scores, len(x)), meta)
                to_write.append((files[name], cached[name]))
    if use_cache:
        for path, arrays in to_write:
            save_scores(path, **arrays)

    # 3. Rows.
    rows: list[ResultRow] = []
    suite = data.suite
    for detector, _, cached, _ in plans:
        meta = json.loads(str(cached["in"]["meta"]))
        s_in = cached["in"]["scores"]
        for out_name in data.test_out:
            s_out = cached[f"out:{out_name}"]["scores"]
            row = ResultRow(
                suite=suite.name,
                in_dataset=suite.in_dataset,
                out_dataset=out_name,
                model_source=model_ut.source,
                model_label=model_ut.label,
                model_arch=model_ut.arch,
                training_recipe=model_ut.recipe,
                train_overrides=dict(model_ut.train_overrides),
                detector=detector.name,
                seed=seed,
                **metrics.compute(s_in, s_out, legacy=legacy),
                metrics_convention="legacy" if legacy else "exact",
                classification_accuracy=accuracy,
                n_in=len(s_in),
                n_out=len(s_out),
                eval_limit=eval_limit,
                fit_limit=fit_limit,
                in_fingerprint=prints["in"],
                out_fingerprint=prints[f"out:{out_name}"],
                detector_params=meta["params"],
                tuning=data.tuning if meta["tuned"] else "none",
                checkpoint_sha256=model_ut.checkpoint_sha256,
                # Where the scores were computed: the cache entry's record, not this process.
                device=meta["device"],
                torch_version=meta["torch_version"],
                host_cpu=meta["host_cpu"],
                torch_threads=meta["torch_threads"],
            )
            if results_dir is not None:
                save_row_scores(results_dir, row, s_in, s_out)
            rows.append(row)
    return rows


def _stable(value: Any, depth: int = 0) -> Any:
    """A JSON-ready, process-independent description of a hyperparameter value (arrays and
    tensors by content hash; objects by class and attributes, never by a memory address)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return ["array", str(data.dtype), list(data.shape), hashlib.sha1(data.tobytes()).hexdigest()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _stable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_stable(v, depth + 1) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, nn.Module):
        return ["module", type(value).__qualname__, _stable(dict(value.state_dict()), depth + 1)]
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if callable(value) and hasattr(value, "__qualname__"):
        return ["callable", f"{getattr(value, '__module__', '')}.{value.__qualname__}"]
    if depth < 4 and hasattr(value, "__dict__"):
        return ["object", kind, _stable(vars(value), depth + 1)]
    return ["value", kind, repr(value)]


def _detector_folder(name: str) -> str:
    """The cache folder of a detector: its name made file-safe, plus a digest of the exact name,
    so that no name (a plug-in's `..`, `a/b` or `pytorch-ood:ViM`) can leave the cache or share a
    folder with another."""
    readable = safe_file_name(name).lstrip(".")[:40] or "detector"
    return f"{readable}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def _detector_key(detector: Detector) -> str:
    """Cache key text of a detector: its class and every attribute set before fitting, whatever
    its name (plug-ins may keep hyperparameters under `_private` names); learned state (a name
    ending in `_`, scikit-learn's convention) is left out: the runner fits again anyway."""
    state = {
        k: _stable(v) for k, v in vars(detector).items() if not (k.endswith("_") and not k.startswith("_"))
    }
    return f"{type(detector).__module__}.{type(detector).__qualname__}" + json.dumps(state, sort_keys=True)


def _entry(scores: np.ndarray, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """A cache entry: checked scores and their meta (parameters, tuning, fit id, provenance)."""
    return {"scores": scores, "meta": np.array(json.dumps(meta))}


def expand_shorthands(detectors: Sequence[str], models: Sequence[str]) -> tuple[list[str], list[str]]:
    """Resolve paper shorthands into (detectors, model sources).

    `--detector joint` alone means `--model joint --detector msp`. Next to plain detectors or
    explicit models, a shorthand adds its model and msp to them. With no model named and a plain
    detector present, every trained model source is evaluated.
    """
    plain = [d for d in detectors if d not in SHORTHAND_DETECTORS]
    pairs = [SHORTHAND_DETECTORS[d] for d in detectors if d in SHORTHAND_DETECTORS]
    chosen = list(models) if models or (pairs and not plain) else list(TRAINED_SOURCES)
    for model, detector in pairs:
        chosen += [] if model in chosen else [model]
        plain += [] if detector in plain else [detector]
    return plain, chosen


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
    file is the only model (any format of oodbench.models.loading, read as `options` says).
    `options.extra_out` adds custom OOD sets ("[NAME=]folder:PATH" or "[NAME=]npz:PATH").
    `options` may be given as its fields (keywords). Rows go to `rows_file` (default:
    results_dir/rows.jsonl). The options' other selections (models, detectors, seeds) are not read:
    the resolved ones are the arguments.
    """
    from oodbench.data import SUITES, load_custom_outs, load_suite
    from oodbench.data.custom import parse_outs

    options = run_options(options, **fields)
    checkpoint = None if options.checkpoint is None else Path(options.checkpoint)
    device, limit, progress = options.device, options.limit, options.progress
    if checkpoint is not None and len(seeds) > 1:
        raise UserInputError(
            "--seeds trains one model per seed, but --checkpoint is one fixed model; drop --seeds "
            "(or pass one checkpoint per seed in separate runs)."
        )
    # --out sets: names checked before any data is read, sets loaded (capped at `limit`, refused
    # when empty) before any training starts.
    parse_outs(options.extra_out, taken=SUITES.get(suite_name).out_datasets)
    # `limit` caps the evaluated sets only; `fit_limit` the fit/tuning splits (oodbench.data.suites).
    data = load_suite(
        suite_name,
        data_dir=options.data_dir,
        download=options.download,
        limit=limit,
        fit_limit=options.fit_limit,
        progress=progress,
    )
    data.test_out.update(
        load_custom_outs(
            options.extra_out,
            shape=data.spec.image_shape,
            taken=data.test_out,
            limit=limit,
            progress=progress,
        )
    )
    # Progress lines go through tqdm so they do not break the training progress bars.
    say = (lambda message: tqdm.write(message, file=sys.stderr)) if progress else None
    results_dir = Path(options.results_dir)
    rows: list[ResultRow] = []
    for seed in seeds:
        sources = [("external", checkpoint)] if checkpoint else [(m, None) for m in models]
        for source, path in sources:
            if path is None:
                path = train_for_run(source, suite_name, seed, options, on_estimate=on_training_estimate)
            loaded = _load_for_suite(path, source, data, options)
            row_seed = int(loaded.config.get("seed", seed)) if checkpoint else seed
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
                eval_limit=limit,
                fit_limit=options.fit_limit,
                progress=say,
            )
            append_rows(rows_file or results_dir / ROWS_FILENAME, new_rows)
            rows += new_rows
    return rows


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
    from oodbench.models.external import check_against_suite, load_model

    shape = tuple(data.spec.image_shape)
    given = options.checkpoint is not None
    loaded = load_model(
        path,
        options.arch,
        in_shape=shape,
        label=options.label if given else (options.label or source),
        expect_dataset=data.suite.in_dataset,
        device=options.device,
        **options.model_file_options,
    )
    check_against_suite(loaded, in_shape=shape, num_classes=data.spec.num_classes, device=options.device)
    return loaded
