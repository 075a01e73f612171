"""OOD-detection metrics from two arrays of scores, exact and tie-aware (pure numpy).

Convention: a score is HIGHER for inputs that look more in-distribution (ID), and ID is
the positive class unless a metric's name says otherwise. Every value is a fraction in
[0, 1]. Definitions as in docs/methods.md (section 5), with
TPR(d) = share of ID scores s >= d and TNR(d) = share of OOD scores s < d:

- ``tnr_at_tpr95``: TNR(d) at the largest threshold d with TPR(d) >= 0.95. An OOD score
  equal to d counts as accepted (not rejected). FPR at 95% TPR (ODIN's number) is 1 - this.
- ``auroc``: P(s_in > s_out) + 0.5 * P(s_in = s_out) (ties count 1/2).
- ``detection_accuracy``: max over all thresholds d of 0.5 * TPR(d) + 0.5 * TNR(d),
  including the thresholds that accept everything or nothing (so it is >= 0.5).
- ``aupr_in``: average precision with ID positive and score s (scikit-learn's
  ``average_precision_score``: sum over distinct thresholds, from the highest down, of
  (R_k - R_{k-1}) * P_k with count-based precision P = tp / (tp + fp)).
- ``aupr_out``: the same with OOD positive and score -s.
- ``fpr95_openood``: OpenOOD's "FPR@95" (OOD positive, score -s): the share of ID scores
  flagged as OOD (s <= v) at the first threshold v, walking up from the lowest score, that
  flags >= 95% of the OOD scores. It is a DIFFERENT quantity from 1 - tnr_at_tpr95 (the
  95% is taken over OOD, not ID). OpenOOD reads it off scikit-learn's ``roc_curve`` with its
  default ``drop_intermediate=True``, which can drop that first point when it lies inside a
  straight stretch of the curve (consecutive tie groups with the same ID/OOD mix) and then
  report the next one; here the definition is computed exactly.

All exact metrics come from ONE ``np.argsort`` of the pooled scores: the sorted scores are
cut into groups of equal value, and cumulative ID / OOD counts per group give every
threshold's confusion matrix, so ties are handled exactly and integer counts keep the
95% comparisons exact (20 * count >= 19 * n, no float rounding).

Constant scores (every ID and OOD score equal) have a single threshold that accepts
everything, plus "accept nothing": auroc = 0.5, tnr_at_tpr95 = 0.0, detection_accuracy =
0.5, aupr_in = n_in / (n_in + n_out), aupr_out = n_out / (n_in + n_out), fpr95_openood = 1.0.

Legacy mode (``compute(..., legacy=True)``) reproduces the 200,000-step threshold grid of
the public code behind Lee et al. 2018 / ODIN (calMetric), as described in docs/methods.md
section 5, so that our numbers can be set beside published ones. Grid: d_j = start + j * gap
for j = 0, 1, ... while d_j < end, start/end = min/max of all scores, gap = (end - start) /
200,000; tpr(d) = share of s_in >= d, fpr(d) = share of s_out > d. It differs from the
exact values when:

- many scores tie at the maximum (e.g. softmax = 1.0): the maximum is never a threshold,
  so the tied block cannot be split off; if more than 96% of ID scores sit at the maximum
  no grid tpr falls in the [0.94, 0.96] window and TNR at 95% TPR becomes 0, and AUROC has
  no closing term, so the ROC segment from the last grid point to (0, 0) is dropped;
- set sizes differ: legacy AUPR uses RATES (tp = share of ID, fp = share of OOD), i.e.
  precision under a 50/50 prior, whatever n_in and n_out are;
- TNR at 95% TPR is 1 - the MEAN fpr over all grid points with 0.94 <= tpr <= 0.96 (a
  window average, weighted by grid density), not the value at the 95% threshold, and it is
  0 when no grid point falls in the window;
- scores closer together than gap fall into the same grid cell (outliers widen the gap).
On continuous scores with equal set sizes it agrees with the exact values to ~0.2 points.
The grid has no ``fpr95_openood``; legacy mode returns the exact value for that key. If all
scores are equal the grid is empty (gap = 0) and legacy mode returns the exact values.
The thresholds are start + j * gap (the original's ``np.arange`` may differ by an ulp).

``bootstrap`` gives 95% percentile intervals by resampling ID and OOD independently.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from oodbench.errors import UserInputError

logger = logging.getLogger(__name__)

METRIC_NAMES: tuple[str, ...] = (
    "tnr_at_tpr95",
    "auroc",
    "aupr_in",
    "aupr_out",
    "detection_accuracy",
    "fpr95_openood",
)
HIGHER_IS_BETTER: dict[str, bool] = {name: name != "fpr95_openood" for name in METRIC_NAMES}

# Number of grid steps of the public code's threshold sweep (calMetric: gap = (end - start) / 200000).
LEGACY_STEPS = 200_000


class _Groups(NamedTuple):
    """Pooled scores cut into groups of equal value, in increasing order.

    u[k] is the k-th distinct value (K of them). a0 / b0 / t0 have K + 1 entries: a0[k] is the
    number of ID scores < u[k], so a0[k + 1] is the number <= u[k] (a0[0] = 0, a0[K] = n_in);
    b0 the same for OOD and t0 = a0 + b0 for all scores. float64, which holds integer counts
    exactly below 2**53. Groups may be empty (bootstrap resamples keep every original group).
    """

    u: np.ndarray
    a0: np.ndarray
    b0: np.ndarray
    t0: np.ndarray
    n_in: int
    n_out: int


def _as_scores(x: ArrayLike, name: str) -> np.ndarray:
    """Return `x` as a 1-D float64 array of finite scores, or raise UserInputError naming the problem."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"'{name}' must be an array of numbers; could not convert it: {exc}") from exc
    if arr.ndim != 1:
        raise UserInputError(
            f"'{name}' must be a 1-D array of scores; got shape {arr.shape}. Flatten it (.ravel()) first."
        )
    if arr.size == 0:
        raise UserInputError(f"'{name}' is empty; pass at least one score.")
    finite = np.isfinite(arr)
    if not finite.all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(arr.size - finite.sum()) - n_nan
        first = int(np.flatnonzero(~finite)[0])
        raise UserInputError(
            f"'{name}' contains {n_nan} NaN and {n_inf} infinite value(s) (first at index {first}); "
            "metrics need finite scores, so fix or drop them first."
        )
    return arr


