"""Sanity detector: i.i.d. uniform scores from a seeded generator. Expect AUROC ~ 0.5.

A detector that does no better than this on a pair is not detecting anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from oodbench.detectors.base import Detector, ForwardOutputs, check_param


class RandomScores(Detector):
    name = "random"
    uses = "logits"

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def validate(self) -> None:
        s = self.seed
        check_param("Random", "seed", s, isinstance(s, int) and s >= 0, "an int >= 0")

    def params(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def score_outputs(self, outputs: ForwardOutputs) -> np.ndarray:
        self.validate()
        # Seeded by the inputs' own logits too, so ID and OOD sets get different draws.
        fingerprint = int(np.frombuffer(outputs.logits.numpy().tobytes()[:4096], dtype=np.uint8).sum())
        rng = np.random.default_rng([self.seed, len(outputs.logits), fingerprint])
        return rng.random(len(outputs.logits))
