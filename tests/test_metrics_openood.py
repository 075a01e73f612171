"""The `openood` metric convention: AUPR by trapezoidal integration of the PR curve, checked
against scikit-learn's precision_recall_curve + auc (what OpenOOD v1.5's evaluator calls)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import auc, average_precision_score, precision_recall_curve

from oodbench.errors import UserInputError
from oodbench.metrics import CONVENTIONS, aupr_trapezoid, compute


def sklearn_openood(s_in: np.ndarray, s_out: np.ndarray) -> tuple[float, float]:
    """OpenOOD's two AUPRs (ID positive with s; OOD positive with -s), through scikit-learn."""
    is_id = np.r_[np.ones(s_in.size), np.zeros(s_out.size)]
    scores = np.r_[s_in, s_out]
    p_in, r_in, _ = precision_recall_curve(is_id, scores)
    p_out, r_out, _ = precision_recall_curve(1 - is_id, -scores)
    return float(auc(r_in, p_in)), float(auc(r_out, p_out))


# Few distinct values (0..4 in steps of 0.5) so that ties within and across the sets are common.
tied = st.lists(st.integers(0, 8).map(lambda v: v / 2), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(tied, tied)
def test_trapezoid_aupr_equals_sklearn_with_ties(a: list[float], b: list[float]) -> None:
    s_in, s_out = np.asarray(a), np.asarray(b)
    want_in, want_out = sklearn_openood(s_in, s_out)
    got = compute(s_in, s_out, convention="openood")
    assert got["aupr_in"] == pytest.approx(want_in, abs=1e-12)
    assert got["aupr_out"] == pytest.approx(want_out, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60),
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60),
)
def test_trapezoid_aupr_equals_sklearn_continuous(a: list[float], b: list[float]) -> None:
    s_in, s_out = np.asarray(a), np.asarray(b)
    want_in, want_out = sklearn_openood(s_in, s_out)
    assert aupr_trapezoid(s_in, s_out) == pytest.approx(want_in, abs=1e-12)
    assert aupr_trapezoid(-s_out, -s_in) == pytest.approx(want_out, abs=1e-12)


def test_openood_differs_from_average_precision_and_keeps_the_rest() -> None:
    # One OOD score above every ID score: the curve starts (0, 1) -> (0, 0), so the trapezoid
    # halves the first step's precision; average precision does not.
    s_in = np.array([1.0, 2.0, 3.0])
    s_out = np.array([0.0, 4.0])
    exact = compute(s_in, s_out)
    openood = compute(s_in, s_out, convention="openood")
    is_id = np.r_[np.ones(3), np.zeros(2)]
    assert exact["aupr_in"] == pytest.approx(average_precision_score(is_id, np.r_[s_in, s_out]))
    # By hand: points (0,1), (0,0), (1/3,1/2), (2/3,2/3), (1,3/4), (1,3/5).
    by_hand = (1 / 3) * (0 + 1 / 2) / 2 + (1 / 3) * (1 / 2 + 2 / 3) / 2 + (1 / 3) * (2 / 3 + 3 / 4) / 2
    assert openood["aupr_in"] == pytest.approx(by_hand, abs=1e-15)
    assert openood["aupr_in"] != pytest.approx(exact["aupr_in"])
    for name in ("auroc", "fpr95_openood", "tnr_at_tpr95", "detection_accuracy"):
        assert openood[name] == exact[name]


def test_convention_arguments() -> None:
    s_in, s_out = np.array([1.0, 2.0, 3.0]), np.array([0.5, 2.5])
    assert "openood" in CONVENTIONS
    assert compute(s_in, s_out, legacy=True) == compute(s_in, s_out, convention="legacy")
    assert compute(s_in, s_out) == compute(s_in, s_out, convention="exact")
    with pytest.raises(UserInputError, match="Unknown metric convention"):
        compute(s_in, s_out, convention="sklearn")
    with pytest.raises(UserInputError, match="contradicts"):
        compute(s_in, s_out, legacy=True, convention="openood")
