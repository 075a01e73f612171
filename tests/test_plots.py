"""Score histograms and ROC curves: PNG files, correct curves, clear errors."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from oodbench import metrics, plots
from oodbench.results import ResultRow, rows_to_frame, save_scores

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_backend_is_headless():
    assert matplotlib.get_backend().lower() == "agg"


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    return rng.normal(1.0, 1.0, 300), {"animals": rng.normal(0.0, 1.0, 200), "noise": rng.uniform(-3, 0, 100)}


def test_histograms_write_a_png(tmp_path, scores):
    s_in, outs = scores
    title = plots.plot_title(model="joint", detector="msp", in_dataset="mnist", seed=0)
    assert title == "joint / msp, in-dist: mnist (seed 0)"
    path = plots.plot_histograms(s_in, outs, title=title, path=tmp_path / "plots" / "hist.png")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert [p.name for p in path.parent.iterdir()] == ["hist.png"]  # no temporary file left


def test_roc_writes_a_png_and_accepts_per_set_id_scores(tmp_path, scores):
    s_in, outs = scores
    path = plots.plot_roc(s_in, outs, title="t", path=tmp_path / "roc.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
    per_set = plots.plot_roc({"animals": s_in, "noise": s_in[:50]}, outs, title="t", path=tmp_path / "r2.png")
    assert per_set.stat().st_size > 5000
    with pytest.raises(ValueError, match="no ID scores for noise"):
        plots.plot_roc({"animals": s_in}, outs, title="t", path=tmp_path / "r3.png")


def test_roc_points_are_tie_aware_and_integrate_to_auroc():
    s_in = np.array([0.9, 0.5, 0.5, 0.2])
    s_out = np.array([0.5, 0.1, 0.5])
    fpr, tpr = plots.roc_curve_points(s_in, s_out)
    # thresholds 0.9, 0.5 (ties: 2 ID and 2 OOD together), 0.2, 0.1
    np.testing.assert_allclose(tpr, [0, 0.25, 0.75, 1.0, 1.0])
    np.testing.assert_allclose(fpr, [0, 0, 2 / 3, 2 / 3, 1.0])
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(metrics.compute(s_in, s_out)["auroc"])


def test_constant_scores_still_plot(tmp_path):
    path = plots.plot_histograms(np.ones(5), {"same": np.ones(4)}, title="t", path=tmp_path / "h.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("s_in", "outs", "message"),
    [
        (np.array([]), {"a": np.ones(3)}, "non-empty 1-D"),
        (np.ones((2, 2)), {"a": np.ones(3)}, "non-empty 1-D"),
        (np.array([1.0, np.nan]), {"a": np.ones(3)}, "NaN or inf"),
        (np.ones(3), {}, "at least one OOD set"),
    ],
)
def test_bad_scores_are_refused(tmp_path, s_in, outs, message):
    with pytest.raises(ValueError, match=message):
        plots.plot_histograms(s_in, outs, title="t", path=tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()


def test_plot_rows_from_stored_scores(tmp_path, scores):
    s_in, outs = scores
    rows = []
    for name, s_out in outs.items():
        rel = f"scores/joint/msp/mnist__{name}__seed0.npz"
        save_scores(tmp_path / rel, scores_in=s_in, scores_out=s_out)
        rows.append(
            ResultRow(
                suite="mnist", in_dataset="mnist", out_dataset=name, model_source="joint",
                model_arch="small_cnn", training_recipe="embedded", detector="msp", seed=0,
                **metrics.compute(s_in, s_out), n_in=s_in.size, n_out=s_out.size, device="cpu",
                scores_file=rel,
            )
        )  # fmt: skip
    written = plots.plot_rows(rows_to_frame(rows), scores_root=tmp_path, out_dir=tmp_path / "plots")
    assert [p.name for p in written] == ["joint-msp-mnist-seed0-hist.png", "joint-msp-mnist-seed0-roc.png"]
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in written)
    with pytest.raises(ValueError, match="No result rows with stored scores match"):
        plots.plot_rows(rows_to_frame(rows), scores_root=tmp_path, out_dir=tmp_path, detector="odin")
