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

How the exact metrics are computed: ID and OOD scores are merged by ONE ``np.sort`` of
integers (each score's order-preserving integer key, shifted left, with the low bit saying
ID or OOD; several times cheaper than ``np.argsort``). Without ties it gives, for every
score, how many scores of the other set lie below it; with ties, the distinct pooled values
and how many ID and OOD scores each holds. Every metric is then a sum or maximum over the
distinct values with cumulative integer counts (``_metrics_from_ranks``; formulas there), so
ties are exact and the 95% comparisons are integer ones (20 * count >= 19 * n, no float
rounding). Scores whose keys do not fit (both signs, max |s| >= 2, and a nonzero |s| below
about max |s| * 1e-307, which the power-of-two rescaling that makes them fit would round) are
sorted per set and merged by binary search instead; same results.

Constant scores (every ID and OOD score equal) have a single threshold that accepts
everything, plus "accept nothing": auroc = 0.5, tnr_at_tpr95 = 0.0, detection_accuracy =
0.5, aupr_in = n_in / (n_in + n_out), aupr_out = n_out / (n_in + n_out), fpr95_openood = 1.0.

Legacy mode (``compute(..., legacy=True)``) reproduces the threshold sweep of the public
code behind Lee et al. 2018 (``calculate_log.py`` of alinlab/Confident_classifier, adapted
from ODIN's calMetric), so that our numbers can be set beside published ones. Its results
are the floats that code computes (run with the same numpy), bit for bit: same grids, same
counts, same operations, the sums added one grid point at a time in its loop order (the
tests check equality with a loop transcription of it). With start / end = min / max of all
scores (float64) and gap = (end - start) / 200000, tpr(d) = share of s_in >= d, fpr(d) =
share of s_out > d:

- TNR at 95% TPR, AUROC, detection accuracy and AUPR-In walk the increasing grid
  ``np.arange(start, end, gap)``: start, start + gap, ... while < end, so the maximum itself
  is never one of their thresholds.
  TNR at 95% TPR = 1 - (mean of fpr(d) over the grid points with 0.94 <= tpr(d) <= 0.96;
  1 if there are none). AUROC = sum of (fpr_prev - fpr(d)) * tpr(d), fpr_prev starting at
  1.0, no closing term. Detection accuracy = 1 - min(1, min over d of (share of s_in < d +
  fpr(d)) / 2). AUPR-In: tp = share of s_in >= d, fp = share of s_out >= d (RATES), points
  with tp + fp = 0 skipped, area = sum of (recall_prev - recall) * precision with recall =
  tp, recall_prev starting at 1.0, plus recall * precision of the last point.
- AUPR-Out walks its own grid ``np.arange(end, start, -gap)``: it starts AT the maximum
  (d = end) and goes down while > start; fp = share of s_in < d, tp = share of s_out < d,
  the walk stops at the first d with tp + fp = 0, area as for AUPR-In. Its first point
  separates a block of scores tied at the maximum from the scores just below it.

It differs from the exact values when:

- many scores tie at the maximum (e.g. softmax = 1.0): the increasing grid never splits off
  the tied block; if more than 96% of ID scores sit at the maximum no grid tpr falls in the
  [0.94, 0.96] window and TNR at 95% TPR becomes 0, and AUROC has no closing term, so the
  ROC segment from the last grid point to (0, 0) is dropped;
- set sizes differ: legacy AUPR uses RATES (tp = share of ID, fp = share of OOD), i.e.
  precision under a 50/50 prior, whatever n_in and n_out are;
- TNR at 95% TPR is 1 - the MEAN fpr over all grid points with 0.94 <= tpr <= 0.96 (a
  window average, weighted by grid density), not the value at the 95% threshold, and it is
  0 when no grid point falls in the window;
- scores closer together than gap fall into the same grid cell (outliers widen the gap).
On continuous scores with equal set sizes it agrees with the exact values to ~0.2 points.
The grid has no ``fpr95_openood``; legacy mode returns the exact value for that key. If all
scores are equal the grid is empty (gap = 0; the public code fails there) and legacy mode
returns the exact values; if end - start overflows (scores near +-1e308) gap is taken as
end / 200000 - start / 200000.

OpenOOD mode (``compute(..., convention="openood")``) gives the numbers of OpenOOD v1.5's
evaluator (``openood/evaluators/metrics.py``, current code, read 2026-12): AUROC, FPR@95
(``fpr95_openood``, OOD positive, as above), TNR at 95% TPR and detection accuracy are the exact
values, but AUPR-In and AUPR-Out integrate the precision-recall curve with the TRAPEZOID rule
(scikit-learn ``precision_recall_curve`` then ``auc``) instead of average precision. With the
positive class's scores p (ID and s for AUPR-In; OOD and -s for AUPR-Out), the distinct pooled
values t_1 > t_2 > ... > t_m, TP_k / FP_k the positives / negatives with score >= t_k, P the
number of positives, R_k = TP_k / P, Prec_k = TP_k / (TP_k + FP_k) and the start point
(R_0, Prec_0) = (0, 1):

    AUPR_trapezoid = sum_{k=1..m} (R_k - R_{k-1}) * (Prec_k + Prec_{k-1}) / 2.

It differs from average precision (sum (R_k - R_{k-1}) * Prec_k) by half of each step's
precision change, and it is not the area under the interpolated (step) PR curve either: a
negative scored above every positive puts a (0, 0) point on the curve, and the first segment
then counts half its precision. Scikit-learn truncates the curve at full recall; points of
equal recall add no area, so that changes nothing. Between 2023-08-10 and 2023-12-18
OpenOOD's code returned AUPR-In and AUPR-Out swapped (OpenOOD issues #211, #308); this mode
follows the corrected code (AUPR-In: ID positive).

``bootstrap`` gives 95% percentile intervals by resampling ID and OOD independently, and
``paired_bootstrap`` the distribution of metric(A) - metric(B) for two detectors scored on
the same samples (one set of draws for both). A resample of sorted data is a count per
distinct value (``np.bincount`` of the drawn indices), so no resample is sorted again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from oodbench.errors import UserInputError
from oodbench.names import METRIC_NAMES

logger = logging.getLogger(__name__)

HIGHER_IS_BETTER: dict[str, bool] = {name: name != "fpr95_openood" for name in METRIC_NAMES}

# Number of grid steps of the public code's threshold sweep (calMetric: gap = (end - start) / 200000).
LEGACY_STEPS = 200_000

# How `compute` reads the metrics: exact (default), legacy (the 2018 threshold grid), openood
# (OpenOOD v1.5's trapezoidal AUPR). Result rows record it in `metrics_convention`.
CONVENTIONS: tuple[str, ...] = ("exact", "legacy", "openood")

_LOW63 = np.int64(2**63 - 1)


class _Ranks(NamedTuple):
    """How two sorted sets of DISTINCT values interleave: ID values x_0 < x_1 < ... (m_in of
    them) and OOD values y_0 < y_1 < ... (m_out of them).

    below_in[i] = number of y_j < x_i and upto_in[i] = number of y_j <= x_i (the same array
    object when no value is in both sets); upto_out[j] = number of x_i <= y_j. Integer arrays.
    `shared`: both lists are the same k values (a set's weight is 0 at the values it lacks), so
    below_in = 0, 1, ..., k - 1 and upto_in = upto_out = 1, 2, ..., k.
    """

    below_in: np.ndarray
    upto_in: np.ndarray
    upto_out: np.ndarray
    shared: bool = False


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


class _Buffers:
    """Work arrays kept between calls, by name.

    A fresh multi-megabyte numpy array costs a page fault (and zeroing) per page on first
    touch; on 10**6 scores the dozens of fresh arrays of one ``compute`` cost more than its
    arithmetic. ``compute`` therefore reuses one set per thread (``_Buffers.for_thread()``),
    and each bootstrap loop its own. A name's memory is reused for any dtype and any size up
    to the largest seen, and a set keeps at most _KEEP_BYTES in all (after ``compute`` on 10**6
    scores: 42 MB if all are distinct, about 90 MB with many ties); arrays beyond that are
    handed out fresh each time.

    Contract (issue 16): ``get`` hands out UNINITIALISED memory (what an earlier call left,
    or a fresh array past the budget, so whether two ``get``s of a name share memory depends
    on sizes and history), and hands out each name at most ONCE per call: a second ``get`` of
    a name raises RuntimeError until ``release`` declares that name's contents dead. Code
    that needs an array again keeps the array object, never asks for its name twice. A call
    is a ``scope()`` (a fresh set used once needs none). ``arange`` arrays are filled once,
    kept and read-only.
    """

    _KEEP_BYTES = 96 * 2**20
    # Tests set a byte value here: every array handed out is first filled with it, so code
    # that reads memory it did not write fails at once, even while the memory is kept.
    _POISON: int | None = None
    _local = threading.local()

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self._issued: set[str] = set()
        self._in_scope = False

    @classmethod
    def for_thread(cls) -> _Buffers:
        """This thread's shared set (so that threads never write into each other's arrays)."""
        buffers = getattr(cls._local, "buffers", None)
        if buffers is None:
            buffers = cls._local.buffers = cls()
        return buffers

    @contextlib.contextmanager
    def scope(self) -> Iterator[_Buffers]:
        """One call: within it each name is handed out once (unless released)."""
        if self._in_scope:  # a nested call would hand out memory the outer call still uses
            raise RuntimeError("_Buffers.scope() entered twice; use a fresh _Buffers() for a nested call")
        self._in_scope = True
        self._issued.clear()
        try:
            yield self
        finally:
            self._issued.clear()
            self._in_scope = False

    def release(self, *names: str) -> None:
        """Declare the contents of `names` dead: their memory may be handed out again."""
        self._issued.difference_update(names)

    def get(self, name: str, size: int, dtype: type = np.float64) -> np.ndarray:
        """An uninitialised array of `size` elements of `dtype` in the memory of `name`."""
        if name in self._issued:
            raise RuntimeError(
                f"work array {name!r} requested twice in one call; keep the array object instead "
                "(a second get may return other, uninitialised memory)"
            )
        self._issued.add(name)
        nbytes = size * np.dtype(dtype).itemsize
        raw = self._arrays.get(name)
        if raw is None or raw.size < nbytes:
            self._arrays.pop(name, None)
            raw = np.empty(nbytes, dtype=np.uint8)
            if nbytes + sum(a.nbytes for a in self._arrays.values()) <= self._KEEP_BYTES:
                self._arrays[name] = raw
        if self._POISON is not None:
            raw[:nbytes] = self._POISON
        return raw[:nbytes].view(dtype)

    def arange(self, size: int, dtype: type = np.float64) -> np.ndarray:
        """0, 1, ..., size - 1, read only (kept and shared between calls, so never written to)."""
        name = f"arange_{np.dtype(dtype).name}"
        kept = self._arrays.get(name + "_filled")
        if kept is None or kept.size < size:
            kept = np.arange(size, dtype=dtype)
            kept.flags.writeable = False  # a write would corrupt every later call's 0, 1, 2, ...
            if kept.nbytes + sum(a.nbytes for a in self._arrays.values()) <= self._KEEP_BYTES:
                self._arrays[name + "_filled"] = kept
        return kept[:size]


def _as_float(values: np.ndarray, buffers: _Buffers, name: str) -> np.ndarray:
    """`values` copied into the float64 buffer `name`."""
    out = buffers.get(name, values.size)
    np.copyto(out, values)
    return out


def _cumulative(weights: np.ndarray, buffers: _Buffers, name: str) -> np.ndarray:
    """[0, w_0, w_0 + w_1, ...] as float64 (summed in int64, which is several times faster)."""
    total = buffers.get(name + "_int", weights.size + 1, np.int64)
    total[0] = 0
    np.cumsum(weights, out=total[1:])
    return _as_float(total, buffers, name)


def _metrics_from_ranks(
    r: _Ranks,
    w_in: np.ndarray | None = None,
    w_out: np.ndarray | None = None,
    buffers: _Buffers | None = None,
) -> dict[str, float]:
    """All exact metrics when ID value x_i occurs w_in[i] times and OOD value y_j occurs w_out[j]
    times (None: once each). Weights may be 0 (a bootstrap resample that missed a value).

    With weighted counts A_i = c_in(< x_i), L_i = c_out(< x_i), U_i = c_out(<= x_i), X_j =
    c_out(<= y_j) and Y_j = c_in(<= y_j):
    - AUROC = sum_i w_i (L_i + U_i) / (2 n_in n_out) (each ID score at x_i beats L_i OOD scores
      and ties with U_i - L_i);
    - AUPR-In = sum_i w_i P_i / n_in, P_i = (n_in - A_i) / (n_in - A_i + n_out - L_i), the
      precision at threshold x_i (recall rises by w_i / n_in there);
    - AUPR-Out = sum_j w_j X_j / (X_j + Y_j) / n_out;
    - detection accuracy = (n_in n_out + max(0, max_i (n_in L_i - n_out A_i))) / (2 n_in n_out):
      0.5 TPR(d) + 0.5 TNR(d) only rises between ID values, so its maximum is at some d = x_i
      or at "accept nothing" (the 0);
    - TNR at 95% TPR and fpr95_openood by one binary search each (see below).
    Counts are float64 holding integers, exact below 2**53 (so n_in * n_out < 2**53); only
    the precisions are rounded. `buffers` lets repeated calls (bootstrap) reuse work arrays.
    """
    buffers = _Buffers() if buffers is None else buffers
    m_in, m_out = r.below_in.size, r.upto_out.size
    if w_in is None:
        n_in, last_in = m_in, m_in - 1
        id_below = buffers.arange(m_in)  # A_i
        id_upto_out = _as_float(r.upto_out, buffers, "id_upto_out")  # Y_j
    else:
        cum_in = _cumulative(w_in, buffers, "cum_in")
        n_in = int(cum_in[-1])
        last_in = int(np.searchsorted(cum_in, n_in, side="left")) - 1  # highest value drawn
        id_below = cum_in[:-1]
        if r.shared:
            id_upto_out = cum_in[1:]
        else:
            # mode="clip": np.take buffers its output under mode="raise" (all are in range).
            id_upto_out = np.take(cum_in, r.upto_out, out=buffers.get("id_upto_out", m_out), mode="clip")
    if w_out is None:
        n_out, first_out = m_out, 0
        ood_below = _as_float(r.below_in, buffers, "ood_below")  # L_i
        ood_upto = ood_below if r.upto_in is r.below_in else r.upto_in.astype(np.float64)  # U_i
        ood_upto_out = buffers.arange(m_out + 1)[1:]  # X_j = 1, 2, ..., m_out
    else:
        cum_out = _cumulative(w_out, buffers, "cum_out")
        n_out = int(cum_out[-1])
        first_out = int(np.searchsorted(cum_out, 0, side="right")) - 1  # lowest value drawn
        if r.shared:
            ood_below, ood_upto = cum_out[:-1], cum_out[1:]
        elif r.upto_in is r.below_in:
            ood_below = np.take(cum_out, r.below_in, out=buffers.get("ood_below", m_in), mode="clip")
            ood_upto = ood_below
        else:
            ood_below = np.take(cum_out, r.below_in, out=buffers.get("ood_below", m_in), mode="clip")
            ood_upto = np.take(cum_out, r.upto_in, out=buffers.get("ood_upto", m_in), mode="clip")
        ood_upto_out = cum_out[1:]
    n = n_in + n_out
    scale = 2.0 * n_in * n_out
    # Work arrays in memory that the merge (_ranks_merged) no longer needs (it released them).
    work_in, work_in2 = buffers.get("keys", m_in), buffers.get("scratch", m_in)
    work_out = buffers.get("cum", m_out)
    # Weights as float64 once (products of float64 and int64 convert element by element).
    if w_in is not None:
        w_in = _as_float(w_in, buffers, "w_in")
    if w_out is not None:
        w_out = _as_float(w_out, buffers, "w_out")

    def weighted_sum(values: np.ndarray, weights: np.ndarray | None) -> float:
        # einsum: one pass, no temporary, and no BLAS call (np.dot can stall on a busy machine).
        return float(values.sum() if weights is None else np.einsum("i,i->", values, weights))

    # AUROC. The products and sums are integers below 2**53: exact.
    pairs = weighted_sum(ood_below, w_in)
    pairs += pairs if ood_upto is ood_below else weighted_sum(ood_upto, w_in)
    auroc = pairs / scale

    gain = np.multiply(ood_below, n_in, out=work_in)
    gain -= np.multiply(id_below, n_out, out=work_in2)
    detection_accuracy = (n_in * n_out + max(0.0, float(gain.max()))) / scale

    # AUPR-In over the values up to the highest drawn ID value: above it the weights are 0 and
    # the precision can be 0 / 0.
    k = last_in + 1
    id_above = np.subtract(n_in, id_below[:k], out=work_in2[:k])
    precision = np.add(id_below[:k], ood_below[:k], out=work_in[:k])
    np.subtract(n, precision, out=precision)  # ID + OOD scores >= x_i
    np.divide(id_above, precision, out=precision)
    aupr_in = weighted_sum(precision, None if w_in is None else w_in[:k]) / n_in

    # AUPR-Out (OOD positive, flagged when s <= y_j), from the lowest drawn OOD value on.
    k = first_out
    precision = np.add(ood_upto_out[k:], id_upto_out[k:], out=work_out[k:])
    np.divide(ood_upto_out[k:], precision, out=precision)
    aupr_out = weighted_sum(precision, None if w_out is None else w_out[k:]) / n_out

    # TPR(d) >= 0.95 <=> 20 c_in(< d) <= n_in <=> c_in(< d) <= n_in // 20. The largest such d is
    # the ID value that holds the (n_in // 20)-th smallest ID score (counting from 0).
    k = n_in // 20
    i95 = k if w_in is None else int(np.searchsorted(cum_in, k, side="right")) - 1
    tnr_at_tpr95 = float(ood_below[i95]) / n_out  # OOD scores equal to the threshold are accepted

    # OpenOOD: the lowest y_j with c_out(<= y_j) >= 95% of n_out (20 X >= 19 n_out, in integers).
    q = (19 * n_out + 19) // 20
    j95 = q - 1 if w_out is None else int(np.searchsorted(cum_out, q, side="left")) - 1
    fpr95_openood = float(id_upto_out[j95]) / n_in

    return {
        "tnr_at_tpr95": tnr_at_tpr95,
        "auroc": auroc,
        "aupr_in": aupr_in,
        "aupr_out": aupr_out,
        "detection_accuracy": detection_accuracy,
        "fpr95_openood": fpr95_openood,
    }


def _distinct(sorted_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted distinct values, how often each occurs, and the value index of every sorted score."""
    new = np.empty(sorted_scores.size, dtype=bool)
    new[0] = True
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=new[1:])  # -0.0 == 0.0: one value
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, sorted_scores.size))
    index = np.cumsum(new.astype(np.int64))  # (np.cumsum of a bool array is slow: cast first)
    index -= 1
    return sorted_scores[starts], counts, index


def _ranks_search(values_in: np.ndarray, values_out: np.ndarray) -> _Ranks:
    """_Ranks of two sorted distinct arrays by binary search (simple; O(m log m))."""
    below_in = np.searchsorted(values_out, values_in, side="left")
    upto_in = np.searchsorted(values_out, values_in, side="right")
    if np.array_equal(upto_in, below_in):
        upto_in = below_in
    return _Ranks(below_in, upto_in, np.searchsorted(values_in, values_out, side="right"))


def _order_key(x: float) -> int:
    """The integer that sorts like the float x (its bits; for negatives the 63 value bits flipped)."""
    bits = int(np.array(x + 0.0).view(np.int64))
    return bits ^ (2**63 - 1) if bits < 0 else bits


def _merged_keys(
    s_in: np.ndarray, s_out: np.ndarray, floats: np.ndarray, scratch: np.ndarray
) -> np.ndarray | None:
    """The pooled scores as one sorted array of keys (order key << 1) | is_ood, or None.
    `floats` (float64) and `scratch` (uint64) are work memory of n_in + n_out elements; the
    keys are returned in the memory of `floats`.

    The order key is an integer that sorts like the score (its float64 bits, negatives
    mirrored), so one SIMD ``np.sort`` of integers (several times cheaper than
    ``np.argsort``) both sorts and merges the two sets, and the low bit says which set each
    sorted score came from; equal scores get equal keys, ID before OOD. The shifted keys
    must fit in 64 bits: scores in (-2, 2) are sorted as signed keys, scores of one sign as
    unsigned keys minus the smallest; otherwise the scores are first multiplied by a power
    of two into (-1, 1), exact unless a nonzero score would fall below the normal float
    range (then None is returned). Returned as uint64: callers use only the low bit and
    equality of neighbours.
    """
    lo = min(float(s_in.min()), float(s_out.min()))
    hi = max(float(s_in.max()), float(s_out.max()))
    n_in = s_in.size
    np.add(s_in, 0.0, out=floats[:n_in])  # + 0.0 turns -0.0 into 0.0, so they share one key
    np.add(s_out, 0.0, out=floats[n_in:])
    exponent = 0
    # Decided before scaling: a negative subnormal minimum scales to -0.0, which is not < 0.0,
    # and would send signed keys down the one-sign branch (where -0.0 sorts as 0.0 and the lost
    # bits go unnoticed; found by the property test of issue 16).
    negative = lo < 0.0
    if negative and hi > 0.0 and max(-lo, hi) >= 2.0:
        exponent = math.frexp(max(-lo, hi))[1]  # max |s| < 2**exponent: scale into (-1, 1)
        lo *= 2.0**-exponent
        hi *= 2.0**-exponent
        floats *= 2.0**-exponent  # a power of two: exact unless a result is below 2**-1022
    keys = floats.view(np.int64)
    if negative:
        # Negative floats sort backwards as integers: flip their 63 value bits.
        sign = np.right_shift(keys, 63, out=scratch.view(np.int64))
        sign &= _LOW63
        keys ^= sign
        if max(-lo, hi) < 2.0:
            # |key| < 2**62 (the bits of 2.0): shifting left cannot overflow, sort as signed.
            keys <<= 1
            keys[n_in:] |= 1
            keys.sort()
            # Scaled scores below 2**-1022 in size (keys within +-2**53) may have lost bits.
            # The sorted keys show in O(log n) whether there are any; only then look closer.
            if exponent and np.searchsorted(keys, 2**53) > np.searchsorted(keys, -(2**53)):
                tiny = 2.0 ** (exponent - 1022)
                if any(np.count_nonzero(s[np.abs(s) < tiny]) for s in (s_in, s_out)):
                    return None
            return keys.view(np.uint64)  # (only the low bit and equality are used from here)
        keys -= np.int64(_order_key(lo))  # one sign, large |s|: shift up to >= 0 (span < 2**63)
    tagged = keys.view(np.uint64)
    tagged <<= np.uint64(1)
    tagged[n_in:] |= np.uint64(1)
    tagged.sort()
    return tagged


def _ranks_merged(
    s_in: np.ndarray, s_out: np.ndarray, buffers: _Buffers | None = None
) -> tuple[_Ranks, np.ndarray | None, np.ndarray | None] | None:
    """_Ranks and per-value counts from one integer sort, or None when the keys do not fit.
    Every score distinct: each score is a value, counts None. Ties: shared _Ranks over the
    distinct pooled values, with each set's count per value (0 where it has none). With
    `buffers`, the returned arrays may live in them (valid until their next use); its work
    arrays "keys", "scratch", "cum", "is_ood" and "tied" are released on return (dead), for
    _metrics_from_ranks to reuse."""
    buffers = _Buffers() if buffers is None else buffers
    merged = _ranks_merged_into(s_in, s_out, buffers)
    buffers.release("keys", "scratch", "cum", "is_ood", "tied")  # nothing returned lives in them
    return merged


def _ranks_merged_into(
    s_in: np.ndarray, s_out: np.ndarray, buffers: _Buffers
) -> tuple[_Ranks, np.ndarray | None, np.ndarray | None] | None:
    """_ranks_merged's work, in `buffers`."""
    n_in, n_out, n = s_in.size, s_out.size, s_in.size + s_out.size
    scratch = buffers.get("scratch", n, np.uint64)
    tagged = _merged_keys(s_in, s_out, buffers.get("keys", n), scratch)
    if tagged is None:
        return None
    # The low bit, read from each key's lowest byte (one strided pass, no 8-byte temporaries).
    low_byte = tagged.view(np.uint8)[0 if sys.byteorder == "little" else 7 :: 8]
    is_ood = buffers.get("is_ood", n, bool)
    np.bitwise_and(low_byte, 1, out=is_ood.view(np.uint8))
    # tied[p - 1] (score p equals score p - 1) lives at flags[p]; with ties flags is flipped in
    # place into the group starts, so the array object is kept (a second get of "tied" may be
    # other memory: issue 16).
    flags = buffers.get("tied", n, bool)
    tied = np.less(np.bitwise_xor(tagged[1:], tagged[:-1], out=scratch[1:]), 2, out=flags[1:])
    if not tied.any():  # (tied[p - 1]: score p equals score p - 1)
        # Every score distinct: position p of the j-th OOD score has p - j ID scores before it.
        upto_out = np.flatnonzero(is_ood)  # (several times faster on booleans than on integers)
        upto_out -= buffers.arange(n_out, np.int64)
        # The i-th ID score has as many OOD scores below it as there are j with upto_out[j] <= i.
        below_in = np.cumsum(
            np.bincount(upto_out, minlength=n_in + 1)[:n_in], out=buffers.get("below_in", n_in, np.int64)
        )
        return _Ranks(below_in, below_in, upto_out), None, None
    # Ties: count the ID and OOD scores of every run of equal scores ("group"). Both value
    # lists are then the list of groups (distinct pooled values), each set counting 0 at the
    # values it lacks; so group g has g groups below it and g + 1 up to it in the other list.
    is_start = flags  # flip tied[p - 1] (at flags[p]) in place into "score p starts a group"
    np.logical_not(tied, out=tied)
    is_start[0] = True
    starts = np.flatnonzero(is_start)
    k = starts.size
    ood_before = buffers.get("cum", n + 1, np.int64)  # OOD scores before position p
    ood_before[0] = 0
    np.copyto(ood_before[1:], is_ood)  # (np.cumsum of a bool array is slow: cast first)
    np.cumsum(ood_before[1:], out=ood_before[1:])
    ood_upto = buffers.get("ood_count", k + 1, np.int64)  # OOD scores before group g, then n_out
    np.take(ood_before, starts, out=ood_upto[:k], mode="clip")
    ood_upto[k] = n_out
    ood_count = np.subtract(ood_upto[1:], ood_upto[:k], out=buffers.get("w_out_groups", k, np.int64))
    id_count = buffers.get("w_in_groups", k, np.int64)
    id_count[:-1] = starts[1:]
    id_count[-1] = n
    id_count -= starts  # group sizes
    id_count -= ood_count
    positions = buffers.arange(k + 1, np.int64)
    return _Ranks(positions[:k], positions[1:], positions[1:], shared=True), id_count, ood_count


def _ranks_sorted(s_in: np.ndarray, s_out: np.ndarray) -> tuple[_Ranks, np.ndarray, np.ndarray]:
    """_Ranks and per-value counts by sorting each set and binary search (works for any scores)."""
    values_in, w_in, _ = _distinct(np.sort(s_in))
    values_out, w_out, _ = _distinct(np.sort(s_out))
    return _ranks_search(values_in, values_out), w_in, w_out


def _exact(s_in: np.ndarray, s_out: np.ndarray) -> dict[str, float]:
    """Exact metrics of two validated score arrays (fast integer-key merge, else sort + search)."""
    buffers = _Buffers.for_thread()
    with buffers.scope():
        merged = _ranks_merged(s_in, s_out, buffers)
        if merged is None:
            logger.debug("Scores span too wide a float range for the integer-key merge; sorting instead.")
            merged = _ranks_sorted(s_in, s_out)
        return _metrics_from_ranks(*merged, buffers=buffers)


def _exact_simple(s_in: np.ndarray, s_out: np.ndarray) -> dict[str, float]:
    """_exact by the simple path: each set sorted on its own, ranks by binary search.

    Not dispatched to: ``benchmarks/bench_metrics.py --crossover`` found no size below which it
    is faster on all data (it wins on few distinct values at every size, loses on distinct
    scores at every size; benchmarks/README.md). Kept so that the comparison can be repeated.
    """
    buffers = _Buffers.for_thread()
    with buffers.scope():
        return _metrics_from_ranks(*_ranks_sorted(s_in, s_out), buffers=buffers)


def _running_sum(terms: np.ndarray) -> float:
    """terms[0] + terms[1] + ... added one at a time, left to right, as the public code's loops
    do (np.sum adds pairwise, which rounds differently). Zero terms change nothing, so only the
    others are added (most grid points repeat the previous point's counts)."""
    terms = terms[terms != 0.0]
    return float(np.cumsum(terms)[-1]) if terms.size else 0.0


def _legacy_area(tp: np.ndarray, fp: np.ndarray) -> float:
    """The public code's AUPR loop over grid points already in walking order: precision = tp / (tp
    + fp), recall = tp; area = sum of (recall_prev - recall) * precision, recall_prev starting at
    1.0, then + recall * precision of the last point."""
    precision = tp / (tp + fp)
    recall_prev = np.concatenate(([1.0], tp[:-1]))
    terms = np.append((recall_prev - tp) * precision, tp[-1] * precision[-1])
    return _running_sum(terms)


def _grid_runs(
    grid: np.ndarray, counted: list[tuple[np.ndarray, np.ndarray, bool]]
) -> tuple[list[np.ndarray], np.ndarray]:
    """Weighted counts at an increasing `grid`, one entry per run of grid points over which all
    counts repeat, and the run lengths. `counted` holds (sorted values, _cumulative(weights),
    strict): the count at d is of the values < d (strict) or <= d.

    Within a run every term of the public code's loops is 0 and min / max see one value, so
    one point per run is enough (the lengths serve the window mean). Runs may repeat the
    previous run's counts (a value of weight 0); that changes no result.
    """
    size = grid.size
    if 4 * sum(values.size for values, _, _ in counted) < size:
        # Few values: value i starts to count at grid index first[i] (the first d > x_i, or
        # d >= x_i), so the counts only change there; the count at j is cum[#{i: first[i] <= j}].
        firsts = [np.searchsorted(grid, v, side="right" if strict else "left") for v, _, strict in counted]
        starts = np.sort(np.concatenate([[0], *firsts]))
        starts = starts[(starts < size) & np.concatenate(([True], starts[1:] != starts[:-1]))]
        counts = [
            cum[np.searchsorted(f, starts, side="right")]
            for f, (_, cum, _) in zip(firsts, counted, strict=True)
        ]
    else:
        # Many values: the count at every grid point by binary search, then the runs.
        full = [
            cum[np.searchsorted(v, grid, side="left" if strict else "right")] for v, cum, strict in counted
        ]
        change = np.zeros(size, dtype=bool)
        change[0] = True
        for c in full:
            change[1:] |= c[1:] != c[:-1]
        starts = np.flatnonzero(change)
        counts = [c[starts] for c in full]
    return counts, np.diff(np.append(starts, size))


def _legacy_grid(
    values_in: np.ndarray,
    w_in: np.ndarray,
    values_out: np.ndarray,
    w_out: np.ndarray,
    steps: int,
) -> dict[str, float] | None:
    """The five grid metrics of the public code (see the module docstring), or None when all
    scores are equal (empty grid). Sorted distinct values with their counts (0 allowed)."""
    present_in, present_out = np.flatnonzero(w_in), np.flatnonzero(w_out)
    start = float(min(values_in[present_in[0]], values_out[present_out[0]]))
    end = float(max(values_in[present_in[-1]], values_out[present_out[-1]]))
    if not start < end:
        return None
    buffers = _Buffers()
    cum_in, cum_out = _cumulative(w_in, buffers, "cum_in"), _cumulative(w_out, buffers, "cum_out")
    n_in, n_out = int(cum_in[-1]), int(cum_out[-1])
    gap = (end - start) / steps
    if not math.isfinite(gap):  # end - start overflowed (scores near +-1e308; the original fails)
        gap = end / steps - start / steps
    # The same np.arange calls as the public code, so every threshold is the same float.
    up = np.arange(start, end, gap)
    down = np.arange(end, start, -gap)

    # ID scores < d, OOD scores < d and OOD scores <= d, per run of grid points (_grid_runs).
    (in_lt, out_lt, out_le), length = _grid_runs(
        up, [(values_in, cum_in, True), (values_out, cum_out, True), (values_out, cum_out, False)]
    )
    tpr = (n_in - in_lt) / n_in  # share of s_in >= d
    fpr = (n_out - out_le) / n_out  # share of s_out > d

    window = (tpr <= 0.96) & (tpr >= 0.94)
    in_window = np.repeat(fpr[window], length[window])  # one term per grid point, as in the loop
    fpr_window = _running_sum(in_window) / in_window.size if in_window.size else 1.0

    fpr_prev = np.concatenate(([1.0], fpr[:-1]))
    auroc = _running_sum((fpr_prev - fpr) * tpr)

    error = min(1.0, float(np.min((in_lt / n_in + fpr) / 2.0)))

    # AUPR-In, increasing d; grid points with tp + fp = 0 are skipped.
    tp, fp = tpr, (n_out - out_lt) / n_out
    keep = (tp + fp) != 0
    aupr_in = _legacy_area(tp[keep], fp[keep])

    # AUPR-Out, decreasing d from the maximum itself; the walk stops at the first d with tp + fp = 0.
    (in_lt, out_lt), _ = _grid_runs(down[::-1], [(values_in, cum_in, True), (values_out, cum_out, True)])
    fp = in_lt[::-1] / n_in  # share of s_in < d, in walking order
    tp = out_lt[::-1] / n_out  # share of s_out < d
    zero = np.flatnonzero((tp + fp) == 0)
    stop = int(zero[0]) if zero.size else tp.size
    aupr_out = _legacy_area(tp[:stop], fp[:stop])

    return {
        "tnr_at_tpr95": 1.0 - fpr_window,
        "auroc": auroc,
        "aupr_in": aupr_in,
        "aupr_out": aupr_out,
        "detection_accuracy": 1.0 - error,
    }


def _legacy_metrics(
    values_in: np.ndarray,
    w_in: np.ndarray,
    values_out: np.ndarray,
    w_out: np.ndarray,
    steps: int = LEGACY_STEPS,
) -> dict[str, float]:
    """Legacy grid metrics plus the exact fpr95_openood; the exact metrics if all scores are equal."""
    grid = _legacy_grid(values_in, w_in, values_out, w_out, steps)
    if grid is None:
        logger.debug("All scores are equal; the legacy grid is empty, returning the exact metrics.")
        return _metrics_from_ranks(_ranks_search(values_in, values_out), w_in, w_out)
    # The exact fpr95_openood (as in _metrics_from_ranks): ID share <= the lowest OOD value that
    # has >= 95% of the OOD scores at or below it.
    buffers = _Buffers()
    cum_in, cum_out = _cumulative(w_in, buffers, "cum_in"), _cumulative(w_out, buffers, "cum_out")
    j95 = int(np.searchsorted(cum_out, (19 * int(cum_out[-1]) + 19) // 20, side="left")) - 1
    id_upto = cum_in[np.searchsorted(values_in, values_out[j95], side="right")]
    grid["fpr95_openood"] = int(id_upto) / int(cum_in[-1])
    return {name: grid[name] for name in METRIC_NAMES}


def _legacy(scores_in: ArrayLike, scores_out: ArrayLike, *, steps: int = LEGACY_STEPS) -> dict[str, float]:
    """Legacy grid metrics with a configurable number of grid steps (tests use a small grid)."""
    values_in, w_in, _ = _distinct(np.sort(_as_scores(scores_in, "scores_in")))
    values_out, w_out, _ = _distinct(np.sort(_as_scores(scores_out, "scores_out")))
    return _legacy_metrics(values_in, w_in, values_out, w_out, steps)


def compute(
    scores_in: ArrayLike, scores_out: ArrayLike, *, legacy: bool = False, convention: str | None = None
) -> dict[str, float]:
    """All metrics of METRIC_NAMES for ID scores `scores_in` and OOD scores `scores_out`.

    Higher score = more in-distribution; ID is positive; values are fractions in [0, 1].
    `convention` (one of CONVENTIONS): "exact" (default; tie-aware, definitions in the module
    docstring, docs/methods.md section 5); "legacy" (the public code's 200,000-step threshold
    grid; fpr95_openood stays exact), also selected by ``legacy=True``; "openood" (the exact
    values with AUPR-In / AUPR-Out by trapezoidal integration of the PR curve, as OpenOOD v1.5).
    Raises UserInputError (a ValueError) for empty, non-1-D or non-finite input, an unknown
    convention, or ``legacy=True`` with another convention.
    """
    convention = resolve_convention(convention, legacy=legacy)
    if convention == "legacy":
        return _legacy(scores_in, scores_out)
    s_in, s_out = _as_scores(scores_in, "scores_in"), _as_scores(scores_out, "scores_out")
    result = _exact(s_in, s_out)
    if convention == "openood":
        result["aupr_in"] = aupr_trapezoid(s_in, s_out)
        result["aupr_out"] = aupr_trapezoid(-s_out, -s_in)
    return result


def resolve_convention(convention: str | None, *, legacy: bool = False) -> str:
    """The convention name `compute` uses for (`convention`, `legacy`): `legacy=True` means
    "legacy"; None means "exact"; a contradiction or an unknown name is a UserInputError."""
    if convention is None:
        return "legacy" if legacy else "exact"
    if convention not in CONVENTIONS:
        raise UserInputError(
            f"Unknown metric convention {convention!r}; use one of {', '.join(CONVENTIONS)}."
        )
    if legacy and convention != "legacy":
        raise UserInputError(f"legacy=True contradicts convention={convention!r}; give one of them.")
    return convention


def aupr_trapezoid(scores_pos: ArrayLike, scores_neg: ArrayLike) -> float:
    """Area under the precision-recall curve by the trapezoid rule, positives `scores_pos`
    (higher = more positive): OpenOOD's ``auc(recall, precision)`` after scikit-learn's
    ``precision_recall_curve``, computed from counts at the distinct pooled values (formula in
    the module docstring). AUPR-In = aupr_trapezoid(s_in, s_out); AUPR-Out =
    aupr_trapezoid(-s_out, -s_in)."""
    pos = np.sort(_as_scores(scores_pos, "scores_pos"))
    neg = np.sort(_as_scores(scores_neg, "scores_neg"))
    values = np.unique(np.concatenate([pos, neg]))[::-1]  # distinct thresholds, descending
    # Counts with score >= t: n minus the count strictly below t.
    tp = (pos.size - np.searchsorted(pos, values, side="left")).astype(np.float64)
    fp = (neg.size - np.searchsorted(neg, values, side="left")).astype(np.float64)
    recall = np.concatenate([[0.0], tp / pos.size])
    precision = np.concatenate([[1.0], tp / (tp + fp)])  # tp + fp >= 1 at every pooled value
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1])) / 2.0)


