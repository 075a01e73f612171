"""Tests for oodbench.metrics: hand-computed cases, scikit-learn agreement, brute-force
definitions (hypothesis), the integer-key merge against sort + search, work buffers kept,
fresh or stale (issue 16), the legacy grid against a loop transcription of the public code (bit
for bit), bootstrap, paired bootstrap and input checks."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import threading
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from oodbench import metrics
from oodbench.errors import UserInputError
from oodbench.metrics import HIGHER_IS_BETTER, METRIC_NAMES, bootstrap, compute

# ---------------------------------------------------------------------------------------------
# Hand-computed cases. Notation: TPR(d) = share of ID >= d, TNR(d) = share of OOD < d.
# ---------------------------------------------------------------------------------------------

HAND_CASES = [
    pytest.param(
        # Perfect separation. d = 3 is the largest threshold with TPR = 1 >= 0.95; TNR(3) = 2/2.
        # Every ID beats every OOD: AUROC 1; d = 3 gives 0.5 * 1 + 0.5 * 1 = 1.
        # AP-in: thresholds 4, 3 -> precision 1 at each recall step -> 1; AP-out likewise.
        # OpenOOD: s <= 1 flags 1/2 of OOD, s <= 2 flags 2/2 >= 95%; ID flagged there: 0/2.
        [3, 4],
        [1, 2],
        dict(
            tnr_at_tpr95=1.0, auroc=1.0, aupr_in=1.0, aupr_out=1.0, detection_accuracy=1.0, fpr95_openood=0.0
        ),
        id="perfect",
    ),
    pytest.param(
        # Reversed separation. TPR >= 0.95 only for d <= 1; TNR(1) = 0. AUROC 0.
        # Best 0.5 TPR + 0.5 TNR: accept-all (1, 0) or accept-nothing (0, 1) -> 0.5.
        # AP-in, thresholds from the top: 4 (tp 0, fp 1), 3 (0, 2), 2 (tp 1, fp 2: P = 1/3,
        # recall 0 -> 1/2), 1 (tp 2, fp 2: P = 1/2, recall -> 1): 1/2 * 1/3 + 1/2 * 1/2 = 5/12.
        # AP-out (OOD positive, -s) is the mirror image: 5/12. OpenOOD: s <= 4 flags all ID: 1.
        [1, 2],
        [3, 4],
        dict(
            tnr_at_tpr95=0.0,
            auroc=0.0,
            aupr_in=5 / 12,
            aupr_out=5 / 12,
            detection_accuracy=0.5,
            fpr95_openood=1.0,
        ),
        id="reversed",
    ),
    pytest.param(
        # Ties and unequal sizes: ID [1, 2, 2, 3], OOD [0, 2, 2].
        # TNR@95: d = 1 keeps 4/4 ID (d = 2 keeps 3/4 < 0.95); TNR(1) = #{0}/3 = 1/3.
        # AUROC: ID 1 beats 0 -> 1; each ID 2 beats 0 and ties two 2s -> 1 + 0.5 + 0.5 = 2 (x2);
        # ID 3 beats all -> 3. (1 + 4 + 3) / 12 = 2/3.
        # Det. acc: d = 1 gives 0.5 * 1 + 0.5 * 1/3 = 2/3 (d = 2: 0.375 + 1/6; d = 3: 0.125 + 0.5).
        # AP-in from the top: 3 (tp 1, fp 0, P 1, dR 1/4), 2 (tp 3, fp 2, P 3/5, dR 2/4),
        # 1 (tp 4, fp 2, P 2/3, dR 1/4): 1/4 + 3/10 + 1/6 = 43/60.
        # AP-out (s <= v flagged): 0 (tp 1, fp 0, P 1, dR 1/3), 2 (tp 3, fp 3, P 1/2, dR 2/3): 2/3.
        # OpenOOD: s <= 0 flags 1/3 of OOD, s <= 2 flags 3/3; ID flagged (1, 2, 2): 3/4.
        [1, 2, 2, 3],
        [0, 2, 2],
        dict(
            tnr_at_tpr95=1 / 3,
            auroc=2 / 3,
            aupr_in=43 / 60,
            aupr_out=2 / 3,
            detection_accuracy=2 / 3,
            fpr95_openood=3 / 4,
        ),
        id="ties-unequal",
    ),
    pytest.param(
        # OOD score equal to the threshold is accepted: ID [2, 3, 4, 5], OOD [1, 2, 6].
        # TNR@95 at d = 2: only OOD 1 is < 2 -> 1/3 (OOD 2 == d is not rejected).
        # AUROC: ID 2 -> 1 + 0.5; ID 3, 4, 5 -> 2 each: 7.5 / 12 = 0.625.
        # Det. acc: d = 3: TPR 3/4, TNR 2/3 -> 0.375 + 1/3 = 17/24.
        # AP-in from the top: 6 (no ID), 5 (tp 1, fp 1: 1/2), 4 (2, 1: 2/3), 3 (3, 1: 3/4),
        # 2 (4, 2: 2/3), each with dR 1/4: (1/2 + 2/3 + 3/4 + 2/3) / 4 = 31/48.
        # AP-out: 1 (tp 1, fp 0: 1), 2 (tp 2, fp 1: 2/3), 6 (tp 3, fp 4: 3/7), dR 1/3 each:
        # (1 + 2/3 + 3/7) / 3 = 44/63.
        # OpenOOD: 95% of 3 OOD needs all 3, i.e. s <= 6, which flags all ID: 1.0 (1 - TNR@95 = 2/3).
        [2, 3, 4, 5],
        [1, 2, 6],
        dict(
            tnr_at_tpr95=1 / 3,
            auroc=0.625,
            aupr_in=31 / 48,
            aupr_out=44 / 63,
            detection_accuracy=17 / 24,
            fpr95_openood=1.0,
        ),
        id="equal-threshold-accepted",
    ),
    pytest.param(
        # Tie at the boundary: ID [2, 3, 3], OOD [1, 2].
        # TNR@95 at d = 2: OOD 1 rejected, OOD 2 accepted -> 1/2.
        # AUROC: ID 2 -> 1 + 0.5; ID 3 (x2) -> 2 each: 5.5 / 6 = 11/12.
        # Det. acc: d = 3: TPR 2/3, TNR 1 -> 1/3 + 1/2 = 5/6.
        # AP-in: 3 (tp 2, fp 0: 1, dR 2/3), 2 (tp 3, fp 1: 3/4, dR 1/3) -> 2/3 + 1/4 = 11/12.
        # AP-out: 1 (tp 1, fp 0: 1, dR 1/2), 2 (tp 2, fp 1: 2/3, dR 1/2) -> 1/2 + 1/3 = 5/6.
        # OpenOOD: s <= 2 flags both OOD and one of three ID: 1/3.
        [2, 3, 3],
        [1, 2],
        dict(
            tnr_at_tpr95=0.5,
            auroc=11 / 12,
            aupr_in=11 / 12,
            aupr_out=5 / 6,
            detection_accuracy=5 / 6,
            fpr95_openood=1 / 3,
        ),
        id="tie-at-boundary",
    ),
]


@pytest.mark.parametrize("scores_in, scores_out, expected", HAND_CASES)
def test_hand_computed_cases(scores_in, scores_out, expected):
    result = compute(scores_in, scores_out)
    assert tuple(result) == METRIC_NAMES
    for name in METRIC_NAMES:
        assert result[name] == pytest.approx(expected[name], abs=1e-12), name


@pytest.mark.parametrize("n_in, n_out", [(3, 2), (1, 1), (5, 8)])
def test_constant_scores(n_in, n_out):
    # One threshold accepts everything (TPR 1, TNR 0); the other accepts nothing (TPR 0, TNR 1).
    # AP-in: a single step to recall 1 at precision n_in / n; AP-out: n_out / n.
    expected = dict(
        tnr_at_tpr95=0.0,
        auroc=0.5,
        aupr_in=n_in / (n_in + n_out),
        aupr_out=n_out / (n_in + n_out),
        detection_accuracy=0.5,
        fpr95_openood=1.0,
    )
    for legacy in (False, True):
        result = compute(np.full(n_in, 0.7), np.full(n_out, 0.7), legacy=legacy)
        for name in METRIC_NAMES:
            assert result[name] == pytest.approx(expected[name], abs=1e-12), (legacy, name)


def test_metric_names_and_directions():
    assert METRIC_NAMES == (
        "tnr_at_tpr95",
        "auroc",
        "aupr_in",
        "aupr_out",
        "detection_accuracy",
        "fpr95_openood",
    )
    assert set(HIGHER_IS_BETTER) == set(METRIC_NAMES)
    assert [name for name, up in HIGHER_IS_BETTER.items() if not up] == ["fpr95_openood"]


def test_returns_python_floats_in_unit_interval_for_any_array_like():
    result = compute(np.array([0.2, 0.9, 0.4], dtype=np.float32), [0, 1])  # float32 and a list of ints
    assert all(type(v) is float and 0.0 <= v <= 1.0 for v in result.values())


def test_swapping_in_and_out_mirrors_the_metrics():
    rng = np.random.default_rng(3)
    s_in = np.round(rng.normal(1.0, 1.0, 300), 1)
    s_out = np.round(rng.normal(0.0, 1.0, 170), 1)
    base = compute(s_in, s_out)
    swapped = compute(s_out, s_in)
    assert swapped["auroc"] == pytest.approx(1.0 - base["auroc"], abs=1e-12)
    # Negating and swapping makes OOD the positive class with score -s: the AUPRs trade places.
    mirrored = compute(-s_out, -s_in)
    assert mirrored["auroc"] == pytest.approx(base["auroc"], abs=1e-12)
    assert mirrored["aupr_in"] == pytest.approx(base["aupr_out"], abs=1e-12)
    assert mirrored["aupr_out"] == pytest.approx(base["aupr_in"], abs=1e-12)
    assert mirrored["detection_accuracy"] == pytest.approx(base["detection_accuracy"], abs=1e-12)


def test_fpr95_openood_is_the_definition_not_the_dropped_roc_point():
    # 20 tie groups of one ID + one OOD: s <= 18 flags 19/20 = 95% of OOD and 19/20 of ID.
    # roc_curve's default drop_intermediate=True (what OpenOOD calls) drops that point on
    # the straight diagonal and reports the next one, 1.0.
    scores = np.arange(20.0)
    assert compute(scores, scores)["fpr95_openood"] == pytest.approx(0.95, abs=1e-12)
    y_ood = np.r_[np.zeros(20), np.ones(20)]
    fpr, tpr, _ = roc_curve(y_ood, -np.r_[scores, scores])
    assert fpr[np.argmax(tpr >= 0.95)] == 1.0


def test_negative_zero_ties_with_zero():
    assert compute([0.0], [-0.0])["auroc"] == 0.5


def test_negative_subnormal_minimum_stays_below_a_positive_subnormal():
    # Both signs and |s| >= 2: the merge scales the scores by 2**-2, which turns -5e-324 into
    # -0.0 and 5e-324 into 0.0; they must still count as -5e-324 < 5e-324, i.e. ID beats one of
    # four OOD scores (found by the property test below; the fast path used to tie them).
    assert compute([5e-324], [-5e-324, 0.1, 0.64, 2.3])["auroc"] == 0.25
    assert compute([-5e-324], [5e-324, 0.1, 0.64, -2.3])["auroc"] == 0.25


# ---------------------------------------------------------------------------------------------
# scikit-learn agreement on data with many ties
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_sklearn_on_tied_scores(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = rng.integers(20, 900, size=2)
    s_in = np.round(rng.normal(1.0, 1.5, n_in))  # integer scores: many ties, across the classes too
    s_out = np.round(rng.normal(0.0, 1.5, n_out))
    result, expected = compute(s_in, s_out), _sklearn_reference(s_in, s_out)
    for name in METRIC_NAMES:
        assert result[name] == pytest.approx(expected[name], abs=1e-12), name


def _sklearn_reference(s_in, s_out) -> dict[str, float]:
    """All six metrics from scikit-learn: AUROC and AUPR-In / -Out (ID positive with s, OOD
    positive with -s) directly, the rest read off roc_curve with every threshold."""
    y = np.r_[np.ones(s_in.size), np.zeros(s_out.size)]
    s = np.r_[s_in, s_out]
    # roc_curve with every threshold (thresholds decreasing; fpr counts OOD >= threshold).
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    first = np.argmax(tpr >= 0.95)  # largest threshold with TPR >= 0.95
    # OpenOOD: roc_curve(OOD indicator, -score), FPR at the first TPR >= 0.95.
    fpr_o, tpr_o, _ = roc_curve(1 - y, -s, drop_intermediate=False)
    return {
        "tnr_at_tpr95": 1.0 - fpr[first],
        "auroc": roc_auc_score(y, s),
        "aupr_in": average_precision_score(y, s),
        "aupr_out": average_precision_score(1 - y, -s),
        "detection_accuracy": np.max(0.5 * tpr + 0.5 * (1 - fpr)),
        "fpr95_openood": fpr_o[np.argmax(tpr_o >= 0.95)],
    }


SKLEARN_DATA = {
    # Continuous, both signs, |s| > 2 on both sides: the fast merge scales by a power of two.
    "normal": lambda rng: (rng.normal(1.0, 2.0, 3000), rng.normal(0.0, 2.0, 2000)),
    # Positive only (probabilities), different sizes, no ties.
    "uniform": lambda rng: (rng.random(500) ** 0.5, rng.random(4000)),
    # Heavy ties across and within the sets, saturated at the maximum.
    "ties": lambda rng: (np.minimum(np.round(rng.random(3000) * 1.5, 2), 1.0), np.round(rng.random(1000), 1)),
    # Negative only (energies), rounded: ties.
    "negative": lambda rng: (-np.round(rng.gamma(2.0, 1.0, 2500), 1), -np.round(rng.gamma(3.0, 1.0, 900), 1)),
    # Both signs, |s| > 2 and a subnormal score: the merge cannot scale and falls back to sorting.
    "fallback": lambda rng: (
        np.r_[rng.normal(1.0, 3.0, 800), 5e-320],
        np.r_[rng.normal(0.0, 3.0, 600), -1e-310],
    ),
}


@pytest.mark.parametrize("case", list(SKLEARN_DATA))
def test_agrees_with_sklearn_to_1e_12(case):
    rng = np.random.default_rng(len(case))
    s_in, s_out = SKLEARN_DATA[case](rng)
    result, expected = compute(s_in, s_out), _sklearn_reference(s_in, s_out)
    for name, value in expected.items():
        assert abs(result[name] - value) <= 1e-12, (name, result[name], value)
    merged = metrics._ranks_merged(s_in, s_out)
    assert (merged is None) == (case == "fallback")  # the path this case is meant to exercise
    if case in ("normal", "uniform"):
        assert merged[1] is None  # no ties: the unweighted fast path


def _both_paths(s_in, s_out):
    s_in, s_out = np.asarray(s_in, float), np.asarray(s_out, float)
    merged = metrics._ranks_merged(s_in, s_out)
    searched = metrics._ranks_sorted(s_in, s_out)
    return merged, searched


# Both signs (scaled when |s| >= 2 occurs on both sides), ties, -0.0 == 0.0, neighbouring floats;
# and one sign only with extreme magnitudes (never scaled).
signed_scores = st.sampled_from([-7.5, -2.0, -1.0, -1e-300, -0.0, 0.0, 0.25, 1.0, 1.0 + 2**-52, 3.0])
positive_scores = st.sampled_from([0.0, 5e-324, 1e-300, 0.5, 1.0 - 2**-53, 1.0, 1e300, 1.7e308])


@settings(max_examples=150, deadline=None)
@given(data=st.data(), pool=st.sampled_from([signed_scores, positive_scores]))
def test_integer_key_merge_matches_sort_and_search(data, pool):
    s_in = data.draw(st.lists(pool, min_size=1, max_size=30))
    s_out = data.draw(st.lists(pool, min_size=1, max_size=30))
    merged, searched = _both_paths(s_in, s_out)
    assert merged is not None  # these scores always fit the integer keys
    ranks, w_in, w_out = merged
    if ranks.shared:
        # Ties: both lists are the distinct pooled values (-0.0 == 0.0), with each set's count.
        pooled = np.unique(np.r_[s_in, s_out])
        assert np.array_equal(w_in, [np.sum(np.array(s_in) == v) for v in pooled])
        assert np.array_equal(w_out, [np.sum(np.array(s_out) == v) for v in pooled])
        k = pooled.size
        assert np.array_equal(ranks.below_in, np.arange(k))
        assert np.array_equal(ranks.upto_out, np.arange(1, k + 1))
    else:
        assert w_in is None and w_out is None
        assert np.all(searched[1] == 1) and np.all(searched[2] == 1)
        for a, b in zip(ranks[:3], searched[0][:3], strict=True):
            assert np.array_equal(a, b)
    fast, slow = compute(s_in, s_out), metrics._metrics_from_ranks(*searched)
    assert fast == pytest.approx(slow, abs=1e-15)  # same counts; sums may round in another order


def test_integer_key_merge_on_neighbouring_floats_of_both_sets():
    # Scores one ulp apart in different sets must stay apart (no bit of the score is dropped).
    x = np.nextafter(1.0, 2.0)
    result = compute([x, 1.0], [1.0, np.nextafter(1.0, 0.0)])
    assert result["auroc"] == pytest.approx((2 + 0.5 + 1) / 4)


# ---------------------------------------------------------------------------------------------
# Work buffers (issue 16): the fast path keeps work arrays per thread up to a byte budget and
# hands out fresh ones past it. Results must not depend on whether an array is kept, fresh or
# left over from an earlier call. Reference: the simple path (each set sorted, binary search).
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _work_buffers(keep_bytes: int | None = None, poison: int | None = None):
    """A fresh per-thread buffer store (as in a new process; a warm store could hide arrays
    past the budget), with budget `keep_bytes` (0: every array is handed out fresh) and, with
    `poison`, every handed-out array first filled with that byte (reads of memory a call did
    not write give garbage even while the memory is kept)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(metrics._Buffers, "_local", threading.local()))
        if keep_bytes is not None:
            stack.enter_context(mock.patch.object(metrics._Buffers, "_KEEP_BYTES", keep_bytes))
        if poison is not None:
            stack.enter_context(mock.patch.object(metrics._Buffers, "_POISON", poison))
        yield


