"""Result rows (schema, JSONL, atomic appends) and score NPZ files."""

from __future__ import annotations

import dataclasses
import datetime
import json

import numpy as np
import pytest

import oodbench.atomic
from oodbench import metrics, results
from oodbench.errors import DataNotFoundError, UserInputError
from oodbench.results import ResultRow

PINNED_FIELDS = (
    "schema_version", "suite", "in_dataset", "out_dataset", "model_source", "model_label", "model_arch",
    "training_recipe", "train_overrides", "detector", "seed", "tnr_at_tpr95", "auroc", "aupr_in",
    "aupr_out", "detection_accuracy", "fpr95_openood", "metrics_convention", "classification_accuracy",
    "n_in", "n_out", "eval_limit", "fit_limit", "in_fingerprint", "out_fingerprint", "detector_params",
    "tuning",
    "checkpoint_sha256", "oodbench_version", "git_commit", "torch_version", "device", "torch_threads",
    "host_cpu", "created_at", "scores_file", "scores_sha256", "suite_sha256", "n_skipped",
    "input_channels",
    "list_sha256", "list_changed_accepted", "full_spectrum", "csid_accuracy", "tuning_flags", "model_input",
    "out_source",
)  # fmt: skip


def make_row(**overrides) -> ResultRow:
    values = dict(
        suite="mnist", in_dataset="mnist", out_dataset="animals", model_source="joint",
        model_arch="small_cnn", training_recipe="embedded", detector="odin", seed=0,
        tnr_at_tpr95=0.5, auroc=0.9, aupr_in=0.8, aupr_out=0.85, detection_accuracy=0.82,
        fpr95_openood=0.3, classification_accuracy=0.97, n_in=100, n_out=80,
        detector_params={"temperature": 1000.0, "epsilon": 0.0014}, tuning="none",
        device="cpu", oodbench_version="0.1.0", git_commit="abc", torch_version="2.0",
        created_at="2024-01-01T00:00:00+00:00",
    )  # fmt: skip
    values.update(overrides)
    return ResultRow(**values)


def test_fields_are_the_pinned_schema_and_metric_names_agree():
    assert results.FIELD_NAMES == PINNED_FIELDS
    assert results.METRIC_FIELDS == metrics.METRIC_NAMES
    assert results.SCHEMA_VERSION == 3
    assert make_row().schema_version == 3


def test_schema_1_rows_read_with_neutral_identity_fields():
    data = make_row().to_dict()
    for name in ("model_label", "train_overrides", "eval_limit", "torch_threads", "host_cpu"):
        del data[name]
    for name in ("in_fingerprint", "out_fingerprint", "scores_sha256"):  # added in schema 3
        del data[name]
    row = ResultRow.from_dict({**data, "schema_version": 1})
    assert (row.model_label, row.train_overrides, row.eval_limit, row.torch_threads, row.host_cpu) == (
        "",
        {},
        None,
        None,
        "",
    )
    assert row.schema_version == 3  # written back in the current schema
    with pytest.raises(UserInputError, match="lacks field"):  # schema 2 rows must have them
        ResultRow.from_dict({**data, "schema_version": 2})


def test_schema_2_rows_read_without_fingerprints_and_digest():
    data = make_row().to_dict()
    for name in ("in_fingerprint", "out_fingerprint", "scores_sha256"):
        del data[name]
    row = ResultRow.from_dict({**data, "schema_version": 2})
    assert (row.in_fingerprint, row.out_fingerprint, row.scores_sha256, row.schema_version) == ("", "", "", 3)
    with pytest.raises(UserInputError, match="lacks field"):  # schema 3 rows must have them
        ResultRow.from_dict({**data, "schema_version": 3})


def test_rows_written_before_suite_files_read_with_neutral_values():
    data = make_row().to_dict()
    del data["suite_sha256"], data["n_skipped"], data["out_source"]
    row = ResultRow.from_dict(data)
    assert (row.suite_sha256, row.n_skipped, row.out_source) == ("", 0, "")
    with pytest.raises(UserInputError, match="n_skipped"):
        make_row(n_skipped=-1)
    with pytest.raises(UserInputError, match="out_source"):
        make_row(out_source=None)


def test_rows_written_before_tuning_flags_read_as_not_recorded():
    data = make_row(tuning_flags=["every grid point scored the same AUROC"]).to_dict()
    assert ResultRow.from_dict(data).tuning_flags == ["every grid point scored the same AUROC"]
    del data["tuning_flags"]
    assert ResultRow.from_dict(data).tuning_flags is None  # None: not recorded, [] none flagged
    assert make_row().tuning_flags is None and make_row(tuning_flags=[]).tuning_flags == []
    with pytest.raises(UserInputError, match="tuning_flags"):
        make_row(tuning_flags="best at the edge")


