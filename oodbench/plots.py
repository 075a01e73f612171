"""Figures from stored scores: score histograms (ID vs each OOD set) and ROC curves, as PNG.

Score direction: higher = more in-distribution; ROC curves take ID as the positive class, so
TPR(d) = share of ID scores >= d and FPR(d) = share of OOD scores >= d. Files are written
atomically (rendered to memory, then oodbench.atomic).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib

# Headless backend, chosen before pyplot is imported: plots are files, never windows.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from oodbench.atomic import atomic_write_bytes  # noqa: E402
from oodbench.errors import UserInputError  # noqa: E402
from oodbench.metrics import compute  # noqa: E402
from oodbench.results import checked_scores_pair, safe_file_name, warn_unverified  # noqa: E402

logger = logging.getLogger(__name__)

SCORE_AXIS_LABEL = "score (higher = more in-distribution)"


def plot_title(*, model: str, detector: str, in_dataset: str, seed: int | None = None) -> str:
    """A title naming what the figure shows, e.g. 'joint / msp, in-dist: mnist (seed 0)'."""
    title = f"{model} / {detector}, in-dist: {in_dataset}"
    return title if seed is None else f"{title} (seed {seed})"


def _scores(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of scores; got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf.")
    return array


def _check_out(scores_out_by_name: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not scores_out_by_name:
        raise ValueError("Give at least one OOD set: scores_out_by_name={'name': scores}.")
    return {name: _scores(values, f"scores of {name!r}") for name, values in scores_out_by_name.items()}


def _save(fig: plt.Figure, path: str | os.PathLike) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    target = Path(path)
    atomic_write_bytes(target, buffer.getvalue())
    return target


def plot_histograms(
    scores_in: np.ndarray,
    scores_out_by_name: Mapping[str, np.ndarray],
    *,
    title: str,
    path: str | os.PathLike,
    bins: int = 50,
) -> Path:
    """Overlaid density histograms of the ID scores and of each OOD set's scores (shared bins)."""
    s_in = _scores(scores_in, "scores_in")
    outs = _check_out(scores_out_by_name)
    pooled = np.concatenate([s_in, *outs.values()])
    low, high = float(pooled.min()), float(pooled.max())
    if low == high:  # constant scores: give the single bar some width
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    try:
        ax.hist(
            s_in,
            bins=edges,
            density=True,
            alpha=0.45,
            color="tab:blue",
            label=f"in-distribution (n={s_in.size})",
        )
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"][1:]
        for i, (name, values) in enumerate(outs.items()):
            ax.hist(
                values,
                bins=edges,
                density=True,
                histtype="step",
                linewidth=1.6,
                color=colors[i % len(colors)],
                label=f"OOD: {name} (n={values.size})",
            )
        ax.set_xlabel(SCORE_AXIS_LABEL)
        ax.set_ylabel("density")
        ax.set_title(title)
        ax.legend(loc="best", fontsize="small")
        return _save(fig, path)
    finally:
        plt.close(fig)


