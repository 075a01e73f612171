"""How a sweep runs here, decided once before any job: executor options, device, torch threads
per job, and folders that must be writable. Library callers of the sweep get the same
decisions as `oodbench sweep`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oodbench import paths
from oodbench.errors import UserInputError
from oodbench.sweep.executors import threads_per_job

# Options that only one executor understands.
_EXECUTOR_OPTIONS = (
    ("--address", "address", "ray"),
    ("--partition", "partition", "slurm"),
    ("--time", "time_limit", "slurm"),
    ("--gpus-per-job", "gpus_per_job", "slurm"),
)


@dataclass(frozen=True)
class SweepRuntime:
    """Where and how the jobs of a sweep run."""

    device: str  # "auto" decided here for the local executor; else as given (checked where jobs run)
    torch_threads: int  # per job
    results_dir: Path
    cache_dir: Path


def check_executor_options(executor: str, workers: int, **given: object) -> None:
    """Refuse, in one line, an option meant for another executor (`given`: address, partition,
    time_limit, gpus_per_job; None = not given)."""
    for flag, name, owner in _EXECUTOR_OPTIONS:
        if given.get(name) is not None and executor != owner:
            raise UserInputError(f"{flag} is for --executor {owner}; drop it or pass --executor {owner}.")
    if workers > 1 and executor != "local":
        raise UserInputError("--workers is for --executor local; Ray and Slurm run every job at once.")


def sweep_runtime(
    executor: str,
    *,
    device: str = "auto",
    workers: int = 1,
    threads: int | None = None,
    results_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    check_folders: bool = True,
) -> SweepRuntime:
    """The device (local: "auto" resolved here, where the jobs run), the torch threads per job
    (default: local, the CPUs here / workers; ray and slurm, 1) and the folders, checked writable
    before any work when `check_folders` (a read-only folder fails now, not after training)."""
    from oodbench.store import check_writable

    if executor == "local":
        from oodbench.devices import resolve_device

        device = str(resolve_device(device))
    elif device != "auto":
        import torch

        try:  # only the spelling: CUDA is checked on the machine that runs the job
            torch.device(device)
        except RuntimeError:
            raise UserInputError(f"Unknown device {device!r}. Use 'auto', 'cpu' or 'cuda[:N]'.") from None
    torch_threads = threads or (threads_per_job(workers) if executor == "local" else 1)
    results, cache = paths.results_dir(results_dir), paths.cache_dir(cache_dir)
    if check_folders:
        check_writable(results)
        check_writable(cache, "cache folder", "--cache-dir or OODBENCH_CACHE")
    return SweepRuntime(device=device, torch_threads=torch_threads, results_dir=results, cache_dir=cache)


def remove_stale_files(runtime: SweepRuntime) -> None:
    """Remove temporary files left by killed writes in the results and cache folders."""
    from oodbench.atomic import remove_stale_temp_files

    for folder in (runtime.results_dir, runtime.cache_dir):
        remove_stale_temp_files(folder)
