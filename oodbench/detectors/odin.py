"""ODIN (Liang, Li, Srikant, ICLR 2018): temperature scaling + input perturbation.

    x~ = x - eps * sign(grad_x CE(f(x) / T, y^)),   y^ = argmax_k f(x)_k
    score = max_k softmax(f(x~) / T)_k

The step lowers the cross-entropy of the predicted class, so it raises the max-softmax, more
for in-distribution inputs than for OOD ones. The detector always receives [0, 1] pixel images:
a model that normalises its input gets that normalisation inside its module (`--normalize`,
oodbench.models.preprocess.Preprocess), so the gradient is taken with respect to the pixels and
eps is in pixel units, as ODIN defines it. (The ODIN code takes the step on normalised inputs
and divides the sign by the per-channel std for the same reason; in pixel space that division
must NOT be applied: it would make the step 1/std, about 4x, too large.)

Tuning (paper grid): T in {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}, eps in 21 evenly spaced
values in [0, 0.004], chosen to minimise the FPR at 95% TPR on a VALIDATION split (never the test
sets). A suite file's `[tuning.odin]` grid (OpenOOD v1.5: T in {1, 10, 100, 1000}, eps in
{0.0014, 0.0028}) is searched by OpenOOD's rule instead: the highest validation AUROC
(`criterion="auroc"`; oodbench.detectors.grid). For a fixed T the gradient sign is the same for
every eps, so one backward pass per T serves the whole eps column.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oodbench import metrics
from oodbench.detectors.base import (
    Detector,
    NotFittedError,
    check_param,
    is_number,
    iter_batches,
    max_softmax,
)
from oodbench.detectors.grid import GridResult, best_by_auroc
from oodbench.errors import UserInputError

log = logging.getLogger(__name__)

PAPER_TEMPERATURES: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
PAPER_EPSILONS: tuple[float, ...] = tuple(float(v) for v in np.linspace(0.0, 0.004, 21))
CRITERIA = ("fpr95", "auroc")


def gradient_sign(model: nn.Module, x: torch.Tensor, temperature: float) -> torch.Tensor:
    """sign(grad_x CE(f(x)/T, argmax f(x))) with x in pixel units."""
    x = x.detach().clone().requires_grad_(True)
    logits = model(x)
    predicted = logits.argmax(dim=1)
    loss = F.cross_entropy(logits / temperature, predicted, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def odin_scores_for_epsilons(
    model: nn.Module,
    x: torch.Tensor,
    temperature: float,
    epsilons: tuple[float, ...] | list[float],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> np.ndarray:
    """Scores of shape (len(epsilons), N): one backward per batch, one forward per eps."""
    return odin_scores_grid(model, x, (temperature,), epsilons, device=device, batch_size=batch_size)[0]


def odin_scores_grid(
    model: nn.Module,
    x: torch.Tensor,
    temperatures: tuple[float, ...] | list[float],
    epsilons: tuple[float, ...] | list[float],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> np.ndarray:
    """Scores of shape (len(temperatures), len(epsilons), N) from ONE pass over `x` (a tensor or
    a stream: each batch is read once and serves every T); per batch, one backward per T and one
    forward per (T, eps), so the floats equal one pass per T. N is the number of images read
    (a stream may leave unreadable ones out)."""
    model.eval()
    parts = []
    for batch in iter_batches(x, batch_size):
        batch = batch.to(device)
        per_t = []
        for t in temperatures:
            sign = gradient_sign(model, batch, float(t))
            with torch.no_grad():
                per_t.append(
                    [max_softmax(model(batch - eps * sign).float().cpu(), float(t)) for eps in epsilons]
                )
        parts.append(
            np.asarray(per_t, dtype=np.float64).reshape(len(temperatures), len(epsilons), len(batch))
        )
    if not parts:
        return np.empty((len(temperatures), len(epsilons), 0), dtype=np.float64)
    return np.concatenate(parts, axis=2)


class ODIN(Detector):
    name = "odin"
    uses = "input"
    accepts_streams = True  # tuning reads the validation sets batch by batch

    def __init__(
        self,
        *,
        temperature: float | None = None,
        epsilon: float | None = None,
        temperatures: tuple[float, ...] = PAPER_TEMPERATURES,
        epsilons: tuple[float, ...] = PAPER_EPSILONS,
        input_std: tuple[float, ...] | None = None,
        criterion: str = "fpr95",
    ) -> None:
        # temperature/epsilon None: chosen by fit() on the validation split from the grids, by
        # `criterion`: "fpr95" (the paper's) or "auroc" (OpenOOD's; a suite file's [tuning] grid).
        # input_std is refused (see validate): normalisation belongs inside the model.
        self.temperature = temperature
        self.epsilon = epsilon
        self.temperatures = temperatures
        self.epsilons = epsilons
        self.input_std = input_std
        self.criterion = criterion

    def validate(self) -> None:
        t, e = self.temperature, self.epsilon
        check_param("ODIN", "temperature", t, t is None or (is_number(t) and t > 0), "a float > 0")
        check_param("ODIN", "epsilon", e, e is None or (is_number(e) and e >= 0), "a float >= 0")
        if self.input_std is not None:
            raise UserInputError(
                "ODIN's input_std is no longer used: ODIN steps in pixel units on [0, 1] images; give the "
                "model's normalisation with --normalize (API: normalize=) so it runs inside the model."
            )
        ts, es = self.temperatures, self.epsilons
        check_param(
            "ODIN",
            "temperatures",
            ts,
            len(ts) > 0 and all(is_number(v) and v > 0 for v in ts),
            "a non-empty list of floats > 0",
        )
        check_param(
            "ODIN",
            "epsilons",
            es,
            len(es) > 0 and all(is_number(v) and v >= 0 for v in es),
            "a non-empty list of floats >= 0",
        )
        check_param("ODIN", "criterion", self.criterion, self.criterion in CRITERIA, " or ".join(CRITERIA))

    def fit(self, model, *, train=None, val_in=None, val_out=None, device="cpu", batch_size=256):
        self.validate()
        self.grid_fpr_ = self.grid_result_ = None
        if self.temperature is not None and self.epsilon is not None:
            self.temperature_, self.epsilon_ = float(self.temperature), float(self.epsilon)
            return self
        if val_in is None or val_out is None:
            raise ValueError("ODIN needs val_in and val_out to tune temperature/epsilon")
        temperatures = (self.temperature,) if self.temperature is not None else self.temperatures
        epsilons = (self.epsilon,) if self.epsilon is not None else self.epsilons
        self.grid_fpr_, auroc = odin_grid(
            model, val_in, val_out, temperatures, epsilons, device=device, batch_size=batch_size
        )
        i, j = pick(self.grid_fpr_, auroc, self.criterion)
        self.temperature_, self.epsilon_ = float(temperatures[i]), float(epsilons[j])
        self.grid_result_ = GridResult(
            grid={"temperature": tuple(temperatures), "epsilon": tuple(epsilons)},
            aurocs=tuple(float(v) for v in auroc.ravel()),  # T-major: the grid's point order
            best=int(i * len(epsilons) + j),
            criterion=self.criterion,
        )
        log.info("ODIN tuned on validation: T=%s eps=%s", self.temperature_, self.epsilon_)
        return self

    def tuned_on_validation(self) -> bool:
        return self.temperature is None or self.epsilon is None

    def params(self) -> dict[str, Any]:
        return {
            "temperature": getattr(self, "temperature_", self.temperature),
            "epsilon": getattr(self, "epsilon_", self.epsilon),
        }

    def score(self, model, x, *, device="cpu", batch_size=256) -> np.ndarray:
        self.validate()
        # Scoring never changes the detector: unfitted, it needs both hyperparameters given.
        if hasattr(self, "temperature_"):
            temperature, epsilon = self.temperature_, self.epsilon_
        elif self.temperature is not None and self.epsilon is not None:
            temperature, epsilon = float(self.temperature), float(self.epsilon)
        else:
            raise NotFittedError("ODIN must be fitted (tuned) first, or given temperature and epsilon")
        return odin_scores_for_epsilons(
            model, x, temperature, [epsilon], device=device, batch_size=batch_size
        )[0]


def tune_odin(
    model: nn.Module,
    val_in: torch.Tensor,
    val_out: torch.Tensor,
    temperatures: tuple[float, ...],
    epsilons: tuple[float, ...],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    criterion: str = "fpr95",
) -> tuple[float, float, np.ndarray]:
    """Grid search minimising FPR at 95% TPR (= 1 - TNR at 95% TPR) on validation data, or with
    criterion="auroc" maximising AUROC (OpenOOD's rule); see `pick`.

    Ties on FPR are broken by higher AUROC, then by grid order. Returns (T, eps, fpr grid of
    shape (len(temperatures), len(epsilons))).
    """
    fpr, auroc = odin_grid(
        model, val_in, val_out, temperatures, epsilons, device=device, batch_size=batch_size
    )
    i, j = pick(fpr, auroc, criterion)
    return float(temperatures[i]), float(epsilons[j]), fpr


def odin_grid(
    model: nn.Module,
    val_in: torch.Tensor,
    val_out: torch.Tensor,
    temperatures: tuple[float, ...],
    epsilons: tuple[float, ...],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """(FPR at 95% TPR, AUROC) of every (T, eps) on validation data, each (len(T), len(eps))."""
    fpr = np.empty((len(temperatures), len(epsilons)))
    auroc = np.empty_like(fpr)
    # One pass over each validation set (a stream is read once, not once per T).
    s_in = odin_scores_grid(model, val_in, temperatures, epsilons, device=device, batch_size=batch_size)
    s_out = odin_scores_grid(model, val_out, temperatures, epsilons, device=device, batch_size=batch_size)
    for i in range(len(temperatures)):
        for j in range(len(epsilons)):
            m = metrics.compute(s_in[i, j], s_out[i, j])
            fpr[i, j], auroc[i, j] = 1.0 - m["tnr_at_tpr95"], m["auroc"]
    return fpr, auroc


def pick(fpr: np.ndarray, auroc: np.ndarray, criterion: str) -> tuple[int, int]:
    """The chosen (i, j) of a grid: "fpr95": lowest FPR, ties by higher AUROC; "auroc": highest
    AUROC (OpenOOD). Remaining ties: the first in grid order (T-major)."""
    if criterion == "auroc":
        flat = best_by_auroc(auroc.ravel())
    else:
        flat = int(np.lexsort((-auroc.ravel(), fpr.ravel()))[0])  # primary key fpr, then -auroc; stable
    i, j = np.unravel_index(flat, fpr.shape)
    return int(i), int(j)
