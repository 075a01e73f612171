"""Max-softmax baseline (Hendrycks & Gimpel, ICLR 2017): score = max_k softmax(f(x))_k."""

from __future__ import annotations

import numpy as np

from oodbench.detectors.base import Detector, ForwardOutputs, max_softmax


class MaxSoftmax(Detector):
    name = "msp"
    uses = "logits"

    def score_outputs(self, outputs: ForwardOutputs) -> np.ndarray:
        return max_softmax(outputs.logits)