def test_row_roundtrips_through_json():
    row = make_row(classification_accuracy=None, scores_file="scores/a.npz")
    text = json.dumps(row.to_dict())
    back = ResultRow.from_dict(json.loads(text))
    assert back == row
    assert back.detector_params == {"temperature": 1000.0, "epsilon": 0.0014}
    assert back.classification_accuracy is None


def test_unknown_schema_version_is_refused_clearly():
    data = make_row().to_dict()
    data["schema_version"] = 4
    with pytest.raises(
        UserInputError, match="schema_version 4 are not supported.*reads schema_version 1, 2, 3"
    ):
        ResultRow.from_dict(data)
    with pytest.raises(UserInputError, match="schema_version"):
        ResultRow.from_dict({k: v for k, v in data.items() if k != "schema_version"})


def test_unknown_and_missing_fields_are_refused():
    data = make_row().to_dict()
    with pytest.raises(UserInputError, match="Unknown field.*colour"):
        ResultRow.from_dict({**data, "colour": "red"})
    del data["auroc"]
    with pytest.raises(UserInputError, match="lacks field.*auroc"):
        ResultRow.from_dict(data)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"auroc": 93.1}, "fraction in \\[0, 1\\] \\(not percent\\)"),
        ({"auroc": float("nan")}, "auroc must be a fraction"),
        ({"model_source": "gan"}, "model_source must be one of"),
        ({"metrics_convention": "grid"}, "metrics_convention"),
        ({"classification_accuracy": 97.0}, "classification_accuracy"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"detector_params": {"t": object()}}, "JSON-serialisable"),
    ],
)
def test_bad_values_are_refused(override, message):
    with pytest.raises(UserInputError, match=message):
        make_row(**override)


def test_numpy_numbers_are_accepted_and_stored_as_python_numbers():
    row = make_row(auroc=np.float32(0.75), seed=np.int64(3))
    assert type(row.auroc) is float and row.auroc == 0.75
    assert type(row.seed) is int and row.seed == 3


def test_provenance_defaults_and_helper():
    fields = results.provenance_fields()
    assert set(fields) == {"oodbench_version", "git_commit", "torch_version", "created_at"}
    created = datetime.datetime.fromisoformat(fields["created_at"])
    assert created.utcoffset() == datetime.timedelta(0)
    values = make_row().to_dict()
    for name in fields:
        del values[name]
    row = ResultRow(**values)  # provenance fields filled from the running process
    import torch

    assert row.torch_version == torch.__version__
    assert row.git_commit != ""


def test_append_keeps_earlier_rows_in_order(tmp_path):
    path = tmp_path / "rows.jsonl"
    results.append_rows(path, [make_row(seed=0), make_row(seed=1)])
    results.append_rows(path, [make_row(seed=2, detector="msp")])
    frame = results.load_rows(path)
    assert list(frame["seed"]) == [0, 1, 2]
    assert list(frame["detector"]) == ["odin", "odin", "msp"]
    assert len(path.read_text().splitlines()) == 3


def test_append_repairs_a_missing_final_newline(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(make_row(seed=0).to_dict()))  # no trailing newline
    results.append_rows(path, [make_row(seed=1)])
    assert list(results.load_rows(path)["seed"]) == [0, 1]


