"""MLflow export: a local SQLite store read back with MlflowClient, and a real `mlflow server`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_fake import fake_results

from oodbench.cli import cli
from oodbench.export.common import CONTENT_TAG, IDENTITY_TAG, name_part
from oodbench.results import load_rows, read_rows, write_rows

mlflow = pytest.importorskip("mlflow", reason='MLflow is not installed (pip install "oodbench[mlflow]")')
from mlflow.tracking import MlflowClient  # noqa: E402


@pytest.fixture(autouse=True)
def _offline_mlflow(monkeypatch, tmp_path):
    """No telemetry requests; MLflow's local artifact folder inside the test's tmp dir."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    results = fake_results(
        tmp_path / "runs",
        detectors=["msp", "pytorch-ood:ViM"],  # a colon: not allowed in MLflow names on Windows
        sets=2,
        n=60,
        seeds=2,
        models=("cross_entropy", "joint"),
        params={"msp": {"temperature": 1}},
    )
    (results / "report.html").write_text("<!DOCTYPE html><title>page</title>", encoding="utf-8")
    return results


def _export(folder: Path, uri: str, *extra: str) -> list[str]:
    args = ["export", "mlflow", "--results", str(folder), "--tracking-uri", uri, *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def _runs(client: MlflowClient, experiment: str = "oodbench") -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id])


def _check_round_trip(client: MlflowClient, folder: Path) -> None:
    runs = _runs(client)
    assert len(runs) == 4  # 2 models x 2 seeds
    by_name = {run.info.run_name: run for run in runs}
    run = by_name["joint seed 1 (fake_in, exact)"]
    rows = load_rows(folder)
    row = rows[(rows.model_source == "joint") & (rows.seed == 1) & (rows.detector == "pytorch-ood:ViM")]
    row = row[row.out_dataset == "ood_set_01"].iloc[0]
    key = f"auroc/{name_part('pytorch-ood:ViM')}/ood_set_01"
    assert key == "auroc/pytorch-ood_ViM/ood_set_01"
    assert run.data.metrics[key] == pytest.approx(row["auroc"], abs=0)
    assert len(run.data.metrics) == 6 * 2 * 2 + 1  # metrics x detectors x sets + accuracy
    assert run.data.params["seed"] == "1" and run.data.params["suite"] == "fake"
    assert json.loads(run.data.params["detector/msp/params"]) == {"temperature": 1}
    assert run.data.params["detector/msp/tuning"].startswith("validation split")
    assert len(run.data.tags[IDENTITY_TAG]) == 64 and CONTENT_TAG in run.data.tags
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"rows", "report"}
    local = client.download_artifacts(run.info.run_id, "rows/rows.jsonl", str(folder.parent))
    lines = [json.loads(line) for line in Path(local).read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 4 and {line["seed"] for line in lines} == {1}
    assert lines[0]["detector_params"] == {"temperature": 1}  # an object, as in rows.jsonl


def test_sqlite_store_round_trip_and_no_duplicates(folder: Path, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    output = _export(folder, uri)
    assert output[-1] == "MLflow: 4 run(s): 4 created."
    client = MlflowClient(tracking_uri=uri)
    _check_round_trip(client, folder)
    ids = {run.info.run_id for run in _runs(client)}

    assert _export(folder, uri)[-1] == "MLflow: 4 run(s): 4 unchanged."
    assert {run.info.run_id for run in _runs(client)} == ids

    # A rerun of one model and seed (new rows, later created_at) replaces exactly that run.
    rows = read_rows(folder / "rows.jsonl")
    changed = [r for r in rows if r.model_source == "joint" and r.seed == 0]
    for r in changed:
        r.auroc, r.created_at = 0.5, "2099-01-01T00:00:00+00:00"
    write_rows(folder / "rows.jsonl", rows + changed)
    assert _export(folder, uri)[-1] == "MLflow: 4 run(s): 1 replaced, 3 unchanged."
    runs = _runs(client)
    assert len(runs) == 4 and len({run.info.run_id for run in runs} - ids) == 1
    replaced = next(run for run in runs if run.info.run_name == "joint seed 0 (fake_in, exact)")
    assert replaced.data.metrics["auroc/msp/ood_set_00"] == 0.5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_round_trip_through_a_real_tracking_server(folder: Path, tmp_path: Path):
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "wb"),
        start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.time() < deadline, "mlflow server did not start in 120 s"
            time.sleep(0.5)
        assert _export(folder, uri, "--experiment", "oodbench")[-1] == "MLflow: 4 run(s): 4 created."
        client = MlflowClient(tracking_uri=uri)
        _check_round_trip(client, folder)
        assert _export(folder, uri)[-1] == "MLflow: 4 run(s): 4 unchanged."
        assert len(_runs(client)) == 4
        assert any((tmp_path / "server-artifacts").rglob("rows.jsonl"))  # stored by the server
    finally:
        os.killpg(server.pid, 15)  # the server's own process group: uvicorn workers too
        server.wait(timeout=30)


def test_missing_mlflow_is_one_line(monkeypatch, folder: Path):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    result = CliRunner().invoke(cli, ["export", "mlflow", "--results", str(folder)])
    assert result.exit_code == 2
    assert result.output == 'Error: This needs MLflow: pip install "oodbench[mlflow]"\n'
    result = CliRunner().invoke(cli, ["run", "--mlflow", "--limit", "5"])
    assert result.exit_code == 2 and "oodbench[mlflow]" in result.output  # before any training


def test_run_with_mlflow_exports_the_run(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'run.db'}"
    args = [
        "run", "-m", "cross_entropy", "-d", "msp", "--epochs", "1", "--train-limit", "100",
        "--limit", "30", "--plots", "none", "--quiet", "--results-dir", str(tmp_path / "runs"),
        "--mlflow", uri,
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "MLflow: 1 run(s): 1 created." in result.output
    (run,) = _runs(MlflowClient(tracking_uri=uri))
    assert len(run.data.metrics) == 6 * 5 + 1  # metrics x the embedded suite's 5 OOD sets + accuracy
    assert run.data.params["eval_limit"] == "30" and run.data.params["training_recipe"] == "embedded"
    artifacts = {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(run.info.run_id)}
    assert artifacts == {"rows", "report"}  # the run's own report page went along
