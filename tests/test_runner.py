"""The runner: one forward pass feeds all logit/feature detectors, scores are cached, rows
carry provenance and tuning; `oodbench run` end to end on a tiny checkpoint, and its errors."""

import re

import pytest
import torch
from click.testing import CliRunner

from oodbench.cli import cli
from oodbench.data import load_suite
from oodbench.results import load_rows, load_scores
from oodbench.runner import DetectorRequest, ModelUnderTest, evaluate, expand_shorthands
from oodbench.training import load_classifier, train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A cross-entropy small_cnn trained 1 epoch on 300 embedded images, and a small suite."""
    torch.manual_seed(0)
    data = load_suite("mnist", limit=150)
    path = tmp_path_factory.mktemp("ckpt") / "ce.pt"
    train(
        "cross_entropy",
        load_suite("mnist", limit=300),
        "embedded",
        seed=0,
        device="cpu",
        checkpoint=path,
        progress=False,
        epochs=1,
    )
    model, meta = load_classifier(path, expect_dataset="mnist_5k", expect_shape=(1, 28, 28))
    model_ut = ModelUnderTest("checkpoint", model, meta["sha256"], meta["config"]["arch"], "embedded")
    return data, path, model_ut


def _count_forward_passes(monkeypatch):
    import oodbench.runner as runner_module

    calls = []
    original = runner_module.collect_outputs

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(runner_module, "collect_outputs", counting)
    return calls


def test_one_forward_pass_per_set_feeds_all_output_detectors_and_cache_skips_rework(
    tiny, tmp_path, monkeypatch
):
    data, _, model_ut = tiny
    calls = _count_forward_passes(monkeypatch)
    requests = [
        DetectorRequest("msp"),
        DetectorRequest("energy"),
        DetectorRequest("max_logit"),
        DetectorRequest("mahalanobis"),
    ]
    rows = evaluate(model_ut, requests, data, seed=0, device="cpu", results_dir=tmp_path / "r")
    n_sets = 1 + len(data.test_out)
    # (Mahalanobis' fit pass over the training data runs inside the detector, not counted here.)
    assert len(calls) == n_sets
    assert len(rows) == len(requests) * len(data.test_out)

    calls.clear()
    again = evaluate(model_ut, requests, data, seed=0, device="cpu", results_dir=tmp_path / "r")
    assert calls == []  # every score and the accuracy came from the cache
    assert [r.auroc for r in again] == [r.auroc for r in rows]


def test_rows_record_provenance_tuning_and_scores(tiny, tmp_path):
    data, _, model_ut = tiny
    small_grid = {"temperatures": [1, 1000], "epsilons": [0.0, 0.002]}
    rows = evaluate(
        model_ut,
        [DetectorRequest("odin", small_grid), DetectorRequest("msp")],
        data,
        seed=3,
        device="cpu",
        results_dir=tmp_path,
    )
    odin = rows[0]
    assert odin.tuning.startswith("validation split: mnist_5k val")
    assert odin.detector_params["temperature"] in (1.0, 1000.0)
    assert rows[-1].tuning == "none" and rows[-1].detector_params == {}
    assert odin.checkpoint_sha256 == model_ut.checkpoint_sha256 and odin.seed == 3
    assert 0.0 <= odin.classification_accuracy <= 1.0
    stored = load_scores(tmp_path / odin.scores_file)
    assert stored["scores_in"].shape == (odin.n_in,) and stored["scores_out"].shape == (odin.n_out,)


def test_validation_data_is_not_test_data(tiny):
    data, *_ = tiny
    assert data.suite.val_ood not in data.test_out
    test_rows = {row.numpy().tobytes() for row in data.test_in.x}
    assert not any(row.numpy().tobytes() in test_rows for row in data.val_in.x)


@pytest.mark.parametrize(
    ("detectors", "models", "expected"),
    [
        (["joint"], [], (["msp"], ["joint"])),
        (["odin"], [], (["odin"], ["cross_entropy", "confidence", "joint"])),
        (["joint", "odin"], [], (["odin", "msp"], ["cross_entropy", "confidence", "joint"])),
        (["energy"], ["joint"], (["energy"], ["joint"])),
    ],
)
def test_shorthands(detectors, models, expected):
    assert expand_shorthands(detectors, models) == expected


def test_cli_run_with_checkpoint_end_to_end(tiny, tmp_path):
    _, path, _ = tiny
    results = tmp_path / "out"
    args = [
        "run",
        "--checkpoint",
        str(path),
        "-d",
        "msp",
        "-d",
        "energy",
        "--limit",
        "100",
        "--results-dir",
        str(results),
        "--quiet",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "tnr_at_tpr95" in result.output and re.search(r"\|\s*msp\s*\|\s*energy\s*\|", result.output)
    frame = load_rows(results / "rows.jsonl")
    assert set(frame["detector"]) == {"msp", "energy"} and len(frame) == 2 * 5
    assert (results / "tables" / "mnist-auroc.md").exists()
    # By default only the msp rows are drawn (hist + ROC); --plots all draws every detector.
    # An oodbench checkpoint keeps its training method as source; its label is the file's stem,
    # and the overrides it was trained with (epochs=1) are in every row.
    assert set(frame["model_source"]) == {"cross_entropy"} and set(frame["model_label"]) == {"ce"}
    assert set(frame["train_overrides"]) == {'{"epochs": 1}'} and set(frame["eval_limit"]) == {100}
    assert sorted(p.name for p in (results / "plots").glob("*.png")) == [
        "cross_entropy-ce-msp-mnist_5k-seed0-hist.png",
        "cross_entropy-ce-msp-mnist_5k-seed0-roc.png",
    ]
    again = CliRunner().invoke(cli, [*args, "--plots", "all"])
    assert again.exit_code == 0 and len(list((results / "plots").glob("*.png"))) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "jiont"], "Did you mean: joint?"),
        (["--in", "svnh"], "Did you mean: svhn?"),
        (
            ["-d", "odin", "--param", "odin.temperature=-1"],
            "The 'temperature' parameter of ODIN must be a float > 0",
        ),
        (
            ["-d", "odin", "--param", "odin.epsilon=-0.1"],
            "The 'epsilon' parameter of ODIN must be a float >= 0",
        ),
        (["--seeds", "a,b"], "--seeds takes non-negative integers"),
        (["--checkpoint", "missing.pt"], "Checkpoint missing.pt does not exist"),
        (["--in", "svhn", "-d", "joint"], "svhn"),
    ],
)
def test_cli_run_bad_input_is_one_line_exit_2(args, message, tmp_path):
    result = CliRunner().invoke(cli, ["run", "--results-dir", str(tmp_path / "r"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_cli_run_refuses_checkpoint_of_other_shape(tiny, tmp_path):
    _, path, _ = tiny
    result = CliRunner().invoke(
        cli, ["run", "--in", "svhn", "--checkpoint", str(path), "-d", "msp", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    # Either the data are missing (named) or the checkpoint is refused; never a traceback.
    assert "Traceback" not in result.output


def test_cli_run_unwritable_results_folder_leaves_existing_file(tiny, tmp_path):
    _, path, _ = tiny
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    result = CliRunner().invoke(
        cli, ["run", "--checkpoint", str(path), "-d", "msp", "--results-dir", str(blocker / "sub")]
    )
    assert result.exit_code == 2 and "Cannot write to the results folder" in result.output
    assert blocker.read_text() == "keep me"


def test_legacy_convention_is_recorded_and_close_to_exact(tiny, tmp_path):
    data, _, model_ut = tiny
    kwargs = dict(seed=0, device="cpu", results_dir=tmp_path)
    exact = evaluate(model_ut, [DetectorRequest("msp")], data, **kwargs)
    legacy = evaluate(model_ut, [DetectorRequest("msp")], data, legacy=True, **kwargs)
    assert {r.metrics_convention for r in legacy} == {"legacy"}
    assert {r.metrics_convention for r in exact} == {"exact"}
    for e, g in zip(exact, legacy, strict=True):
        assert abs(e.auroc - g.auroc) < 0.02


def test_cache_key_has_the_detector_code_and_unreadable_entries_are_rebuilt(
    tiny, tmp_path, monkeypatch, caplog
):
    import oodbench.runner as runner_module

    data, _, model_ut = tiny
    rows = evaluate(
        model_ut, [DetectorRequest("msp")], data, seed=0, device="cpu", results_dir=tmp_path / "r"
    )
    entries = sorted((tmp_path / "cache" / "scores").rglob("msp/*/*.npz"))
    assert len(entries) == 1 + len(data.test_out)
    entries[0].write_bytes(b"truncated")  # a killed or corrupt cache write
    calls = _count_forward_passes(monkeypatch)
    with caplog.at_level("WARNING"):
        again = evaluate(
            model_ut, [DetectorRequest("msp")], data, seed=0, device="cpu", results_dir=tmp_path / "r"
        )
    assert "unreadable cache entry" in caplog.text and len(calls) == 1  # only that set is scored again
    assert [r.auroc for r in again] == [r.auroc for r in rows]
    # Other detector code (or another oodbench version) means other cache keys: nothing reused.
    runner_module.code_fingerprint.cache_clear()
    monkeypatch.setattr(runner_module, "__version__", "9.9.9")
    calls.clear()
    evaluate(model_ut, [DetectorRequest("msp")], data, seed=0, device="cpu", results_dir=tmp_path / "r")
    runner_module.code_fingerprint.cache_clear()
    assert len(calls) == 1 + len(data.test_out)
