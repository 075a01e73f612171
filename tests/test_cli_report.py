"""`oodbench report` and `oodbench plot` through click's CliRunner: outputs, exit codes, messages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from oodbench import metrics
from oodbench.cli import cli
from oodbench.results import ResultRow, append_rows, save_scores


def make_row(**overrides) -> ResultRow:
    values = dict(
        suite="mnist", in_dataset="mnist", out_dataset="animals", model_source="cross_entropy",
        model_arch="small_cnn", training_recipe="embedded", detector="msp", seed=0,
        tnr_at_tpr95=0.5, auroc=0.931, aupr_in=0.8, aupr_out=0.85, detection_accuracy=0.82,
        fpr95_openood=0.3, classification_accuracy=0.97, n_in=100, n_out=80, device="cpu",
    )  # fmt: skip
    values.update(overrides)
    return ResultRow(**values)


@pytest.fixture
def rows_file() -> Path:
    """rows.jsonl in $OODBENCH_RESULTS (set to a tmp folder by conftest), the default location."""
    path = Path(os.environ["OODBENCH_RESULTS"]) / "rows.jsonl"
    append_rows(path, [make_row(), make_row(model_source="joint", auroc=0.95)])
    return path


def invoke(*args: str):
    return CliRunner().invoke(cli, ["report", *args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_default_results_location_and_markdown(rows_file):
    result = invoke()
    assert result.exit_code == 0, result.output
    assert "| mnist->animals |                93.1 |    **95.0** |" in result.output


def test_latex_to_output_file(rows_file, tmp_path):
    out = tmp_path / "tables" / "auroc.tex"
    result = invoke("--format", "latex", "--output", str(out), "--results", str(rows_file))
    assert result.exit_code == 0, result.output
    assert r"mnist$\to$animals & 93.1 & \textbf{95.0} \\" in out.read_text()
    assert "| mnist" not in result.output


def test_unknown_metric_is_one_line(rows_file):
    assert_one_line_error(invoke("--metric", "aurocc"), "Unknown --metric 'aurocc'", "Did you mean: auroc?")


def test_unknown_format_is_one_line(rows_file):
    assert_one_line_error(invoke("--format", "pdf"), "Unknown --format 'pdf'", "markdown, csv, latex, html")


def test_missing_results_file_is_one_line(tmp_path):
    missing = tmp_path / "none" / "rows.jsonl"
    assert_one_line_error(invoke("--results", str(missing)), str(missing), "oodbench run")


def test_malformed_jsonl_is_one_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_rows(path, [make_row()])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"schema_version": 1, "suite": \n')
    assert_one_line_error(invoke("--results", str(path)), f"{path}:2:")


def test_malformed_baseline_csv_is_one_line(rows_file, tmp_path):
    bad = tmp_path / "baseline.csv"
    bad.write_text(
        "model_source,detector,in_dataset,out_dataset,auroc\ncross_entropy,msp\nx,y,z,w,0.1,0.2,0.3\n"
    )
    assert_one_line_error(invoke("--baseline", str(bad)), "is not a readable CSV")


def test_baseline_missing_columns_is_one_line(rows_file, tmp_path):
    bad = tmp_path / "baseline.csv"
    bad.write_text("model,auroc\nmsp,0.9\n")
    assert_one_line_error(invoke("--baseline", str(bad)), "lacks required column(s)", "model_source")


@pytest.mark.parametrize("tolerance", ["-0.01", "abc"])
def test_bad_tolerance_is_one_line(rows_file, tmp_path, tolerance):
    assert_one_line_error(
        invoke("--baseline", str(tmp_path / "b.csv"), "--tolerance", tolerance),
        "--tolerance must be a number >= 0",
    )


def test_conflicting_modes_are_one_line(rows_file, tmp_path):
    result = invoke("--baseline", "a.csv", "--write-baseline", "b.csv")
    assert_one_line_error(result, "Use one of --baseline, --write-baseline at a time")
    assert_one_line_error(
        invoke("--ci", "--against", "published"), "--ci works with the comparison table only"
    )


def test_regression_check_exit_codes(rows_file, tmp_path):
    reference = tmp_path / "reference.csv"
    result = invoke("--write-baseline", str(reference))
    assert result.exit_code == 0 and "wrote baseline of 2 rows" in result.output
    result = invoke("--baseline", str(reference), "--tolerance", "0.01")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == ["no regressions (2 rows, tolerance 0.010)"]

    append_rows(rows_file, [make_row(auroc=0.902, created_at="2999-01-01T00:00:00+00:00")])  # a worse rerun
    result = invoke("--baseline", str(reference))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert (
        lines[0]
        == "auroc cross_entropy/msp mnist->animals: baseline 0.931, now 0.902 (-0.029, tolerance 0.010)"
    )
    assert lines[-1].startswith("FAILED: 1 regression(s)")
    assert "Traceback" not in result.output


def test_against_published_via_cli(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_rows(path, [make_row(in_dataset="cifar10", out_dataset="lsun_resize", model_arch="vgg13")])
    result = invoke("--results", str(path), "--against", "published", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "cifar10->lsun_resize,cross_entropy (vgg13),msp,exact,93.1,0.0,1,40.7,vgg13," in result.output


def test_ci_and_plot_from_stored_scores(tmp_path):
    rng = np.random.default_rng(1)
    s_in, s_out = rng.normal(1, 1, 80), rng.normal(0, 1, 60)
    save_scores(tmp_path / "scores" / "a.npz", scores_in=s_in, scores_out=s_out)
    path = tmp_path / "rows.jsonl"
    rows = [make_row(scores_file="scores/a.npz", n_in=80, n_out=60, **metrics.compute(s_in, s_out))]
    append_rows(path, rows)
    result = invoke("--results", str(path), "--ci")
    assert result.exit_code == 0, result.output
    low, high = metrics.bootstrap(s_in, s_out)["auroc"]
    assert f"[{100 * low:.1f}, {100 * high:.1f}]" in result.output

    plot = CliRunner().invoke(cli, ["plot", "--results", str(path)])
    assert plot.exit_code == 0, plot.output
    written = [Path(line) for line in plot.output.strip().splitlines()]
    assert [p.name for p in written] == [
        "cross_entropy-msp-mnist-seed0-hist.png",
        "cross_entropy-msp-mnist-seed0-roc.png",
    ]
    assert all(p.parent == tmp_path / "plots" and p.stat().st_size > 1000 for p in written)
    assert_one_line_error(
        CliRunner().invoke(cli, ["plot", "--results", str(path), "--model-source", "jiont"]),
        "Did you mean: joint?",
    )


def test_results_may_name_the_folder(rows_file):
    result = invoke("--results", str(rows_file.parent), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "mnist->animals,93.1,95.0"


def test_compare_via_cli_and_its_errors(tmp_path):
    rng = np.random.default_rng(2)
    s_in, s_out = rng.normal(1, 1, 80), rng.normal(0, 1, 60)
    t_in, t_out = s_in + rng.normal(0, 0.3, 80) + 1.0, s_out + rng.normal(0, 0.3, 60)
    save_scores(tmp_path / "scores" / "msp.npz", scores_in=s_in, scores_out=s_out)
    save_scores(tmp_path / "scores" / "odin.npz", scores_in=t_in, scores_out=t_out)
    path = tmp_path / "rows.jsonl"
    append_rows(
        path,
        [
            make_row(detector="msp", n_in=80, n_out=60, scores_file="scores/msp.npz",
                     **metrics.compute(s_in, s_out)),
            make_row(detector="odin", n_in=80, n_out=60, scores_file="scores/odin.npz",
                     **metrics.compute(t_in, t_out)),
        ],
    )  # fmt: skip
    result = invoke("--results", str(path), "--compare", "msp", "odin", "--resamples", "50")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("odin - msp (detectors), exact metrics")
    assert "(50 resamples" in result.output
    csv = invoke("--results", str(path), "--compare", "msp", "odin", "--resamples", "50", "--format", "csv")
    assert csv.output.splitlines()[0].startswith("in->out,tnr_at_tpr95,tnr_at_tpr95 std,")
    assert_one_line_error(
        invoke("--results", str(path), "--compare", "msp", "energy"), "--compare msp energy: name two"
    )
    assert_one_line_error(
        invoke("--results", str(path), "--compare", "msp", "odin", "--against", "published"),
        "Use one of --against, --compare at a time",
    )


def test_published_options_via_cli(tmp_path):
    path = tmp_path / "rows.jsonl"
    paper = dict(in_dataset="cifar10", out_dataset="lsun_resize", model_arch="vgg13",
                 training_recipe="lee2018-cifar10", metrics_convention="legacy", auroc=0.42)  # fmt: skip
    append_rows(
        path,
        [
            make_row(**paper),
            make_row(
                **{**paper, "model_source": "external", "model_label": "mine", "checkpoint_sha256": "ab"}
            ),
        ],
    )
    result = invoke("--results", str(path), "--against", "published", "--comparable-only", "--format", "csv")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith(
        "cifar10->lsun_resize,cross_entropy (vgg13),msp,legacy,42.0,"
    )
    result = invoke("--results", str(path), "--against", "published", "--as", "cross_entropy",
                    "--label", "mine", "--format", "csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mine (vgg13) as cross_entropy,msp,legacy,42.0,0.0,1,40.7,vgg13," in result.output
    assert "external checkpoint: training recipe unknown" in result.output
    assert_one_line_error(invoke("--results", str(path), "--as", "joint"), "--as works with --against")
    assert_one_line_error(
        invoke("--results", str(path), "--label", "yours"), "No rows with model label yours"
    )
    assert_one_line_error(
        invoke("--results", str(path), "--against", "published", "--as", "jiont"), "Did you mean: joint?"
    )
