"""`report.compare`: paired bootstrap differences of two detectors or two models.

The coverage checks use synthetic score models whose true AUROC difference is known: ID scores
N(mu, 1), OOD scores N(0, 1), so AUROC = Phi(mu / sqrt(2)); B's scores are correlated with A's
sample by sample (as two detectors on the same images are), with the same marginals.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from report_rows import make_row
from scipy.stats import norm

from oodbench import metrics, report
from oodbench.errors import UserInputError
from oodbench.results import ResultRow, rows_to_frame, save_scores


def model_pair(rng, n_in, n_out, mu_a, mu_b, rho=0.6):
    """Scores of models A and B on the same n_in ID and n_out OOD samples, correlation rho."""
    a_in, a_out = rng.normal(mu_a, 1.0, n_in), rng.normal(0.0, 1.0, n_out)
    spread = np.sqrt(1.0 - rho**2)
    b_in = mu_b + rho * (a_in - mu_a) + spread * rng.normal(0.0, 1.0, n_in)
    b_out = rho * a_out + spread * rng.normal(0.0, 1.0, n_out)
    return a_in, a_out, b_in, b_out


def b_minus_a(a_in, a_out, b_in, b_out, **kwargs) -> dict[str, np.ndarray]:
    """Paired bootstrap of B - A, as compare() draws it (metrics.paired_bootstrap gives first - second)."""
    return metrics.paired_bootstrap(b_in, b_out, a_in, a_out, **kwargs)


def interval(diffs: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def test_paired_interval_covers_a_known_auroc_difference():
    mu_a, mu_b = 1.0, 1.5
    truth = norm.cdf(mu_b / np.sqrt(2)) - norm.cdf(mu_a / np.sqrt(2))  # 0.0953
    rng = np.random.default_rng(123)
    covered = significant = 0
    for rep in range(200):
        diffs = b_minus_a(
            *model_pair(rng, 100, 100, mu_a, mu_b), n_resamples=200, seed=rep, metrics=("auroc",)
        )["auroc"]
        low, high = interval(diffs)
        covered += low <= truth <= high
        significant += low > 0 or high < 0
    assert 0.88 <= covered / 200 <= 0.99
    assert significant / 200 > 0.7  # a real difference of ~9.5 points is mostly detected


def test_zero_true_difference_is_mostly_not_significant():
    rng = np.random.default_rng(7)
    significant = 0
    for rep in range(100):
        diffs = b_minus_a(
            *model_pair(rng, 100, 100, 1.0, 1.0), n_resamples=200, seed=rep, metrics=("auroc",)
        )["auroc"]
        low, high = interval(diffs)
        significant += low > 0 or high < 0
    assert significant / 100 <= 0.12


def test_the_same_indices_are_used_for_a_and_b():
    rng = np.random.default_rng(0)
    a_in, a_out = rng.normal(1, 1, 50), rng.normal(0, 1, 40)
    same = b_minus_a(a_in, a_out, a_in, a_out, n_resamples=50)
    assert all(np.all(values == 0.0) for values in same.values())
    # A strictly increasing transform changes no metric: paired differences are exactly 0 too,
    # where independent resamples of A and B would scatter around 0.
    monotone = b_minus_a(a_in, a_out, 3 * a_in + 1, 3 * a_out + 1, n_resamples=50)
    assert np.allclose(monotone["auroc"], 0.0) and np.allclose(monotone["tnr_at_tpr95"], 0.0)


def test_paired_bootstrap_refuses_different_samples_and_bad_arguments():
    x = np.arange(5.0)
    with pytest.raises(UserInputError, match="same samples"):
        b_minus_a(x, x, x[:4], x)
    with pytest.raises(UserInputError, match="n_resamples"):
        b_minus_a(x, x, x, x, n_resamples=0)
    with pytest.raises(UserInputError, match="metric names"):
        b_minus_a(x, x, x, x, metrics=("aurocc",))


# --- compare() on stored rows --------------------------------------------------------------------


def stored_row(root, name: str, s_in: np.ndarray, s_out: np.ndarray, **fields) -> ResultRow:
    """A row whose metrics are computed from scores saved under root/scores/<name>.npz."""
    save_scores(root / "scores" / f"{name}.npz", scores_in=s_in, scores_out=s_out)
    return make_row(
        scores_file=f"scores/{name}.npz", n_in=s_in.size, n_out=s_out.size,
        **metrics.compute(s_in, s_out), **fields,
    )  # fmt: skip


def test_compare_two_detectors_point_difference_interval_and_renderers(tmp_path):
    rng = np.random.default_rng(3)
    a_in, a_out, b_in, b_out = model_pair(rng, 120, 90, 0.5, 2.0)
    rows = [
        stored_row(tmp_path, "msp", a_in, a_out, detector="msp"),
        stored_row(tmp_path, "odin", b_in, b_out, detector="odin"),
    ]
    result = report.compare(rows_to_frame(rows), "msp", "odin", scores_root=tmp_path, n_resamples=200)
    assert result.kind == "detector" and result.row_keys == [("mnist->animals",)]
    cell = result.cells[(("mnist->animals",), "auroc")]
    expected = metrics.compute(b_in, b_out)["auroc"] - metrics.compute(a_in, a_out)["auroc"]
    assert cell.mean == pytest.approx(expected) and cell.n == 1
    low, high = interval(b_minus_a(a_in, a_out, b_in, b_out, n_resamples=200)["auroc"])
    assert (cell.low, cell.high) == (pytest.approx(low), pytest.approx(high))
    assert cell.significant and low > 0

    text = report.render_comparison(result, "markdown")
    assert text.startswith("odin - msp (detectors), exact metrics")
    shown = f"**{100 * expected:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]**"
    assert shown in text
    latex = report.render_comparison(result, "latex")
    assert r"\textbf{" in latex and r"\toprule" in latex
    assert "<strong>" in report.render_comparison(result, "html")
    csv = pd.read_csv(io.StringIO(report.render_comparison(result, "csv")))
    assert csv.loc[0, "auroc"] == round(100 * expected, 2)
    assert bool(csv.loc[0, "auroc significant"]) is True
    assert csv.loc[0, "auroc ci_low"] == round(100 * low, 2)


def test_compare_two_models_over_seeds_averages_per_resample(tmp_path):
    rng = np.random.default_rng(5)
    rows, pairs = [], []
    for seed in (0, 1, 2):
        a_in, a_out, b_in, b_out = model_pair(rng, 60, 50, 1.0, 1.0 + 0.2 * seed)
        pairs.append((a_in, a_out, b_in, b_out))
        rows.append(stored_row(tmp_path, f"ce{seed}", a_in, a_out, seed=seed, checkpoint_sha256=f"c{seed}"))
        rows.append(
            stored_row(tmp_path, f"joint{seed}", b_in, b_out, seed=seed, model_source="joint",
                       checkpoint_sha256=f"j{seed}")
        )  # fmt: skip
    result = report.compare(rows_to_frame(rows), "cross_entropy", "joint", scores_root=tmp_path,
                            n_resamples=100, metrics=("auroc",))  # fmt: skip
    assert result.kind == "model"
    cell = result.cells[(("mnist->animals",), "auroc")]
    per_seed = [metrics.compute(b, bo)["auroc"] - metrics.compute(a, ao)["auroc"] for a, ao, b, bo in pairs]
    assert cell.n == 3 and cell.per_seed == pytest.approx(per_seed)
    assert cell.std == pytest.approx(np.std(per_seed, ddof=1))
    # The interval of the mean: each seed resampled with its own stream (seed + k), then averaged.
    mean_diffs = np.mean(
        [b_minus_a(*p, n_resamples=100, seed=k, metrics=("auroc",))["auroc"]
         for k, p in enumerate(pairs)], axis=0,
    )  # fmt: skip
    assert (cell.low, cell.high) == tuple(pytest.approx(v) for v in interval(mean_diffs))
    assert "(n=3)" in report.render_comparison(result, "markdown")


def test_compare_by_model_label_and_with_several_detectors(tmp_path):
    rng = np.random.default_rng(9)
    a_in, a_out, b_in, b_out = model_pair(rng, 40, 30, 1.0, 1.2)
    rows = []
    for detector in ("msp", "energy"):
        rows.append(
            stored_row(
                tmp_path,
                f"r-{detector}",
                a_in,
                a_out,
                model_source="external",
                model_label="resnet-a",
                checkpoint_sha256="aa",
                detector=detector,
            )
        )
        rows.append(
            stored_row(
                tmp_path,
                f"v-{detector}",
                b_in,
                b_out,
                model_source="external",
                model_label="vit-b",
                checkpoint_sha256="bb",
                detector=detector,
            )
        )
    # fmt: skip
    result = report.compare(rows_to_frame(rows), "resnet-a", "vit-b", scores_root=tmp_path, n_resamples=20)
    assert result.index_names == ("in->out", "detector")
    assert result.row_keys == [("mnist->animals", "msp"), ("mnist->animals", "energy")]


def test_compare_refuses_unpairable_rows(tmp_path):
    rng = np.random.default_rng(1)
    a_in, a_out, b_in, b_out = model_pair(rng, 40, 30, 1.0, 1.2)
    ce = stored_row(tmp_path, "a", a_in, a_out)
    fewer = stored_row(tmp_path, "b", b_in[:35], b_out, model_source="joint")
    with pytest.raises(UserInputError, match=r"scored on different samples \(n_in 40 vs 35"):
        report.compare(rows_to_frame([ce, fewer]), "cross_entropy", "joint", scores_root=tmp_path)
    with pytest.raises(UserInputError, match="two detectors .* or two models"):
        report.compare(rows_to_frame([ce, fewer]), "msp", "joint", scores_root=tmp_path)
    with pytest.raises(UserInputError, match="two different names"):
        report.compare(rows_to_frame([ce]), "msp", "msp")
    other_pair = stored_row(tmp_path, "c", b_in, b_out, model_source="joint", out_dataset="noise")
    with pytest.raises(UserInputError, match="No in/out pair and seed has rows of both"):
        report.compare(rows_to_frame([ce, other_pair]), "cross_entropy", "joint", scores_root=tmp_path)
    # "joint" naming two different recipes is ambiguous.
    two_joints = [
        ce,
        stored_row(tmp_path, "d", b_in, b_out, model_source="joint"),
        stored_row(tmp_path, "e", b_in, b_out, model_source="joint", training_recipe="other"),
    ]
    with pytest.raises(UserInputError, match="names rows of several models"):
        report.compare(rows_to_frame(two_joints), "cross_entropy", "joint", scores_root=tmp_path)
