"""W&B export in offline mode: the offline run's summary, config and files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_fake import fake_results
from wandb_records import summary_and_config

from oodbench.cli import cli
from oodbench.export.common import CONTENT_TAG, IDENTITY_TAG
from oodbench.results import load_rows

pytest.importorskip("wandb", reason='wandb is not installed (pip install "oodbench[wandb]")')


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-default"))
    monkeypatch.chdir(tmp_path)


def _offline_runs(directory: Path) -> dict[str, Path]:
    """run id -> its newest offline run folder (the id read from the folder's run-<id>.wandb:
    the folder name gets a -1 suffix when two runs start in the same second)."""
    found: dict[str, Path] = {}
    for folder in sorted((directory / "wandb").glob("offline-run-*")):
        (run_file,) = folder.glob("run-*.wandb")
        found[run_file.name.removeprefix("run-").removesuffix(".wandb")] = folder
    return found


def test_offline_run_files_hold_the_same_content(tmp_path: Path):
    folder = fake_results(
        tmp_path / "runs", detectors=["msp", "odin"], sets=2, n=60, models=("joint",),
        params={"odin": {"temperature": 1000, "epsilon": 0.0}},
    )  # fmt: skip
    (folder / "report.html").write_text("<!DOCTYPE html><title>page</title>", encoding="utf-8")
    out = tmp_path / "w"
    args = ["export", "wandb", "--results", str(folder), "--project", "p", "--dir", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "W&B: 1 run(s): 1 logged."
    runs = _offline_runs(out)
    assert len(runs) == 1
    run_id, run_dir = next(iter(runs.items()))
    assert run_id.startswith("oodbench-")

    summary, config = summary_and_config(next(run_dir.glob("run-*.wandb")))
    rows = load_rows(folder)
    odin = rows[(rows.detector == "odin") & (rows.out_dataset == "ood_set_01")].iloc[0]
    assert summary["auroc/odin/ood_set_01"] == pytest.approx(odin["auroc"], abs=0)
    assert sum(key.count("/") == 2 for key in summary) == 6 * 2 * 2
    assert summary["classification_accuracy"] == pytest.approx(0.95)
    assert config["suite"] == "fake" and config["seed"] == "0" and config["model_source"] == "joint"
    assert json.loads(config["detector/odin/params"]) == {"epsilon": 0.0, "temperature": 1000}
    assert len(config[IDENTITY_TAG]) == 64 and len(config[CONTENT_TAG]) == 64
    files = run_dir / "files"
    assert (files / "report.html").is_file()
    assert len((files / "rows.jsonl").read_text(encoding="utf-8").splitlines()) == 4

    # Exporting again logs into the same run id (resume="allow"): a second offline folder,
    # of the same run id, not a new run.
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert len(list((out / "wandb").glob("offline-run-*"))) == 2
    assert set(_offline_runs(out)) == {run_id}


def test_missing_wandb_is_one_line(monkeypatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "wandb", None)
    result = CliRunner().invoke(cli, ["export", "wandb", "--results", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output == 'Error: This needs Weights & Biases: pip install "oodbench[wandb]"\n'
