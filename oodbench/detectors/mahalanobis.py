"""Mahalanobis detector (Lee, Lee, Lee, Shin, NeurIPS 2018), on penultimate features.

Fit on in-distribution training data: class means mu_c and one tied covariance
    Sigma = (1/N) sum_i (f(x_i) - mu_{y_i}) (f(x_i) - mu_{y_i})^T.
    score(x) = -min_c (f(x) - mu_c)^T Sigma^{-1} (f(x) - mu_c)
Optional input pre-processing (epsilon > 0): x~ = x - eps * sign(grad_x min_c M_c(x)), the step
that raises the score; then score(x~). The default is epsilon = 0: no pre-processing and nothing
tuned (rows say tuning "none"). `epsilon=None` (`--param mahalanobis.epsilon=null`) chooses it
from the paper's list {0, 0.0005, 0.001, 0.0014, 0.002, 0.005, 0.01} on the validation split
(lowest FPR at 95% TPR). The class statistics use the whole training split unless `--fit-limit`
caps it (`--limit` caps only the evaluated test sets).
Not implemented here: the paper's feature ensemble over several layers with a logistic
regression on top (it needs OOD validation data per layer); this is the last-layer variant.

Sigma^{-1} is the pseudo-inverse of Sigma, as in the authors' code (scikit-learn's
EmpiricalCovariance, whose precision_ is pinvh of the covariance). pytorch-ood's Mahalanobis
(`-d pytorch-ood:Mahalanobis`) instead inverts the unnormalised scatter plus a ridge,
(N Sigma + 1e-6 I)^{-1}, and scores 0.5 * min_c M_c. The factor N and the 0.5 only rescale the
score; the ridge does not: along directions where Sigma has (near) zero variance, such as dead
ReLU units of the penultimate layer, pinv gives weight 0, the ridge about 1e6, so any activity
of a dead unit dominates the distance and the two can rank inputs differently. They do when the
fit sample is small enough that units silent in it fire on test images: on the embedded suite
the two agree when fitted on all 3,500 training images and differ when fitted on 500
(benchmarks/README.md, "pytorch-ood detectors"). oodbench's `mahalanobis` keeps the reference
reading.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from oodbench import metrics
from oodbench.detectors.base import (
    Detector,
    ForwardOutputs,
    NotFittedError,
    check_param,
    collect_outputs,
    is_number,
    iter_batches,
)

NOT_FITTED = "Mahalanobis must be fitted on training data first: call fit(model, train=...)"
PAPER_EPSILONS: tuple[float, ...] = (0.0, 0.0005, 0.001, 0.0014, 0.002, 0.005, 0.01)


class Mahalanobis(Detector):
    name = "mahalanobis"
    uses = "features"
    needs_fit = True

    def __init__(self, *, epsilon: float | None = 0.0, epsilons: tuple[float, ...] = PAPER_EPSILONS) -> None:
        self.epsilon = epsilon
        self.epsilons = epsilons

    def validate(self) -> None:
        e = self.epsilon
        check_param("Mahalanobis", "epsilon", e, e is None or (is_number(e) and e >= 0), "a float >= 0")

    def params(self) -> dict[str, Any]:
        return {
            "epsilon": getattr(self, "epsilon_", self.epsilon),
            "layer": getattr(self, "layer_", "penultimate"),
        }

    def tuned_on_validation(self) -> bool:
        return self.epsilon is None

    @property
    def _preprocesses(self) -> bool:
        return getattr(self, "epsilon_", self.epsilon or 0.0) > 0

    def fit(self, model, *, train=None, val_in=None, val_out=None, device="cpu", batch_size=256):
        """Class means and tied covariance from `train` (an object with .x and .y)."""
        self.validate()
        if train is None or getattr(train, "y", None) is None:
            raise ValueError("Mahalanobis needs labelled in-distribution training data to fit")
        # Which layer the features come from (an EvalModel says; oodbench's own nets: penultimate).
        self.layer_ = getattr(model, "feature_source", "penultimate")
        feats = collect_outputs(model, train.x, device=device, batch_size=batch_size, with_features=True)
        f = feats.features.double()
        y = train.y
        classes = torch.unique(y)
        means = torch.stack([f[y == c].mean(dim=0) for c in classes])
        centred = f - means[torch.searchsorted(classes, y)]
        cov = centred.T @ centred / len(f)
        # pinv: penultimate ReLU features are often rank-deficient (dead units).
        self.means_ = means
        self.precision_ = torch.linalg.pinv(cov, hermitian=True)
        self.epsilon_ = 0.0 if self.epsilon is None else float(self.epsilon)
        if self.epsilon is None:
            if val_in is None or val_out is None:
                raise ValueError("Mahalanobis with epsilon=None needs val_in and val_out to tune it")
            fprs = []
            for eps in self.epsilons:
                self.epsilon_ = float(eps)
                m = metrics.compute(
                    self.score(model, val_in, device=device, batch_size=batch_size),
                    self.score(model, val_out, device=device, batch_size=batch_size),
                )
                fprs.append(1.0 - m["tnr_at_tpr95"])
            self.epsilon_ = float(self.epsilons[int(np.argmin(fprs))])
        return self

    def needs_model(self) -> bool:
        return self._preprocesses

    def score_outputs(self, outputs: ForwardOutputs) -> np.ndarray:
        if not hasattr(self, "means_"):
            raise NotFittedError(NOT_FITTED)
        if self._preprocesses:
            raise NotImplementedError("with input pre-processing Mahalanobis scores from the model")
        return (-min_distance(outputs.features.double(), self.means_, self.precision_)).numpy()

    def score(self, model: nn.Module, x, *, device="cpu", batch_size=256) -> np.ndarray:
        if not hasattr(self, "means_"):
            raise NotFittedError(NOT_FITTED)
        if not self._preprocesses:
            return super().score(model, x, device=device, batch_size=batch_size)
        model.eval()
        # The gradient step runs in float32 on the device; the final distance in float64.
        means32, precision32 = self.means_.float().to(device), self.precision_.float().to(device)
        scores = []
        for batch in iter_batches(x, batch_size):
            batch = batch.to(device).detach().requires_grad_(True)
            distance = min_distance(model.features(batch), means32, precision32)
            (grad,) = torch.autograd.grad(distance.sum(), batch)
            with torch.no_grad():
                feats = model.features(batch - self.epsilon_ * grad.sign()).double().cpu()
            scores.append(-min_distance(feats, self.means_, self.precision_))
        return torch.cat(scores).numpy()


def min_distance(features: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """min_c (f - mu_c)^T P (f - mu_c) for each row of `features` (N, D); means (C, D)."""
    diff = features[:, None, :] - means[None, :, :]  # (N, C, D)
    return torch.einsum("ncd,de,nce->nc", diff, precision, diff).min(dim=1).values
