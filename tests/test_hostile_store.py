"""The store and sweeps under hostile conditions (issue 21, items 5, 6 and 7; issue 16's sweep
items): a sweep parent killed with SIGKILL, two identical sweeps at once, a damaged shard,
`report --repair` racing appends, a full disk, read-only folders, the baseline check's gaps,
bad created_at values, and every `-d` form in `oodbench sweep`.

The real sweeps train 1 epoch of the embedded recipe with msp only, one torch thread per job;
the rest stubs the job's work (`run_suite`) or writes rows directly, so it stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import store_workers
from click.testing import CliRunner
from report_rows import frame_of, make_row

import oodbench.runner
from oodbench import report, store
from oodbench.cli import cli
from oodbench.errors import UserInputError
from oodbench.results import ResultRow, append_rows, load_rows, read_rows, repair_rows
from oodbench.sweep import expand_jobs, run_sweep

REPO = Path(__file__).resolve().parent.parent
ROW_KEY = ["model_source", "detector", "in_dataset", "out_dataset", "seed"]
ROWS_PER_JOB = 5  # msp on the 5 OOD sets of the mnist suite


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _sweep_command(tmp_path: Path, seeds: str, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "oodbench", "sweep", "-m", "cross_entropy", "-d", "msp", "--epochs", "1",
        "--seeds", seeds, "--threads", "1", "--workers", str(workers), "--device", "cpu",
        "--results-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def _assert_rows_once(folder: Path, n_rows: int) -> None:
    frame = load_rows(folder)
    assert not frame.duplicated(subset=ROW_KEY).any(), frame[frame.duplicated(subset=ROW_KEY, keep=False)]
    assert len(frame) == n_rows


# --- item 5: kill -9, two sweeps at once, damaged shards, repair racing appends -----------------


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_killed_sweep_parent_leaves_no_worker_and_a_rerun_duplicates_nothing(tmp_path):
    parent = subprocess.Popen(
        _sweep_command(tmp_path, "0,1", workers=2),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
            workers = [p for p in _children(parent.pid) if "spawn_main" in _cmdline(p)]
            time.sleep(0.2)
        assert len(workers) == 2, "the sweep did not start its 2 workers"
        time.sleep(2)  # both workers are starting or inside their jobs (a job takes over 5 s here)
        assert len(store.shard_files(tmp_path / "runs")) < 2, "the jobs ended before the kill"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [p for p in workers if _alive(p)]
        assert survivors == [], f"workers {survivors} outlived the killed sweep"
    finally:
        for pid in [*workers, parent.pid]:  # only what this test started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    rerun = subprocess.run(
        _sweep_command(tmp_path, "0,1", workers=2), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    _assert_rows_once(tmp_path / "runs", 2 * ROWS_PER_JOB)


def test_two_identical_sweeps_at_once_run_each_job_once(tmp_path):
    command = _sweep_command(tmp_path, "0,1", workers=1)
    both = [
        subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=600) for proc in both]
    assert [proc.returncode for proc in both] == [0, 0], outputs
    _assert_rows_once(tmp_path / "runs", 2 * ROWS_PER_JOB)
    # Each job ran in one sweep; the other found it done (after waiting for its lock, or not).
    done_lines = [line for out, _ in outputs for line in out.splitlines() if line.startswith("done ")]
    assert len(done_lines) == 2 and len({line.split()[1] for line in done_lines}) == 2, outputs


def _fake_jobs(tmp_path: Path, seeds=(0,)):
    return expand_jobs(
        ["mnist"],
        models=["cross_entropy"],
        detectors=["msp"],
        seeds=list(seeds),
        train_overrides={"epochs": 1},
        results_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
    )


@pytest.fixture
def fake_run_suite(monkeypatch):
    """run_suite stubbed: 3 rows per job, appended to the rows file it is given, as the real one does."""
    calls = []

    def fake(suite, *, models, seeds, rows_file, **kwargs):
        rows = [
            make_row(seed=seeds[0], out_dataset=out, created_at="2024-01-01T00:00:00+00:00")
            for out in ("animals", "letters", "noise")
        ]
        append_rows(rows_file, rows)
        calls.append(seeds[0])
        return rows

    monkeypatch.setattr(oodbench.runner, "run_suite", fake)
    return calls


@pytest.mark.parametrize("damage", ["truncated last row", "one byte changed", "meta never written"])
def test_a_damaged_shard_is_redone_not_counted_done(tmp_path, fake_run_suite, damage):
    (job,) = _fake_jobs(tmp_path)
    assert [o.status for o in run_sweep([job])] == ["done"]
    shard = job.shard
    good = shard.read_bytes()
    if damage == "truncated last row":
        shard.write_bytes(good[: good.rindex(b"\n", 0, len(good) - 1) + 40])  # half of the last line
    elif damage == "one byte changed":
        shard.write_bytes(good.replace(b'"auroc": 0.9', b'"auroc": 0.1', 1))  # still valid JSON
    else:
        store.job_meta_path(job.results_dir, job.job_id).unlink()
    assert not job.is_done()
    outcome = run_sweep([job])[0]
    assert (outcome.status, outcome.n_rows) == ("done", 3)
    assert fake_run_suite == [0, 0]  # computed again
    assert shard.read_bytes() == good  # rewritten whole, not appended to
    assert job.is_done() and run_sweep([job])[0].status == "skipped"


def test_a_shard_of_an_older_oodbench_without_digest_is_checked_by_its_row_count(tmp_path, fake_run_suite):
    (job,) = _fake_jobs(tmp_path)
    run_sweep([job])
    meta_path = store.job_meta_path(job.results_dir, job.job_id)
    meta = json.loads(meta_path.read_text())
    del meta["shard_sha256"]  # as written before the digest existed
    meta_path.write_text(json.dumps(meta))
    assert job.is_done()  # not recomputed for nothing after an upgrade
    job.shard.write_bytes(job.shard.read_bytes()[:-30])
    assert job.state().startswith("damaged")


def test_report_repair_covers_shards_and_the_job_is_then_redone(tmp_path, fake_run_suite):
    jobs = _fake_jobs(tmp_path, seeds=(0, 1))
    run_sweep(jobs)
    shard = jobs[1].shard
    shard.write_bytes(shard.read_bytes()[:-30])  # the last row cut short
    result = CliRunner().invoke(cli, ["report", "--results", str(tmp_path / "runs"), "--repair"])
    assert result.exit_code == 0, result.output
    assert "nothing to repair" not in result.output
    assert f"{shard}: 2 readable row(s) kept; 1 unreadable line(s) moved" in result.output
    assert Path(f"{shard}.rejected").is_file()
    assert len(load_rows(tmp_path / "runs")) == 5  # readable now
    assert [o.status for o in run_sweep(jobs)] == ["skipped", "done"]
    _assert_rows_once(tmp_path / "runs", 6)


def test_repair_racing_appends_loses_no_row(tmp_path):
    # Before repair_rows took the lock, 300 appends racing repairs lost 38 to 64 rows.
    rows_file = tmp_path / "rows.jsonl"
    n_writers, count = 3, 80
    context = multiprocessing.get_context("spawn")
    start, stop, counter = context.Event(), context.Event(), context.Value("i", 0)
    writers = [
        context.Process(target=store_workers.append_many, args=(str(rows_file), w, count, start))
        for w in range(n_writers)
    ]
    repairer = context.Process(
        target=store_workers.inject_and_repair, args=(str(rows_file), start, stop, counter)
    )
    for proc in (*writers, repairer):
        proc.start()
    start.set()
    for proc in writers:
        proc.join(timeout=300)
    stop.set()
    repairer.join(timeout=120)
    assert [p.exitcode for p in (*writers, repairer)] == [0] * (n_writers + 1)
    repair_rows(rows_file)  # a line injected after the repairer's last repair
    assert counter.value > 5  # the repairs did race the appends
    seeds = sorted(r.seed for r in read_rows(rows_file))
    assert seeds == sorted(w * 1000 + i for w in range(n_writers) for i in range(count))
    assert (tmp_path / "rows.jsonl.rejected").read_bytes() == store_workers.BAD_LINE * counter.value


# --- item 6: read-only folders and a full disk ---------------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path):
    """An existing folder nobody can write to, even root (a read-only tmpfs when run as root)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)  # so that pytest can delete it
        return
    if shutil.which("mount") is None:
        pytest.skip("needs mount(8) to make a read-only folder as root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("which", ["cache", "results"])
def test_read_only_folders_are_refused_before_any_work(tmp_path, read_only_dir, command, which):
    folders = {"cache": tmp_path / "cache", "results": tmp_path / "runs", which: read_only_dir}
    args = [command, "-m", "cross_entropy", "-d", "msp", "--epochs", "1", "--device", "cpu", "-q"]
    args += ["--cache-dir", str(folders["cache"]), "--results-dir", str(folders["results"])]
    started = time.perf_counter()
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: Cannot write to the {which} folder {read_only_dir}")
    assert result.output.count("\n") == 1
    assert time.perf_counter() - started < 15  # refused up front, not after training
    assert not list(tmp_path.rglob("*.pt"))


def test_a_full_disk_is_one_line_and_leaves_the_old_file_whole(tmp_path, monkeypatch):
    rows = tmp_path / "rows.jsonl"
    append_rows(rows, [make_row()])
    baseline = tmp_path / "baseline.csv"
    baseline.write_text("the old baseline\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("oodbench.atomic.os.fsync", no_space)
    result = CliRunner().invoke(cli, ["report", "--results", str(rows), "--write-baseline", str(baseline)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: No space left on device: {baseline}; nothing written earlier")
    assert result.output.count("\n") == 1
    assert baseline.read_text() == "the old baseline\n"
    before = rows.read_bytes()
    with pytest.raises(OSError, match="No space left"):
        append_rows(rows, [make_row(seed=1)])
    assert rows.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


# --- item 7: the baseline check, created_at ------------------------------------------------------

HEADER = "model_source,detector,in_dataset,out_dataset,auroc,fpr95_openood\n"


def _check(tmp_path: Path, baseline_text: str, rows: list[ResultRow], *extra: str):
    path = tmp_path / "baseline.csv"
    path.write_text(baseline_text)
    rows_file = tmp_path / "rows.jsonl"
    rows_file.unlink(missing_ok=True)
    append_rows(rows_file, rows)
    return CliRunner().invoke(cli, ["report", "--results", str(rows_file), "--baseline", str(path), *extra])


def test_an_empty_baseline_fails(tmp_path):
    result = _check(tmp_path, HEADER, [make_row()])
    assert result.exit_code == 2, result.output
    assert "has no rows" in result.output and result.output.count("\n") == 1


@pytest.mark.parametrize(
    "line",
    [
        "cross_entropy,msp,mnist,animals,,0.3\n",  # one empty (NaN) metric
        "cross_entropy,msp,mnist,animals,nan,nan\n",  # every metric NaN
    ],
)
def test_nan_in_the_baseline_fails(tmp_path, line):
    result = _check(tmp_path, HEADER + line, [make_row()])
    assert result.exit_code == 1, result.output
    assert "missing value: auroc msp mnist->animals: baseline missing, now 0.900" in result.output
    assert result.output.splitlines()[-1].startswith("FAILED")


def test_nan_in_the_current_rows_fails(tmp_path):
    path = tmp_path / "baseline.csv"
    path.write_text(HEADER + "cross_entropy,msp,mnist,animals,0.9,0.3\n")
    current = frame_of(make_row())
    current["auroc"] = float("nan")
    check = report.compare_to_baseline(current, path)
    assert check.failed and check.regressions == ["auroc msp mnist->animals: baseline 0.900, now missing"]


def test_accuracy_absent_on_both_sides_is_not_a_failure(tmp_path):
    text = "model_source,detector,in_dataset,out_dataset,auroc,classification_accuracy\n"
    result = _check(
        tmp_path, text + "cross_entropy,msp,mnist,animals,0.9,\n", [make_row(classification_accuracy=None)]
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("side", ["baseline", "current"])
def test_a_row_on_one_side_only_fails_unless_allowed(tmp_path, side):
    both = HEADER + "cross_entropy,msp,mnist,animals,0.9,0.3\n"
    if side == "baseline":
        text, rows = both + "cross_entropy,msp,mnist,noise,0.9,0.3\n", [make_row()]
    else:
        text, rows = both, [make_row(), make_row(out_dataset="noise")]
    failed = _check(tmp_path, text, rows)
    assert failed.exit_code == 1, failed.output
    assert "--allow-missing" in failed.output.splitlines()[-1]
    allowed = _check(tmp_path, text, rows, "--allow-missing")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.output.splitlines()[-1] == "no regressions (1 rows, tolerance 0.010)"


@pytest.mark.parametrize("value", [12, "yesterday", None, "2024-13-01T00:00:00"])
def test_created_at_must_be_an_iso_timestamp_string(tmp_path, value):
    rows_file = tmp_path / "rows.jsonl"
    append_rows(rows_file, [make_row()])
    data = make_row(seed=1).to_dict() | {"created_at": value}
    with open(rows_file, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(data) + "\n")
    with pytest.raises(UserInputError, match=r"rows.jsonl:2: created_at must be an ISO 8601 timestamp"):
        read_rows(rows_file)
    assert repair_rows(rows_file)[:2] == (1, 1)
    assert [row.seed for row in read_rows(rows_file)] == [0]


# --- issue 16: every -d form in `oodbench sweep`, and -q ----------------------------------------

PLUGIN = """
from oodbench.detectors.base import Detector


class MaxLogit(Detector):
    uses = "logits"

    def score_outputs(self, outputs):
        return outputs.logits.double().max(1).values.numpy()
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A detector in plugin_maxlogit.py, importable as a module and named by an entry point."""
    import importlib.metadata

    from oodbench.detectors import plugins

    path = tmp_path / "plugin_maxlogit.py"
    path.write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    point = importlib.metadata.EntryPoint("maxlogit", "plugin_maxlogit:MaxLogit", plugins.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points

    def fake(**kwargs):
        return [point] if kwargs.get("group") == plugins.ENTRY_POINT_GROUP else real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    monkeypatch.delitem(sys.modules, "plugin_maxlogit", raising=False)
    return path


@pytest.mark.parametrize(
    "form", ["file.py:Class", "module:Class", "entry point", "pytorch-ood:NAME", "shorthand"]
)
def test_sweep_takes_every_detector_form_of_run(tmp_path, plugin, monkeypatch, form):
    if form == "pytorch-ood:NAME":
        pytest.importorskip("pytorch_ood")
    monkeypatch.chdir(tmp_path)
    detector = {
        "file.py:Class": "plugin_maxlogit.py:MaxLogit",  # relative: made absolute for the jobs
        "module:Class": "plugin_maxlogit:MaxLogit",
        "entry point": "maxlogit",
        "pytorch-ood:NAME": "pytorch-ood:MaxSoftmax",
        "shorthand": "joint",
    }[form]
    args = ["sweep", "--dry-run", "-d", detector, "--epochs", "2", "--results-dir", str(tmp_path / "runs")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("1 job(s)" if form == "shorthand" else "3 job(s)")


def test_sweep_runs_a_file_plugin_quietly(tmp_path, plugin, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "-q", "-m", "cross_entropy", "-d", "plugin_maxlogit.py:MaxLogit", "--epochs", "1"]
    args += ["--threads", "1", "--device", "cpu", "--results-dir", "runs", "--cache-dir", "cache"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # Only the summary and where the report page is.
    lines = result.output.splitlines()
    assert lines[0].startswith("1 done, 0 skipped") and lines[1:] == ["report: runs/report.html"]
    assert set(load_rows(tmp_path / "runs")["detector"]) == {"MaxLogit"}