class _ValueCounter(NamedTuple):
    """How drawn indices of one set become counts per distinct value (m values, sorted).

    `of_sample` (paired draws): the distinct value index of every sample, in the caller's order.
    Otherwise the draws are positions in the sorted scores: `last` holds, with ties, the last
    position of every value; None when every score is a distinct value.
    """

    m: int
    of_sample: np.ndarray | None = None
    last: np.ndarray | None = None

    def counts(self, picked: np.ndarray, work: np.ndarray) -> np.ndarray:
        """How often each value was drawn, given the drawn indices; `work` holds as many int64."""
        if self.of_sample is not None:
            # Into reused memory: a fresh array here costs page faults on every resample. (np.take
            # buffers its output unless mode is not "raise"; all indices are in range, so "clip"
            # changes nothing.)
            return np.bincount(np.take(self.of_sample, picked, out=work, mode="clip"), minlength=self.m)
        if self.last is None:
            return np.bincount(picked, minlength=self.m)
        # Ties: count per position, then per value from the running count at each value's last
        # position (sequential passes; mapping every draw to its value is a random gather).
        drawn_upto = np.cumsum(np.bincount(picked, minlength=work.size), out=work)
        return np.diff(drawn_upto[self.last], prepend=0)


class _Prepared(NamedTuple):
    """One detector's scores ready for resampling: the sorted distinct values of each set, how
    drawn indices become counts per value, and the _Ranks of the two value sets."""

    values_in: np.ndarray
    values_out: np.ndarray
    counter_in: _ValueCounter
    counter_out: _ValueCounter
    ranks: _Ranks


