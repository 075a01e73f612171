"""Sweeps: a grid of independent jobs, one per (suite, model source, seed), on any executor.

    from oodbench.sweep import expand_jobs, run_sweep
    jobs = expand_jobs(["mnist"], models=["cross_entropy", "joint"], seeds=[0, 1],
                       detectors=["msp", "energy"], train_overrides={"epochs": 2})
    outcomes = run_sweep(jobs, executor="local", workers=2)   # or "ray", or "slurm"

Modules: plan (device, threads per job and writable folders, decided before any job), jobs
(Job, expand_jobs, run_job: the one job function), executors (local processes,
Ray, Slurm via submitit). Rows go to one shard per job (oodbench.store); `oodbench report`
reads the whole results folder. Importing this package does not import torch, Ray or submitit.
"""

from oodbench.sweep.executors import (
    EXECUTORS,
    JobOutcome,
    check_executor,
    parse_time,
    run_sweep,
    threads_per_job,
)
from oodbench.sweep.jobs import Job, expand_jobs, run_job
from oodbench.sweep.plan import SweepRuntime, check_executor_options, sweep_runtime

__all__ = [
    "EXECUTORS",
    "Job",
    "JobOutcome",
    "SweepRuntime",
    "check_executor_options",
    "check_executor",
    "expand_jobs",
    "parse_time",
    "run_job",
    "run_sweep",
    "sweep_runtime",
    "threads_per_job",
]
