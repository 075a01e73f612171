"""The result store on disk: one shared rows.jsonl plus one shard per sweep job, safe with many writers.

Layout of a results folder (default ./runs or $OODBENCH_RESULTS):

    rows.jsonl              rows appended by `oodbench run` (`results.append_rows`, under a lock)
    .rows.jsonl.lock        the lock file that serialises those appends (empty)
    rows/<job-id>.jsonl     the rows of one sweep job, written in one atomic step (`write_rows`)
    rows/<job-id>.job.json  what that job was and how it ran, with the shard's sha256 and row count
    rows/.<job-id>.job.lock held by the process running that job (`job_lock`), for the whole job
    scores/...              raw scores, as today; `scores_file` is relative to the results folder

Two ways to write without losing rows:
- a shard per job: only the process holding the job's lock runs the job, and it writes the
  shard once (temporary file + rename, under the shard's own lock, which `repair_rows` takes
  too), then the job meta with the shard's digest. A job is done only when its shard's sha256
  matches the meta (`shard_state`): a shard damaged later, or one whose meta was never written
  (killed in between), is redone by the next sweep, and rewritten whole, never appended to;
- appends to the shared rows.jsonl hold an exclusive `fcntl.flock` on a separate lock file
  around read-old + write-temp + rename. The lock is on a separate file because the rename
  replaces rows.jsonl itself: a lock held on the old inode would not stop the next writer.
flock works between processes of one machine and on most network file systems that support
POSIX locks; where `fcntl` does not exist (Windows) the lock is a no-op, so there run one writer
per rows.jsonl and one sweep per results folder.

Readers take the whole folder: `rows_files(path)` is rows.jsonl (if present) plus every shard.
This module imports nothing heavy (no torch, no pandas).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from oodbench.atomic import atomic_write_text
from oodbench.errors import UserInputError
from oodbench.names import ROWS_FILENAME

try:  # POSIX only; see the module docstring for Windows.
    import fcntl
except ImportError:  # pragma: no cover - not on the CI platforms
    fcntl = None  # type: ignore[assignment]

SHARDS_DIRNAME = "rows"
SHARD_SUFFIX = ".jsonl"
JOB_META_SUFFIX = ".job.json"


@contextlib.contextmanager
def _flock(lock_path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` (created if missing, never deleted) inside the block.

    `on_wait()` is called once if another process holds it, before blocking until it is free.
    The lock is released when the block ends or the process dies (the kernel drops it).
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a", encoding="utf-8") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def file_lock(path: str | os.PathLike, on_wait: Callable[[], None] | None = None):
    """Hold an exclusive lock for `path` (on the sibling file `.<name>.lock`) while inside the block.

    Blocks until every other holder has left. The lock file is never deleted: deleting it would
    let a waiter lock a file that a newcomer no longer sees. Appends, shard writes and
    `repair_rows` of one rows file all take this lock.
    """
    target = Path(path)
    return _flock(target.parent / f".{target.name}.lock", on_wait)


def job_lock(results_dir: str | os.PathLike, job_id: str, on_wait: Callable[[], None] | None = None):
    """Hold the lock of one sweep job (rows/.<job-id>.job.lock) for as long as the job runs.

    A second sweep of the same job waits here (calling `on_wait` first), then finds it done.
    A killed job's lock is freed by the kernel, so a re-run never waits for a dead process.
    """
    return _flock(Path(results_dir) / SHARDS_DIRNAME / f".{check_job_id(job_id)}.job.lock", on_wait)


def check_writable(
    folder: str | os.PathLike,
    what: str = "results folder",
    how: str = "--results-dir or OODBENCH_RESULTS",
) -> None:
    """Fail before any work if nothing can be written in `folder` (nothing existing is touched).

    A real write, not os.access: root passes os.access on a read-only file system.
    """
    import tempfile

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise UserInputError(
            f"Cannot write to the {what} {folder} ({error.strerror or error}); choose another with {how}."
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
    """Write a job's description (JSON, atomically) beside its shard.

    Written after the shard; with "shard_sha256" and "n_rows" it is the job's completion marker.
    """
    path = job_meta_path(results_dir, job_id)
    atomic_write_text(path, json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return path


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shard_state(results_dir: str | os.PathLike, job_id: str) -> str:
    """The job's state: "done", "missing" (no shard yet) or "damaged: <why>" (redo the job).

    Done means: the shard exists and its sha256 is the one its job meta recorded. Metas written
    before the digest existed hold only n_rows: then every line must be JSON and their count match.
    """
    shard = shard_path(results_dir, job_id)
    if not shard.is_file():
        return "missing"
    try:
        meta = json.loads(job_meta_path(results_dir, job_id).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "damaged: no job meta (the job was stopped before it finished)"
    except (OSError, ValueError):
        return "damaged: unreadable job meta"
    if not isinstance(meta, dict) or "n_rows" not in meta:
        return "damaged: the job meta lacks the row count"
    if "shard_sha256" in meta:
        return "done" if sha256_of(shard) == meta["shard_sha256"] else "damaged: the shard's sha256 changed"
    lines = [line for line in shard.read_bytes().splitlines() if line.strip()]
    try:
        for line in lines:
            json.loads(line)
    except ValueError:
        return "damaged: a line of the shard is not JSON"
    return "done" if len(lines) == meta["n_rows"] else "damaged: the shard's row count changed"


__all__ = [
    "JOB_META_SUFFIX",
    "ROWS_FILENAME",
    "SHARDS_DIRNAME",
    "SHARD_SUFFIX",
    "check_job_id",
    "check_writable",
    "file_lock",
    "job_lock",
    "job_meta_path",
    "rows_files",
    "shard_files",
    "sha256_of",
    "shard_path",
    "shard_state",
    "write_job_meta",
]
