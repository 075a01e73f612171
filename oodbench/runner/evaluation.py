"""The heart of oodbench: `evaluate(model, detectors, suite)` -> result rows + stored raw scores.

Invariants (tests/test_runner.py, tests/test_hostile_*.py hold them):

1. One forward pass per data set. Every logit- or feature-based detector (`uses = "logits"` /
   `"features"`) is fed from one streamed pass over each set (forward.shared_forward_pass);
   only gradient-based detectors (ODIN, Mahalanobis with input pre-processing) run the model
   again. Classification accuracy comes from the same pass over the ID test set.
2. What is cached. Raw scores, one NPZ entry per (detector, data set), under a key of the
   checkpoint's hash, the data set's fingerprint, the detector's class and every attribute set
   before fitting, the oodbench version and source tree and a plug-in's file, the fit/tuning
   data's fingerprint, and the model's input pipeline (preprocessing, feature layer, logits
   element) (cache.py). Each entry records its fit id and where it was computed (device,
   torch version, CPU family, threads); rows copy that record.
3. What is refitted. One fit per row set: a detector's cached entries are used only when every
   set has one and all come from one fit. A partial hit (a lost or unreadable entry, entries of
   two fits) refits the detector and rescores EVERY set, so that a row never pairs ID and OOD
   scores of different fits.
4. What a row promises. Every score array is checked (rows.check_scores: 1-D, one per image,
   real, finite) before anything is written to the cache or the results; rows are built only
   from checked scores; a row's score file is named by the row's identity with a digest
   (oodbench.results.save_row_scores), so two rows never share or overwrite one file.
5. Hyperparameters are tuned only on the suite's validation split, never on a test set.
6. Under torchrun (a joined torch.distributed group), every rank fits each detector on the whole
   fit data, scores batches rank, rank + W, ... of each set (the single process's batches, so
   the same floats), and the scores are gathered by image position: every rank holds the rows
   a single process would make; only rank 0 writes the cache, the score files and the rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench import paths
from oodbench.detectors import create_detector
from oodbench.detectors.base import Detector, ForwardOutputs
from oodbench.detectors.plugins import guard_user_code
from oodbench.detectors.suite_grids import check_grids, grid_meta, with_suite_grid
from oodbench.results import ResultRow, _cached_host_cpu, save_scores
from oodbench.runner import forward
from oodbench.runner.cache import (
    cache_entry,
    code_fingerprint,
    detector_folder,
    detector_key,
    load_cached,
    one_fit,
)
from oodbench.runner.forward import ScoreCheck, as_eval_model, fingerprint
from oodbench.runner.model import DetectorRequest, ModelUnderTest
from oodbench.runner.rows import build_rows, check_scores

log = logging.getLogger(__name__)


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
    convention: str | None = None,
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
    Full spectrum (`data.covariate_shift`, a suite file loaded with full_spectrum=True): each
    csID set is scored and cached as a set of its own, its accuracy computed from the same pass;
    the rows put its scores on the ID side (rows.build_rows).

    The ID and OOD scores of a detector always come from ONE fit: unless every set has a cache
    entry of the same fit, the detector is fitted again and every set rescored. Every score
    array is checked (`check_scores`) before anything is written to the cache or results.
    """
    model = as_eval_model(model_ut.model).to(device).eval()
    model_name = model_ut.label or model_ut.source
    score_cache = paths.cache_dir(cache_dir) / "scores" / model_ut.checkpoint_sha256[:16]
    # --full-spectrum: each covariate-shifted ID set is scored as a set of its own ("csid:NAME");
    # build_rows puts its scores on the ID side. Empty for every other run.
    shifted = getattr(data, "covariate_shift", None) or {}
    sets = {
        "in": data.test_in.x,
        **{f"out:{n}": s.x for n, s in data.test_out.items()},
        **{f"csid:{n}": s.x for n, s in shifted.items()},
    }
    set_names = {
        "in": f"{data.suite.in_dataset} (ID test)",
        **{f"out:{n}": n for n in data.test_out},
        **{f"csid:{n}": f"{n} (covariate-shifted ID)" for n in shifted},
    }
    # Labelled sets: classification accuracy from the shared pass (ID test, and csID sets).
    labelled = {
        name: images.y
        for name, images in (("in", data.test_in), *((f"csid:{n}", s) for n, s in shifted.items()))
        if images.y is not None
    }
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
    # A suite file's [tuning] grids: names and values checked before any fit (invariant 5).
    grids = getattr(data, "tuning_grids", None) or {}
    check_grids(grids)
    plans = []
    for request in detectors:
        if isinstance(request, Detector):
            detector = with_suite_grid(request, grids)
            # A detector object from the API: its exceptions are one line like a named plug-in's.
            if not type(detector).__module__.startswith("oodbench."):
                guard_user_code(type(detector))
        else:
            detector = create_detector(request.name, **request.params)
            detector = with_suite_grid(detector, grids, given=request.params)
        detector.validate()
        key_text = (request.name if isinstance(request, DetectorRequest) else "") + detector_key(detector)
        # Version and code, hyperparameters, fit/tuning data and the model's input pipeline.
        key_text += code_fingerprint(type(detector)) + fit_print + model_key
        key = hashlib.sha1(key_text.encode()).hexdigest()[:16]
        folder = score_cache / detector_folder(detector.name)
        files = {name: folder / key / f"{prints[name]}.npz" for name in sets}
        loaded = {name: load_cached(path, use_cache) for name, path in files.items()}
        cached = {name: entry for name, entry in loaded.items() if entry is not None}
        if not one_fit(cached, list(sets)):
            # A partial hit: the cached sets came from another fit; scoring the rest with a new
            # fit would pair scores of two fits in one row. Refit and rescore every set.
            cached = {}
            if progress:
                progress(f"{model_name}: fitting {detector.name}")
            # The fit splits as the suite holds them: tensors, or a suite file's streams (after
            # --fit-limit's `select`), which a detector reads batch by batch; a plug-in without
            # `accepts_streams` gets them read into memory by detectors/base.py.
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
            **grid_meta(detector),  # the suite grid's AUROCs and degenerate-pick flags
            "fit_id": uuid.uuid4().hex,
            **here,
        }
        plans.append((detector, files, cached, meta))

    # 2. One forward pass per data set feeds every pending logit/feature detector (and accuracy).
    # Nothing is written until every score array has passed its check (below, after the loop).
    to_write: list[tuple[Path, dict[str, np.ndarray]]] = []
    model_tag = hashlib.sha1(model_key.encode()).hexdigest()[:8]
    accuracy_files = {
        name: score_cache / "classification" / f"{prints[name]}-{model_tag}.npz" for name in labelled
    }
    accuracies: dict[str, float | None] = {}
    for name, path in accuracy_files.items():
        entry = load_cached(path, use_cache)
        accuracies[name] = None if entry is None else float(entry["accuracy"])
    rank, world = process_group()
    for name, full in sets.items():
        check = checker(name)
        pending = [p for p in plans if name not in p[2]]
        from_outputs = [p for p in pending if not p[0].needs_model()]
        # Under torchrun each rank scores every world-th batch of the single process's batches
        # (the same batches give the same floats); rank 0's rows hold them all, in order.
        positions = _shard_positions(len(full), batch_size, rank, world)
        x = full if world == 1 else _shard(full, positions)
        n = len(x)
        labels = None if name not in labelled else labelled[name][torch.from_numpy(positions)]
        needs_accuracy = name in labelled and accuracies[name] is None
        # A streamed set (a suite file's) may skip unreadable images: its shared pass runs first
        # whenever anything is scored, so that every detector scores the images that pass read.
        streamed = not isinstance(x, torch.Tensor) and hasattr(x, "narrowed")
        fresh: dict[int, np.ndarray] = {}  # plan index -> this rank's scores
        correct = None
        if from_outputs or needs_accuracy or (streamed and pending):
            if progress:
                progress(f"{model_name}: scoring {name} ({len(x)} images)")
            feature_plans = [p for p in from_outputs if p[0].uses == "features"]
            logits, feature_scores = forward.shared_forward_pass(
                model,
                x,
                device=device,
                batch_size=batch_size,
                feature_detectors=[p[0] for p in feature_plans],
                progress_label=None if progress is None else f"scoring {name}",
                check=check,
            )
            n = len(logits)
            if streamed:
                positions = positions[x.kept]
                labels = None if labels is None else labels[torch.from_numpy(x.kept)]
                x = x.narrowed()
            if needs_accuracy:
                correct = int((logits.argmax(1) == labels).sum())
            outputs = ForwardOutputs(logits=logits)
            for detector, _, _, _ in from_outputs:
                plan_index = next((i for i, p in enumerate(feature_plans) if p[0] is detector), None)
                scores = (
                    feature_scores[plan_index] if plan_index is not None else detector.score_outputs(outputs)
                )
                fresh[_index(plans, detector)] = check(detector, scores, n)
        for detector, _, _, _ in pending:
            if detector.needs_model():
                scores = detector.score(model, x, device=device, batch_size=batch_size)
                fresh[_index(plans, detector)] = check(detector, scores, n)
        if world > 1:
            fresh, correct, n = _gather(positions, fresh, correct)
        if correct is not None:
            accuracies[name] = correct / n if n else float("nan")
            to_write.append((accuracy_files[name], {"accuracy": np.array(accuracies[name])}))
        for index, scores in fresh.items():
            detector, files, cached, meta = plans[index]
            cached[name] = cache_entry(check(detector, scores, n), meta)
            to_write.append((files[name], cached[name]))
    if use_cache and rank == 0:  # one writer under torchrun; every rank holds the same scores
        for path, arrays in to_write:
            save_scores(path, **arrays)

    # 3. Rows: one per (detector, OOD set), scores saved beside them under the row's identity.
    scored = [(detector, cached) for detector, _, cached, _ in plans]
    return build_rows(
        model_ut,
        scored,
        data,
        seed=seed,
        accuracy=accuracies.get("in"),
        csid_accuracy={n: accuracies[f"csid:{n}"] for n in shifted if f"csid:{n}" in accuracies},
        legacy=legacy,
        convention=convention,
        eval_limit=eval_limit,
        fit_limit=fit_limit,
        prints=prints,
        model_input=model_key,
        results_dir=results_dir if rank == 0 else None,
        sizes={name: len(x) for name, x in sets.items()},
    )


