"""Max-logit (Hendrycks et al., 2022, "Scaling Out-of-Distribution Detection"): max_k f(x)_k."""

from __future__ import annotations

import numpy as np

from oodbench.detectors.base import Detector, ForwardOutputs


class MaxLogit(Detector):
    name = "max_logit"
    uses = "logits"

    def score_outputs(self, outputs: ForwardOutputs) -> np.ndarray:
        return outputs.logits.double().max(dim=1).values.numpy()
