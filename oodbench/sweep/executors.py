"""Executors: run a list of sweep jobs here, in local processes, on Ray, or on Slurm (submitit).

Every executor runs the same plain function, `oodbench.sweep.jobs.run_job(job)`:
- local, 1 worker: in this process, one job after another;
- local, N workers: `ProcessPoolExecutor` with the spawn context (a fresh interpreter per
  worker: no forked torch thread pools or locks); workers die with the sweep process, even
  one killed with SIGKILL (`die_with_parent`), so no orphan keeps running a job;
- ray: `ray.remote(run_job).options(num_cpus=threads, num_gpus=1 on CUDA).remote(job)`
  (as in Ray's task API); connects to `address` ("auto" or host:port) or starts a local cluster;
- slurm: `submitit.AutoExecutor(folder).map_array(run_job, jobs)`, one Slurm job array.
Ray and submitit are optional extras, imported only inside their executor.

A job's failure is reported as that job's outcome; the other jobs go on. Jobs that are done
(shard matching its recorded digest) are not even submitted ("skipped"). Each executor calls
`on_result(outcome)` as each job ends, so the CLI can print progress (nothing here prints).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oodbench.errors import UserInputError, one_line
from oodbench.sweep.jobs import Job, run_job

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "ray", "slurm")


@dataclass(frozen=True)
class JobOutcome:
    """How one job ended: status "done", "skipped" or "failed" (with a one-line error)."""

    job_id: str
    status: str
    seconds: float = 0.0
    n_rows: int = 0
    error: str = ""


OnResult = Callable[[JobOutcome], None]


def _failed(job: Job, started: float, error: BaseException) -> JobOutcome:
    return JobOutcome(job.job_id, "failed", time.perf_counter() - started, 0, one_line(error, with_type=True))


def _from_summary(summary: dict[str, Any]) -> JobOutcome:
    return JobOutcome(
        job_id=summary["job_id"],
        status=summary["status"],
        seconds=float(summary.get("seconds", 0.0)),
        n_rows=int(summary.get("n_rows", 0)),
    )


def available_cpus() -> int:
    """CPUs this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_job(workers: int, cpus: int | None = None) -> int:
    """Torch threads for each of `workers` concurrent jobs: CPUs // workers, at least 1."""
    return max(1, (cpus or available_cpus()) // max(1, workers))


def check_executor(executor: str, *, cluster: str | None = None) -> None:
    """Fail now, in one line, when `executor` cannot run here (extra not installed, no Slurm)."""
    if executor not in EXECUTORS:
        raise UserInputError(f"Unknown executor {executor!r}. Available: {', '.join(EXECUTORS)}.")
    if executor == "ray":
        _import_ray()
    elif executor == "slurm":
        _slurm_cluster(_import_submitit(), cluster)


def run_sweep(
    jobs: Sequence[Job],
    *,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    slurm_folder: str | os.PathLike | None = None,
    partition: str | None = None,
    time_min: int | None = None,
    gpus_per_job: int | None = None,
    cluster: str | None = None,
    on_result: OnResult | None = None,
) -> list[JobOutcome]:
    """Run the jobs that are not done yet on `executor`; one outcome per job, in job order."""
    check_executor(executor, cluster=cluster)
    report = on_result or (lambda outcome: None)
    outcomes: dict[str, JobOutcome] = {}
    todo = []
    for job in jobs:
        if job.is_done():
            outcomes[job.job_id] = JobOutcome(job.job_id, "skipped")
            report(outcomes[job.job_id])
        else:
            todo.append(job)

    def collect(outcome: JobOutcome) -> None:
        outcomes[outcome.job_id] = outcome
        report(outcome)

    if todo:
        if executor == "local":
            run_local(todo, workers=workers, on_result=collect)
        elif executor == "ray":
            run_ray(todo, address=address, on_result=collect)
        else:
            run_slurm(
                todo,
                folder=slurm_folder or Path(todo[0].results_dir) / "slurm",
                partition=partition,
                time_min=time_min,
                gpus_per_job=gpus_per_job,
                cluster=cluster,
                on_result=collect,
            )
    return [outcomes[job.job_id] for job in jobs]


# --- local -----------------------------------------------------------------------------------


def run_local(jobs: Sequence[Job], *, workers: int = 1, on_result: OnResult) -> None:
    """Run jobs in this process (workers=1) or in `workers` spawned processes."""
    if workers < 1:
        raise UserInputError(f"--workers must be >= 1. Got {workers}.")
    if workers == 1:
        for job in jobs:
            started = time.perf_counter()
            try:
                on_result(_from_summary(run_job(job)))
            except Exception as error:  # noqa: BLE001 - one job's failure must not stop the rest
                logger.warning("job %s failed", job.job_id, exc_info=True)
                on_result(_failed(job, started, error))
        return

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=context,
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                on_result(_from_summary(future.result()))
            except Exception as error:  # noqa: BLE001 - includes a worker killed (BrokenProcessPool)
                logger.warning("job %s failed: %s", job.job_id, error)
                on_result(_failed(job, started, error))


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCHDOG_INTERVAL_S = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this process as soon as the sweep process `parent_pid` ends.

    A killed parent (SIGKILL runs no cleanup) otherwise leaves its workers running their jobs
    to the end, holding memory, and racing a re-run of the sweep. On Linux the kernel sends
    SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG); everywhere a daemon thread checks
    the parent pid every second (an orphan is re-parented, so getppid changes).
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            # os._exit: no cleanup handlers, which could block on the dead parent's pipes.
            os._exit(1)
        time.sleep(WATCHDOG_INTERVAL_S)


