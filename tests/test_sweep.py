"""`oodbench sweep`: job expansion, the same metrics as `run_suite`, skipping finished jobs,
resuming interrupted training, failures that do not stop the others, and the CLI.

Training is 1 epoch of the embedded recipe (cross_entropy / confidence: about a second each on
one thread) and the detectors are msp and energy (one forward pass), so each test stays small.
The executors that need a cluster (Ray, Slurm) are in test_sweep_executors.py.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import oodbench.runner
from oodbench.cli import cli
from oodbench.errors import UserInputError
from oodbench.results import METRIC_FIELDS, load_rows
from oodbench.runner import DetectorRequest, run_suite
from oodbench.sweep import expand_jobs, parse_time, run_sweep
from oodbench.sweep.jobs import overrides_for

REPO = Path(__file__).resolve().parent.parent
KEY = ["model_source", "detector", "out_dataset", "seed"]


def _jobs(tmp_path: Path, name: str, **kwargs):
    options = dict(
        models=["cross_entropy"],
        detectors=["msp", "energy"],
        seeds=[0],
        train_overrides={"epochs": 1},
        torch_threads=1,
        results_dir=tmp_path / f"runs-{name}",
        cache_dir=tmp_path / f"cache-{name}",
    )
    options.update(kwargs)
    return expand_jobs(["mnist"], **options)


def test_expansion_one_job_per_suite_model_seed_with_stable_ids(tmp_path):
    jobs = _jobs(
        tmp_path,
        "a",
        models=["cross_entropy", "confidence", "joint"],
        seeds=[0, 1, 0],
        train_overrides={"epochs": 2},
    )
    assert [(j.model, j.seed) for j in jobs] == [
        (m, s) for m in ("cross_entropy", "confidence", "joint") for s in (0, 1)
    ]
    assert len({j.job_id for j in jobs}) == 6
    assert jobs[0].job_id.startswith("mnist-cross_entropy-seed0-")
    assert jobs[0].recipe == "embedded" and jobs[0].detectors == (("msp", {}), ("energy", {}))
    # How a job runs (threads, device, folders) is not what it computes: same id.
    same = _jobs(tmp_path, "b", torch_threads=2, device="cuda", train_overrides={"epochs": 2})[0]
    assert same.job_id == jobs[0].job_id
    # What it computes is: other overrides, detectors or parameters give another id.
    for other in (
        _jobs(tmp_path, "a", train_overrides={"epochs": 3})[0],
        _jobs(tmp_path, "a", train_overrides={"epochs": 2}, detectors=["msp"])[0],
        _jobs(tmp_path, "a", train_overrides={"epochs": 2}, detector_params={"energy": {"temperature": 2.0}})[
            0
        ],
    ):
        assert other.job_id != jobs[0].job_id


def test_overrides_apply_where_they_have_a_meaning():
    given = {"epochs": 3, "beta": 0.5, "gan_warmup_epochs": 1, "lr": None}
    assert overrides_for("cross_entropy", given) == {"epochs": 3}
    assert overrides_for("confidence", given) == {"beta": 0.5, "epochs": 3}
    assert overrides_for("joint", given) == {"beta": 0.5, "epochs": 3, "gan_warmup_epochs": 1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": ["jiont"]}, "Unknown model source 'jiont'. Did you mean: joint"),
        ({"detectors": ["msq"]}, "Unknown detector 'msq'"),
        ({"detector_params": {"odin": {"temperature": 1.0}}}, "--param names detector.*odin"),
        ({"detector_params": {"energy": {"temperature": -1}}}, "temperature"),
        ({"models": ["joint"]}, r"gan_warmup_epochs \(1\) must be smaller than epochs \(1\)"),
        ({"torch_threads": 0}, "threads per job must be >= 1"),
    ],
)
def test_bad_selection_fails_before_any_job(tmp_path, kwargs, message):
    with pytest.raises(UserInputError, match=message):
        _jobs(tmp_path, "x", **kwargs)


def test_sweep_gives_exactly_the_metrics_of_run_suite_and_skips_done_jobs(tmp_path):
    """Two spawned workers (1 torch thread each) vs run_suite in this process on 1 thread."""
    models, seeds = ["cross_entropy", "confidence"], [0, 1]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU training is bit-identical only for the same thread count
    try:
        direct = run_suite(
            "mnist",
            models=models,
            seeds=seeds,
            detectors=[DetectorRequest("msp"), DetectorRequest("energy")],
            train_overrides={"epochs": 1},
            cache_dir=tmp_path / "cache-run",
            results_dir=tmp_path / "runs-run",
            progress=False,
        )
    finally:
        torch.set_num_threads(previous)
    jobs = _jobs(tmp_path, "sweep", models=models, seeds=seeds)
    assert len(jobs) == 4
    outcomes = run_sweep(jobs, executor="local", workers=2)
    assert [o.status for o in outcomes] == ["done"] * 4

    swept = load_rows(tmp_path / "runs-sweep").sort_values(KEY).reset_index(drop=True)
    ran = load_rows(tmp_path / "runs-run").sort_values(KEY).reset_index(drop=True)
    assert len(swept) == len(ran) == len(direct) == 4 * 2 * 5  # 4 jobs x 2 detectors x 5 OOD sets
    assert swept[KEY].equals(ran[KEY])
    for column in (*METRIC_FIELDS, "classification_accuracy", "checkpoint_sha256"):
        assert swept[column].tolist() == ran[column].tolist(), column  # exact, not approximate
    # The sweep trained its own checkpoints (separate caches): the equality is not a shared file.
    assert len(list((tmp_path / "cache-sweep" / "checkpoints").rglob("*.pt"))) == 4
    assert {p.name for p in (tmp_path / "runs-sweep" / "rows").glob("*.jsonl")} == {
        f"{j.job_id}.jsonl" for j in jobs
    }
    # Scores are stored beside the rows as for `run`, and the job records its thread count.
    assert all((tmp_path / "runs-sweep" / f).is_file() for f in swept["scores_file"])
    meta = (tmp_path / "runs-sweep" / "rows" / f"{jobs[0].job_id}.job.json").read_text()
    assert '"torch_threads": 1' in meta

    again = run_sweep(jobs, executor="local", workers=2)
    assert [o.status for o in again] == ["skipped"] * 4
    assert len(load_rows(tmp_path / "runs-sweep")) == len(swept)


def test_interrupted_training_resumes_to_the_same_checkpoint(tmp_path, caplog):
    """A job killed after epoch 1 of 2 resumes from that checkpoint and ends byte-identical."""
    from oodbench.data import load_suite
    from oodbench.training import checkpoint_path, train

    class Killed(Exception):
        pass

    def kill_after_first_epoch(epochs_done, nets):
        raise Killed

    overrides = {"epochs": 2}
    partial = checkpoint_path(
        "cross_entropy", "embedded", "mnist_5k", 0, cache_dir=tmp_path / "cache-resumed", overrides=overrides
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(Killed):
            train(
                "cross_entropy",
                load_suite("mnist"),
                "embedded",
                seed=0,
                device="cpu",
                checkpoint=partial,
                progress=False,
                epoch_callback=kill_after_first_epoch,
                **overrides,
            )
    finally:
        torch.set_num_threads(previous)
    assert partial.is_file()
    resumed = _jobs(tmp_path, "resumed", train_overrides=overrides, detectors=["msp"])
    straight = _jobs(tmp_path, "straight", train_overrides=overrides, detectors=["msp"])
    with caplog.at_level(logging.INFO, logger="oodbench.training.loop"):
        assert run_sweep(resumed)[0].status == "done"  # workers=1: in this process
    assert any("resuming" in r.getMessage() and "from epoch 1 of 2" in r.getMessage() for r in caplog.records)
    assert run_sweep(straight)[0].status == "done"
    a, b = load_rows(tmp_path / "runs-resumed"), load_rows(tmp_path / "runs-straight")
    assert a["checkpoint_sha256"].tolist() == b["checkpoint_sha256"].tolist()
    assert a["auroc"].tolist() == b["auroc"].tolist()


def test_a_failed_job_does_not_stop_the_others_and_reruns_alone(tmp_path, monkeypatch):
    jobs = _jobs(tmp_path, "f", seeds=[0, 1], detectors=["msp"])
    real = oodbench.runner.run_suite

    def flaky(*args, seeds, **kwargs):
        if seeds == [0]:
            raise RuntimeError("out of memory\nsecond line")
        return real(*args, seeds=seeds, **kwargs)

    monkeypatch.setattr(oodbench.runner, "run_suite", flaky)
    seen = []
    outcomes = run_sweep(jobs, on_result=seen.append)
    assert [(o.status, o.error) for o in outcomes] == [
        ("failed", "RuntimeError: out of memory"),
        ("done", ""),
    ]
    assert seen == outcomes and not jobs[0].is_done() and jobs[1].is_done()
    monkeypatch.setattr(oodbench.runner, "run_suite", real)
    assert [o.status for o in run_sweep(jobs)] == ["done", "skipped"]


def test_missing_extras_name_the_install_command(tmp_path, monkeypatch):
    jobs = _jobs(tmp_path, "m")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(UserInputError, match=r'pip install "oodbench\[ray\]"'):
        run_sweep(jobs, executor="ray")
    with pytest.raises(UserInputError, match=r'pip install "oodbench\[slurm\]"'):
        run_sweep(jobs, executor="slurm")


def test_parse_time():
    assert [parse_time(t) for t in ("90", "1:30", "2:00:00", "1-00:00:00", "1-2", "0:59:01")] == [
        90,
        2,
        120,
        1440,
        1560,
        60,
    ]
    for bad in ("", "abc", "0", "1:2:3:4", "-5"):
        with pytest.raises(UserInputError, match="--time takes"):
            parse_time(bad)


def test_cli_dry_run_then_sweep_then_report(tmp_path):
    runner = CliRunner()
    base = [
        "sweep", "-m", "cross_entropy", "-d", "msp", "--seeds", "0,1", "--epochs", "1",
        "--results-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--threads", "1",
    ]  # fmt: skip
    dry = runner.invoke(cli, [*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    lines = dry.output.splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [["to", "run"], ["to", "run"]]
    assert "mnist-cross_entropy-seed0-" in lines[0] and "mnist-cross_entropy-seed1-" in lines[1]
    assert lines[-1].startswith("2 job(s): 0 done, 2 to run")
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing

    ran = runner.invoke(cli, base)
    assert ran.exit_code == 0, ran.output
    assert "2 done, 0 skipped (already done), 0 failed" in ran.output
    dry = runner.invoke(cli, [*base, "--dry-run"])
    assert dry.output.splitlines()[0].startswith("done ")
    assert "2 job(s): 2 done, 0 to run" in dry.output

    table = runner.invoke(cli, ["report", "--results", str(tmp_path / "runs")])
    assert table.exit_code == 0, table.output
    assert "cross_entropy / msp" in table.output and "seeds" in table.output.lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--address", "auto"], "--address is for --executor ray"),
        (["--executor", "ray", "--workers", "2"], "--workers is for --executor local"),
        (["--executor", "slurm", "--time", "soon"], "--time takes"),
        (["--executor", "rey"], "Unknown --executor 'rey'. Did you mean: ray?"),
        (["-i", "mnst"], "Unknown --in 'mnst'. Did you mean: mnist?"),
        (["--seeds", "a"], "--seeds takes integers from 0 to 4294967295"),
        (["--param", "odin"], "--param takes DETECTOR.NAME=VALUE"),
        (["--executor", "ray", "--device", "cdua"], "Unknown device 'cdua'"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["sweep", "--dry-run", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_cli_threads_per_job_default_by_executor(tmp_path, monkeypatch):
    monkeypatch.setattr("oodbench.sweep.executors.available_cpus", lambda: 8)
    common = ["sweep", "--dry-run", "-m", "cross_entropy", "-d", "msp", "--device", "cpu"]
    for extra, threads in ((["--workers", "4"], 2), (["--workers", "16"], 1), (["--executor", "ray"], 1)):
        result = CliRunner().invoke(cli, [*common, *extra])
        assert result.exit_code == 0, result.output
        assert f"device cpu, {threads} thread(s)" in result.output.splitlines()[0]


def test_cli_sweep_help_does_not_import_torch():
    code = "import sys; import oodbench.cli; print('torch' in sys.modules)"
    env = {"PYTHONPATH": str(REPO)}
    if (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip()
        == "True"
    ):
        pytest.skip("oodbench.cli imports torch at module level (the lazy CLI is not merged yet)")
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom oodbench.cli import cli\n"
        "r = CliRunner().invoke(cli, ['sweep', '--help'])\n"
        "assert r.exit_code == 0 and '--executor' in r.output, r.output\n"
        "print(sorted(m for m in ('torch', 'ray', 'submitit', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_sweep_package_imports_nothing_heavy():
    code = (
        "import sys, oodbench.sweep, oodbench.store\n"
        "print(sorted(m for m in ('torch', 'ray', 'submitit', 'pandas') if m in sys.modules))"
    )
    env = {"PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("executor", "message"),
    [("ray", 'The Ray executor needs Ray: pip install "oodbench[ray]"'), ("slurm", "No Slurm found here")],
)
def test_cli_executor_that_cannot_run_here_is_one_line_before_any_job(
    tmp_path, monkeypatch, executor, message
):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the [ray] extra were not installed
    submitit = pytest.importorskip("submitit")
    monkeypatch.setattr(submitit.AutoExecutor, "which", staticmethod(lambda: "local"))  # no Slurm here
    args = ["sweep", "--executor", executor, "-m", "cross_entropy", "-d", "msp", "--epochs", "1"]
    result = CliRunner().invoke(cli, [*args, "--results-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {message}")
    assert result.output.count("\n") == 1
    assert not (tmp_path / "runs" / "rows").exists()


def test_cli_unwritable_results_folder_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = ["sweep", "-m", "cross_entropy", "-d", "msp", "--results-dir", str(blocker / "runs")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert (
        result.output.startswith("Error: Cannot write to the results folder")
        and result.output.count("\n") == 1
    )
