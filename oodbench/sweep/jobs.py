"""Sweep jobs: one independent job per (suite, model source, seed), and the function that runs one.

A job trains its model unless the checkpoint is cached (an unfinished checkpoint of the same
config is resumed from its last epoch, see `oodbench.training.ensure_model`), then scores every
detector on every OOD set through the same library call as `oodbench run`:
`oodbench.runner.run_suite(suite, models=[model], seeds=[seed], ...)`. Its rows go to its own
shard, <results>/rows/<job-id>.jsonl, written in one atomic step at the end, so a shard that
exists means the job is done and a re-run skips it (oodbench.store).

`run_job` is a plain module-level function of one picklable `Job` (plain types only), so every
executor runs the very same function: in this process, in spawned processes, as a Ray task or as
a Slurm array task (oodbench.sweep.executors).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oodbench import paths, store
from oodbench.errors import UserInputError

logger = logging.getLogger(__name__)

# Training overrides that only some methods accept (oodbench.training.recipes.resolve_config
# refuses them elsewhere). A sweep over several models applies each where it has a meaning.
_OVERRIDE_METHODS = {"beta": ("confidence", "joint"), "gan_warmup_epochs": ("joint",)}


@dataclass(frozen=True)
class Job:
    """Everything one job needs, as plain values (picklable, JSON-able), paths absolute.

    `torch_threads` and `device` say how the job runs, not what it computes, so they are not
    part of `job_id` (a sweep re-run with other workers still finds its finished jobs).
    """

    suite: str
    model: str
    seed: int
    detectors: tuple[tuple[str, dict[str, Any]], ...]
    recipe: str
    train_overrides: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    legacy: bool = False
    batch_size: int = 256
    device: str = "cpu"
    torch_threads: int = 1
    results_dir: str = ""
    cache_dir: str = ""
    data_dir: str = ""

    @property
    def job_id(self) -> str:
        """<suite>-<model>-seed<seed>-<8 hex digits of what the job computes>."""
        identity = {
            "suite": self.suite,
            "model": self.model,
            "seed": self.seed,
            "detectors": [[name, params] for name, params in self.detectors],
            "recipe": self.recipe,
            "train_overrides": self.train_overrides,
            "limit": self.limit,
            "legacy": self.legacy,
        }
        digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
        return store.check_job_id(f"{self.suite}-{self.model}-seed{self.seed}-{digest}")

    @property
    def shard(self) -> Path:
        return store.shard_path(self.results_dir, self.job_id)

    def is_done(self) -> bool:
        """True when the job's shard exists (it is written whole, so it is complete)."""
        return self.shard.is_file()

    def describe(self) -> str:
        """One line: the job id and what it runs."""
        overrides = ", ".join(f"{k}={v}" for k, v in sorted(self.train_overrides.items()))
        return (
            f"{self.job_id}  suite {self.suite}, model {self.model}, seed {self.seed}, "
            f"recipe {self.recipe}{f' ({overrides})' if overrides else ''}, "
            f"{len(self.detectors)} detector(s), device {self.device}, {self.torch_threads} thread(s)"
        )


