"""Comparison tables, the published comparison and the regression check, with known numbers."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from report_rows import frame_of, make_row

from oodbench import metrics, report
from oodbench.errors import DataNotFoundError, UserInputError
from oodbench.results import save_scores

TOL_LINE = "tolerance 0.010)"


@pytest.fixture
def two_by_two() -> pd.DataFrame:
    """Pairs mnist->animals and mnist->noise; models cross_entropy and joint; detector msp."""
    return frame_of(
        make_row(out_dataset="animals", auroc=0.931),
        make_row(out_dataset="animals", model_source="joint", auroc=0.950),
        make_row(out_dataset="noise", auroc=0.800, fpr95_openood=0.20),
        make_row(out_dataset="noise", model_source="joint", auroc=0.750, fpr95_openood=0.10),
    )


def test_markdown_table_known_numbers(two_by_two):
    text = report.render_table(report.comparison_table(two_by_two, metric="auroc"), "markdown")
    lines = text.splitlines()
    assert lines[0].startswith("auroc in percent (higher is better), exact metrics")
    assert lines[2] == "| in->out        | cross_entropy / msp | joint / msp |"
    assert lines[3] == "| -------------- | ------------------: | ----------: |"
    assert lines[4] == "| mnist->animals |                93.1 |    **95.0** |"
    assert lines[5] == "| mnist->noise   |            **80.0** |        75.0 |"


def test_latex_booktabs_bold_best_in_the_metric_direction(two_by_two):
    auroc = report.render_table(report.comparison_table(two_by_two, metric="auroc"), "latex")
    assert r"\toprule" in auroc and r"\midrule" in auroc and r"\bottomrule" in auroc
    assert r"\begin{tabular}{lrr}" in auroc
    assert r"in$\to$out & cross\_entropy / msp & joint / msp \\" in auroc
    assert r"mnist$\to$animals & 93.1 & \textbf{95.0} \\" in auroc
    assert r"mnist$\to$noise & \textbf{80.0} & 75.0 \\" in auroc
    # fpr95_openood: lower is better, so the smaller value is bold.
    fpr = report.render_table(report.comparison_table(two_by_two, metric="fpr95_openood"), "latex")
    assert r"mnist$\to$noise & 20.0 & \textbf{10.0} \\" in fpr
    assert "lower is better" in fpr


def test_ties_are_all_bold_and_single_values_are_not():
    tied = frame_of(make_row(auroc=0.9), make_row(model_source="joint", auroc=0.9))
    latex = report.render_table(report.comparison_table(tied), "latex")
    assert r"mnist$\to$animals & \textbf{90.0} & \textbf{90.0} \\" in latex
    single = report.render_table(report.comparison_table(frame_of(make_row())), "latex")
    assert r"\textbf" not in single


def test_html_and_csv(two_by_two):
    table = report.comparison_table(two_by_two, metric="auroc")
    page = report.render_table(table, "html")
    assert "<th>in-&gt;out</th><th>cross_entropy / msp</th><th>joint / msp</th>" in page
    assert '<th scope="row">mnist-&gt;animals</th><td>93.1</td><td><strong>95.0</strong></td>' in page
    csv = pd.read_csv(io.StringIO(report.render_table(table, "csv")))
    assert list(csv.columns) == ["in->out", "cross_entropy / msp", "joint / msp"]
    assert csv.loc[0].tolist() == ["mnist->animals", 93.1, 95.0]
    assert csv.loc[1].tolist() == ["mnist->noise", 80.0, 75.0]


def test_seeds_show_mean_std_and_n():
    frame = frame_of(
        make_row(seed=0, auroc=0.90),
        make_row(seed=1, auroc=0.92),
        make_row(seed=2, auroc=0.94),
        make_row(model_source="joint", seed=0, auroc=0.91),
    )
    table = report.comparison_table(frame)
    text = report.render_table(table, "markdown")
    assert "| **92.0 ± 2.0 (n=3)** |" in text  # mean 92.0, sample std 2.0 over 3 seeds
    assert "|        91.0 |" in text
    assert "mean ± sample std" in text
    csv = pd.read_csv(io.StringIO(report.render_table(table, "csv")))
    assert csv.loc[0, "cross_entropy / msp"] == 92.0
    assert csv.loc[0, "cross_entropy / msp std"] == 2.0
    assert csv.loc[0, "cross_entropy / msp n"] == 3
    assert r"92.0 $\pm$ 2.0 (n=3)" in report.render_table(table, "latex")


def test_a_rerun_of_the_same_seed_replaces_the_earlier_row():
    frame = frame_of(
        make_row(auroc=0.70, created_at="2024-01-01T00:00:00+00:00"),
        make_row(auroc=0.80, created_at="2024-02-01T00:00:00+00:00"),
    )
    cell = report.comparison_table(frame).cell(("mnist->animals",), "cross_entropy / msp")
    assert cell.n == 1 and cell.mean == pytest.approx(0.80)


def test_column_layouts_put_the_rest_in_the_row_labels():
    frame = frame_of(
        make_row(detector="msp", auroc=0.9),
        make_row(detector="odin", auroc=0.95),
        make_row(model_source="joint", detector="msp", auroc=0.97),
    )
    by_detector = report.comparison_table(frame, columns="detector")
    assert by_detector.index_names == ("in->out", "model")
    assert by_detector.column_labels == ["msp", "odin"]
    assert by_detector.cell(("mnist->animals", "joint"), "odin").n == 0
    text = report.render_table(by_detector, "markdown")
    assert "| mnist->animals | joint         | 97.0 |        — |" in text
    by_model = report.comparison_table(frame, columns="model")
    assert by_model.index_names == ("in->out", "detector")
    assert by_model.column_labels == ["cross_entropy", "joint"]


def test_models_with_different_architectures_are_labelled_apart():
    frame = frame_of(make_row(model_arch="vgg13", auroc=0.9), make_row(model_arch="small_cnn", auroc=0.8))
    table = report.comparison_table(frame)
    assert table.column_labels == ["cross_entropy (vgg13) / msp", "cross_entropy (small_cnn) / msp"]


def test_mixed_conventions_need_a_choice():
    frame = frame_of(make_row(auroc=0.9), make_row(metrics_convention="legacy", seed=1, auroc=0.8))
    with pytest.raises(UserInputError, match="mix metric conventions"):
        report.comparison_table(frame)
    table = report.comparison_table(frame, convention="legacy")
    assert table.cell(("mnist->animals",), "cross_entropy / msp").mean == pytest.approx(0.8)
    assert "legacy metrics" in table.caption()


def test_classification_accuracy_and_bad_arguments(two_by_two):
    table = report.comparison_table(two_by_two, metric="classification_accuracy")
    assert table.cell(("mnist->animals",), "joint / msp").mean == pytest.approx(0.97)
    with pytest.raises(UserInputError, match="Unknown metric 'aurocc'"):
        report.comparison_table(two_by_two, metric="aurocc")
    with pytest.raises(UserInputError, match="Unknown column layout"):
        report.comparison_table(two_by_two, columns="seed")
    with pytest.raises(UserInputError, match="no result rows"):
        report.comparison_table(two_by_two.iloc[:0])
    with pytest.raises(UserInputError, match="Unknown format"):
        report.render_table(report.comparison_table(two_by_two), "pdf")


def test_bootstrap_interval_from_stored_scores(tmp_path):
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(1.0, 1.0, 60), rng.normal(0.0, 1.0, 40)
    save_scores(tmp_path / "scores" / "a.npz", scores_in=s_in, scores_out=s_out)
    m = metrics.compute(s_in, s_out)
    frame = frame_of(make_row(scores_file="scores/a.npz", n_in=60, n_out=40, **m))
    table = report.comparison_table(frame, ci=True, scores_root=tmp_path, n_resamples=200)
    low, high = metrics.bootstrap(s_in, s_out, n_resamples=200, seed=0)["auroc"]
    cell = table.cell(("mnist->animals",), "cross_entropy / msp")
    assert cell.ci == (pytest.approx(low), pytest.approx(high))
    assert low < m["auroc"] < high
    expected = f"{100 * m['auroc']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
    assert expected in report.render_table(table, "markdown")
    csv = pd.read_csv(io.StringIO(report.render_table(table, "csv")))
    assert csv.loc[0, "cross_entropy / msp ci_low"] == round(100 * low, 1)


def test_bootstrap_interval_needs_stored_scores(tmp_path):
    with pytest.raises(UserInputError, match="kept no scores file"):
        report.comparison_table(frame_of(make_row()), ci=True, scores_root=tmp_path)
    with pytest.raises(DataNotFoundError, match="No stored scores"):
        report.comparison_table(frame_of(make_row(scores_file="scores/x.npz")), ci=True, scores_root=tmp_path)
    with pytest.raises(UserInputError, match="OOD metrics only"):
        report.comparison_table(frame_of(make_row()), metric="classification_accuracy", ci=True)


# --- against published -----------------------------------------------------------------------


def test_shipped_published_csv_is_the_reference_copy():
    published = report.load_published()
    assert len(published) == 128
    assert set(published["training"]) == set(report.PUBLISHED_TRAINING.values())


def test_against_published_matches_a_known_row():
    ours = frame_of(
        make_row(in_dataset="cifar10", out_dataset="lsun_resize", model_arch="vgg13", auroc=0.5),
        make_row(in_dataset="svhn", out_dataset="lsun_resize", model_source="joint", model_arch="vgg13"),
    )
    comparison = report.published_comparison(ours, report.load_published(), metric="auroc")
    ce = comparison[comparison["model"] == "cross_entropy (vgg13)"]
    # Lee et al. 2018 Table 1: VGG-13, CIFAR-10 vs LSUN (resize), cross entropy, AUROC 40.7; the
    # same architecture comes first, then the other papers' networks.
    first = ce.iloc[0]
    assert (first["published"], first["published_model"]) == (40.7, "vgg13")
    assert first["source"] == "Lee et al. ICLR 2018 (OpenReview submission), Table 1"
    assert first["ours"] == 50.0
    assert set(ce["published_model"]) == {"vgg13", "densenet_bc", "wrn_28_10", "densenet", "resnet34"}
    # The joint model: only TNR at 95% TPR is published (introduction), so AUROC has no match.
    joint = comparison[comparison["model"] == "joint (vgg13)"]
    assert len(joint) == 1 and np.isnan(joint.iloc[0]["published"])
    tnr = report.published_comparison(ours, report.load_published(), metric="tnr_at_tpr95")
    joint_tnr = tnr[tnr["model"] == "joint (vgg13)"].iloc[0]
    assert joint_tnr["published"] == 99.9

    text = report.render_published(comparison, "markdown", metric="auroc")
    assert (
        "| cifar10->lsun_resize | cross_entropy (vgg13) | msp      | 50.0 | exact   |      40.7 | vgg13 "
        in text
    )
    assert "no published row" in text
    latex = report.render_published(comparison, "latex", metric="auroc")
    assert r"Lee et al. ICLR 2018 (OpenReview submission), Table 1 & no & recipe embedded" in latex
    csv = pd.read_csv(io.StringIO(report.render_published(comparison, "csv", metric="auroc")))
    assert csv.loc[0, "published"] == 40.7


def test_against_published_refuses_metrics_papers_do_not_give():
    with pytest.raises(UserInputError, match="Published results give no 'fpr95_openood'"):
        report.published_comparison(frame_of(make_row()), report.load_published(), metric="fpr95_openood")


# --- regression check ---------------------------------------------------------------------------


def write_baseline(tmp_path, text: str):
    path = tmp_path / "baseline.csv"
    path.write_text(text)
    return path


BASE_HEADER = "model_source,detector,in_dataset,out_dataset,auroc,fpr95_openood\n"


def test_regression_improvement_and_missing_rows_exact_lines(tmp_path):
    baseline = write_baseline(
        tmp_path,
        BASE_HEADER
        + "cross_entropy,msp,mnist,animals,0.931,0.100\n"
        + "cross_entropy,msp,mnist,noise,0.700,0.200\n"
        + "cross_entropy,msp,mnist,letters,0.800,0.300\n",
    )
    current = frame_of(
        make_row(out_dataset="animals", auroc=0.902, fpr95_openood=0.150),
        make_row(out_dataset="noise", auroc=0.750, fpr95_openood=0.150),
        make_row(out_dataset="shapes"),
    )
    check = report.compare_to_baseline(current, baseline, 0.01)
    assert check.regressions == [
        "auroc msp mnist->animals: baseline 0.931, now 0.902 (-0.029, tolerance 0.010)",
        # fpr95_openood: lower is better, so a rise is a regression.
        "fpr95_openood msp mnist->animals: baseline 0.100, now 0.150 (+0.050, tolerance 0.010)",
    ]
    assert check.improvements == [
        "auroc msp mnist->noise: baseline 0.700, now 0.750 (+0.050, tolerance 0.010)",
        "fpr95_openood msp mnist->noise: baseline 0.200, now 0.150 (-0.050, tolerance 0.010)",
    ]
    assert check.missing_now == ["msp mnist->letters (in the baseline, not in the current rows)"]
    assert check.not_in_baseline == ["msp mnist->shapes (in the current rows, not in the baseline)"]
    assert check.failed
    lines = check.lines()
    assert lines[0] == check.regressions[0]
    assert "improved: auroc msp mnist->noise: baseline 0.700, now 0.750 (+0.050, tolerance 0.010)" in lines
    assert "missing now: msp mnist->letters (in the baseline, not in the current rows)" in lines
    assert "not in baseline: msp mnist->shapes (in the current rows, not in the baseline)" in lines
    assert lines[-1] == (
        "FAILED: 2 regression(s), 1 baseline row(s) missing, 1 row(s) not in the baseline "
        "(2 rows, tolerance 0.010); --allow-missing lets rows on one side only pass"
    )


def test_changes_within_tolerance_pass(tmp_path):
    baseline = write_baseline(tmp_path, BASE_HEADER + "cross_entropy,msp,mnist,animals,0.93,0.10\n")
    # exactly the tolerance away (0.92 vs 0.93), and a lower fpr95 within tolerance
    check = report.compare_to_baseline(frame_of(make_row(auroc=0.92, fpr95_openood=0.095)), baseline, 0.01)
    assert not check.failed and check.regressions == [] and check.improvements == []
    assert check.lines() == ["no regressions (1 rows, tolerance 0.010)"]


def test_only_missing_current_row_fails(tmp_path):
    baseline = write_baseline(
        tmp_path,
        BASE_HEADER + "cross_entropy,msp,mnist,animals,0.9,0.3\ncross_entropy,msp,mnist,noise,0.9,0.3\n",
    )
    check = report.compare_to_baseline(frame_of(make_row()), baseline, 0.01)
    assert check.failed and check.regressions == []
    assert check.missing_now == ["msp mnist->noise (in the baseline, not in the current rows)"]


def test_new_rows_alone_fail_unless_allowed(tmp_path):
    baseline = write_baseline(tmp_path, BASE_HEADER + "cross_entropy,msp,mnist,animals,0.9,0.3\n")
    current = frame_of(make_row(), make_row(out_dataset="noise"))
    assert report.compare_to_baseline(current, baseline).failed  # a row never checked (issue 21, 7)
    check = report.compare_to_baseline(current, baseline, allow_missing=True)
    assert not check.failed
    assert check.lines()[-1] == "no regressions (1 rows, tolerance 0.010)"
    assert check.not_in_baseline == ["msp mnist->noise (in the current rows, not in the baseline)"]


def test_seeds_are_averaged_and_said_so(tmp_path):
    baseline = write_baseline(tmp_path, BASE_HEADER + "cross_entropy,msp,mnist,animals,0.931,0.3\n")
    current = frame_of(make_row(seed=0, auroc=0.90), make_row(seed=1, auroc=0.904))
    check = report.compare_to_baseline(current, baseline, 0.01)
    assert check.regressions == [
        "auroc msp mnist->animals: baseline 0.931, now 0.902 (-0.029, tolerance 0.010)"
    ]
    assert "note: current values are means over seeds (up to 2 per key)" in check.lines()


def test_several_model_sources_are_named_in_the_lines(tmp_path):
    baseline = write_baseline(
        tmp_path,
        BASE_HEADER + "cross_entropy,msp,mnist,animals,0.9,0.3\njoint,msp,mnist,animals,0.95,0.3\n",
    )
    current = frame_of(make_row(auroc=0.9), make_row(model_source="joint", auroc=0.90))
    check = report.compare_to_baseline(current, baseline, 0.01)
    assert check.regressions == [
        "auroc joint/msp mnist->animals: baseline 0.950, now 0.900 (-0.050, tolerance 0.010)"
    ]


def test_export_then_compare_is_clean(tmp_path, two_by_two):
    path = tmp_path / "reference.csv"
    path.write_text(report.export_baseline(two_by_two))
    loaded = report.load_baseline(path)
    assert len(loaded) == 4 and loaded["auroc"].tolist() == [0.931, 0.95, 0.8, 0.75]
    assert {"model_arch", "metrics_convention", "n_seeds", "classification_accuracy"} <= set(loaded.columns)
    check = report.compare_to_baseline(two_by_two, path, 0.0)
    assert check.lines() == ["no regressions (4 rows, tolerance 0.000)"]


def test_missing_current_metric_value_is_a_regression(tmp_path):
    baseline = write_baseline(
        tmp_path,
        "model_source,detector,in_dataset,out_dataset,classification_accuracy\n"
        "cross_entropy,msp,mnist,animals,0.97\n",
    )
    check = report.compare_to_baseline(frame_of(make_row(classification_accuracy=None)), baseline)
    assert check.regressions == ["classification_accuracy msp mnist->animals: baseline 0.970, now missing"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_source,detector,in_dataset\ncross_entropy,msp,mnist\n", "lacks required column.*out_dataset"),
        (
            "model_source,detector,in_dataset,out_dataset\ncross_entropy,msp,mnist,animals\n",
            "no metric column",
        ),
        (BASE_HEADER + "cross_entropy,msp,mnist,animals,93.1,0.3\n", ":2: auroc = 93.1 is not a fraction"),
        (BASE_HEADER + "cross_entropy,msp,mnist,animals,high,0.3\n", ":2: auroc is not a number"),
        (BASE_HEADER + "cross_entropy,msp,mnist,animals,0.9,0.3\n" * 2, ":3: the key .* appears twice"),
        (
            BASE_HEADER + "cross_entropy,msp,mnist,animals,0.9\ncross_entropy,msp,mnist,a,b,0.1,0.2,0.3\n",
            "is not a readable CSV",
        ),
        ("", "is not a readable CSV"),
    ],
)
def test_bad_baseline_files(tmp_path, text, message):
    with pytest.raises(UserInputError, match=message):
        report.load_baseline(write_baseline(tmp_path, text))


def test_baseline_other_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="--write-baseline"):
        report.load_baseline(tmp_path / "missing.csv")
    baseline = write_baseline(tmp_path, BASE_HEADER + "cross_entropy,msp,mnist,animals,0.9,0.3\n")
    with pytest.raises(UserInputError, match="tolerance must be a number >= 0"):
        report.compare_to_baseline(frame_of(make_row()), baseline, -0.01)
    legacy = write_baseline(
        tmp_path,
        "model_source,detector,in_dataset,out_dataset,metrics_convention,auroc\n"
        "cross_entropy,msp,mnist,animals,legacy,0.9\n",
    )
    with pytest.raises(UserInputError, match="baseline uses legacy metrics"):
        report.compare_to_baseline(frame_of(make_row()), legacy)
    mixed_models = frame_of(make_row(model_arch="vgg13"), make_row(model_arch="small_cnn", seed=1))
    with pytest.raises(UserInputError, match="different models"):
        report.compare_to_baseline(mixed_models, baseline)


def test_export_keeps_full_precision_so_an_unchanged_run_passes_at_tolerance_zero(tmp_path):
    current = frame_of(make_row(auroc=1 / 3, tnr_at_tpr95=2 / 7))
    path = tmp_path / "reference.csv"
    path.write_text(report.export_baseline(current))
    assert report.compare_to_baseline(current, path, 0.0).lines() == [
        "no regressions (1 rows, tolerance 0.000)"
    ]
