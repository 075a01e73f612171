"""`check_detector`: the contract every registered detector must pass (after scikit-learn's
check_estimator). Use it in the tests of a new detector.

On an easy in/out pair it checks: shape (N,), dtype float64, finite values, determinism
(scoring twice gives identical arrays), and direction (in-distribution scores higher:
AUROC > 0.9), unless `check_direction=False` (the random sanity detector).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from oodbench import metrics
from oodbench.detectors.base import Detector


def check_detector(
    detector: Detector,
    model: nn.Module,
    *,
    train,
    x_in: torch.Tensor,
    x_out: torch.Tensor,
    val_in: torch.Tensor,
    val_out: torch.Tensor,
    check_direction: bool = True,
) -> dict[str, float]:
    """Fit, score both sets twice and assert the contract; returns the metrics on the pair."""
    fitted = detector.fit(model, train=train, val_in=val_in, val_out=val_out)
    assert fitted is detector, "fit must return self"
    s_in = detector.score(model, x_in)
    s_out = detector.score(model, x_out)
    for scores, x in ((s_in, x_in), (s_out, x_out)):
        assert isinstance(scores, np.ndarray), f"{detector.name}: score must return a numpy array"
        assert scores.shape == (len(x),), f"{detector.name}: shape {scores.shape} != ({len(x)},)"
        assert scores.dtype == np.float64, f"{detector.name}: dtype {scores.dtype} != float64"
        assert np.isfinite(scores).all(), f"{detector.name}: non-finite scores"
    assert np.array_equal(s_in, detector.score(model, x_in)), f"{detector.name}: not deterministic"
    result = metrics.compute(s_in, s_out)
    if check_direction:
        assert result["auroc"] > 0.9, f"{detector.name}: AUROC {result['auroc']:.3f} on an easy pair"
    return result