def _prepare(s_in: np.ndarray, s_out: np.ndarray, *, paired: bool) -> _Prepared:
    """Sort each set once. Unpaired, a drawn index is a position in the sorted set; paired, it
    is a sample (the caller's order), mapped to its value through an argsort."""
    values, counters = [], []
    for s in (s_in, s_out):
        if paired:
            order = np.argsort(s)
            distinct, _, of_position = _distinct(s[order])
            of_sample = np.empty(s.size, dtype=np.int64)
            of_sample[order] = of_position
            counters.append(_ValueCounter(distinct.size, of_sample=of_sample))
        else:
            distinct, counts, _ = _distinct(np.sort(s))
            last = None if distinct.size == s.size else np.cumsum(counts) - 1
            counters.append(_ValueCounter(distinct.size, last=last))
        values.append(distinct)
    return _Prepared(values[0], values[1], counters[0], counters[1], _ranks_search(values[0], values[1]))


def _check_n_resamples(n_resamples: int) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise UserInputError(f"'n_resamples' must be an integer >= 1. Got {n_resamples!r} instead.")


def _resampled(
    prepared: Sequence[_Prepared], sizes: tuple[int, int], n_resamples: int, seed: int, legacy: bool
) -> list[np.ndarray]:
    """Metric values (n_resamples x len(METRIC_NAMES)) per prepared detector, all on the same draws.

    Resample r draws n_in ID indices, then n_out OOD indices, with replacement (``rng.integers``
    of ``rng = np.random.default_rng(seed)``). A resample of sorted data is just a count per
    distinct value, so no resample is sorted again: the metrics come from the precomputed
    ranks and the counts.
    """
    n_in, n_out = sizes
    rng = np.random.default_rng(seed)
    values = [np.empty((n_resamples, len(METRIC_NAMES))) for _ in prepared]
    buffers = [_Buffers() for _ in prepared]
    work_in, work_out = np.empty(n_in, dtype=np.int64), np.empty(n_out, dtype=np.int64)
    for r in range(n_resamples):
        pick_in = rng.integers(0, n_in, size=n_in)
        pick_out = rng.integers(0, n_out, size=n_out)
        for p, out, kept in zip(prepared, values, buffers, strict=True):
            w_in, w_out = p.counter_in.counts(pick_in, work_in), p.counter_out.counts(pick_out, work_out)
            if legacy:
                result = _legacy_metrics(p.values_in, w_in, p.values_out, w_out)
            else:
                with kept.scope():  # one call: each work array handed out once
                    result = _metrics_from_ranks(p.ranks, w_in, w_out, kept)
            out[r] = [result[name] for name in METRIC_NAMES]
    return values


