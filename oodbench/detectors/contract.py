"""`check_detector`: the contract every detector must pass, built-in or plug-in (after
scikit-learn's check_estimator). Use it in the tests of a new detector.

On an easy in/out pair it checks:
- an unfitted detector that needs fitting (`needs_fit`) refuses to score, with an error that says
  to fit it; one that does not need fitting scores, or refuses with such an error;
- `fit` returns self, and `params()` is JSON (it is stored in every result row);
- `score` does not change the detector: its attributes (tensors, arrays, nested objects) are the
  same after scoring as before;
- shape (N,), dtype float64, finite values, determinism (scoring twice gives identical arrays);
- fit is deterministic: a second, fresh fit on the same data gives identical scores (the
  runner caches the scores of one fit and may refit later; ID and OOD scores of a row must
  not depend on which fit made them);
- each row is scored on its own: scores in batches of 7 equal scores in one batch, for feature
  and input detectors (the runner scores feature detectors batch by batch; logit detectors get
  all logits of a set at once);
- direction: in-distribution scores higher (AUROC > 0.9), unless `check_direction=False`
  (the random sanity detector).
"""

from __future__ import annotations

import copy
import json
import math
import types
from typing import Any

import numpy as np
import torch
from torch import nn

from oodbench import metrics
from oodbench.detectors.base import Detector, ForwardOutputs, collect_outputs


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
    """Fit, score both sets and assert the contract; returns the metrics on the pair."""
    name = getattr(detector, "name", type(detector).__name__)
    _check_unfitted(copy.deepcopy(detector), model, x_in[:4], name)
    fresh = copy.deepcopy(detector)  # unfitted, for the second fit below
    fitted = detector.fit(model, train=train, val_in=val_in, val_out=val_out)
    assert fitted is detector, f"{name}: fit must return self"
    json.dumps(detector.params())  # stored in every result row

    before = _snapshot(vars(detector))
    s_in = detector.score(model, x_in)
    s_out = detector.score(model, x_out)
    assert _same(before, _snapshot(vars(detector))), f"{name}: score changed the detector's attributes"
    for scores, x in ((s_in, x_in), (s_out, x_out)):
        assert isinstance(scores, np.ndarray), f"{name}: score must return a numpy array"
        assert scores.shape == (len(x),), f"{name}: shape {scores.shape} != ({len(x)},)"
        assert scores.dtype == np.float64, f"{name}: dtype {scores.dtype} != float64"
        assert np.isfinite(scores).all(), f"{name}: non-finite scores"
    assert np.array_equal(s_in, detector.score(model, x_in)), f"{name}: not deterministic"
    refit = fresh.fit(model, train=train, val_in=val_in, val_out=val_out)
    assert np.array_equal(refit.score(model, x_in), s_in), (
        f"{name}: fit is not deterministic (a second fit on the same data gives other scores)"
    )
    if detector.uses != "logits":  # the runner gives logit detectors all logits at once
        assert np.allclose(_scored_in_batches(detector, model, x_in), s_in, rtol=1e-5, atol=1e-6), (
            f"{name}: scores depend on the batch"
        )
    result = metrics.compute(s_in, s_out)
    if check_direction:
        assert result["auroc"] > 0.9, f"{name}: AUROC {result['auroc']:.3f} on an easy pair"
    return result


def _scored_in_batches(detector: Detector, model: nn.Module, x: torch.Tensor, size: int = 7) -> np.ndarray:
    """Scores in batches of `size`, as the runner gives them (output detectors: batch by batch)."""
    if detector.needs_model():
        return detector.score(model, x, batch_size=size)
    outputs = collect_outputs(model, x, with_features=detector.uses == "features")
    parts = []
    for start in range(0, len(x), size):
        rows = slice(start, start + size)
        features = None if outputs.features is None else outputs.features[rows]
        parts.append(detector.score_outputs(ForwardOutputs(logits=outputs.logits[rows], features=features)))
    return np.concatenate(parts)


def _check_unfitted(detector: Detector, model: nn.Module, x: torch.Tensor, name: str) -> None:
    try:
        detector.score(model, x)
    except Exception as error:  # noqa: BLE001  (any error type, but it must say what to do)
        assert "fit" in str(error).lower(), f"{name}: unfitted, it fails without saying to fit: {error!r}"
        return
    assert not getattr(detector, "needs_fit", False), f"{name}: needs fitting but scored unfitted"


def _snapshot(value: Any, depth: int = 0) -> Any:
    """A comparable copy of a detector's state (tensors and arrays copied, objects walked)."""
    if isinstance(value, torch.Tensor):
        return ("tensor", value.detach().clone())
    if isinstance(value, np.ndarray):
        return ("array", value.copy())
    if isinstance(value, nn.Module):
        return ("module", _snapshot(dict(value.state_dict()), depth + 1))
    if isinstance(value, dict):
        return ("dict", {k: _snapshot(v, depth + 1) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_snapshot(v, depth + 1) for v in value])
    if isinstance(value, (types.FunctionType, types.MethodType, types.BuiltinFunctionType, type)):
        return ("callable", value)
    if depth < 4 and hasattr(value, "__dict__"):
        return ("object", type(value), _snapshot(vars(value), depth + 1))
    return ("value", value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and a and a[0] == "tensor":
        x, y = a[1], b[1]
        return x.shape == y.shape and x.dtype == y.dtype and bool(torch.equal(x.cpu(), y.cpu()))
    if isinstance(a, tuple) and a and a[0] == "array":
        return a[1].shape == b[1].shape and np.array_equal(a[1], b[1], equal_nan=a[1].dtype.kind in "fc")
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001  (objects whose == is not a bool)
        return a is b