def process_group() -> tuple[int, int]:
    """(rank, world size) of the joined torch.distributed group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _shard_positions(n: int, batch_size: int, rank: int, world: int) -> np.ndarray:
    """The image positions of batches rank, rank + world, ... of a set of n in batches."""
    starts = range(rank * batch_size, n, world * batch_size)
    return np.concatenate([np.arange(s, min(s + batch_size, n)) for s in starts] or [np.empty(0, np.int64)])


def _shard(x: Any, positions: np.ndarray) -> Any:
    """The images of `x` at `positions`: a tensor's rows, or a streamed set over those items."""
    if isinstance(x, torch.Tensor) or not hasattr(x, "source"):
        return x[torch.from_numpy(positions)]
    return type(x)(x.source.subset(positions), workers=x.workers, strict=x.strict)


def _index(plans: list, detector: Detector) -> int:
    return next(i for i, plan in enumerate(plans) if plan[0] is detector)


def _gather(
    positions: np.ndarray, fresh: dict[int, np.ndarray], correct: int | None
) -> tuple[dict[int, np.ndarray], int | None, int]:
    """Every rank's scores put back in image order (by position), the correct count summed."""
    import torch.distributed as dist

    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (positions, fresh, correct))
    order = np.argsort(np.concatenate([p[0] for p in parts]), kind="stable")
    merged = {i: np.concatenate([p[1][i] for p in parts])[order] for i in fresh}
    total = None if correct is None else sum(p[2] for p in parts)
    return merged, total, len(order)