def _reference(s_in, s_out) -> dict[str, float]:
    """The simple path: each set sorted on its own, ranks by binary search, fresh buffers."""
    s_in, s_out = np.asarray(s_in, float), np.asarray(s_out, float)
    return metrics._metrics_from_ranks(*metrics._ranks_sorted(s_in, s_out), buffers=metrics._Buffers())


def _assert_close(result, expected, tol=1e-12):
    # Same integer counts on both paths; only float sums may be added in another order.
    for name in METRIC_NAMES:
        assert abs(result[name] - expected[name]) <= tol, (name, result[name], expected[name])


BUFFER_DATA = {
    "distinct": lambda rng, n_in, n_out: (rng.normal(1.0, 1.0, n_in), rng.normal(0.0, 1.0, n_out)),
    "ties": lambda rng, n_in, n_out: (
        np.round(rng.normal(1.0, 1.0, n_in), 1),
        np.round(rng.normal(0.0, 1.0, n_out), 1),
    ),
    # Both signs, |s| > 2: the merge scales the keys by a power of two first.
    "ties-scaled": lambda rng, n_in, n_out: (
        np.round(rng.normal(1.0, 4.0, n_in)),
        np.round(rng.normal(0.0, 4.0, n_out)),
    ),
    "constant": lambda rng, n_in, n_out: (np.full(n_in, 0.25), np.full(n_out, 0.25)),
    # Both signs, |s| > 2 and a subnormal: the keys do not fit, the fast path sorts instead.
    "fallback": lambda rng, n_in, n_out: (
        np.r_[np.round(rng.normal(1.0, 3.0, n_in - 1), 1), 5e-320],
        np.r_[np.round(rng.normal(0.0, 3.0, n_out - 1), 1), -1e-310],
    ),
}


