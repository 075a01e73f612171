"""Sweep jobs: one independent job per (suite, model source, seed), and the function that runs one.

A job trains its model unless the checkpoint is cached (an unfinished checkpoint of the same
config is resumed from its last epoch, see `oodbench.training.ensure_model`), then scores every
detector on every OOD set through the same library call as `oodbench run`:
`oodbench.runner.run_suite(suite, models=[model], seeds=[seed], ...)`. Only the process that
holds the job's lock runs it (a second sweep of the same job waits, then finds it done); its
rows go to its own shard, <results>/rows/<job-id>.jsonl, written whole in one atomic step at
the end, then the job meta with the shard's sha256. A re-run skips a job whose shard matches
that digest and redoes any other (oodbench.store.shard_state), so rows are never lost or doubled.

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
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oodbench import paths, store
from oodbench.errors import UserInputError
from oodbench.options import RunOptions

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

    def state(self) -> str:
        """The job's state: "done", "missing" or "damaged: <why>" (oodbench.store.shard_state)."""
        return store.shard_state(self.results_dir, self.job_id)

    def is_done(self) -> bool:
        """True when the job's shard exists and matches the digest in its job meta."""
        return self.state() == "done"

    def run_options(self, device: Any) -> RunOptions:
        """The options `runner.run_suite` runs this job with (on `device`, resolved where it runs)."""
        return RunOptions(
            suite=self.suite,
            recipe=self.recipe,
            train_overrides=self.train_overrides,
            limit=self.limit,
            legacy=self.legacy,
            batch_size=self.batch_size,
            device=device,
            data_dir=Path(self.data_dir),
            cache_dir=Path(self.cache_dir),
            results_dir=Path(self.results_dir),
            progress=False,
        )

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
    options: RunOptions | None = None,
    torch_threads: int = 1,
    detector_params: dict[str, dict[str, Any]] | None = None,
    **fields: Any,
) -> list[Job]:
    """The jobs of a sweep, one per (suite, model source, seed), in that order.

    `options` (or its fields as keywords; `detector_params` is its `params`, the device
    defaults to "cpu") say what every job runs: models, detectors, params, seeds, recipe,
    train_overrides, limit, legacy, batch_size, device and the folders. Selection as in
    `oodbench run`: `detectors` may hold the paper shorthands (joint, confidence, baseline); no
    detector = every registered one; no model = every trained source; no seeds = the recipe's
    seed. Every option is checked here (detector hyperparameters, training overrides per
    model), so a mistake fails before any job starts.
    """
    from oodbench.api import detector_requests
    from oodbench.data import SUITES
    from oodbench.detectors import builtin_detectors
    from oodbench.runner import TRAINED_SOURCES, expand_shorthands
    from oodbench.training.plan import plan_training
    from oodbench.training.recipes import RECIPES

    if options is None:
        fields.setdefault("device", "cpu")
        options = RunOptions(params=detector_params or {}, **fields)
    elif detector_params is not None or fields:
        raise TypeError("give either options or keyword options, not both")
    if options.convention == "openood":
        raise UserInputError("Sweeps do not take the openood metric convention yet; use oodbench run.")
    models, detectors, seeds, recipe = options.models, options.detectors, options.seeds, options.recipe
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
    detector_params = dict(options.params)
    names, sources = expand_shorthands(list(detectors), list(models))
    names = names or builtin_detectors()
    detector_requests(names, detector_params)  # names, --param and hyperparameters fail now, as in run
    # A file plug-in's path is made absolute: jobs may run in another folder (Ray, Slurm).
    requests = tuple((_absolute_spec(name), dict(detector_params.get(name, {}))) for name in names)
    overrides = {k: v for k, v in (options.train_overrides or {}).items() if v is not None}
    folders = {
        "results_dir": str(paths.results_dir(options.results_dir).resolve()),
        "cache_dir": str(paths.cache_dir(options.cache_dir).resolve()),
        "data_dir": str(paths.data_dir(options.data_dir).resolve()),
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
                        limit=options.limit,
                        legacy=options.legacy,
                        batch_size=options.batch_size,
                        device=str(options.device),
                        torch_threads=torch_threads,
                        **folders,
                    )
                )
    return jobs


