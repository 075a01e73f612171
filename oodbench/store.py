"""The result store on disk: one shared rows.jsonl plus one shard per sweep job, safe with many writers.

Layout of a results folder (default ./runs or $OODBENCH_RESULTS):

    rows.jsonl              rows appended by `oodbench run` (`results.append_rows`, under a lock)
    .rows.jsonl.lock        the lock file that serialises those appends (empty)
    rows/<job-id>.jsonl     the rows of one sweep job, written in one atomic step (`write_shard`)
    rows/<job-id>.job.json  what that job was and how it ran (torch threads, device, seconds)
    scores/...              raw scores, as today; `scores_file` is relative to the results folder

Two ways to write without losing rows:
- a shard per writer: each job owns its file and writes it once (temporary file + rename), so
  writers never touch the same file, and a shard that exists is complete (the job is done);
- appends to the shared rows.jsonl hold an exclusive `fcntl.flock` on a separate lock file
  around read-old + write-temp + rename. The lock is on a separate file because the rename
  replaces rows.jsonl itself: a lock held on the old inode would not stop the next writer.
flock works between processes of one machine and on most network file systems that support
POSIX locks; where `fcntl` does not exist (Windows) the lock is a no-op, so there run one writer
per rows.jsonl, or use shards.

Readers take the whole folder: `rows_files(path)` is rows.jsonl (if present) plus every shard.
This module imports nothing heavy (no torch, no pandas).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oodbench.atomic import atomic_write_text
from oodbench.errors import UserInputError

try:  # POSIX only; see the module docstring for Windows.
    import fcntl
except ImportError:  # pragma: no cover - not on the CI platforms
    fcntl = None  # type: ignore[assignment]

ROWS_FILENAME = "rows.jsonl"  # the same name as oodbench.results.ROWS_FILENAME (checked by a test)
SHARDS_DIRNAME = "rows"
SHARD_SUFFIX = ".jsonl"
JOB_META_SUFFIX = ".job.json"


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock for `path` (on the sibling file `.<name>.lock`) while inside the block.

    Blocks until every other holder has left. The lock file is never deleted: deleting it would
    let a waiter lock a file that a newcomer no longer sees.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    with open(lock_path, "a", encoding="utf-8") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def check_writable(folder: str | os.PathLike) -> None:
    """Fail before any work if nothing can be written in `folder` (nothing existing is touched)."""
    import tempfile

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise UserInputError(
            f"Cannot write to the results folder {folder} ({error.strerror or error}); "
            "choose another with --results-dir or OODBENCH_RESULTS."
        ) from None


def check_job_id(job_id: str) -> str:
    """A job id is one file name: letters, digits and '-_.+', not starting with '.'."""
    if not job_id or job_id.startswith(".") or any(not (c.isalnum() or c in "-_.+") for c in job_id):
        raise UserInputError(f"A job id must be a plain file name (letters, digits, -_.+); got {job_id!r}.")
    return job_id


def shard_path(results_dir: str | os.PathLike, job_id: str) -> Path:
    """<results_dir>/rows/<job_id>.jsonl: the rows of one job."""
    return Path(results_dir) / SHARDS_DIRNAME / (check_job_id(job_id) + SHARD_SUFFIX)


def job_meta_path(results_dir: str | os.PathLike, job_id: str) -> Path:
    """<results_dir>/rows/<job_id>.job.json: the job's description and run facts."""
    return Path(results_dir) / SHARDS_DIRNAME / (check_job_id(job_id) + JOB_META_SUFFIX)


def shard_files(results_dir: str | os.PathLike) -> list[Path]:
    """Every complete shard under <results_dir>/rows/, sorted by name (temporary files excluded)."""
    folder = Path(results_dir) / SHARDS_DIRNAME
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(SHARD_SUFFIX) and not p.name.startswith("."))


def rows_files(path: str | os.PathLike) -> list[Path]:
    """The row files a path stands for.

    A folder, or a file named rows.jsonl: that folder's rows.jsonl (when it exists) plus every
    shard under its rows/ subfolder. Any other file: that file alone. May be empty.
    """
    target = Path(path)
    if target.is_dir():
        folder, main = target, target / ROWS_FILENAME
    elif target.name == ROWS_FILENAME:
        folder, main = target.parent, target
    else:
        return [target]
    return ([main] if main.is_file() else []) + shard_files(folder)


def write_job_meta(results_dir: str | os.PathLike, job_id: str, meta: dict[str, Any]) -> Path:
    """Write a job's description (JSON, atomically) beside its shard."""
    path = job_meta_path(results_dir, job_id)
    atomic_write_text(path, json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return path


__all__ = [
    "JOB_META_SUFFIX",
    "ROWS_FILENAME",
    "SHARDS_DIRNAME",
    "SHARD_SUFFIX",
    "check_job_id",
    "check_writable",
    "file_lock",
    "job_meta_path",
    "rows_files",
    "shard_files",
    "shard_path",
    "write_job_meta",
]