@pytest.mark.parametrize("budget", [0, 2**12, 2**16])
@pytest.mark.parametrize("n_in, n_out", [(1, 2), (7, 5), (300, 170), (6000, 4500)])
@pytest.mark.parametrize("case", list(BUFFER_DATA))
def test_fast_path_matches_simple_path_past_the_buffer_budget(case, n_in, n_out, budget):
    # Budget 0: every work array is fresh, so a call that writes into one get of a name and
    # reads it through another (the tie flags of issue 16) reads uninitialised memory. Small
    # budgets keep some arrays and not others, as 10**6-scale inputs do under 96 MiB.
    if case == "fallback" and n_in < 2:
        pytest.skip("needs room for the subnormal besides one ordinary score")
    s_in, s_out = BUFFER_DATA[case](np.random.default_rng(n_in), n_in, n_out)
    expected = _reference(s_in, s_out)
    with _work_buffers(keep_bytes=budget):
        _assert_close(compute(s_in, s_out), expected)
        _assert_close(compute(s_in, s_out), expected)  # the same store again (warm)
        _assert_close(metrics._exact_simple(s_in, s_out), expected)  # the path bench --crossover times


@pytest.mark.parametrize("case", list(BUFFER_DATA))
def test_fast_path_reads_only_memory_it_wrote(case):
    # Kept memory filled with garbage before every get: any read of a value not written in the
    # same call shows up (the kept-memory variant of issue 16, invisible under the budget).
    s_in, s_out = BUFFER_DATA[case](np.random.default_rng(1), 2000, 1500)
    expected = _reference(s_in, s_out)
    for poison in (0x00, 0xA5, 0xFF):
        with _work_buffers(poison=poison):
            _assert_close(compute(s_in, s_out), expected)
            _assert_close(compute(s_in[:900], s_out[:1100]), _reference(s_in[:900], s_out[:1100]))