def _absolute_spec(name: str) -> str:
    """`path/to/file.py:Class` with an absolute path; any other detector name unchanged."""
    path, colon, cls = name.rpartition(":")
    if colon and path.endswith(".py"):
        return f"{Path(path).resolve()}:{cls}"
    return name


def run_job(job: Job) -> dict[str, Any]:
    """Run one job (train if needed, evaluate, write its shard); skip it if it is done.

    The job runs under its lock (oodbench.store.job_lock): a second process with the same job
    waits, then finds it done and skips it. The shard is written whole (replacing a damaged one,
    never appending), then the job meta with the shard's sha256, the job's completion marker.
    Sets torch's thread count to `job.torch_threads` for the job's duration (restored after, for
    the case where it runs in the caller's own process). Returns a summary: job_id, status
    ("done" or "skipped"), n_rows, seconds, torch_threads, device.
    """
    summary = {"job_id": job.job_id, "torch_threads": job.torch_threads, "device": job.device}
    skipped = summary | {"status": "skipped", "n_rows": 0, "seconds": 0.0}
    if job.is_done():
        logger.info("job %s: shard %s is complete; skipped", job.job_id, job.shard)
        return skipped

    def waiting() -> None:
        logger.warning("job %s is running in another process; waiting for it to end", job.job_id)

    with store.job_lock(job.results_dir, job.job_id, on_wait=waiting):
        state = job.state()
        if state == "done":  # another sweep finished it while this one waited
            logger.info("job %s: done by another process; skipped", job.job_id)
            return skipped
        if state != "missing":
            logger.warning("job %s: shard %s is %s; running the job again", job.job_id, job.shard, state)
        return summary | _run_locked(job)


def _run_locked(job: Job) -> dict[str, Any]:
    """Run a job whose lock this process holds; write its shard, then its meta."""
    import torch

    from oodbench.api import detector_requests
    from oodbench.devices import resolve_device
    from oodbench.results import write_rows
    from oodbench.runner import run_suite

    started = time.perf_counter()
    # run_suite appends its rows to a file as it goes; the job writes its shard itself, whole,
    # at the end, so that file is a private scratch file (outside the results: no lock files left).
    scratch_dir = tempfile.TemporaryDirectory(prefix="oodbench-job-")
    scratch = Path(scratch_dir.name) / "rows.jsonl"
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(job.torch_threads)
    try:
        device = resolve_device(job.device)
        # As in `oodbench run`: plug-ins become Detector objects (their score-cache key names their code).
        requests = detector_requests([name for name, _ in job.detectors], dict(job.detectors))
        rows = run_suite(
            job.suite,
            models=[job.model],
            seeds=[job.seed],
            detectors=requests,
            options=job.run_options(device),
            rows_file=scratch,
        )
    finally:
        torch.set_num_threads(previous_threads)
        scratch_dir.cleanup()
    digest = write_rows(job.shard, rows)
    seconds = time.perf_counter() - started
    summary = {"status": "done", "n_rows": len(rows), "seconds": round(seconds, 3), "device": str(device)}
    store.write_job_meta(
        job.results_dir,
        job.job_id,
        {
            "job": dataclasses.asdict(job),
            "host": platform.node(),
            "pid": os.getpid(),
            "job_id": job.job_id,
            "torch_threads": job.torch_threads,
            "shard_sha256": digest,
            **summary,
        },
    )
    logger.info("job %s: %d rows in %.1f s", job.job_id, len(rows), seconds)
    return summary


__all__ = ["Job", "expand_jobs", "overrides_for", "run_job"]