# --- Ray -------------------------------------------------------------------------------------


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserInputError('The Ray executor needs Ray: pip install "oodbench[ray]"') from None
    return ray


def run_ray(jobs: Sequence[Job], *, address: str | None = None, on_result: OnResult) -> None:
    """One Ray task per job; each asks for `job.torch_threads` CPUs and, on CUDA, one GPU.

    Uses the Ray session already open in this process if there is one; otherwise connects to
    `address` ("auto" = the running cluster on this machine) or starts a local cluster, and
    disconnects (and stops a cluster it started) at the end. device "auto" means CUDA when the
    cluster has GPUs. On a remote cluster oodbench must be installed on every node.
    """
    ray = _import_ray()
    opened = not ray.is_initialized()
    if opened:
        init_args: dict[str, Any] = {"include_dashboard": False}
        if address:
            init_args["address"] = address
        else:
            # Workers of a local cluster import oodbench from wherever this process does.
            init_args["runtime_env"] = {"env_vars": _python_path_env()}
        ray.init(**init_args)
    try:
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        if opened and not address and not has_gpus and any(j.device.startswith("cuda") for j in jobs):
            # A local cluster cannot gain GPUs later: its tasks would wait forever.
            raise UserInputError(
                "--device cuda, but this machine's Ray cluster has no GPU; use --device cpu."
            )
        task = ray.remote(run_job)
        pending = {}
        for job in jobs:
            cuda = job.device.startswith("cuda") or (job.device == "auto" and has_gpus)
            ref = task.options(num_cpus=job.torch_threads, num_gpus=1 if cuda else 0).remote(job)
            pending[ref] = (job, time.perf_counter())
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job, started = pending.pop(done[0])
            try:
                on_result(_from_summary(ray.get(done[0])))
            except Exception as error:  # noqa: BLE001 - RayTaskError wraps the job's exception
                cause = getattr(error, "cause", None) or error
                logger.warning("job %s failed: %s", job.job_id, error)
                on_result(_failed(job, started, cause))
    finally:
        if opened:
            ray.shutdown()


def _python_path_env() -> dict[str, str]:
    """PYTHONPATH for worker processes: this process's, led by the folder oodbench is imported from."""
    import oodbench

    root = str(Path(oodbench.__file__).resolve().parent.parent)
    parts = [root, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]]
    return {"PYTHONPATH": os.pathsep.join(parts)}