@pytest.mark.parametrize("rounded", [False, True])
def test_bootstrap_does_not_depend_on_the_buffer_budget(rounded):
    # Same seed, same draws: the intervals and paired differences must be the same floats
    # whether the work arrays are kept, fresh (budget 0) or poisoned.
    a_in, a_out, b_in, b_out = _two_detectors(np.random.default_rng(12), n_in=400, n_out=300)
    if rounded:
        a_in, a_out = np.round(a_in, 1), np.round(a_out, 1)
    kwargs = dict(n_resamples=30, seed=3)
    with _work_buffers():
        single = bootstrap(a_in, a_out, **kwargs)
        paired = metrics.paired_bootstrap(a_in, a_out, b_in, b_out, **kwargs)
    for settings_ in (dict(keep_bytes=0), dict(keep_bytes=2**12), dict(poison=0xA5)):
        with _work_buffers(**settings_):
            assert bootstrap(a_in, a_out, **kwargs) == single, settings_
            again = metrics.paired_bootstrap(a_in, a_out, b_in, b_out, **kwargs)
            assert all(np.array_equal(again[k], paired[k]) for k in METRIC_NAMES), settings_


def test_buffers_hand_out_each_name_once_per_call():
    buffers = metrics._Buffers()
    with buffers.scope():
        buffers.get("a", 4)
        with pytest.raises(RuntimeError, match="twice"):
            buffers.get("a", 4, np.int64)  # even as another dtype: it may or may not be the same memory
        buffers.release("a")  # its contents declared dead: may be handed out again
        buffers.get("a", 4)
        with pytest.raises(RuntimeError, match="entered twice"):
            with buffers.scope():
                pass
    with buffers.scope():  # a new call may ask again
        buffers.get("a", 4)
    with buffers.scope():
        with pytest.raises(RuntimeError, match="twice"):
            buffers.get("b", 1)
            buffers.get("b", 1)
    with buffers.scope():  # an error inside a call does not poison the next one
        buffers.get("b", 1)
    counting = buffers.arange(5, np.int64)
    assert counting.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="read-only"):
        counting[0] = 7  # shared by every later call: must stay 0, 1, 2, ...