def roc_curve_points(scores_in: np.ndarray, scores_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every distinct threshold, from (0, 0) to (1, 1); ID positive.

    Tied scores form one step, so the straight segment between points is the tie-aware curve
    whose area is AUROC = P(s_in > s_out) + 0.5 P(s_in = s_out).
    """
    s_in = _scores(scores_in, "scores_in")
    s_out = _scores(scores_out, "scores_out")
    pooled = np.concatenate([s_in, s_out])
    is_in = np.concatenate([np.ones(s_in.size), np.zeros(s_out.size)])
    order = np.argsort(-pooled, kind="stable")
    sorted_scores, sorted_in = pooled[order], is_in[order]
    # Last index of each run of equal scores: every threshold includes whole ties.
    ends = np.flatnonzero(np.diff(sorted_scores) != 0)
    ends = np.append(ends, sorted_scores.size - 1)
    tp = np.cumsum(sorted_in)[ends]
    fp = (ends + 1) - tp
    tpr = np.concatenate([[0.0], tp / s_in.size])
    fpr = np.concatenate([[0.0], fp / s_out.size])
    return fpr, tpr


def plot_roc(
    scores_in: np.ndarray | Mapping[str, np.ndarray],
    scores_out_by_name: Mapping[str, np.ndarray],
    *,
    title: str,
    path: str | os.PathLike,
) -> Path:
    """ROC curve of ID (positive) vs each OOD set, AUROC in each label, the 95% TPR line marked.

    `scores_in` is one array, or a dict giving each OOD set's own ID scores (same keys).
    """
    outs = _check_out(scores_out_by_name)
    if isinstance(scores_in, Mapping):
        missing = [name for name in outs if name not in scores_in]
        if missing:
            raise ValueError(f"scores_in has no ID scores for {', '.join(missing)}.")
        ins = {name: _scores(scores_in[name], f"scores_in[{name!r}]") for name in outs}
    else:
        s_in = _scores(scores_in, "scores_in")
        ins = {name: s_in for name in outs}
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    try:
        for name, values in outs.items():
            fpr, tpr = roc_curve_points(ins[name], values)
            auroc = compute(ins[name], values)["auroc"]
            ax.plot(fpr, tpr, linewidth=1.6, label=f"{name} (AUROC {100 * auroc:.1f}%)")
        ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="chance")
        ax.axhline(0.95, color="tab:red", linestyle="--", linewidth=1, label="TPR = 95%")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false positive rate (share of OOD accepted as in-distribution)")
        ax.set_ylabel("true positive rate (share of in-distribution accepted)")
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize="small")
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_rows(
    rows: pd.DataFrame,
    *,
    scores_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_source: str | None = None,
    detector: str | None = None,
) -> list[Path]:
    """A histogram and a ROC figure per (model, detector, in-dist, seed) of stored result rows.

    Scores come from each row's NPZ (`scores_file`, relative to `scores_root`, normally the
    folder of rows.jsonl), refused when they do not match the row (sizes, digest). Files:
    <out_dir>/<model>-<detector>-<in>-seed<seed>-{hist,roc}.png; the detector is labelled with
    its parameters where one model holds several settings of it (`odin(T=1000)`).
    """
    from oodbench.report.rows import detector_labels, prepare_rows

    frame = rows
    if model_source is not None:
        frame = frame[frame["model_source"] == model_source]
    if detector is not None:
        frame = frame[frame["detector"] == detector]
    frame = frame[frame["scores_file"].astype(str) != ""]
    if frame.empty:
        raise UserInputError(
            "No result rows with stored scores match; run `oodbench run` first "
            "(or check --model-source / --detector)."
        )
    written = []
    # Reruns de-duplicated (the latest counts) and parameter settings told apart, as in tables.
    frame = prepare_rows(frame, one_convention=False)
    frame["_det"] = detector_labels(frame)
    # One figure per model: rows of another label or checkpoint never share a file.
    labels = frame["model_label"] if "model_label" in frame else frame["model_source"]
    hashes = frame["checkpoint_sha256"] if "checkpoint_sha256" in frame else [""] * len(frame)
    frame["_model"] = [
        src if lab in ("", src) else f"{src}-{lab}-{str(sha)[:8]}" if src == "external" else f"{src}-{lab}"
        for src, lab, sha in zip(frame["model_source"], labels, hashes, strict=True)
    ]
    group_fields = ["_model", "model_arch", "training_recipe", "_det", "in_dataset", "seed"]
    unverified = 0
    for (source, _arch, _recipe, det, in_ds, seed), group in frame.groupby(group_fields, sort=False):
        ins: dict[str, np.ndarray] = {}
        outs: dict[str, np.ndarray] = {}
        for _, row in group.iterrows():
            path = Path(row["scores_file"])
            name = str(row["out_dataset"])  # a later rerun of the same pair wins
            label = f"{source}/{det} {in_ds}->{name} seed {seed}"
            path = path if path.is_absolute() else Path(scores_root) / path
            ins[name], outs[name], verified = checked_scores_pair(path, row, label=label)
            unverified += not verified
        # The runner stores the same ID scores with every OOD set; the histogram shows the first.
        first_in = next(iter(ins.values()))
        if any(not np.array_equal(first_in, other) for other in ins.values()):
            logger.warning(
                "%s/%s %s seed %s: ID scores differ between OOD sets; the histogram "
                "shows those stored with %s",
                source,
                det,
                in_ds,
                seed,
                next(iter(ins)),
            )
        title = plot_title(model=source, detector=det, in_dataset=in_ds, seed=int(seed))
        stem = safe_file_name(f"{source}-{det}-{in_ds}-seed{seed}")
        written.append(plot_histograms(first_in, outs, title=title, path=Path(out_dir) / f"{stem}-hist.png"))
        written.append(plot_roc(ins, outs, title=title, path=Path(out_dir) / f"{stem}-roc.png"))
    warn_unverified(unverified)
    return written


__all__ = [
    "SCORE_AXIS_LABEL",
    "plot_histograms",
    "plot_roc",
    "plot_rows",
    "plot_title",
    "roc_curve_points",
]
