"""Energy score (Liu et al., NeurIPS 2020): score = T * logsumexp(f(x) / T), i.e. minus the energy."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodbench.detectors.base import Detector, ForwardOutputs, check_param, is_number


class Energy(Detector):
    name = "energy"
    uses = "logits"

    def __init__(self, *, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def validate(self) -> None:
        t = self.temperature
        check_param("Energy", "temperature", t, is_number(t) and t > 0, "a float > 0")

    def params(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def score_outputs(self, outputs: ForwardOutputs) -> np.ndarray:
        self.validate()
        t = float(self.temperature)
        return (t * torch.logsumexp(outputs.logits.double() / t, dim=1)).numpy()