# Tie patterns: rounding to a grid (None: continuous), scaled afterwards (scaling keeps ties and
# order); each set may be constant, take one sign, or hold subnormals, zeros and -0.0.
_SPECIALS = [5e-324, -5e-324, 2.2e-308, -1e-310, 0.0, -0.0]


@st.composite
def _score_sets(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    digits = draw(st.sampled_from([None, 0, 1, 2]))
    scale = draw(st.sampled_from([1e-300, 1e-3, 1.0, 7.0, 1e250]))
    sets = []
    for shift in (draw(st.sampled_from([-1.0, 0.0, 1.0, 3.0])), 0.0):
        n = draw(st.integers(1, 3000))
        s = rng.normal(shift, 1.0, n)
        s = s if digits is None else np.round(s, digits)
        sign = draw(st.sampled_from(["mixed", "positive", "negative"]))
        s = np.abs(s) if sign == "positive" else -np.abs(s) if sign == "negative" else s
        if draw(st.booleans()):
            s = np.full(n, s[0])  # a constant set
        s = s * scale
        specials = draw(st.lists(st.sampled_from(_SPECIALS), max_size=3))
        s[: len(specials)] = specials[:n]
        sets.append(s)
    return sets


@settings(max_examples=80, deadline=None)
@given(sets=_score_sets(), starved=st.booleans())
def test_matches_sklearn_and_simple_path_on_random_sizes_and_ties(sets, starved):
    s_in, s_out = sets
    with _work_buffers(keep_bytes=0 if starved else None):
        result = compute(s_in, s_out)
    _assert_close(result, _reference(s_in, s_out))
    _assert_close(result, _sklearn_reference(s_in, s_out))


@pytest.mark.slow
@pytest.mark.parametrize("n", [5_800_000, 10_500_000])
def test_auroc_equals_sklearn_on_millions_of_tied_scores(n):
    # Issue 16: at these pooled sizes the tie path's work arrays crossed the 96 MiB budget and
    # AUROC was off by 1.1e-4. A fresh buffer store, as in a new process.
    rng = np.random.default_rng(16)
    s_in, s_out = np.round(rng.normal(1.0, 1.0, n // 2), 2), np.round(rng.normal(0.0, 1.0, n - n // 2), 2)
    with _work_buffers():
        result = compute(s_in, s_out)
    y = np.r_[np.ones(s_in.size), np.zeros(s_out.size)]
    assert abs(result["auroc"] - roc_auc_score(y, np.r_[s_in, s_out])) <= 1e-12
    _assert_close(result, _reference(s_in, s_out))


# ---------------------------------------------------------------------------------------------
# Brute force: the definitions written out as loops over every threshold
# ---------------------------------------------------------------------------------------------


def _average_precision_brute(pos: np.ndarray, neg: np.ndarray) -> float:
    """sum over thresholds t from the top of (R(t) - R_prev) * P(t), predicting positive if s >= t."""
    area, recall_prev = 0.0, 0.0
    for t in sorted(set(pos.tolist()) | set(neg.tolist()), reverse=True):
        tp, fp = np.sum(pos >= t), np.sum(neg >= t)
        recall = tp / pos.size
        area += (recall - recall_prev) * tp / (tp + fp)
        recall_prev = recall
    return float(area)


def _brute_force(s_in, s_out) -> dict[str, float]:
    s_in, s_out = np.asarray(s_in, float), np.asarray(s_out, float)
    values = sorted(set(s_in.tolist()) | set(s_out.tolist()))
    # Every score, every midpoint between neighbours, and thresholds below/above everything.
    thresholds = values + [(x + y) / 2 for x, y in itertools.pairwise(values)] + [values[0] - 1, math.inf]

    def tpr(d):
        return np.mean(s_in >= d)

    def tnr(d):
        return np.mean(s_out < d)

    d95 = max(d for d in thresholds if tpr(d) >= 0.95)
    pairs = [(a > b) + 0.5 * (a == b) for a in s_in for b in s_out]
    fpr95 = next(np.mean(s_in <= v) for v in values if np.mean(s_out <= v) >= 0.95)
    return {
        "tnr_at_tpr95": tnr(d95),
        "auroc": float(np.mean(pairs)),
        "aupr_in": _average_precision_brute(s_in, s_out),
        "aupr_out": _average_precision_brute(-s_out, -s_in),
        "detection_accuracy": max(0.5 * tpr(d) + 0.5 * tnr(d) for d in thresholds),
        "fpr95_openood": fpr95,
    }


small_tied = st.lists(st.integers(-3, 3).map(lambda v: v / 2), min_size=1, max_size=45)
small_float = st.lists(st.floats(-5, 5, allow_nan=False, width=16), min_size=1, max_size=30)


@settings(max_examples=150, deadline=None)
@given(s_in=small_tied, s_out=small_tied)
def test_matches_brute_force_on_tied_scores(s_in, s_out):
    result, expected = compute(s_in, s_out), _brute_force(s_in, s_out)
    for name in METRIC_NAMES:
        assert result[name] == pytest.approx(expected[name], abs=1e-12), name


@settings(max_examples=100, deadline=None)
@given(s_in=small_float, s_out=small_float)
def test_matches_brute_force_on_float_scores(s_in, s_out):
    result, expected = compute(s_in, s_out), _brute_force(s_in, s_out)
    for name in METRIC_NAMES:
        assert result[name] == pytest.approx(expected[name], abs=1e-12), name


# ---------------------------------------------------------------------------------------------
# Legacy grid: the public code's algorithm (calculate_log.py of Lee et al.), re-written here as
# plain loops, one grid point at a time, in the order the public code walks them
# ---------------------------------------------------------------------------------------------


def _legacy_loop(s_in, s_out, steps: int) -> dict[str, float]:
    ins, outs = sorted(map(float, s_in)), sorted(map(float, s_out))
    n_in, n_out = len(ins), len(outs)

    def id_below(d):  # number of ID scores < d
        return bisect.bisect_left(ins, d)

    def ood_below(d):  # number of OOD scores < d
        return bisect.bisect_left(outs, d)

    def ood_above(d):  # number of OOD scores > d
        return n_out - bisect.bisect_right(outs, d)

    lowest, highest = min(ins[0], outs[0]), max(ins[-1], outs[-1])
    step = (highest - lowest) / steps
    rising = [float(d) for d in np.arange(lowest, highest, step)]  # TNR, AUROC, detection, AUPR-In
    falling = [float(d) for d in np.arange(highest, lowest, -step)]  # AUPR-Out: starts at the maximum

    fpr_sum, count = 0.0, 0
    for d in rising:
        if 0.94 <= (n_in - id_below(d)) / n_in <= 0.96:
            fpr_sum += ood_above(d) / n_out
            count += 1
    fpr_at_95 = fpr_sum / count if count else 1.0

    area, previous_fpr = 0.0, 1.0
    for d in rising:
        fpr = ood_above(d) / n_out
        area += (previous_fpr - fpr) * ((n_in - id_below(d)) / n_in)
        previous_fpr = fpr
    auroc = area

    lowest_error = 1.0
    for d in rising:
        lowest_error = min(lowest_error, (id_below(d) / n_in + ood_above(d) / n_out) / 2.0)

    area, previous_recall = 0.0, 1.0
    for d in rising:
        tp, fp = (n_in - id_below(d)) / n_in, (n_out - ood_below(d)) / n_out
        if tp + fp == 0:
            continue
        precision = tp / (tp + fp)
        area += (previous_recall - tp) * precision
        previous_recall = tp
    aupr_in = area + previous_recall * precision

    area, previous_recall = 0.0, 1.0
    for d in falling:
        fp, tp = id_below(d) / n_in, ood_below(d) / n_out
        if tp + fp == 0:
            break
        precision = tp / (tp + fp)
        area += (previous_recall - tp) * precision
        previous_recall = tp
    aupr_out = area + previous_recall * precision

    return {
        "tnr_at_tpr95": 1.0 - fpr_at_95,
        "auroc": auroc,
        "aupr_in": aupr_in,
        "aupr_out": aupr_out,
        "detection_accuracy": 1.0 - lowest_error,
    }


def _assert_same_as_loop(result, s_in, s_out, steps):
    # The same floats in the same order: identical results, not just close ones.
    expected = _legacy_loop(s_in, s_out, steps)
    for name, value in expected.items():
        assert result[name] == value, (name, result[name], value)
    assert result["fpr95_openood"] == compute(s_in, s_out)["fpr95_openood"]  # exact in legacy mode too


def _saturated_softmax(rng, n, scale):
    """Max-softmax of random 10-class logits in float32 (as a network outputs them), as float64:
    with a large logit scale many scores are exactly 1.0 and others lie within 1e-6 below it."""
    logits = (rng.normal(size=(n, 10)) * scale).astype(np.float32)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p.max(axis=1) / p.sum(axis=1)).astype(np.float64)


@pytest.mark.parametrize("steps", [7, 50, 400])
@pytest.mark.parametrize("seed", range(4))
def test_legacy_matches_slow_loop(seed, steps):
    rng = np.random.default_rng(seed)
    n_in, n_out = rng.integers(5, 80, size=2)
    s_in = rng.normal(1.0, 1.0, n_in)
    s_out = rng.normal(0.0, 1.0, n_out)
    if seed % 2:  # integer scores: ties, and grid points that hit scores exactly
        s_in, s_out = np.round(s_in * 2), np.round(s_out * 2)
    _assert_same_as_loop(metrics._legacy(s_in, s_out, steps=steps), s_in, s_out, steps)


@pytest.mark.parametrize("steps", [3, 20, 1000])
def test_legacy_matches_slow_loop_with_ties_at_the_maximum(steps):
    # The maximum holds a block of ties from both sets, and scores sit just below it: AUPR-Out's
    # first threshold (the maximum itself) counts them apart from the tied block.
    s_in = np.r_[np.ones(30), 1.0 - np.array([1e-9, 3e-9, 0.2, 0.5]), np.linspace(0.1, 0.9, 9)]
    s_out = np.r_[np.ones(6), 1.0 - 2e-9, np.linspace(0.0, 0.8, 40)]
    _assert_same_as_loop(metrics._legacy(s_in, s_out, steps=steps), s_in, s_out, steps)
    _assert_same_as_loop(metrics._legacy(s_out, s_in, steps=steps), s_out, s_in, steps)  # OOD at the top


@settings(max_examples=40, deadline=None)
@given(s_in=small_tied, s_out=small_tied, steps=st.integers(2, 60))
def test_legacy_matches_slow_loop_hypothesis(s_in, s_out, steps):
    if min(s_in + s_out) == max(s_in + s_out):
        return  # constant scores: empty grid, covered by test_constant_scores
    _assert_same_as_loop(metrics._legacy(s_in, s_out, steps=steps), s_in, s_out, steps)


def test_legacy_default_grid_on_saturated_softmax():
    # The case that showed the missing first AUPR-Out threshold: float32 max-softmax scores with
    # many ties at 1.0, unequal set sizes, the full 200,000-step grid.
    rng = np.random.default_rng(0)
    s_in, s_out = _saturated_softmax(rng, 60, 30.0), _saturated_softmax(rng, 45, 4.0)
    assert np.sum(s_in == 1.0) >= 10 and np.any((s_in > 1.0 - 1e-6) & (s_in < 1.0))
    _assert_same_as_loop(compute(s_in, s_out, legacy=True), s_in, s_out, metrics.LEGACY_STEPS)


@pytest.mark.parametrize("case", ["continuous", "saturated", "sizes"])
def test_legacy_default_grid_matches_slow_loop(case):
    rng = np.random.default_rng(11)
    if case == "continuous":
        s_in, s_out = rng.normal(1.5, 1.0, 40), rng.normal(0.0, 1.0, 40)
    elif case == "saturated":
        s_in, s_out = _saturated_softmax(rng, 300, 30.0), _saturated_softmax(rng, 200, 10.0)
    else:
        s_in, s_out = rng.normal(1.5, 1.0, 25), np.round(rng.normal(0.0, 1.0, 400), 2)
    _assert_same_as_loop(compute(s_in, s_out, legacy=True), s_in, s_out, metrics.LEGACY_STEPS)


def test_legacy_close_to_exact_on_continuous_scores():
    rng = np.random.default_rng(5)
    s_in, s_out = rng.normal(2.5, 1.0, 4000), rng.normal(0.0, 1.0, 4000)
    exact, legacy = compute(s_in, s_out), compute(s_in, s_out, legacy=True)
    for name in METRIC_NAMES:
        assert abs(exact[name] - legacy[name]) < 0.005, name  # within half a point


def test_legacy_tnr_collapses_when_id_scores_tie_at_the_maximum():
    # 98 of 100 ID scores sit at the maximum 1.0 (saturated softmax). The maximum is never a
    # grid threshold, so every grid tpr is >= 0.98: no point in [0.94, 0.96], FPR taken as 1.
    s_in = np.r_[np.ones(98), [0.3, 0.6]]
    s_out = np.linspace(0.0, 0.9, 50)
    assert compute(s_in, s_out, legacy=True)["tnr_at_tpr95"] == 0.0
    # Exact: the largest threshold with TPR >= 0.95 is d = 1.0 (TPR 0.98), rejecting all OOD.
    assert compute(s_in, s_out)["tnr_at_tpr95"] == 1.0


def test_legacy_precision_uses_rates_not_counts():
    # Repeating every OOD score 3 times leaves all rates, hence the legacy AUPRs, unchanged,
    # while the count-based exact AUPR-In drops (more false positives per threshold).
    rng = np.random.default_rng(2)
    s_in, s_out = rng.normal(1.0, 1.0, 60), rng.normal(0.0, 1.0, 40)
    legacy_1, legacy_3 = compute(s_in, s_out, legacy=True), compute(s_in, np.tile(s_out, 3), legacy=True)
    assert legacy_3["aupr_in"] == pytest.approx(legacy_1["aupr_in"], abs=1e-12)
    assert legacy_3["aupr_out"] == pytest.approx(legacy_1["aupr_out"], abs=1e-12)
    assert compute(s_in, np.tile(s_out, 3))["aupr_in"] < compute(s_in, s_out)["aupr_in"] - 0.05


# ---------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------


def _draw(rng, n):
    """bootstrap's draws: n indices in [0, n), uniformly with replacement."""
    return rng.integers(0, n, size=n)


def _bootstrap_naive(s_in, s_out, n_resamples, seed, legacy):
    """Resample the scores themselves and call compute: the definition, with the same draws
    (positions in the sorted scores)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        pick_in = np.sort(s_in)[_draw(rng, s_in.size)]
        pick_out = np.sort(s_out)[_draw(rng, s_out.size)]
        result = compute(pick_in, pick_out, legacy=legacy)
        values.append([result[name] for name in METRIC_NAMES])
    low, high = np.percentile(np.array(values), [2.5, 97.5], axis=0)
    return {name: (low[i], high[i]) for i, name in enumerate(METRIC_NAMES)}


@pytest.mark.parametrize("legacy", [False, True])
def test_bootstrap_equals_naive_resampling(legacy):
    rng = np.random.default_rng(4)
    s_in = np.round(rng.normal(1.0, 1.0, 30))  # ties, so resamples drop whole groups
    s_out = np.round(rng.normal(0.0, 1.0, 22))
    n = 40 if legacy else 120
    fast = bootstrap(s_in, s_out, n_resamples=n, seed=7, legacy=legacy)
    naive = _bootstrap_naive(s_in, s_out, n, 7, legacy)
    for name in METRIC_NAMES:
        assert fast[name] == pytest.approx(naive[name], abs=1e-9), name


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(1.0, 1.0, 400), rng.normal(0.0, 1.0, 300)
    point = compute(s_in, s_out)
    intervals = bootstrap(s_in, s_out, n_resamples=200, seed=1)
    assert tuple(intervals) == METRIC_NAMES
    for name in METRIC_NAMES:
        low, high = intervals[name]
        assert 0.0 <= low < high <= 1.0, name
        assert low <= point[name] <= high, name
    assert intervals["auroc"][1] - intervals["auroc"][0] < 0.1  # roughly 4 standard errors (~0.02 each)
    assert bootstrap(s_in, s_out, n_resamples=200, seed=1) == intervals
    assert bootstrap(s_in, s_out, n_resamples=200, seed=2) != intervals


def _paired_naive(a_in, a_out, b_in, b_out, n_resamples, seed, legacy=False):
    """The definition: the same drawn samples for both detectors, metrics by compute."""
    rng = np.random.default_rng(seed)
    diffs = {name: [] for name in METRIC_NAMES}
    for _ in range(n_resamples):
        pick_in = _draw(rng, a_in.size)
        pick_out = _draw(rng, a_out.size)
        a = compute(a_in[pick_in], a_out[pick_out], legacy=legacy)
        b = compute(b_in[pick_in], b_out[pick_out], legacy=legacy)
        for name in METRIC_NAMES:
            diffs[name].append(a[name] - b[name])
    return diffs


def _two_detectors(rng, n_in=60, n_out=45):
    # Detector B is a noisy, rounded copy of A on the same samples: paired, with ties.
    a_in, a_out = rng.normal(1.0, 1.0, n_in), rng.normal(0.0, 1.0, n_out)
    b_in = np.round(a_in + rng.normal(0.0, 0.7, n_in), 1)
    b_out = np.round(a_out + rng.normal(0.0, 0.7, n_out), 1)
    return a_in, a_out, b_in, b_out


@pytest.mark.parametrize("legacy", [False, True])
def test_paired_bootstrap_equals_naive_paired_resampling(legacy):
    scores = _two_detectors(np.random.default_rng(8))
    n = 8 if legacy else 60
    fast = metrics.paired_bootstrap(*scores, n_resamples=n, seed=5, legacy=legacy)
    naive = _paired_naive(*scores, n, 5, legacy)
    assert tuple(fast) == METRIC_NAMES
    for name in METRIC_NAMES:
        assert fast[name].shape == (n,)
        np.testing.assert_allclose(fast[name], naive[name], rtol=0, atol=1e-12, err_msg=name)
    # Paired draws: with itself every difference is exactly 0, and the same seed repeats.
    same = metrics.paired_bootstrap(scores[0], scores[1], scores[0], scores[1], n_resamples=n, seed=5)
    assert all(np.all(v == 0.0) for v in same.values())
    again = metrics.paired_bootstrap(*scores, n_resamples=n, seed=5, legacy=legacy)
    assert all(np.array_equal(fast[k], again[k]) for k in METRIC_NAMES)


def test_paired_bootstrap_draws_are_bootstraps_draws():
    # Same seed: the resamples of detector A are those behind bootstrap()'s interval (bootstrap
    # draws positions of the sorted scores, paired_bootstrap samples: the same for sorted input).
    a_in, a_out, b_in, b_out = _two_detectors(np.random.default_rng(9))
    a_in, a_out = np.sort(a_in), np.sort(a_out)
    zeros_in, zeros_out = np.zeros_like(a_in), np.zeros_like(a_out)  # constant: known metrics
    diffs = metrics.paired_bootstrap(
        a_in, a_out, zeros_in, zeros_out, n_resamples=80, seed=2, metrics=["auroc"]
    )
    assert list(diffs) == ["auroc"]
    low, high = np.percentile(diffs["auroc"] + 0.5, [2.5, 97.5])  # constant scores have AUROC 0.5
    assert bootstrap(a_in, a_out, n_resamples=80, seed=2)["auroc"] == pytest.approx((low, high), abs=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(b_in=np.zeros(5)), "same samples"),
        (dict(b_out=np.zeros(50)), "same samples"),
        (dict(metrics=["auroc", "accuracy"]), "metric names"),
        (dict(metrics="auroc"), "metric names"),
        (dict(metrics=[]), "metric names"),
        (dict(n_resamples=0), "n_resamples"),
        (dict(a_in=[1.0, float("nan")] * 30), "NaN"),
    ],
)
def test_paired_bootstrap_rejects_bad_input(kwargs, match):
    a_in, a_out, b_in, b_out = _two_detectors(np.random.default_rng(0))
    args = dict(a_in=a_in, a_out=a_out, b_in=b_in, b_out=b_out, n_resamples=3) | kwargs
    scores = [args.pop(name) for name in ("a_in", "a_out", "b_in", "b_out")]
    with pytest.raises(UserInputError, match=match):
        metrics.paired_bootstrap(*scores, **args)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "100"])
def test_bootstrap_rejects_bad_n_resamples(bad):
    with pytest.raises(UserInputError, match="n_resamples"):
        bootstrap([1.0, 2.0], [0.0], n_resamples=bad)


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------

BAD_INPUTS = [
    pytest.param([], "empty", id="empty"),
    pytest.param([0.1, float("nan")], "NaN", id="nan"),
    pytest.param([float("inf"), 0.3], "infinite", id="inf"),
    pytest.param([[0.1, 0.2], [0.3, 0.4]], "1-D", id="2d"),
    pytest.param(0.5, "1-D", id="scalar"),
    pytest.param(["a", "b"], "numbers", id="strings"),
]


@pytest.mark.parametrize("bad, problem", BAD_INPUTS)
@pytest.mark.parametrize("which", ["scores_in", "scores_out"])
@pytest.mark.parametrize("legacy", [False, True])
def test_bad_input_raises_user_input_error(bad, problem, which, legacy):
    good = [0.1, 0.5, 0.9]
    args = (bad, good) if which == "scores_in" else (good, bad)
    with pytest.raises(UserInputError, match=problem) as info:
        compute(*args, legacy=legacy)
    assert f"'{which}'" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(UserInputError, match=which):
        bootstrap(*args, n_resamples=3)
