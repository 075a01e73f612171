"""Mahalanobis detector (Lee, Lee, Lee, Shin, NeurIPS 2018), on penultimate features.

Fit on in-distribution training data: class means mu_c and one tied covariance
    Sigma = (1/N) sum_i (f(x_i) - mu_{y_i}) (f(x_i) - mu_{y_i})^T.
    score(x) = -min_c (f(x) - mu_c)^T Sigma^{-1} (f(x) - mu_c)
Both are streamed: the statistics are accumulated one batch at a time in float64
(`TiedGaussianStats`, memory O(C D + D^2)), and scores use the expanded quadratic form
(`QuadraticForm`, memory O(N C + C D) per batch of N), never a whole-set feature matrix nor a
(N, C, D) tensor of differences (benchmarks/README.md, "Mahalanobis memory").
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
    features_and_logits,
    is_number,
    iter_batches,
    labelled_batches,
)
from oodbench.detectors.grid import GridResult, best_by_auroc

NOT_FITTED = "Mahalanobis must be fitted on training data first: call fit(model, train=...)"
# Differences held at once by `min_distance`: 2^24 elements (64 MiB in float32).
DIFF_ELEMENTS = 1 << 24
PAPER_EPSILONS: tuple[float, ...] = (0.0, 0.0005, 0.001, 0.0014, 0.002, 0.005, 0.01)


class Mahalanobis(Detector):
    name = "mahalanobis"
    uses = "features"
    needs_fit = True
    accepts_streams = True  # fit reads train and the validation sets batch by batch

    def __init__(
        self,
        *,
        epsilon: float | None = 0.0,
        epsilons: tuple[float, ...] = PAPER_EPSILONS,
        criterion: str = "fpr95",
    ) -> None:
        # criterion: how epsilon=None is chosen, "fpr95" (the paper's) or "auroc" (OpenOOD's; a
        # suite file's [tuning.mahalanobis] grid, oodbench.detectors.grid).
        self.epsilon = epsilon
        self.epsilons = epsilons
        self.criterion = criterion

    def validate(self) -> None:
        e = self.epsilon
        check_param("Mahalanobis", "epsilon", e, e is None or (is_number(e) and e >= 0), "a float >= 0")
        es = self.epsilons
        check_param(
            "Mahalanobis",
            "epsilons",
            es,
            len(es) > 0 and all(is_number(v) and v >= 0 for v in es),
            "a non-empty list of floats >= 0",
        )
        check_param(
            "Mahalanobis", "criterion", self.criterion, self.criterion in ("fpr95", "auroc"), "fpr95 or auroc"
        )

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
        """Class means and tied covariance from `train`: an object with .x and .y (a LabeledImages,
        in memory or streamed), or an iterable of labelled batches with .x and .y (a streaming
        loader, `oodbench.data.sources.make_loader`; its batch size is the loader's). Validation
        sets (epsilon tuning) may be tensors or streams: both are scored batch by batch."""
        self.validate()
        if train is None or (hasattr(train, "x") and getattr(train, "y", None) is None):
            raise ValueError("Mahalanobis needs labelled in-distribution training data to fit")
        # Which layer the features come from (an EvalModel says; oodbench's own nets: penultimate).
        self.layer_ = getattr(model, "feature_source", "penultimate")
        # Streamed: one batch of features at a time, never the whole split's (N, D) matrix.
        stats = TiedGaussianStats()
        model.eval()
        with torch.no_grad():
            for images, labels in labelled_batches(train, batch_size):
                if (labels < 0).any():
                    raise ValueError("Mahalanobis needs labelled training data; a batch has label -1")
                feats, _ = features_and_logits(model, images.to(device))
                # .float() first: the same float32 features the in-memory version collected.
                stats.update(feats.float().cpu(), labels)
        self.means_, cov = stats.means(), stats.covariance()
        # pinv: penultimate ReLU features are often rank-deficient (dead units).
        self.precision_ = torch.linalg.pinv(cov, hermitian=True)
        # Prepared here, not in score: scoring must leave the detector unchanged (the contract).
        self.form_ = QuadraticForm(self.means_, self.precision_)
        self.epsilon_ = 0.0 if self.epsilon is None else float(self.epsilon)
        self.grid_result_ = None
        if self.epsilon is None:
            if val_in is None or val_out is None:
                raise ValueError("Mahalanobis with epsilon=None needs val_in and val_out to tune it")
            epsilons = [float(eps) for eps in self.epsilons]
            s_in = self._scores_for_epsilons(model, val_in, epsilons, device=device, batch_size=batch_size)
            s_out = self._scores_for_epsilons(model, val_out, epsilons, device=device, batch_size=batch_size)
            fprs, aurocs = [], []
            for k in range(len(epsilons)):
                m = metrics.compute(s_in[k], s_out[k])
                fprs.append(1.0 - m["tnr_at_tpr95"])
                aurocs.append(m["auroc"])
            # fpr95: the first lowest FPR (the paper's); auroc: the first highest AUROC (OpenOOD's).
            best = int(np.argmin(fprs)) if self.criterion == "fpr95" else best_by_auroc(aurocs)
            self.epsilon_ = float(self.epsilons[best])
            self.grid_result_ = GridResult(
                grid={"epsilon": tuple(self.epsilons)},
                aurocs=tuple(aurocs),
                best=best,
                criterion=self.criterion,
            )
        return self

    def needs_model(self) -> bool:
        return self._preprocesses

    def _scores_for_epsilons(
        self, model: nn.Module, x, epsilons: list[float], *, device, batch_size: int
    ) -> np.ndarray:
        """(len(epsilons), N): what `score` gives at each epsilon, from ONE pass over `x` (a
        validation stream is read once, not once per epsilon). Per batch: one gradient for all
        epsilons > 0 (its sign does not depend on epsilon), one forward per epsilon. Epsilon 0
        scores the unperturbed features of all batches at once, as `score` does through
        `score_outputs`, so every row equals `score`'s float for float."""
        model.eval()
        means32, precision32 = self.means_.float().to(device), self.precision_.float().to(device)
        form = self._quadratic()
        per_epsilon: list[list[torch.Tensor]] = [[] for _ in epsilons]
        for batch in iter_batches(x, batch_size):
            batch = batch.to(device)
            sign = None
            for k, eps in enumerate(epsilons):
                if eps <= 0:
                    with torch.no_grad():
                        feats, _ = features_and_logits(model, batch)
                    per_epsilon[k].append(feats.float().cpu())
                    continue
                if sign is None:
                    leaf = batch.detach().requires_grad_(True)
                    distance = min_distance(model.features(leaf), means32, precision32)
                    (grad,) = torch.autograd.grad(distance.sum(), leaf)
                    sign = grad.sign()
                with torch.no_grad():
                    feats = model.features(batch - eps * sign).double().cpu()
                per_epsilon[k].append(-form(feats))
        if not per_epsilon[0]:
            return np.empty((len(epsilons), 0), dtype=np.float64)
        return np.stack(
            [
                (-form(torch.cat(parts).double()) if eps <= 0 else torch.cat(parts)).numpy()
                for eps, parts in zip(epsilons, per_epsilon, strict=True)
            ]
        )

    def score_outputs(self, outputs: ForwardOutputs) -> np.ndarray:
        if not hasattr(self, "means_"):
            raise NotFittedError(NOT_FITTED)
        if self._preprocesses:
            raise NotImplementedError("with input pre-processing Mahalanobis scores from the model")
        return (-self._quadratic()(outputs.features.double())).numpy()

    def _quadratic(self) -> QuadraticForm:
        """The scoring form of the fitted statistics, prepared once in fit (O(C D^2), not per batch);
        built afresh (and not kept) if means_ / precision_ were replaced after fitting."""
        form = getattr(self, "form_", None)
        if form is None or form.means is not self.means_ or form.precision is not self.precision_:
            return QuadraticForm(self.means_, self.precision_)
        return form

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
            scores.append(-self._quadratic()(feats))
        return torch.cat(scores).numpy()


def min_distance(features: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """min_c (f - mu_c)^T P (f - mu_c) for each row of `features` (N, D); means (C, D).

    The direct form, kept for the input gradient (float32, on the device): classes are taken in
    chunks so at most (N, chunk, D) differences exist at once instead of (N, C, D); each class's
    value is computed by the same formula as the unchunked einsum. Float64 scoring uses the
    cheaper `QuadraticForm` (O(N D^2 + N C D) instead of O(N C D^2)).
    """
    n, d = features.shape
    chunk = max(1, DIFF_ELEMENTS // max(1, n * d))
    best = []
    for start in range(0, len(means), chunk):
        diff = features[:, None, :] - means[None, start : start + chunk, :]  # (N, chunk, D)
        best.append(torch.einsum("ncd,de,nce->nc", diff, precision, diff).min(dim=1).values)
    return torch.stack(best, dim=1).min(dim=1).values


class QuadraticForm:
    """min_c (f - mu_c)^T P (f - mu_c) without the (N, C, D) tensor of differences.

    With the centre m = mean of the class means, g = f - m and nu_c = mu_c - m:
        (f - mu_c)^T P (f - mu_c) = g^T P g - 2 g^T (P nu_c) + nu_c^T P nu_c
    (P symmetric). P nu_c and nu_c^T P nu_c are computed once; a batch costs one (N, D) x (D, D)
    and one (N, D) x (D, C) product, memory O(N C + N D + C D). Centring first keeps the three
    terms near the size of the distances themselves, so their difference loses little to
    rounding (float64: agreement with the direct form to ~1e-13 relative, tests/test_mahalanobis_stream.py).
    """

    def __init__(self, means: torch.Tensor, precision: torch.Tensor) -> None:
        self.means, self.precision = means, precision
        self.centre = means.mean(dim=0)
        nu = means - self.centre
        self.p_nu = nu @ precision  # (C, D); rows are (P nu_c)^T as P is symmetric
        self.nu_p_nu = (self.p_nu * nu).sum(dim=1)  # (C,)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        g = features.to(self.means.dtype) - self.centre
        g_p_g = ((g @ self.precision) * g).sum(dim=1)  # (N,)
        distances = g_p_g[:, None] - 2.0 * (g @ self.p_nu.T) + self.nu_p_nu[None, :]  # (N, C)
        return distances.min(dim=1).values


class TiedGaussianStats:
    """Class means and the tied (pooled) covariance, accumulated batch by batch in float64.

    Each batch's per-class means and within-class scatter are merged into the running ones by
    Chan, Golub & LeVeque's pairwise update (1979): for class c with n_a seen and n_b new images,
        mu_c <- mu_c + (n_b / n) delta_c,   delta_c = mean_b,c - mu_c,  n = n_a + n_b
        W    <- W + W_b + sum_c (n_a n_b / n) delta_c delta_c^T
    where W = sum_c sum_{i in c} (f_i - mu_c)(f_i - mu_c)^T is the pooled scatter; only W is
    kept (D x D), never one scatter per class. covariance() = W / N, the maximum-likelihood
    estimate of the in-memory version (and of scikit-learn's EmpiricalCovariance). Memory
    O(C D + D^2 + block D) whatever the number of images.

    Small batches are gathered into blocks of at least `block` rows before they are merged:
    every merge rounds, and the precision is ill-conditioned (pinv of a covariance with near-dead
    units), so 300 merges of one image drift ~2e-10 from the in-memory scores, one merge of 300
    does not (tests/test_mahalanobis_stream.py).
    """

    def __init__(self, block: int = 1024) -> None:
        self.block = block
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._pending_rows = 0
        self.counts: dict[int, int] = {}
        self._index: dict[int, int] = {}  # label -> row of _means (order of first appearance)
        self._means: torch.Tensor | None = None  # (C_seen, D) float64
        self.scatter: torch.Tensor | None = None  # (D, D) float64

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one batch: features (B, D), integer labels (B,)."""
        f = features.double()
        y = torch.as_tensor(labels).long()
        if f.ndim != 2 or len(f) != len(y):
            raise ValueError(f"features must be (B, D) with one label each; got {tuple(f.shape)}, {len(y)}")
        if len(f) == 0:
            return
        self._pending.append((f, y))
        self._pending_rows += len(f)
        if self._pending_rows >= self.block:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        f = torch.cat([p[0] for p in self._pending]) if len(self._pending) > 1 else self._pending[0][0]
        y = torch.cat([p[1] for p in self._pending]) if len(self._pending) > 1 else self._pending[0][1]
        self._pending, self._pending_rows = [], 0
        self._merge(f, y)

    def _merge(self, f: torch.Tensor, y: torch.Tensor) -> None:
        d = f.shape[1]
        if self._means is None:
            self._means = f.new_zeros((0, d))
            self.scatter = f.new_zeros((d, d))
        classes, inverse, n_b = torch.unique(y, return_inverse=True, return_counts=True)
        for c in classes.tolist():
            if c not in self._index:
                self._index[c] = len(self._index)
                self.counts[c] = 0
        self._means = torch.cat([self._means, f.new_zeros((len(self._index) - len(self._means), d))])
        batch_means = f.new_zeros((len(classes), d)).index_add_(0, inverse, f) / n_b[:, None].double()
        centred = f - batch_means[inverse]
        rows = torch.tensor([self._index[c] for c in classes.tolist()])
        n_a = torch.tensor([self.counts[c] for c in classes.tolist()], dtype=torch.float64)
        n_new = n_a + n_b.double()
        delta = batch_means - self._means[rows]
        weight = (n_a * n_b.double() / n_new).sqrt()[:, None] * delta  # sqrt(n_a n_b / n) delta_c
        self.scatter += centred.T @ centred + weight.T @ weight
        self._means[rows] += (n_b.double() / n_new)[:, None] * delta
        for c, k in zip(classes.tolist(), n_b.tolist(), strict=True):
            self.counts[c] += int(k)

    @property
    def n(self) -> int:
        return sum(self.counts.values()) + self._pending_rows

    def means(self) -> torch.Tensor:
        """(C, D) float64 class means, rows in ascending label order (as torch.unique sorts)."""
        self._flush()
        if self._means is None:
            raise ValueError("no features were added")
        order = [self._index[c] for c in sorted(self._index)]
        return self._means[order].clone()

    def covariance(self) -> torch.Tensor:
        """(D, D) float64 tied covariance W / N."""
        self._flush()
        if self.scatter is None:
            raise ValueError("no features were added")
        return self.scatter / self.n
