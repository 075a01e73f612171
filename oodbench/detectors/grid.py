"""Grid search of hyperparameters on validation data (OpenOOD v1.5's "APS"), and its flags.

    chosen = argmax_{p in grid} AUROC(scores_p(ID val), scores_p(OOD val))

Every point of the grid (the product of each parameter's values, in the order given, the last
parameter varying fastest) is fitted on the TRAINING split (when the detector fits) and scored
on the ID validation set and the OOD validation set only; never on a test set. Ties go to the
first point in grid order. OpenOOD v1.5 does the same with its postprocessors' sweep lists
(Zhang et al. 2023; `configs/postprocessors/*.yml`).

A pick is flagged as degenerate (the failure of OpenOOD issues #154 and #156, where the search
chose a meaningless setting) when every grid point scored the same AUROC (the search chose
nothing), or when the best value of a parameter with at least 3 values is its first or last
(the optimum may lie outside the grid; with 2 values every pick is at an edge, so none is
flagged). Suite files give the grids (`[tuning]`, oodbench.data.suite_file); which detectors
take them: oodbench.detectors.suite_grids.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oodbench import metrics
from oodbench.detectors.base import ForwardOutputs, collect_outputs
from oodbench.errors import UserInputError

ALL_EQUAL = "every grid point scored the same AUROC"


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last parameter varying fastest."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


@dataclass(frozen=True)
class GridResult:
    """What a grid search saw: the grid, one validation AUROC per point and the chosen point.

    `criterion` names what chose `best`: "auroc" (the highest AUROC, OpenOOD's rule) or
    "fpr95" (ODIN's and Mahalanobis' papers: the lowest FPR at 95% TPR, ties by AUROC)."""

    grid: dict[str, tuple[Any, ...]]
    aurocs: tuple[float, ...]
    best: int
    criterion: str = "auroc"

    @property
    def points(self) -> list[dict[str, Any]]:
        return grid_points(self.grid)

    @property
    def chosen(self) -> dict[str, Any]:
        return self.points[self.best]

    def flags(self) -> list[str]:
        """The degenerate-pick flags of this search (module docstring); [] when none."""
        if len(self.aurocs) > 1 and len(set(self.aurocs)) == 1:
            return [ALL_EQUAL]  # nothing was chosen, so no edge is meaningful either
        chosen = self.chosen
        return [
            f"best at the edge of the grid ({name}={chosen[name]})"
            for name, values in self.grid.items()
            if len(values) >= 3 and chosen[name] in (values[0], values[-1])
        ]

    def describe(self) -> str:
        """'AUROC k=50 0.912345, k=100 0.923456 (chosen)': every point's validation AUROC."""
        parts = []
        for i, (point, auroc) in enumerate(zip(self.points, self.aurocs, strict=True)):
            label = ",".join(f"{k}={v}" for k, v in point.items())
            parts.append(f"{label} {auroc:.6f}" + (" (chosen)" if i == self.best else ""))
        by = "" if self.criterion == "auroc" else f", chosen by {self.criterion}"
        return f"AUROC{by}: " + ", ".join(parts)


def best_by_auroc(aurocs: Sequence[float]) -> int:
    """The index of the highest AUROC; ties: the first (np.argmax returns the first maximum)."""
    return int(np.argmax(np.asarray(aurocs, dtype=np.float64)))


def validation_auroc(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    """AUROC with ID validation as positives (oodbench.metrics, exact convention)."""
    return float(metrics.compute(scores_in, scores_out)["auroc"])


def tune(
    make: Callable[[dict[str, Any]], Any],
    grid: Mapping[str, Sequence[Any]],
    model: Any,
    *,
    train: Any,
    val_in: Any,
    val_out: Any,
    device: Any = "cpu",
    batch_size: int = 256,
    name: str = "detector",
) -> tuple[Any, GridResult]:
    """Fit `make(point)` for every grid point, keep the one of highest validation AUROC.

    `make(point)` returns an unfitted Detector with the point's values; each is fitted with
    `train` (and the validation sets, which detectors may use to tune other parameters) and
    scored on `val_in` and `val_out` only. Returns (the best fitted detector, the GridResult).
    Only the best detector so far is kept in memory. A point whose fit or scoring fails is an
    error naming the point, never silently skipped."""
    frozen = {k: tuple(v) for k, v in grid.items()}
    if not frozen or any(len(v) == 0 for v in frozen.values()):
        raise UserInputError(f"{name}: a tuning grid needs at least one value per parameter; got {grid!r}.")
    aurocs: list[float] = []
    best = None
    outputs: dict[tuple[str, bool], ForwardOutputs] = {}

    def validation_scores(candidate: Any, which: str, x: Any) -> np.ndarray:
        # Output-based detectors score precomputed outputs (the Detector contract; the runner's
        # shared forward pass does the same): one pass over each validation set for the whole
        # grid, each point given copies. Others (input gradients) run the model per point.
        if getattr(candidate, "uses", "input") == "input" or candidate.needs_model():
            return candidate.score(model, x, device=device, batch_size=batch_size)
        key = (which, candidate.uses == "features")
        if key not in outputs:
            outputs[key] = collect_outputs(
                model, x, device=device, batch_size=batch_size, with_features=key[1]
            )
        shared = outputs[key]
        features = None if shared.features is None else shared.features.clone()
        return candidate.score_outputs(ForwardOutputs(logits=shared.logits.clone(), features=features))

    for point in grid_points(frozen):
        candidate = make(point)
        try:
            candidate.fit(
                model, train=train, val_in=val_in, val_out=val_out, device=device, batch_size=batch_size
            )
            s_in = validation_scores(candidate, "val_in", val_in)
            s_out = validation_scores(candidate, "val_out", val_out)
        except (ValueError, RuntimeError) as error:
            label = ", ".join(f"{k}={v}" for k, v in point.items())
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserInputError(
                f"{name} failed while tuning at {label}: {first}. Drop that value from the [tuning] grid."
            ) from None
        aurocs.append(validation_auroc(s_in, s_out))
        if best is None or aurocs[-1] > max(aurocs[:-1]):  # strictly higher: ties keep the first
            best = candidate
    result = GridResult(grid=frozen, aurocs=tuple(aurocs), best=best_by_auroc(aurocs))
    return best, result
