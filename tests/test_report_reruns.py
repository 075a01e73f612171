"""Reruns vs different results in reports (issue 16 items 2, 3): the rerun key holds the
detector's parameters and the data fingerprints; score files are checked against their row."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from report_rows import frame_of, make_row

from oodbench import metrics, plots, report
from oodbench.errors import UserInputError
from oodbench.results import rows_to_frame, save_row_scores, save_scores

LATER = "2024-02-01T00:00:00+00:00"


def test_two_parameter_settings_are_two_labelled_columns_not_a_rerun(caplog):
    frame = frame_of(
        make_row(detector="odin", detector_params={"temperature": 1.0, "epsilon": 0.0}, auroc=0.70),
        make_row(detector="odin", detector_params={"temperature": 1000.0, "epsilon": 0.0}, auroc=0.90,
                 created_at=LATER),
        make_row(detector="msp", auroc=0.80),
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        table = report.comparison_table(frame, columns="detector")
    assert "rerun" not in caplog.text
    assert table.column_labels == ["odin(T=1)", "odin(T=1000)", "msp"]  # eps is equal: not shown
    values = [table.cell(("mnist->animals",), col).mean for col in table.column_labels]
    assert values == [pytest.approx(0.70), pytest.approx(0.90), pytest.approx(0.80)]


def test_parameters_are_shown_only_where_settings_would_merge():
    # ODIN tuned per model (T differs between models, one setting per model): plain "odin".
    frame = frame_of(
        make_row(detector="odin", detector_params={"temperature": 1000.0}),
        make_row(detector="odin", model_source="joint", detector_params={"temperature": 1.0}),
    )
    assert report.comparison_table(frame).column_labels == ["cross_entropy / odin", "joint / odin"]


def test_a_rerun_is_replaced_and_the_message_says_what_and_why(caplog):
    frame = frame_of(
        make_row(detector="odin", detector_params={"temperature": 1.0}, auroc=0.70),
        make_row(detector="odin", detector_params={"temperature": 1.0}, auroc=0.75, created_at=LATER),
    )
    with caplog.at_level(logging.WARNING):
        table = report.comparison_table(frame)
    assert table.column_labels == ["cross_entropy / odin"]
    assert table.cell(("mnist->animals",), "cross_entropy / odin").values == [pytest.approx(0.75)]
    assert "1 rerun row(s) replaced by later rows with the same model, checkpoint, detector parameters" in (
        caplog.text
    )
    assert "cross_entropy/odin(T=1) mnist->animals seed 0 of 2024-01-01T00:00:00+00:00" in caplog.text


def test_other_data_under_one_set_name_is_not_a_rerun():
    frame = frame_of(
        make_row(in_fingerprint="aaaaaa11", out_fingerprint="bbbbbb11", auroc=0.70),
        make_row(in_fingerprint="aaaaaa11", out_fingerprint="cccccc22", auroc=0.90, created_at=LATER),
    )
    table = report.comparison_table(frame)
    assert table.column_labels == [
        "cross_entropy / msp [data aaaaaa/bbbbbb]",
        "cross_entropy / msp [data aaaaaa/cccccc]",
    ]


def test_a_row_without_fingerprints_is_replaced_by_its_rerun():
    """Schema-2 rows have no data fingerprints; a rerun after the upgrade replaces them."""
    frame = frame_of(
        make_row(auroc=0.70),
        make_row(in_fingerprint="aaaaaa11", out_fingerprint="bbbbbb11", auroc=0.90, created_at=LATER),
    )
    table = report.comparison_table(frame)
    assert table.column_labels == ["cross_entropy / msp"]
    assert table.cell(("mnist->animals",), "cross_entropy / msp").values == [pytest.approx(0.90)]


def _stored(tmp_path, seed: int, **row_fields):
    rng = np.random.default_rng(seed)
    s_in, s_out = rng.normal(1.0, 1.0, 50), rng.normal(0.0, 1.0, 40)
    row = make_row(n_in=50, n_out=40, **metrics.compute(s_in, s_out), **row_fields)
    save_row_scores(tmp_path, row, s_in, s_out)
    return row


def test_compare_and_plot_refuse_a_score_file_of_another_run(tmp_path):
    a = _stored(tmp_path, 0, detector="odin", detector_params={"temperature": 1.0})
    b = _stored(tmp_path, 1, detector="odin", detector_params={"temperature": 1000.0}, created_at=LATER)
    frame = rows_to_frame([a, b])
    paired = report.compare(frame, "odin(T=1)", "odin(T=1000)", scores_root=tmp_path, n_resamples=50)
    assert paired.kind == "detector" and paired.row_keys == [("mnist->animals",)]
    assert len(plots.plot_rows(frame, scores_root=tmp_path, out_dir=tmp_path / "p", detector="odin")) == 4
    # b's file now holds a's scores (as when one name served two runs): refused, fix named.
    (tmp_path / b.scores_file).write_bytes((tmp_path / a.scores_file).read_bytes())
    with pytest.raises(UserInputError, match="digest mismatch.*fix: rerun that row"):
        report.compare(frame, "odin(T=1)", "odin(T=1000)", scores_root=tmp_path, n_resamples=50)
    with pytest.raises(UserInputError, match="digest mismatch"):
        plots.plot_rows(frame, scores_root=tmp_path, out_dir=tmp_path / "p")
    with pytest.raises(UserInputError, match="digest mismatch"):
        report.comparison_table(frame, ci=True, scores_root=tmp_path, n_resamples=50)


def test_old_rows_without_digest_are_read_with_a_warning(tmp_path, caplog):
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(1.0, 1.0, 50), rng.normal(0.0, 1.0, 40)
    save_scores(tmp_path / "scores" / "old.npz", scores_in=s_in, scores_out=s_out)
    row = make_row(n_in=50, n_out=40, scores_file="scores/old.npz", **metrics.compute(s_in, s_out))
    with caplog.at_level(logging.WARNING):
        table = report.comparison_table(frame_of(row), ci=True, scores_root=tmp_path, n_resamples=50)
    assert table.cell(("mnist->animals",), "cross_entropy / msp").ci is not None
    assert "1 row(s) record no scores digest" in caplog.text


def test_one_checkpoint_read_two_ways_is_two_models_not_a_rerun(caplog):
    # Same weights, same detector and data, but another input pipeline (e.g. --normalize): the
    # scores differ, so the later row must not replace the earlier (it did before model_input).
    plain = '[{"mean": null, "resize": null, "std": null}, "penultimate"]'
    normalized = '[{"mean": [0.5], "resize": null, "std": [0.25]}, "penultimate"]'
    frame = frame_of(
        make_row(model_source="external", checkpoint_sha256="c" * 64, model_input=plain, auroc=0.70),
        make_row(model_source="external", checkpoint_sha256="c" * 64, model_input=normalized, auroc=0.90,
                 created_at=LATER),
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        table = report.comparison_table(frame, columns="model")
    assert "rerun" not in caplog.text
    assert len(table.column_labels) == 2 and all("input " in label for label in table.column_labels)
    values = sorted(table.cell(("mnist->animals",), col).mean for col in table.column_labels)
    assert values == [pytest.approx(0.70), pytest.approx(0.90)]
