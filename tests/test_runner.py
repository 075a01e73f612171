"""The runner: one forward pass feeds all logit/feature detectors, scores are cached, rows
carry provenance and tuning; `oodbench run` end to end on a tiny checkpoint, and its errors."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import oodbench.runner as runner_module
from oodbench import metrics
from oodbench.cli import cli
from oodbench.data import load_suite
from oodbench.data.convert import as_float
from oodbench.detectors.base import Detector, max_softmax
from oodbench.detectors.odin import ODIN
from oodbench.report import comparison_table
from oodbench.results import load_rows, load_scores, rows_to_frame, save_scores, scores_digest
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
    import oodbench.runner.forward as forward_module

    calls = []
    original = forward_module.shared_forward_pass

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(forward_module, "shared_forward_pass", counting)
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
    # The accuracy is the model's own on the ID test set (not just any fraction).
    with torch.no_grad():
        predicted = model_ut.model.eval()(as_float(data.test_in.x))
    assert odin.classification_accuracy == pytest.approx(
        float((predicted.argmax(1) == data.test_in.y).double().mean())
    )
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
        (["--seeds", "a,b"], "--seeds takes integers from 0 to 4294967295"),
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


def test_unreadable_cache_entry_means_one_new_fit_for_every_set(tiny, tmp_path, monkeypatch, caplog):
    data, _, model_ut = tiny
    rows = evaluate(
        model_ut, [DetectorRequest("msp")], data, seed=0, device="cpu", results_dir=tmp_path / "r"
    )
    entries = sorted((tmp_path / "cache" / "scores").rglob("msp-*/*/*.npz"))
    assert len(entries) == 1 + len(data.test_out)
    entries[0].write_bytes(b"truncated")  # a killed or corrupt cache write
    calls = _count_forward_passes(monkeypatch)
    with caplog.at_level("WARNING"):
        again = evaluate(
            model_ut, [DetectorRequest("msp")], data, seed=0, device="cpu", results_dir=tmp_path / "r"
        )
    # A partial hit is not mixed with a new fit: every set is scored again (issue 16 item 5).
    assert "unreadable cache entry" in caplog.text and len(calls) == 1 + len(data.test_out)
    assert [r.auroc for r in again] == [r.auroc for r in rows]


class _RefitCounter(Detector):
    """max-softmax plus the number of fits so far: scores of two fits can be told apart."""

    name = "refit_counter"
    fits = 0

    def fit(self, model, **kwargs):
        type(self).fits += 1
        self.shift_ = float(type(self).fits)
        return self

    def score_outputs(self, outputs):
        return max_softmax(outputs.logits) + self.shift_


def test_partial_cache_hit_pairs_scores_of_one_fit(tiny, tmp_path):
    """Issue 16 item 5: a lost OOD entry must not pair the cached ID scores of fit 1 with OOD
    scores of fit 2; ID and OOD scores of every row come from one fit."""
    data, _, model_ut = tiny
    kwargs = dict(seed=0, device="cpu", results_dir=tmp_path / "r")
    evaluate(model_ut, [_RefitCounter()], data, **kwargs)
    entries = sorted((tmp_path / "cache" / "scores").rglob("refit_counter-*/*/*.npz"))
    assert len(entries) == 1 + len(data.test_out)
    in_print = runner_module.fingerprint(data.test_in.x)
    next(p for p in entries if p.stem != in_print).unlink()  # one OOD set's entry is gone
    again = evaluate(model_ut, [_RefitCounter()], data, **kwargs)
    for row in again:
        scores = load_scores(tmp_path / "r" / row.scores_file)
        shifts = {int(np.floor(scores["scores_in"].min())), int(np.floor(scores["scores_out"].min()))}
        assert len(shifts) == 1, f"{row.out_dataset}: ID and OOD scores of different fits {shifts}"


def test_code_fingerprint_covers_the_whole_oodbench_tree(tmp_path):
    """Issue 16 item 6: editing a module the detector's class does not live in (metrics.py, used
    by every detector's tuning) changes the fingerprint of a built-in detector."""
    package = Path(runner_module.__file__).resolve().parent.parent  # oodbench/runner/__init__.py
    copy = tmp_path / "src" / "oodbench"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "embedded"))
    probe = (
        "from oodbench.runner import code_fingerprint; from oodbench.detectors.msp import MaxSoftmax; "
        "import oodbench, sys; assert oodbench.__file__.startswith(sys.argv[1]); "
        "print(code_fingerprint(MaxSoftmax))"
    )

    def fingerprint_of_copy() -> str:
        env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "OMP_NUM_THREADS": "1"}
        # cwd: not the checkout, whose oodbench would be imported first.
        done = subprocess.run(
            [sys.executable, "-c", probe, str(copy)], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    before = fingerprint_of_copy()
    with open(copy / "metrics.py", "a", encoding="utf-8") as handle:
        handle.write("\n# changed\n")
    assert fingerprint_of_copy() != before


class _PrivateHyper(Detector):
    """A plug-in that keeps its hyperparameter under a private name."""

    name = "private_hyper"

    def __init__(self, *, sign: float = 1.0) -> None:
        self._sign = sign

    def score_outputs(self, outputs):
        return max_softmax(outputs.logits) * self._sign


def test_cache_key_has_private_hyperparameters(tiny, tmp_path):
    data, _, model_ut = tiny
    kwargs = dict(seed=0, device="cpu", results_dir=None)
    plus = evaluate(model_ut, [_PrivateHyper(sign=1.0)], data, **kwargs)
    minus = evaluate(model_ut, [_PrivateHyper(sign=-1.0)], data, **kwargs)  # not plus's cache entries
    expected = evaluate(model_ut, [_PrivateHyper(sign=-1.0)], data, use_cache=False, **kwargs)
    assert [r.auroc for r in minus] == [r.auroc for r in expected]
    assert [r.auroc for r in minus] == [pytest.approx(1 - r.auroc) for r in plus]


def test_rows_record_where_cached_scores_were_computed(tiny, tmp_path):
    """Issue 16 item 6: a cache made on another machine gives rows that say so."""
    data, _, model_ut = tiny
    kwargs = dict(seed=0, device="cpu", results_dir=None)
    evaluate(model_ut, [DetectorRequest("msp")], data, **kwargs)
    elsewhere = {
        "device": "cuda:0",
        "torch_version": "9.9.9",
        "host_cpu": "OtherVendor/AVX9",
        "torch_threads": 7,
    }
    for path in (tmp_path / "cache" / "scores").rglob("msp-*/*/*.npz"):
        entry = load_scores(path)
        meta = {**json.loads(str(entry["meta"])), **elsewhere}
        save_scores(path, scores=entry["scores"], meta=np.array(json.dumps(meta)))
    rows = evaluate(model_ut, [DetectorRequest("msp")], data, **kwargs)
    for row in rows:
        assert (row.device, row.torch_version, row.host_cpu, row.torch_threads) == tuple(elsewhere.values())


def test_two_parameter_settings_in_one_call_stay_two_columns(tiny, tmp_path):
    """Issue 16 item 3: ODIN(T=1) and ODIN(T=1000) in one evaluate are two results, not a rerun."""
    data, _, model_ut = tiny
    rows = evaluate(
        model_ut,
        [ODIN(temperature=1.0, epsilon=0.0), ODIN(temperature=1000.0, epsilon=0.0)],
        data,
        seed=0,
        device="cpu",
        results_dir=tmp_path / "r",
    )
    assert len(rows) == 2 * len(data.test_out)
    assert len({r.scores_file for r in rows}) == len(rows)
    table = comparison_table(rows_to_frame(rows), columns="detector")
    assert table.column_labels == ["odin(T=1)", "odin(T=1000)"]
    t1 = [r.auroc for r in rows if r.detector_params["temperature"] == 1.0]
    assert [table.cell(key, "odin(T=1)").mean for key in table.row_keys] == t1


def _run_odin(checkpoint, results, temperature):
    args = [
        "run", "--checkpoint", str(checkpoint), "-d", "odin", "--param", f"odin.temperature={temperature}",
        "--param", "odin.epsilon=0", "--limit", "60", "--results-dir", str(results), "--quiet",
        "--plots", "none",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output


def test_cli_two_odin_temperatures_into_one_results_folder(tiny, tmp_path, caplog):
    """Issue 16 items 2, 3 through the CLI: `-d odin` at T=1 then T=1000 into one folder give two
    columns, one score file per row that holds that row's scores, and a correct `report --ci`."""
    _, path, _ = tiny
    results = tmp_path / "res"
    _run_odin(path, results, 1)
    _run_odin(path, results, 1000)
    frame = load_rows(results)
    assert len(frame) == 10 and frame["scores_file"].nunique() == 10
    for _, row in frame.iterrows():
        stored = load_scores(results / row["scores_file"])
        assert scores_digest(stored["scores_in"], stored["scores_out"]) == row["scores_sha256"]
        assert metrics.compute(stored["scores_in"], stored["scores_out"])["auroc"] == row["auroc"]
    with caplog.at_level("WARNING"):
        report = CliRunner().invoke(cli, ["report", "--results", str(results), "--ci", "--resamples", "50"])
    assert report.exit_code == 0, report.output
    assert "rerun row" not in caplog.text
    header = next(line for line in report.output.splitlines() if line.startswith("| in->out"))
    assert "ce / odin(T=1) " in header and "ce / odin(T=1000) " in header
    # Each column's interval comes from that column's own scores.
    row = frame[(frame["out_dataset"] == frame["out_dataset"].iloc[0])].iloc[-1]
    stored = load_scores(results / row["scores_file"])
    low, high = metrics.bootstrap(stored["scores_in"], stored["scores_out"], n_resamples=50, seed=0)["auroc"]
    assert f"[{100 * low:.1f}, {100 * high:.1f}]" in report.output
    # A score file replaced by another row's scores is refused in one line that names the fix.
    other = frame.iloc[0]["scores_file"]
    (results / row["scores_file"]).write_bytes((results / other).read_bytes())
    broken = CliRunner().invoke(cli, ["report", "--results", str(results), "--ci", "--resamples", "50"])
    assert broken.exit_code == 2 and "digest mismatch" in broken.output and "fix:" in broken.output
    assert len(broken.output.strip().splitlines()) == 1
