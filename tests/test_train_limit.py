"""Smoke path: --train-limit / --epochs overrides, checkpoints reused by `run`, the time estimate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import oodbench.training.estimate as estimate_module
import oodbench.training.loop as loop_module
from oodbench.cli import cli
from oodbench.data import load_suite
from oodbench.data.suites import limit_training
from oodbench.results import load_rows
from oodbench.training import RECIPES, checkpoint_path, ensure_model, read_checkpoint, resolve_config
from oodbench.training.estimate import TrainingEstimate, estimate_training, format_duration

SMOKE = {"epochs": 1, "train_limit": 200}


def _config(method="joint", recipe="lee2018-svhn", **overrides):
    return resolve_config(
        method,
        RECIPES.get(recipe),
        dataset="svhn",
        in_shape=(3, 32, 32),
        num_classes=10,
        seed=1,
        seen_ood="cifar10",
        overrides=overrides,
    )


def test_train_limit_is_recorded_only_when_given():
    plain, limited = _config(), _config(train_limit=1000)
    assert "train_limit" not in plain and plain["overrides"] == {}  # recipe configs unchanged
    assert limited["train_limit"] == 1000 and limited["overrides"] == {"train_limit": 1000}
    assert {k: v for k, v in limited.items() if k not in ("train_limit", "overrides")} == {
        k: v for k, v in plain.items() if k != "overrides"
    }
    with pytest.raises(Exception, match="'train_limit' parameter must be an int >= 1"):
        _config(train_limit=0)
    path = checkpoint_path("joint", "lee2018-svhn", "svhn", 1, overrides={"epochs": 1, "train_limit": 1000})
    assert path.name == "joint-lee2018-svhn-seed1-epochs1-train_limit1000.pt"


def test_limit_training_is_a_fixed_stratified_subset_and_caps_seen_ood():
    data = load_suite("mnist", training_only=True)
    small, again = limit_training(data, 300), limit_training(data, 300)
    assert len(small.train) == 300 and len(small.seen_ood) == min(300, len(data.seen_ood))
    assert torch.equal(small.train.x, again.train.x) and torch.equal(small.train.y, again.train.y)
    full_share = np.bincount(data.train.y.numpy(), minlength=10) / len(data.train)
    counts = np.bincount(small.train.y.numpy(), minlength=10)
    assert np.all(np.abs(counts - 300 * full_share) <= 1)  # per-class counts in proportion
    assert limit_training(data, 10**6).train is data.train  # a larger limit keeps everything


def test_train_epochs_1_checkpoint_is_reused_by_run(monkeypatch):
    runner = CliRunner()
    smoke = ["--epochs", "1", "--train-limit", "200"]
    result = runner.invoke(cli, ["train", "-m", "cross_entropy", "--in", "mnist", *smoke, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "(200 training images)" in result.output
    path = checkpoint_path("cross_entropy", "embedded", "mnist_5k", 0, overrides=SMOKE)
    state = read_checkpoint(path)
    assert state["config"]["overrides"] == SMOKE and state["data"]["n_train"] == 200

    monkeypatch.setattr(loop_module, "train", lambda *a, **k: pytest.fail("trained again"))
    args = ["run", "-m", "cross_entropy", "-d", "msp", "--limit", "30", "--plots", "none", "--quiet"]
    result = runner.invoke(cli, [*args, *smoke])
    assert result.exit_code == 0, result.output
    rows = load_rows(Path(os.environ["OODBENCH_RESULTS"]))
    assert len(rows) == 5 and set(rows["checkpoint_sha256"]) == {state_sha(path)}
    assert all(json.loads(v) == SMOKE if isinstance(v, str) else v == SMOKE for v in rows["train_overrides"])


def state_sha(path):
    from oodbench.provenance import sha256_file

    return sha256_file(path)


def test_estimate_decision_and_message_without_training():
    config = _config()
    calls = []

    def measure(method, cfg, device, *, stop_below):
        calls.append((method, cfg["batch_size"], stop_below))
        return 0.0015  # seconds per image, as if measured

    estimate = estimate_training("joint", config, images=72257, device=torch.device("cpu"), measure=measure)
    assert calls == [("joint", 128, pytest.approx(1800 / (100 * 72257)))]
    assert estimate.seconds == pytest.approx(100 * 72257 * 0.0015) and estimate.long
    expected = "Training joint with lee2018-svhn: about 3 h on cpu (100 epochs x 72,257 images)"
    assert estimate.describe() == expected
    smoke = estimate_training(
        "joint", _config(**SMOKE), images=200, device=torch.device("cpu"), epochs=1, measure=measure
    )
    assert not smoke.long and smoke.describe().endswith("about 1 s on cpu (1 epochs x 200 images)")
    assert TrainingEstimate("x", "r", "cpu", 1, 1800, 1.0).long is False  # exactly 30 min: no warning
    assert TrainingEstimate("x", "r", "cpu", 1, 1801, 1.0).long is True
    assert [format_duration(s) for s in (0.2, 59, 600, 5400, 9000, 40000)] == [
        "1 s", "59 s", "10 min", "1.5 h", "2.5 h", "11 h"
    ]


def test_measured_timing_is_positive_and_leaves_the_rng_alone(monkeypatch):
    config = resolve_config(
        "joint", RECIPES.get("embedded"), dataset="mnist_5k", in_shape=(1, 28, 28), num_classes=10, seed=0
    )
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    seconds = estimate_module.measure_seconds_per_image("joint", config, torch.device("cpu"), steps=1)
    assert 0 < seconds < 1 and torch.equal(torch.rand(3), expected)
    # A run that stays short even at the warm-up step's speed is not timed further.
    timed = []
    monkeypatch.setattr(estimate_module.time, "perf_counter", lambda: timed.append(1) or float(len(timed)))
    seconds = estimate_module.measure_seconds_per_image("joint", config, torch.device("cpu"), stop_below=1.0)
    assert len(timed) == 2 and seconds == pytest.approx(1 / 16)  # one timed probe step of 16 images
    timed.clear()
    estimate_module.measure_seconds_per_image("joint", config, torch.device("cpu"), steps=3, stop_below=1e-9)
    assert len(timed) == 4  # the probe, then (after an untimed warm-up) the 3 timed steps


def test_cli_prints_the_estimate_and_smoke_command_before_long_training(monkeypatch):
    monkeypatch.setattr(estimate_module, "measure_seconds_per_image", lambda *a, **k: 10.0)  # very slow

    def stop(*args, **kwargs):
        raise RuntimeError("stopped before training")

    monkeypatch.setattr(loop_module, "train", stop)
    args = ["train", "-m", "joint", "--in", "mnist", "--train-limit", "100", "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert "Training joint with embedded: about 67 min on cpu (4 epochs x 100 images); for a quick check: " \
        "oodbench train -m joint --in mnist --epochs 1 --train-limit 1000" in result.output
    assert str(result.exception) == "stopped before training"
    result = CliRunner().invoke(cli, ["run", "-m", "joint", "-d", "msp", "--limit", "5", "--quiet"])
    assert str(result.exception) == "stopped before training"
    assert "Training joint with embedded: about 39 h on cpu (4 epochs x 3,500 images); for a quick check: " \
        "oodbench run --in mnist --epochs 1 --train-limit 1000 --limit 1000" in result.output


def test_ensure_model_estimates_before_training_only(monkeypatch, tmp_path):
    monkeypatch.setattr(estimate_module, "measure_seconds_per_image", lambda *a, **k: 1e-6)
    estimates = []
    kwargs = dict(seed=0, device="cpu", cache_dir=tmp_path, progress=False, overrides=SMOKE)
    path = ensure_model("cross_entropy", "mnist", on_estimate=estimates.append, **kwargs)
    assert [(e.method, e.epochs, e.images, e.long) for e in estimates] == [("cross_entropy", 1, 200, False)]
    assert ensure_model("cross_entropy", "mnist", on_estimate=estimates.append, **kwargs) == path
    assert len(estimates) == 1  # a cached model is not estimated again