def bootstrap(
    scores_in: ArrayLike,
    scores_out: ArrayLike,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    legacy: bool = False,
) -> dict[str, tuple[float, float]]:
    """95% percentile bootstrap interval (2.5th, 97.5th percentile) of every metric.

    Each resample draws len(scores_in) positions of the SORTED ID scores and then
    len(scores_out) positions of the sorted OOD scores, uniformly with replacement and
    independently (``rng = np.random.default_rng(seed)``; ``rng.integers``),
    and computes the metrics (exact or legacy) on the scores at those positions: the same
    distribution as drawing the scores in the given order, without mapping each draw back.
    Each set is sorted once; a resample only changes how many copies of each distinct value
    there are, so it costs O(n) counting, not a new sort. Interval = np.percentile(values,
    [2.5, 97.5]).
    """
    _check_n_resamples(n_resamples)
    s_in = _as_scores(scores_in, "scores_in")
    s_out = _as_scores(scores_out, "scores_out")
    prepared = _prepare(s_in, s_out, paired=False)
    (values,) = _resampled([prepared], (s_in.size, s_out.size), n_resamples, seed, legacy)
    low, high = np.percentile(values, [2.5, 97.5], axis=0)
    return {name: (float(low[i]), float(high[i])) for i, name in enumerate(METRIC_NAMES)}


