"""evaluate(model, detectors, suite) -> result rows + stored raw scores.

Work is shared, not repeated:
- one forward pass over each data set feeds every logit- or feature-based detector
  (`uses = "logits"` / `"features"`); only gradient-based ones (ODIN, Mahalanobis with input
  pre-processing) run the model again;
- raw scores are cached as NPZ under a key of (checkpoint hash, data fingerprint, detector and
  its parameters, the fit/tuning data's fingerprint), so a re-run recomputes nothing.
Hyperparameters are tuned only on the suite's validation split, never on a test set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from oodbench import metrics, paths
from oodbench.detectors import create_detector
from oodbench.detectors.base import Detector, ForwardOutputs, collect_outputs
from oodbench.results import (
    ROWS_FILENAME,
    SCORES_IN,
    SCORES_OUT,
    ResultRow,
    append_rows,
    default_scores_file,
    load_scores,
    save_scores,
    write_rows,
)

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
    """A classifier and where it came from."""

    source: str  # "cross_entropy" | "confidence" | "joint" | "checkpoint"
    model: nn.Module
    checkpoint_sha256: str
    arch: str
    recipe: str


def fingerprint(x: torch.Tensor) -> str:
    """A short content hash of a tensor (data set identity for the score cache)."""
    digest = hashlib.sha1(x.detach().cpu().contiguous().numpy().tobytes())
    digest.update(str(tuple(x.shape)).encode())
    return digest.hexdigest()[:16]


class _OutputsMemo:
    """Forward outputs per data set, computed at most once per model in one evaluate() call."""

    def __init__(self, model: nn.Module, device, batch_size: int) -> None:
        self.model, self.device, self.batch_size = model, device, batch_size
        self._memo: dict[str, ForwardOutputs] = {}

    def get(self, name: str, x: torch.Tensor) -> ForwardOutputs:
        # Features come from the same pass as the logits (model.features then model.head).
        cached = self._memo.get(name)
        if cached is None:
            cached = collect_outputs(
                self.model, x, device=self.device, batch_size=self.batch_size, with_features=True
            )
            self._memo[name] = cached
        return cached


def _score(detector: Detector, model_ut: ModelUnderTest, memo: _OutputsMemo, name: str, x) -> np.ndarray:
    if detector.uses in ("logits", "features"):
        try:
            return detector.score_outputs(memo.get(name, x))
        except NotImplementedError:
            pass  # e.g. Mahalanobis with input pre-processing needs the model itself
    return detector.score(model_ut.model, x, device=memo.device, batch_size=memo.batch_size)


def evaluate(
    model_ut: ModelUnderTest,
    detectors: Sequence[DetectorRequest],
    data,
    *,
    seed: int,
    device: torch.device | str,
    results_dir: Path,
    cache_dir: Path | None = None,
    batch_size: int = 256,
    legacy: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[ResultRow]:
    """Score every detector on the suite's ID test set and each OOD test set.

    `data` is a SuiteData (oodbench.data). Returns one ResultRow per (detector, OOD set);
    raw scores go to `results_dir/scores/...npz` (arrays "scores_in", "scores_out").
    """
    model = model_ut.model.to(device).eval()
    memo = _OutputsMemo(model, device, batch_size)
    score_cache = paths.cache_dir(cache_dir) / "scores" / model_ut.checkpoint_sha256[:16]
    sets = {"in": data.test_in.x, **{f"out:{n}": s.x for n, s in data.test_out.items()}}
    prints = {name: fingerprint(x) for name, x in sets.items()}
    fit_print = fingerprint(data.train.x) + fingerprint(data.val_in.x) + fingerprint(data.val_ood.x)

    accuracy_file = score_cache / "classification" / f"{prints['in']}.npz"
    if accuracy_file.exists():
        accuracy = float(load_scores(accuracy_file)["accuracy"])
    else:
        predicted = memo.get("in", data.test_in.x).logits.argmax(1)
        accuracy = float((predicted == data.test_in.y).double().mean())
        save_scores(accuracy_file, accuracy=np.array(accuracy))

    rows: list[ResultRow] = []
    suite = data.suite
    tuning_data = (
        f"validation split: {suite.in_dataset} val ({len(data.val_in.x)})"
        f" + {suite.val_ood} ({len(data.val_ood.x)})"
    )
    for request in detectors:
        detector = create_detector(request.name, **request.params)
        detector.validate()
        key = hashlib.sha1((request.key() + fit_print).encode()).hexdigest()[:16]
        cache_files = {name: score_cache / request.name / key / f"{prints[name]}.npz" for name in sets}
        cached = {name: load_scores(path) for name, path in cache_files.items() if path.exists()}
        if len(cached) < len(sets) or not cache_files["in"].exists():
            if progress:
                progress(f"{model_ut.source}: fitting and scoring {request.name}")
            detector.fit(
                model,
                train=data.train,
                val_in=data.val_in.x,
                val_out=data.val_ood.x,
                device=device,
                batch_size=batch_size,
            )
            meta = {"params": detector.params(), "tuned": detector.tuned_on_validation()}
            for name, x in sets.items():
                if name in cached:
                    continue
                scores = _score(detector, model_ut, memo, name, x)
                save_scores(cache_files[name], scores=scores, meta=np.array(json.dumps(meta)))
                cached[name] = {"scores": scores, "meta": np.array(json.dumps(meta))}
        meta = json.loads(str(cached["in"]["meta"]))
        s_in = cached["in"]["scores"]
        for out_name in data.test_out:
            s_out = cached[f"out:{out_name}"]["scores"]
            row = ResultRow(
                suite=suite.name,
                in_dataset=suite.in_dataset,
                out_dataset=out_name,
                model_source=model_ut.source,
                model_arch=model_ut.arch,
                training_recipe=model_ut.recipe,
                detector=request.name,
                seed=seed,
                **metrics.compute(s_in, s_out, legacy=legacy),
                metrics_convention="legacy" if legacy else "exact",
                classification_accuracy=accuracy,
                n_in=len(s_in),
                n_out=len(s_out),
                detector_params=meta["params"],
                tuning=tuning_data if meta["tuned"] else "none",
                checkpoint_sha256=model_ut.checkpoint_sha256,
                device=str(device),
            )
            row.scores_file = default_scores_file(row)
            save_scores(results_dir / row.scores_file, **{SCORES_IN: s_in, SCORES_OUT: s_out})
            rows.append(row)
    return rows


# Paper shorthands: `--detector joint` is the joint-trained model scored by max-softmax.
SHORTHAND_DETECTORS: dict[str, tuple[str, str]] = {
    "joint": ("joint", "msp"),
    "confidence": ("confidence", "msp"),
    "baseline": ("cross_entropy", "msp"),
}
TRAINED_SOURCES = ("cross_entropy", "confidence", "joint")


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
    detectors: Sequence[DetectorRequest],
    seeds: Sequence[int],
    checkpoint: Path | None = None,
    extra_out: Sequence[str] = (),
    recipe: str | None = None,
    limit: int | None = None,
    device: torch.device | str = "cpu",
    data_dir: Path | None = None,
    download: bool = False,
    cache_dir: Path | None = None,
    results_dir: Path,
    batch_size: int = 256,
    legacy: bool = False,
    progress: bool = True,
    train_overrides: dict[str, Any] | None = None,
    rows_file: Path | None = None,
) -> list[ResultRow]:
    """Train (or reuse) each model per seed, evaluate every detector, append rows to rows.jsonl.

    `models` are model sources ("cross_entropy", "confidence", "joint"); with `checkpoint` the
    given checkpoint is the only model (source "checkpoint"). `extra_out` adds custom OOD sets
    ("folder:PATH" or "npz:PATH"), converted to the in-distribution shape. `train_overrides`
    (e.g. {"epochs": 1}) go to `ensure_model(overrides=...)`, which keys the checkpoint by them.
    `rows_file`: write all rows there in one atomic step at the end (a sweep job's shard)
    instead of appending them to `results_dir/rows.jsonl` model by model.
    """
    from oodbench.data import load_custom_out, load_suite
    from oodbench.training import ensure_model, load_classifier

    data = load_suite(suite_name, data_dir=data_dir, download=download, limit=limit)
    for spec in extra_out:
        custom = load_custom_out(spec, shape=data.spec.image_shape)
        data.test_out[custom.name] = custom
    # Progress lines go through tqdm so they do not break the training progress bars.
    say = (lambda message: tqdm.write(message, file=sys.stderr)) if progress else None
    rows: list[ResultRow] = []
    for seed in seeds:
        sources = [("checkpoint", checkpoint)] if checkpoint else [(m, None) for m in models]
        for source, path in sources:
            if path is None:
                path = ensure_model(
                    source,
                    suite_name,
                    seed=seed,
                    recipe=recipe,
                    device=device,
                    cache_dir=cache_dir,
                    data_dir=data_dir,
                    progress=progress,
                    overrides=train_overrides,
                )
            model, meta = load_classifier(
                path,
                device=device,
                expect_dataset=data.suite.in_dataset,
                expect_shape=tuple(data.spec.image_shape),
            )
            model_ut = ModelUnderTest(
                source=source,
                model=model,
                checkpoint_sha256=meta["sha256"],
                arch=meta["config"]["arch"],
                recipe=meta["config"].get("recipe", "unknown"),
            )
            new_rows = evaluate(
                model_ut,
                detectors,
                data,
                seed=seed,
                device=device,
                results_dir=results_dir,
                cache_dir=cache_dir,
                batch_size=batch_size,
                legacy=legacy,
                progress=say,
            )
            if rows_file is None:
                append_rows(results_dir / ROWS_FILENAME, new_rows)
            rows += new_rows
    if rows_file is not None:
        write_rows(rows_file, rows)
    return rows
