"""Atomic file writes: write a temporary file beside the target, fsync, then rename.

A crash or kill mid-write leaves either the old file or the new one, never a truncated
or mixed file (os.replace is atomic on POSIX and Windows within one file system).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces `path` in one step."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files; mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise _naming(error, target) from error
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file 0600; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, target)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(error, OSError):
            # A write to an open file (ENOSPC) names no file: name the target, which is intact.
            raise _naming(error, target) from error
        raise


def _naming(error: OSError, target: Path) -> OSError:
    """`error` as the same OSError subclass with `target` as its file name (when it had none)."""
    if error.filename is not None or error.errno is None:
        return error
    return type(error)(error.errno, error.strerror, str(target))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


# When this process started (close enough: when oodbench was first imported).
PROCESS_START = time.time()
# A temporary file must be this much older than the process before it counts as left over from
# a killed write: a writer that started just before us may still be about to rename its file.
STALE_MARGIN_S = 60.0


def remove_stale_temp_files(folder: str | os.PathLike, *, before: float | None = None) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes (".<name>.<random>.tmp") below
    `folder` whose last change is older than `before` (default: this process's start minus
    STALE_MARGIN_S). Returns what was removed; a missing folder is fine."""
    cutoff = (PROCESS_START - STALE_MARGIN_S) if before is None else before
    removed = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for path in root.rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
    if removed:
        logger.warning("removed %d temporary file(s) left by interrupted writes under %s", len(removed), root)
    return removed