def paired_bootstrap(
    a_in: ArrayLike,
    a_out: ArrayLike,
    b_in: ArrayLike,
    b_out: ArrayLike,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    metrics: Sequence[str] = METRIC_NAMES,
    legacy: bool = False,
) -> dict[str, np.ndarray]:
    """Bootstrap distribution of metric(A) - metric(B) for two detectors scored on the SAME samples.

    a_in[k] and b_in[k] must be the two detectors' scores of the same ID sample k (likewise for
    the OOD sets), so both inputs of a set must have equal length. Every resample draws one set
    of ID and OOD sample indices (the draws of ``bootstrap`` with the same seed, here indices
    in the given order) and applies it to both detectors, so the differences keep the pairing.
    Returns {metric name: array of n_resamples differences}, in the order of `metrics`; for
    example a percentile interval of the AUROC difference is np.percentile(result["auroc"],
    [2.5, 97.5]).
    """
    _check_n_resamples(n_resamples)
    unknown = [name for name in metrics if name not in METRIC_NAMES]
    if isinstance(metrics, str) or unknown or not metrics:
        raise UserInputError(
            f"'metrics' must be a non-empty list of metric names from {', '.join(METRIC_NAMES)}; "
            f"got {metrics!r}."
        )
    given = {"a_in": a_in, "a_out": a_out, "b_in": b_in, "b_out": b_out}
    arrays = {name: _as_scores(x, name) for name, x in given.items()}
    for which in ("in", "out"):
        if arrays[f"a_{which}"].size != arrays[f"b_{which}"].size:
            raise UserInputError(
                f"'a_{which}' and 'b_{which}' have {arrays[f'a_{which}'].size} and "
                f"{arrays[f'b_{which}'].size} scores; a paired bootstrap needs both detectors' scores of "
                "the same samples, in the same order."
            )
    prepared = [_prepare(arrays[f"{d}_in"], arrays[f"{d}_out"], paired=True) for d in "ab"]
    sizes = arrays["a_in"].size, arrays["a_out"].size
    values_a, values_b = _resampled(prepared, sizes, n_resamples, seed, legacy)
    column = {name: i for i, name in enumerate(METRIC_NAMES)}
    return {name: values_a[:, column[name]] - values_b[:, column[name]] for name in metrics}