# --- Slurm (submitit) ------------------------------------------------------------------------


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise UserInputError('The Slurm executor needs submitit: pip install "oodbench[slurm]"') from None
    return submitit


def run_slurm(
    jobs: Sequence[Job],
    *,
    folder: str | os.PathLike,
    partition: str | None = None,
    time_min: int | None = None,
    gpus_per_job: int | None = None,
    cluster: str | None = None,
    on_result: OnResult,
) -> None:
    """Submit the jobs as one Slurm job array (submitit `map_array`) and wait for them.

    Each array task gets `job.torch_threads` CPUs and `gpus_per_job` GPUs (default: 1 when the
    job's device is CUDA, else 0). Logs and pickles go to `folder`. `cluster`: None = Slurm
    (refused when this machine has no Slurm); "local" runs the same array with submitit's
    local executor (tests, a laptop).
    """
    submitit = _import_submitit()
    cluster = _slurm_cluster(submitit, cluster)
    executor = submitit.AutoExecutor(folder=Path(folder), cluster=cluster)
    cuda = any(job.device.startswith("cuda") for job in jobs)
    parameters: dict[str, Any] = {
        "name": "oodbench-sweep",
        "cpus_per_task": max(job.torch_threads for job in jobs),
        "gpus_per_node": gpus_per_job if gpus_per_job is not None else (1 if cuda else 0),
        "tasks_per_node": 1,
    }
    if time_min is not None:
        parameters["timeout_min"] = time_min
    if partition:
        parameters["slurm_partition"] = partition
    executor.update_parameters(**parameters)
    submitted = executor.map_array(run_job, list(jobs))
    logger.info("submitted %d job(s) as %s array %s", len(submitted), cluster, submitted[0].job_id)
    started = time.perf_counter()
    for job, handle in zip(jobs, submitted, strict=True):
        try:
            on_result(_from_summary(handle.result()))
        except Exception as error:  # noqa: BLE001 - a failed task raises submitit's FailedJobError
            logger.warning("job %s failed: %s", job.job_id, error)
            on_result(_failed(job, started, error))


def _slurm_cluster(submitit, cluster: str | None) -> str:
    """submitit's cluster name: `cluster` if given, else "slurm", refused where there is none."""
    if cluster is None:
        if submitit.AutoExecutor.which() != "slurm":
            raise UserInputError(
                "No Slurm found here (srun is not on PATH); run the sweep on a Slurm login node, "
                "or use --executor local."
            )
        cluster = "slurm"
    return cluster


def parse_time(text: str) -> int:
    """A Slurm time limit in whole minutes (seconds round up).

    As `sbatch --time`: "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS".
    """
    days_text, dash, rest = text.strip().partition("-")
    if not dash:
        days_text, rest = "0", days_text
    try:
        days, parts = int(days_text), [int(p) for p in rest.split(":")]
        if any(p < 0 for p in parts) or days < 0 or not 1 <= len(parts) <= 3:
            raise ValueError(text)
        if dash:  # after a day count the first field is hours
            hours, minutes, seconds = (parts + [0, 0])[:3]
        elif len(parts) == 3:
            hours, minutes, seconds = parts
        else:
            hours, (minutes, seconds) = 0, (parts + [0])[:2]
        total = days * 24 * 60 + hours * 60 + minutes + (1 if seconds > 0 else 0)
    except ValueError:
        total = 0
    if total < 1:
        raise UserInputError(
            f"--time takes a Slurm time limit such as 90 (minutes), 1:30:00 or 2-00:00:00. Got {text!r}."
        )
    return total


__all__ = [
    "EXECUTORS",
    "JobOutcome",
    "check_executor",
    "available_cpus",
    "die_with_parent",
    "parse_time",
    "run_local",
    "run_ray",
    "run_slurm",
    "run_sweep",
    "threads_per_job",
]
