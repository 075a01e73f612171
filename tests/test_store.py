"""The result store: many concurrent writers (locked appends, per-job shards) lose and duplicate
nothing, and readers take a whole results folder (rows.jsonl plus rows/*.jsonl)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from oodbench import results, store
from oodbench.errors import DataNotFoundError, UserInputError
from oodbench.results import ResultRow

REPO = Path(__file__).resolve().parent.parent


def make_row(seed: int, out: str = "animals") -> ResultRow:
    # Provenance given explicitly: building a row then imports no torch (fast spawned writers).
    return ResultRow(
        suite="mnist", in_dataset="mnist", out_dataset=out, model_source="joint",
        model_arch="tiny_cnn", training_recipe="embedded", detector="msp", seed=seed,
        tnr_at_tpr95=0.5, auroc=0.9, aupr_in=0.8, aupr_out=0.85, detection_accuracy=0.82,
        fpr95_openood=0.3, n_in=10, n_out=10, device="cpu", oodbench_version="0.1.0",
        git_commit="abc", torch_version="2.0", created_at="2024-01-01T00:00:00+00:00",
    )  # fmt: skip


def _appender(path: str, writer: int, count: int, start) -> None:
    start.wait()
    for i in range(count):
        results.append_rows(path, [make_row(seed=writer * 1000 + i)])


def _shard_writer(folder: str, writer: int, count: int, start) -> None:
    start.wait()
    for i in range(count):
        job_id = f"job-{writer}-{i}"
        results.write_rows(store.shard_path(folder, job_id), [make_row(seed=writer * 1000 + i, out="shard")])


def test_concurrent_appends_and_shard_writers_lose_and_duplicate_nothing(tmp_path):
    # Before the lock, 2 x 300 concurrent append_rows calls left 327 of 600 rows.
    n_appenders, n_sharders, count = 4, 2, 50
    rows_file = tmp_path / "rows.jsonl"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    procs = [
        context.Process(target=_appender, args=(str(rows_file), w, count, start)) for w in range(n_appenders)
    ] + [
        context.Process(target=_shard_writer, args=(str(tmp_path), w, count, start))
        for w in range(n_sharders)
    ]
    for proc in procs:
        proc.start()
    start.set()  # every writer starts at once
    for proc in procs:
        proc.join(timeout=240)
    assert [proc.exitcode for proc in procs] == [0] * len(procs)

    appended = results.read_rows(rows_file)
    assert len(appended) == n_appenders * count
    assert sorted(r.seed for r in appended) == sorted(
        w * 1000 + i for w in range(n_appenders) for i in range(count)
    )
    assert len(store.shard_files(tmp_path)) == n_sharders * count
    frame = results.load_rows(tmp_path)
    assert len(frame) == (n_appenders + n_sharders) * count
    assert not frame.duplicated(subset=["seed", "out_dataset"]).any()
    assert not list(tmp_path.glob("**/*.tmp"))  # no temporary file left behind


def test_load_rows_reads_the_folder_or_its_rows_jsonl_plus_every_shard(tmp_path):
    results.append_rows(tmp_path / "rows.jsonl", [make_row(0)])
    results.write_rows(store.shard_path(tmp_path, "a"), [make_row(1), make_row(2)])
    results.write_rows(store.shard_path(tmp_path, "b"), [make_row(3)])
    (tmp_path / "rows" / ".b.jsonl.123.tmp").write_text("not json\n")  # a writer's unfinished file
    for path in (tmp_path, tmp_path / "rows.jsonl", str(tmp_path)):
        assert sorted(results.load_rows(path)["seed"]) == [0, 1, 2, 3]
    # Any other file name is that file alone.
    other = tmp_path / "other.jsonl"
    results.write_rows(other, [make_row(9)])
    assert list(results.load_rows(other)["seed"]) == [9]


def test_load_rows_of_a_folder_with_only_shards_and_of_an_empty_folder(tmp_path):
    results.write_rows(store.shard_path(tmp_path, "only"), [make_row(4)])
    assert list(results.load_rows(tmp_path)["seed"]) == [4]
    assert list(results.load_rows(tmp_path / "rows.jsonl")["seed"]) == [4]
    with pytest.raises(DataNotFoundError, match="No result rows at .*empty.*rows.jsonl"):
        results.load_rows(tmp_path / "empty")


def test_committed_reference_rows_still_load():
    folder = REPO / "results" / "embedded"
    lines = [line for line in (folder / "rows.jsonl").read_text().splitlines() if line.strip()]
    assert len(results.load_rows(folder)) == len(lines) > 0
    assert len(results.load_rows(folder / "rows.jsonl")) == len(lines)


def test_store_layout_names():
    assert store.ROWS_FILENAME == results.ROWS_FILENAME
    assert store.shard_path("/r", "mnist-joint-seed0-ab12cd34") == Path(
        "/r/rows/mnist-joint-seed0-ab12cd34.jsonl"
    )
    for bad in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(UserInputError, match="plain file name"):
            store.shard_path("/r", bad)


def test_file_lock_excludes_a_second_holder(tmp_path):
    # A second process cannot take the lock while this one holds it (non-blocking try fails).
    import fcntl

    target = tmp_path / "rows.jsonl"
    with store.file_lock(target):
        lock_file = tmp_path / ".rows.jsonl.lock"
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        proc = context.Process(target=_try_lock, args=(str(lock_file), queue))
        proc.start()
        proc.join(timeout=60)
        assert queue.get(timeout=5) is False
    proc = context.Process(target=_try_lock, args=(str(lock_file), queue))
    proc.start()
    proc.join(timeout=60)
    assert queue.get(timeout=5) is True
    assert fcntl  # POSIX: the lock is real here


def _try_lock(lock_file: str, queue) -> None:
    import fcntl

    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            queue.put(False)
            return
        queue.put(True)