def _group(scores_in: np.ndarray, scores_out: np.ndarray) -> tuple[_Groups, np.ndarray]:
    """Sort the pooled scores once; return the groups and the argsort order of the pooled scores."""
    n_in, n_out = scores_in.size, scores_out.size
    n = n_in + n_out
    pooled = np.concatenate((scores_in, scores_out))
    order = np.argsort(pooled)  # the one sort; ties need no stable order since they are grouped
    sorted_scores = pooled[order]
    # True where a new run of equal values starts (-0.0 == 0.0, so they share a group).
    starts = sorted_scores[1:] != sorted_scores[:-1]
    n_groups = int(np.count_nonzero(starts)) + 1
    # ID scores at or below each sorted position. An int32 cumsum is several times cheaper
    # than a float64 one and cannot overflow below 2**31 scores.
    a_cum = np.cumsum(order < n_in, dtype=np.int32 if n < 2**31 - 1 else np.int64)
    a0 = np.empty(n_groups + 1)
    a0[0] = 0.0
    if n_groups == n:  # no ties: every score is its own group, no gathers needed
        u = sorted_scores
        a0[1:] = a_cum
        t0 = np.arange(n + 1, dtype=np.float64)
    else:
        ends = np.flatnonzero(starts)  # last position of every group but the final one
        u = np.append(sorted_scores[ends], sorted_scores[-1])
        a0[1:-1] = a_cum[ends]
        a0[-1] = n_in
        t0 = np.empty(n_groups + 1)
        t0[0] = 0.0
        t0[1:-1] = ends
        t0[1:-1] += 1.0
        t0[-1] = n
    return _Groups(u, a0, t0 - a0, t0, n_in, n_out), order


