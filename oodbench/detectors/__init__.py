"""OOD detectors: one file per detector, all registered here.

`create_detector("odin", temperature=1000)` builds one; `list_detectors()` names them all.
Every score is HIGHER for inputs that look more in-distribution.
"""

from __future__ import annotations

from typing import Any

from oodbench.detectors.base import Detector, ForwardOutputs, collect_outputs, max_softmax
from oodbench.detectors.energy import Energy
from oodbench.detectors.mahalanobis import Mahalanobis
from oodbench.detectors.max_logit import MaxLogit
from oodbench.detectors.msp import MaxSoftmax
from oodbench.detectors.odin import ODIN
from oodbench.detectors.random_scores import RandomScores
from oodbench.errors import UserInputError
from oodbench.registry import Registry

DETECTORS: Registry[type[Detector]] = Registry("detector")
for _cls in (MaxSoftmax, ODIN, Energy, MaxLogit, Mahalanobis, RandomScores):
    DETECTORS.add(_cls.name, _cls)


def list_detectors() -> list[str]:
    return DETECTORS.names()


def create_detector(name: str, **params: Any) -> Detector:
    """Instantiate a registered detector; unknown parameters give a one-line error."""
    cls = DETECTORS.get(name)
    try:
        return cls(**params)
    except TypeError as error:
        raise UserInputError(f"Bad parameters for detector {name!r}: {error}") from None


__all__ = [
    "DETECTORS",
    "Detector",
    "ForwardOutputs",
    "collect_outputs",
    "create_detector",
    "list_detectors",
    "max_softmax",
]
