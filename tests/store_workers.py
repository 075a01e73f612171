"""Process targets for the multiprocess store tests, in a module that imports no torch: each
spawned process imports it, and a light import keeps the writers racing from the start."""

from __future__ import annotations

from pathlib import Path

from report_rows import make_row

from oodbench import store
from oodbench.atomic import atomic_write_bytes
from oodbench.results import ResultRow, append_rows, repair_rows

BAD_LINE = b'{"half a row\n'


def light_row(seed: int) -> ResultRow:
    """A row whose provenance is given, so building it imports no torch."""
    return make_row(seed=seed, git_commit="abc", torch_version="2.0", host_cpu="cpu", torch_threads=1)


def append_many(path: str, writer: int, count: int, start) -> None:
    """Append `count` rows, one call each, seeds writer * 1000 + i."""
    start.wait()
    for i in range(count):
        append_rows(path, [light_row(writer * 1000 + i)])


def inject_and_repair(path: str, start, stop, counter) -> None:
    """Until `stop`: add an unreadable line (under the lock, as a well-behaved writer would), then repair."""
    start.wait()
    target = Path(path)
    while not stop.is_set():
        with store.file_lock(target):
            old = target.read_bytes() if target.exists() else b""
            atomic_write_bytes(target, old + BAD_LINE)
        with counter.get_lock():
            counter.value += 1
        repair_rows(target)