def _trim_empty(g: _Groups) -> _Groups:
    """Drop leading and trailing empty groups (bootstrap resamples), so that every threshold
    u[k] kept has at least one score at or below it and one at or above it."""
    # Binary searches on the non-decreasing total counts, O(log K).
    first = int(np.searchsorted(g.t0, 0, side="right")) - 1  # lowest non-empty group
    last = int(np.searchsorted(g.t0, g.n_in + g.n_out, side="left")) - 1  # highest non-empty group
    if first == 0 and last == g.u.size - 1:
        return g
    # Counts below the first kept group are 0, so the sliced prefix arrays still start at 0.
    keep, keep0 = slice(first, last + 1), slice(first, last + 2)
    return _Groups(g.u[keep], g.a0[keep0], g.b0[keep0], g.t0[keep0], g.n_in, g.n_out)


def _fpr95_openood(g: _Groups) -> float:
    """OpenOOD FPR@95: first (lowest) u[k] that flags >= 95% of OOD (s <= u[k]); share of ID flagged there."""
    # 20 * b >= 19 * n_out  <=>  b >= ceil(19 * n_out / 20); b0 is non-decreasing, b0[0] = 0.
    j = int(np.searchsorted(g.b0, (19 * g.n_out + 19) // 20, side="left"))
    return float(g.a0[j] / g.n_in)


def _exact(g: _Groups) -> dict[str, float]:
    """The exact, tie-aware metrics from grouped counts (see the module docstring for definitions).

    Written with few passes and in-place operations: on 10**6 distinct scores each pass over
    the group arrays costs about a millisecond, comparable to the sort itself in total.
    """
    g = _trim_empty(g)
    a0, b0, t0, n_in, n_out = g.a0, g.b0, g.t0, g.n_in, g.n_out
    n = n_in + n_out
    k = g.u.size
    # Three work arrays, reused with out= (fresh large arrays cost page faults).
    in_k = np.subtract(a0[1:], a0[:-1])  # ID scores in group k
    scratch = np.empty(k + 1)
    buf = np.empty(k + 1)
    out_k = np.subtract(t0[1:], t0[:-1], out=scratch[:k])
    out_k -= in_k  # OOD scores in group k

    # Average precision, OOD positive with score -s (s <= u[k] flagged): tp = b0[k + 1],
    # tp + fp = t0[k + 1] > 0 (after trimming); recall grows by out_k / n_out.
    precision = np.divide(b0[1:], t0[1:], out=buf[:k])
    precision *= out_k
    aupr_out = float(precision.sum()) / n_out  # out_k is not needed below: scratch is free

    # TPR(u[k]) = (n_in - a0[k]) / n_in >= 0.95  <=>  a0[k] <= n_in / 20. a0 is non-decreasing
    # and starts at 0, so the qualifying k are a non-empty prefix; take its last.
    k95 = int(np.searchsorted(a0[:-1], n_in // 20, side="right")) - 1
    tnr_at_tpr95 = b0[k95] / n_out  # OOD scores equal to the threshold are accepted

    # Each ID score in group k beats the b0[k] OOD scores below it and ties with out_k of them:
    # in_k * (b0[k] + 0.5 * out_k) = 0.5 * in_k * (b0[k] + b0[k + 1]). The terms and partial
    # sums are integers below 2**53, so the sum is exact.
    pairs = np.add(b0[:-1], b0[1:], out=buf[:k])
    pairs *= in_k
    auroc = float(pairs.sum()) / (2.0 * n_in * n_out)

    # 0.5 * TPR + 0.5 * TNR = (n_in * n_out + n_in * b0 - n_out * a0) / (2 n_in n_out) at every
    # threshold, incl. accept-all (index 0) and accept-nothing (index K); exact integers.
    acc = np.multiply(b0, n_in, out=buf)
    acc -= np.multiply(a0, n_out, out=scratch)
    detection_accuracy = (n_in * n_out + float(acc.max())) / (2.0 * n_in * n_out)

    # Average precision, ID positive, thresholds u[k] from the top: tp = n_in - a0[k] and
    # tp + fp = n - t0[k] (scores >= u[k], > 0 after trimming); recall grows by in_k / n_in.
    precision = np.subtract(n_in, a0[:-1], out=buf[:k])
    precision /= np.subtract(n, t0[:-1], out=scratch[:k])
    precision *= in_k
    aupr_in = float(precision.sum()) / n_in

    return {
        "tnr_at_tpr95": float(tnr_at_tpr95),
        "auroc": auroc,
        "aupr_in": aupr_in,
        "aupr_out": aupr_out,
        "detection_accuracy": float(detection_accuracy),
        "fpr95_openood": _fpr95_openood(g),
    }


def _legacy_grid(start: float, end: float, steps: int) -> np.ndarray:
    """Thresholds start + j * gap, j = 0, 1, ..., kept while < end, with gap = (end - start) / steps."""
    gap = (end - start) / steps
    if not np.isfinite(gap):  # end - start overflowed (scores near +-1e308)
        gap = end / steps - start / steps
    grid = start + np.arange(steps + 1, dtype=np.float64) * gap
    return grid[grid < end]


def _legacy_from_groups(g: _Groups, steps: int = LEGACY_STEPS) -> dict[str, float]:
    """The public code's grid metrics (docs/methods.md, section 5), vectorised over the grid."""
    g = _trim_empty(g)
    start, end = float(g.u[0]), float(g.u[-1])
    if not start < end:
        logger.debug("All scores are equal; the legacy grid is empty, returning the exact metrics.")
        return _exact(g)
    n_in, n_out = g.n_in, g.n_out
    d = _legacy_grid(start, end, steps)

    # Counts at every grid point by one binary search into the sorted distinct values:
    # i_left groups lie below d, and one more lies at or below d when d hits a value exactly.
    i_left = np.searchsorted(g.u, d, side="left")
    hit = g.u[np.minimum(i_left, g.u.size - 1)] == d
    # Consecutive grid points with the same counts form a run. Within a run every term of the
    # sums below is zero (fpr_prev == fpr, recall_prev == recall) and min/max see one value,
    # so the work is done once per run, with its length as weight for the window mean. The
    # key 2 * i_left + hit is non-decreasing along the grid.
    key = 2 * i_left + hit
    first = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    weight = np.diff(np.append(first, d.size))
    i_left, i_right = i_left[first], i_left[first] + hit[first]
    in_lt = g.a0[i_left]  # ID scores < d
    out_lt = g.b0[i_left]  # OOD scores < d
    out_le = g.b0[i_right]  # OOD scores <= d

    tpr = (n_in - in_lt) / n_in  # share of s_in >= d
    fpr = (n_out - out_le) / n_out  # share of s_out > d

    # TNR at 95% TPR: 1 - mean fpr over the grid points with 0.94 <= tpr <= 0.96 (FPR 1 if none).
    window = (tpr >= 0.94) & (tpr <= 0.96)
    fpr_window = float(np.sum(fpr[window] * weight[window]) / np.sum(weight[window])) if window.any() else 1.0
    tnr_at_tpr95 = 1.0 - fpr_window

    # sum of (fpr_prev - fpr) * tpr in increasing d, fpr_prev starting at 1.0; no closing term.
    fpr_prev = np.concatenate(([1.0], fpr[:-1]))
    auroc = float(np.sum((fpr_prev - fpr) * tpr))

    detection_accuracy = 1.0 - float(np.min(0.5 * (1.0 - tpr) + 0.5 * fpr))

    # AUPR-In, increasing d, rates: tp = share of s_in >= d, fp = share of s_out >= d; d with
    # tp + fp = 0 are skipped (none occur: the maximum score is above every grid point).
    tp = tpr
    fp = (n_out - out_lt) / n_out
    keep = (tp + fp) != 0
    aupr_in = _legacy_area(tp[keep], fp[keep])

    # AUPR-Out, the same grid walked from the top down: fp = share of s_in < d, tp = share
    # of s_out < d; stop at the first d where both are 0 (d = start, the minimum).
    fp = (in_lt / n_in)[::-1]
    tp = (out_lt / n_out)[::-1]
    zero = np.flatnonzero((tp + fp) == 0)
    stop = int(zero[0]) if zero.size else tp.size
    aupr_out = _legacy_area(tp[:stop], fp[:stop])

    return {
        "tnr_at_tpr95": tnr_at_tpr95,
        "auroc": auroc,
        "aupr_in": aupr_in,
        "aupr_out": aupr_out,
        "detection_accuracy": detection_accuracy,
        "fpr95_openood": _fpr95_openood(g),  # not defined by the grid: exact value
    }


def _legacy_area(tp: np.ndarray, fp: np.ndarray) -> float:
    """sum of (recall_prev - recall) * precision with recall_prev starting at 1.0, plus the
    final recall * precision; precision = tp / (tp + fp) and recall = tp (both rates)."""
    if tp.size == 0:
        return 0.0
    precision = tp / (tp + fp)
    recall_prev = np.concatenate(([1.0], tp[:-1]))
    return float(np.sum((recall_prev - tp) * precision) + tp[-1] * precision[-1])


def _legacy(scores_in: ArrayLike, scores_out: ArrayLike, *, steps: int = LEGACY_STEPS) -> dict[str, float]:
    """Legacy grid metrics with a configurable number of grid steps (tests use a small grid)."""
    s_in = _as_scores(scores_in, "scores_in")
    s_out = _as_scores(scores_out, "scores_out")
    return _legacy_from_groups(_group(s_in, s_out)[0], steps)


def compute(scores_in: ArrayLike, scores_out: ArrayLike, *, legacy: bool = False) -> dict[str, float]:
    """All metrics of METRIC_NAMES for ID scores `scores_in` and OOD scores `scores_out`.

    Higher score = more in-distribution; ID is positive; values are fractions in [0, 1].
    Exact and tie-aware by default (definitions in the module docstring, docs/methods.md
    section 5); ``legacy=True`` uses the public code's 200,000-step threshold grid instead
    (fpr95_openood stays exact). Raises UserInputError (a ValueError) for empty, non-1-D or
    non-finite input.
    """
    s_in = _as_scores(scores_in, "scores_in")
    s_out = _as_scores(scores_out, "scores_out")
    groups = _group(s_in, s_out)[0]
    return _legacy_from_groups(groups) if legacy else _exact(groups)


def bootstrap(
    scores_in: ArrayLike,
    scores_out: ArrayLike,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    legacy: bool = False,
) -> dict[str, tuple[float, float]]:
    """95% percentile bootstrap interval (2.5th, 97.5th percentile) of every metric.

    Each resample draws len(scores_in) ID indices and then len(scores_out) OOD indices with
    replacement, independently (``rng = np.random.default_rng(seed)``; ``rng.integers``), and
    computes the metrics (exact or legacy) on those scores. The pooled scores are sorted once:
    a resample only changes how many copies of each distinct value there are, so it costs
    O(n) counting, not a new sort. Interval = np.percentile(values, [2.5, 97.5]).
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise UserInputError(f"'n_resamples' must be an integer >= 1. Got {n_resamples!r} instead.")
    s_in = _as_scores(scores_in, "scores_in")
    s_out = _as_scores(scores_out, "scores_out")
    groups, order = _group(s_in, s_out)
    n_in, n_out = groups.n_in, groups.n_out
    n_groups = groups.u.size

    # Group index of every original score: group k starts at sorted position t0[k].
    new_group = np.zeros(order.size, dtype=np.int64)
    new_group[groups.t0[1:-1].astype(np.int64)] = 1
    group_of = np.empty(order.size, dtype=np.int64)
    group_of[order] = np.cumsum(new_group)
    group_in, group_out = group_of[:n_in], group_of[n_in:]

    rng = np.random.default_rng(seed)
    values = np.empty((n_resamples, len(METRIC_NAMES)), dtype=np.float64)
    a0 = np.zeros(n_groups + 1)
    b0 = np.zeros(n_groups + 1)
    for r in range(n_resamples):
        pick_in = group_in[rng.integers(0, n_in, size=n_in)]
        pick_out = group_out[rng.integers(0, n_out, size=n_out)]
        np.cumsum(np.bincount(pick_in, minlength=n_groups), out=a0[1:])
        np.cumsum(np.bincount(pick_out, minlength=n_groups), out=b0[1:])
        g = _Groups(groups.u, a0, b0, a0 + b0, n_in, n_out)
        result = _legacy_from_groups(g) if legacy else _exact(g)
        values[r] = [result[name] for name in METRIC_NAMES]
    low, high = np.percentile(values, [2.5, 97.5], axis=0)
    return {name: (float(low[i]), float(high[i])) for i, name in enumerate(METRIC_NAMES)}