@pytest.mark.parametrize("fail_at", ["replace", "fsync"])
def test_crash_mid_write_leaves_the_old_file_intact(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "rows.jsonl"
    results.append_rows(path, [make_row(seed=0), make_row(seed=1)])
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    monkeypatch.setattr(oodbench.atomic.os, fail_at, crash)
    with pytest.raises(OSError, match="simulated crash"):
        results.append_rows(path, [make_row(seed=2)])
    monkeypatch.undo()
    assert path.read_bytes() == before
    # No temporary file left behind (the empty lock file of append_rows stays, by design).
    assert sorted(p.name for p in tmp_path.iterdir()) == [".rows.jsonl.lock", "rows.jsonl"]
    assert list(results.load_rows(path)["seed"]) == [0, 1]


def test_load_rows_frame_has_one_column_per_field(tmp_path):
    path = tmp_path / "rows.jsonl"
    results.append_rows(path, [make_row(), make_row(seed=1, classification_accuracy=None)])
    frame = results.load_rows(path)
    assert tuple(frame.columns) == PINNED_FIELDS
    assert json.loads(frame["detector_params"].iloc[0]) == {"epsilon": 0.0014, "temperature": 1000.0}
    assert frame["classification_accuracy"].iloc[0] == pytest.approx(0.97)
    assert np.isnan(frame["classification_accuracy"].iloc[1])


def test_load_rows_several_files_and_empty_file(tmp_path):
    first, second, empty = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    results.append_rows(first, [make_row(seed=0)])
    results.append_rows(second, [make_row(seed=5)])
    empty.write_text("\n")
    assert list(results.load_rows([first, second, empty])["seed"]) == [0, 5]
    frame = results.load_rows(empty)
    assert len(frame) == 0 and tuple(frame.columns) == PINNED_FIELDS


def test_load_rows_missing_file_names_path_and_command(tmp_path):
    path = tmp_path / "nowhere" / "rows.jsonl"
    with pytest.raises(DataNotFoundError, match="oodbench run") as info:
        results.load_rows(path)
    assert str(path) in str(info.value)


def test_load_rows_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    results.append_rows(path, [make_row()])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    with pytest.raises(UserInputError, match=f"{path}:2: not a JSON result row"):
        results.load_rows(path)

    good = json.dumps(make_row().to_dict())
    bad = json.dumps({**make_row().to_dict(), "auroc": 1.5})
    path.write_text(f"{good}\n\n{bad}\n")
    with pytest.raises(UserInputError, match=f"{path}:3: auroc must be a fraction"):
        results.load_rows(path)


def test_scores_roundtrip_without_pickle(tmp_path):
    path = tmp_path / "scores" / "run.npz"
    s_in = np.array([0.9, 0.8, 0.1], dtype=np.float32)
    s_out = np.linspace(0, 1, 5)
    results.save_scores(path, **{results.SCORES_IN: s_in, results.SCORES_OUT: s_out})
    loaded = results.load_scores(path)
    assert set(loaded) == {"scores_in", "scores_out"}
    np.testing.assert_array_equal(loaded["scores_in"], s_in)
    assert loaded["scores_in"].dtype == np.float32
    a, b = results.scores_pair(path)
    np.testing.assert_array_equal(b, s_out)
    assert [p.name for p in path.parent.iterdir()] == ["run.npz"]


def test_scores_errors(tmp_path):
    with pytest.raises(ValueError, match="dtype object"):
        results.save_scores(tmp_path / "x.npz", scores_in=np.array([{}, 1], dtype=object))
    with pytest.raises(DataNotFoundError, match="No stored scores"):
        results.load_scores(tmp_path / "missing.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip file")
    with pytest.raises(UserInputError, match="not a readable scores NPZ"):
        results.load_scores(tmp_path / "broken.npz")
    results.save_scores(tmp_path / "one.npz", scores=np.zeros(3))
    with pytest.raises(UserInputError, match="lacks array.*scores_in, scores_out"):
        results.scores_pair(tmp_path / "one.npz")


@pytest.mark.parametrize(
    "change",
    [
        {"checkpoint_sha256": "b" * 64},
        {"detector_params": {"temperature": 1.0, "epsilon": 0.0014}},
        {"train_overrides": {"epochs": 1}},
        {"training_recipe": "paper"},
        {"eval_limit": 100},
        {"in_fingerprint": "0123abcd"},
        {"out_fingerprint": "0123abcd"},
        {"scores_sha256": "f" * 64},
    ],
    ids=lambda change: next(iter(change)),
)
def test_default_scores_file_differs_for_everything_that_changes_the_scores(change):
    """Two rows that differ in anything but time must never share (and overwrite) one NPZ."""
    a = results.default_scores_file(make_row())
    assert a.startswith("scores/mnist/joint-odin-mnist-animals-seed0-") and a.endswith(".npz")
    assert results.default_scores_file(make_row(**change)) != a
    assert results.default_scores_file(make_row(created_at="2025-01-01T00:00:00+00:00")) == a


def test_row_scores_record_identity_and_digest_and_are_verified(tmp_path):
    row = make_row(n_in=3, n_out=2)
    s_in, s_out = np.array([0.1, 0.2, 0.3]), np.array([0.0, 0.5])
    results.save_row_scores(tmp_path, row, s_in, s_out)
    stored = results.load_scores(tmp_path / row.scores_file)
    assert str(stored["scores_sha256"]) == row.scores_sha256 == results.scores_digest(s_in, s_out)
    assert json.loads(str(stored["row_identity"]))["detector_params"] == row.detector_params
    a, b, verified = results.checked_scores_pair(tmp_path / row.scores_file, row, label="r")
    assert verified and np.array_equal(a, s_in) and np.array_equal(b, s_out)
    # Another run's scores of the same sizes in that file: refused by digest, naming the fix.
    results.save_scores(tmp_path / row.scores_file, scores_in=s_in[::-1], scores_out=s_out)
    with pytest.raises(UserInputError, match="digest mismatch.*fix: rerun that row"):
        results.checked_scores_pair(tmp_path / row.scores_file, row, label="r")
    with pytest.raises(UserInputError, match="holds 3 ID / 2 OOD scores but the row r says n_in 4"):
        results.checked_scores_pair(tmp_path / row.scores_file, make_row(n_in=4, n_out=2), label="r")
    # A row written before schema 3 has no digest: read, but reported as unverified.
    old = make_row(n_in=3, n_out=2)
    assert results.checked_scores_pair(tmp_path / row.scores_file, old, label="r")[2] is False


def test_row_is_a_plain_dataclass_with_keyword_only_init():
    assert dataclasses.is_dataclass(ResultRow)
    with pytest.raises(TypeError):
        ResultRow("mnist")  # keyword-only: positional construction is a bug
