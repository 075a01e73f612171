"""Small-multiple figures for the HTML report: one tiny SVG per (detector, in/out pair).

Each figure holds the score histogram (ID filled, OOD outlined, shared bins) and the ROC curve
(`oodbench.plots.roc_curve_points`, ID positive) side by side. SVG instead of matplotlib PNGs
because a page of 20 detectors x 10 OOD sets holds 200 of them: a matplotlib figure costs
~0.1 s and ~30 KB each, this costs ~1 ms and ~3 KB. Figures are returned as data: URIs so the
page stays one file and `<img>` elements can be checked by a browser (naturalWidth).
"""

from __future__ import annotations

import base64

import numpy as np

from oodbench.plots import roc_curve_points

WIDTH, HEIGHT = 250, 100
_HIST_W = 150  # histogram panel width; the ROC panel is square, HEIGHT - margins
_MARGIN = 6
_BINS = 40
_MAX_ROC_POINTS = 200  # enough for a 100-px curve; keeps each figure small
ID_COLOR = "#1f77b4"
OOD_COLOR = "#ff7f0e"


def _histogram_paths(scores_in: np.ndarray, scores_out: np.ndarray) -> tuple[str, str]:
    """SVG path data of both densities over shared bins spanning the 0.5-99.5% quantiles.

    Quantiles rather than min/max: one extreme score (energy, Mahalanobis) would squeeze every
    other bar into a single bin. Values outside are counted in the end bins.
    """
    pooled = np.concatenate([scores_in, scores_out])
    low, high = np.quantile(pooled, [0.005, 0.995])
    if not high > low:
        low, high = float(pooled.min()) - 0.5, float(pooled.max()) + 0.5
    edges = np.linspace(low, high, _BINS + 1)
    dens = []
    for values in (scores_in, scores_out):
        counts, _ = np.histogram(np.clip(values, low, high), bins=edges)
        dens.append(counts / max(1, values.size))
    top = max(float(d.max()) for d in dens) or 1.0
    plot_h = HEIGHT - 2 * _MARGIN
    step = (_HIST_W - 2 * _MARGIN) / _BINS

    def path(density: np.ndarray, closed: bool) -> str:
        base = HEIGHT - _MARGIN
        parts = [f"M{_MARGIN},{base}"]
        for i, value in enumerate(density):
            y = base - plot_h * float(value) / top
            parts.append(f"L{_MARGIN + i * step:.1f},{y:.1f}L{_MARGIN + (i + 1) * step:.1f},{y:.1f}")
        parts.append(f"L{_HIST_W - _MARGIN},{base}")
        return "".join(parts) + ("Z" if closed else "")

    return path(dens[0], True), path(dens[1], False)


def _roc_path(scores_in: np.ndarray, scores_out: np.ndarray) -> str:
    fpr, tpr = roc_curve_points(scores_in, scores_out)
    if fpr.size > _MAX_ROC_POINTS:
        keep = np.unique(np.linspace(0, fpr.size - 1, _MAX_ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    side = HEIGHT - 2 * _MARGIN
    x0 = _HIST_W + _MARGIN
    points = " ".join(
        f"{x0 + side * float(x):.1f},{HEIGHT - _MARGIN - side * float(y):.1f}"
        for x, y in zip(fpr, tpr, strict=True)
    )
    return points


def pair_figure(scores_in: np.ndarray, scores_out: np.ndarray) -> str:
    """The SVG text of one small multiple (histogram + ROC) for one detector on one in/out pair."""
    s_in = np.asarray(scores_in, dtype=np.float64)
    s_out = np.asarray(scores_out, dtype=np.float64)
    hist_in, hist_out = _histogram_paths(s_in, s_out)
    side = HEIGHT - 2 * _MARGIN
    x0 = _HIST_W + _MARGIN
    y_tpr95 = HEIGHT - _MARGIN - side * 0.95
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}">'
        f'<rect x="0.5" y="0.5" width="{_HIST_W - 1}" height="{HEIGHT - 1}" fill="#fff" stroke="#ccc"/>'
        f'<path d="{hist_in}" fill="{ID_COLOR}" fill-opacity="0.45" stroke="none"/>'
        f'<path d="{hist_out}" fill="none" stroke="{OOD_COLOR}" stroke-width="1.4"/>'
        f'<rect x="{x0 - _MARGIN + 0.5}" y="0.5" width="{side + 2 * _MARGIN - 1}" height="{HEIGHT - 1}" '
        'fill="#fff" stroke="#ccc"/>'
        f'<line x1="{x0}" y1="{HEIGHT - _MARGIN}" x2="{x0 + side}" y2="{_MARGIN}" stroke="#aaa" '
        'stroke-dasharray="2,2"/>'
        f'<line x1="{x0}" y1="{y_tpr95:.1f}" x2="{x0 + side}" y2="{y_tpr95:.1f}" stroke="#d62728" '
        'stroke-width="0.8" stroke-dasharray="3,2"/>'
        f'<polyline points="{_roc_path(s_in, s_out)}" fill="none" stroke="#2ca02c" stroke-width="1.5"/>'
        "</svg>"
    )


def legend_figure() -> str:
    """The SVG of the legend shared by every small multiple."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="560" height="22" viewBox="0 0 560 22" '
        'font-family="sans-serif" font-size="12">'
        f'<rect x="2" y="6" width="14" height="10" fill="{ID_COLOR}" fill-opacity="0.45"/>'
        '<text x="20" y="15">ID scores</text>'
        f'<line x1="90" y1="11" x2="106" y2="11" stroke="{OOD_COLOR}" stroke-width="2"/>'
        '<text x="110" y="15">OOD scores</text>'
        '<line x1="195" y1="11" x2="211" y2="11" stroke="#2ca02c" stroke-width="2"/>'
        '<text x="215" y="15">ROC (x: FPR, y: TPR)</text>'
        '<line x1="355" y1="11" x2="371" y2="11" stroke="#d62728" stroke-dasharray="3,2"/>'
        '<text x="375" y="15">TPR = 95%</text>'
        '<line x1="450" y1="11" x2="466" y2="11" stroke="#aaa" stroke-dasharray="2,2"/>'
        '<text x="470" y="15">chance</text>'
        "</svg>"
    )


def data_uri(svg: str) -> str:
    """An SVG as a base64 data: URI (allowed by the page's CSP img-src data:)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


__all__ = ["HEIGHT", "WIDTH", "data_uri", "legend_figure", "pair_figure"]