def overrides_for(model: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The training overrides that apply to `model` (beta: confidence/joint; gan_warmup_epochs: joint)."""
    return {
        key: value
        for key, value in sorted(overrides.items())
        if value is not None and model in _OVERRIDE_METHODS.get(key, (model,))
    }


def expand_jobs(
    suites: Sequence[str],
    *,
    models: Sequence[str] = (),
    detectors: Sequence[str] = (),
    detector_params: dict[str, dict[str, Any]] | None = None,
    seeds: Sequence[int] | None = None,
    recipe: str | None = None,
    train_overrides: dict[str, Any] | None = None,
    limit: int | None = None,
    legacy: bool = False,
    batch_size: int = 256,
    device: str = "cpu",
    torch_threads: int = 1,
    results_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> list[Job]:
    """The jobs of a sweep, one per (suite, model source, seed), in that order.

    Selection as in `oodbench run`: `detectors` may hold the paper shorthands (joint, confidence,
    baseline); no detector = every registered one; no model = every trained source; no seeds =
    the recipe's seed. Every option is checked here (detector hyperparameters, training
    overrides per model), so a mistake fails before any job starts.
    """
    from oodbench.api import detector_requests
    from oodbench.data import SUITES
    from oodbench.detectors import builtin_detectors
    from oodbench.runner import TRAINED_SOURCES, expand_shorthands
    from oodbench.training.recipes import RECIPES, plan_training

    if not suites:
        raise ValueError("expand_jobs needs at least one suite")
    if torch_threads < 1:
        raise UserInputError(f"Torch threads per job must be >= 1. Got {torch_threads}.")
    for model in models:
        if model not in TRAINED_SOURCES:
            close = difflib.get_close_matches(model, TRAINED_SOURCES, n=1)
            hint = f" Did you mean: {close[0]}?" if close else ""
            raise UserInputError(
                f"Unknown model source {model!r}.{hint} Available: {', '.join(TRAINED_SOURCES)}."
            )
    detector_params = detector_params or {}
    names, sources = expand_shorthands(list(detectors), list(models))
    names = names or builtin_detectors()
    detector_requests(names, detector_params)  # names, --param and hyperparameters fail now, as in run
    requests = tuple((name, dict(detector_params.get(name, {}))) for name in names)
    overrides = {k: v for k, v in (train_overrides or {}).items() if v is not None}
    folders = {
        "results_dir": str(paths.results_dir(results_dir).resolve()),
        "cache_dir": str(paths.cache_dir(cache_dir).resolve()),
        "data_dir": str(paths.data_dir(data_dir).resolve()),
    }
    jobs: list[Job] = []
    for suite_name in dict.fromkeys(suites):
        recipe_obj = RECIPES.get(recipe or SUITES.get(suite_name).recipe)
        for model in sources:
            own = overrides_for(model, overrides)
            for seed in dict.fromkeys(seeds if seeds else [recipe_obj.seed]):
                # The config this job would train: refuses bad overrides now (e.g. warm-up >= epochs).
                plan_training(model, suite_name, recipe=recipe_obj.name, seed=seed, overrides=own)
                jobs.append(
                    Job(
                        suite=suite_name,
                        model=model,
                        seed=int(seed),
                        detectors=requests,
                        recipe=recipe_obj.name,
                        train_overrides=own,
                        limit=limit,
                        legacy=legacy,
                        batch_size=batch_size,
                        device=device,
                        torch_threads=torch_threads,
                        **folders,
                    )
                )
    return jobs


def run_job(job: Job) -> dict[str, Any]:
    """Run one job (train if needed, evaluate, write its shard); skip it if its shard exists.

    Sets torch's thread count to `job.torch_threads` for the job's duration (restored after, for
    the case where it runs in the caller's own process). Returns a summary: job_id, status
    ("done" or "skipped"), n_rows, seconds, torch_threads, device.
    """
    summary = {"job_id": job.job_id, "torch_threads": job.torch_threads, "device": job.device}
    if job.is_done():
        logger.info("job %s: shard %s exists; skipped", job.job_id, job.shard)
        return summary | {"status": "skipped", "n_rows": 0, "seconds": 0.0}

    import torch

    from oodbench.devices import resolve_device
    from oodbench.runner import DetectorRequest, run_suite

    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(job.torch_threads)
    try:
        device = resolve_device(job.device)
        rows = run_suite(
            job.suite,
            models=[job.model],
            seeds=[job.seed],
            detectors=[DetectorRequest(name, dict(params)) for name, params in job.detectors],
            recipe=job.recipe,
            limit=job.limit,
            device=device,
            data_dir=Path(job.data_dir),
            cache_dir=Path(job.cache_dir),
            results_dir=Path(job.results_dir),
            batch_size=job.batch_size,
            legacy=job.legacy,
            progress=False,
            train_overrides=job.train_overrides or None,
            rows_file=job.shard,
        )
    finally:
        torch.set_num_threads(previous_threads)
    seconds = time.perf_counter() - started
    summary |= {"status": "done", "n_rows": len(rows), "seconds": round(seconds, 3), "device": str(device)}
    store.write_job_meta(
        job.results_dir,
        job.job_id,
        {"job": dataclasses.asdict(job), "host": platform.node(), "pid": os.getpid(), **summary},
    )
    logger.info("job %s: %d rows in %.1f s", job.job_id, len(rows), seconds)
    return summary


__all__ = ["Job", "expand_jobs", "overrides_for", "run_job"]
