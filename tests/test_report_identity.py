"""Model identity in reports: label, checkpoint hash, overrides and evaluation limit keep
different models apart; older rows without these fields still read."""

from __future__ import annotations

import json

import pytest
from report_rows import frame_of, make_row

from oodbench import report
from oodbench.errors import UserInputError
from oodbench.report.baseline import aggregate_by_key
from oodbench.results import read_rows


def test_two_external_checkpoints_never_share_a_cell():
    frame = frame_of(
        make_row(model_source="external", checkpoint_sha256="aaaa1111" * 8, auroc=0.70),
        make_row(model_source="external", checkpoint_sha256="bbbb2222" * 8, auroc=0.95,
                 created_at="2024-02-01T00:00:00+00:00"),
    )  # fmt: skip
    table = report.comparison_table(frame)
    assert table.column_labels == ["external (sha256 aaaa1111) / msp", "external (sha256 bbbb2222) / msp"]
    values = [table.cell(("mnist->animals",), col).mean for col in table.column_labels]
    assert values == [pytest.approx(0.70), pytest.approx(0.95)]
    # Not even across seeds: an external checkpoint's seed does not name its weights.
    frame = frame_of(
        make_row(model_source="external", checkpoint_sha256="a1", auroc=0.70, seed=0),
        make_row(model_source="external", checkpoint_sha256="b2", auroc=0.95, seed=1),
    )
    assert all(cell.n == 1 for cell in report.comparison_table(frame).cells.values())


def test_model_labels_name_the_columns_and_rows():
    frame = frame_of(
        make_row(model_source="external", model_label="my-resnet", checkpoint_sha256="aa", auroc=0.70),
        make_row(model_source="external", model_label="my-vit", checkpoint_sha256="bb", auroc=0.95),
        make_row(model_source="joint", auroc=0.9),
    )
    table = report.comparison_table(frame)
    assert table.column_labels == ["my-resnet / msp", "my-vit / msp", "joint / msp"]
    assert "| mnist->animals |            70.0 |     **95.0** |        90.0 |" in report.render_table(table)
    by_detector = report.comparison_table(frame, columns="detector")
    assert [key[1] for key in by_detector.row_keys] == ["my-resnet", "my-vit", "joint"]


def test_seeds_of_a_trained_model_pool_but_a_retrained_seed_splits():
    seeds = frame_of(
        make_row(seed=0, checkpoint_sha256="s0", auroc=0.90),
        make_row(seed=1, checkpoint_sha256="s1", auroc=0.92),
    )
    assert report.comparison_table(seeds).cell(("mnist->animals",), "cross_entropy / msp").n == 2
    retrained = frame_of(
        make_row(seed=0, checkpoint_sha256="old", auroc=0.70),
        make_row(seed=0, checkpoint_sha256="new", auroc=0.95, created_at="2024-03-01T00:00:00+00:00"),
    )
    table = report.comparison_table(retrained)
    assert table.column_labels == ["cross_entropy (sha256 old) / msp", "cross_entropy (sha256 new) / msp"]


def test_a_rerun_of_the_same_checkpoint_still_replaces_the_earlier_row():
    frame = frame_of(
        make_row(model_label="m", checkpoint_sha256="h", auroc=0.70),
        make_row(model_label="m", checkpoint_sha256="h", auroc=0.80, created_at="2024-02-01T00:00:00+00:00"),
    )
    cell = report.comparison_table(frame).cell(("mnist->animals",), "m / msp")
    assert cell.values == [pytest.approx(0.80)]


def test_overrides_and_evaluation_limits_are_labelled_apart():
    frame = frame_of(
        make_row(auroc=0.9),
        make_row(train_overrides={"epochs": 2}, checkpoint_sha256="x", auroc=0.8),
        make_row(eval_limit=100, auroc=0.7),
    )
    table = report.comparison_table(frame)
    assert table.column_labels == [
        "cross_entropy (overrides none, full data) / msp",
        "cross_entropy (overrides epochs=2, full data) / msp",
        "cross_entropy (overrides none, limit 100) / msp",
    ]


def test_rows_without_the_identity_fields_still_report(tmp_path):
    record = {**make_row(auroc=0.93).to_dict(), "schema_version": 1}  # as oodbench 0.1.0 wrote them
    for name in ("model_label", "train_overrides", "eval_limit", "torch_threads", "host_cpu"):
        del record[name]
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (row,) = read_rows(path)
    assert (row.model_label, row.train_overrides, row.eval_limit, row.torch_threads) == ("", {}, None, None)
    # A frame from elsewhere that lacks the columns altogether.
    frame = frame_of(make_row(auroc=0.93)).drop(
        columns=["model_label", "train_overrides", "eval_limit", "checkpoint_sha256"]
    )
    table = report.comparison_table(frame)
    assert table.cell(("mnist->animals",), "cross_entropy / msp").mean == pytest.approx(0.93)


def test_baseline_refuses_two_checkpoints_under_one_key(tmp_path):
    frame = frame_of(
        make_row(model_source="external", checkpoint_sha256="a1"),
        make_row(model_source="external", checkpoint_sha256="b2"),
    )
    with pytest.raises(UserInputError, match="come from different models"):
        report.export_baseline(frame)


def test_baseline_refuses_two_detector_settings_under_one_key():
    """Two ODIN temperatures of one model and seed are two results, never averaged as seeds."""
    frame = frame_of(
        make_row(detector="odin", detector_params={"temperature": 1}, auroc=0.6),
        make_row(detector="odin", detector_params={"temperature": 1000}, auroc=0.9),
    )
    with pytest.raises(UserInputError, match="different detector parameters or data"):
        report.export_baseline(frame)
    # Seeds of one setting are still averaged.
    frame = frame_of(
        make_row(detector="odin", detector_params={"temperature": 1}, auroc=0.6, seed=0),
        make_row(detector="odin", detector_params={"temperature": 1}, auroc=0.8, seed=1),
    )
    (record,) = aggregate_by_key(frame).to_dict("records")
    assert (record["n_seeds"], record["auroc"]) == (2, pytest.approx(0.7))


def test_select_labels():
    frame = frame_of(make_row(model_label="a"), make_row(model_label="b", checkpoint_sha256="b"))
    assert list(report.select_labels(frame, ["b"])["model_label"]) == ["b"]
    assert len(report.select_labels(frame, [])) == 2
    with pytest.raises(UserInputError, match="No rows with model label c. Labels in these rows: a, b"):
        report.select_labels(frame, ["c"])
