"""OOD detectors: one file per detector, all registered here.

`create_detector("odin", temperature=1000)` builds one; `list_detectors()` names them all.
Every score is HIGHER for inputs that look more in-distribution.

The registry holds light `DetectorEntry` records (where the class lives, what it uses, its paper),
so listing detectors or checking a `-d` name does not import torch; the class is imported when a
detector is created. tests/test_detectors.py checks every entry against its class.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from oodbench.errors import UserInputError
from oodbench.registry import Registry

if TYPE_CHECKING:
    from oodbench.detectors.base import Detector


@dataclass(frozen=True)
class DetectorEntry:
    """A registered detector: `target` is "package.module:Class"."""

    name: str
    target: str
    uses: str  # "logits" | "features" | "input"
    paper: str
    source: str = "built-in"

    def load(self) -> type[Detector]:
        module_name, _, class_name = self.target.partition(":")
        return getattr(importlib.import_module(module_name), class_name)


DETECTORS: Registry[DetectorEntry] = Registry("detector")
for _entry in (
    DetectorEntry("msp", "oodbench.detectors.msp:MaxSoftmax", "logits", "Hendrycks & Gimpel, ICLR 2017"),
    DetectorEntry("odin", "oodbench.detectors.odin:ODIN", "input", "Liang, Li, Srikant, ICLR 2018"),
    DetectorEntry("energy", "oodbench.detectors.energy:Energy", "logits", "Liu et al., NeurIPS 2020"),
    DetectorEntry(
        "max_logit", "oodbench.detectors.max_logit:MaxLogit", "logits", "Hendrycks et al., ICML 2022"
    ),
    DetectorEntry(
        "mahalanobis", "oodbench.detectors.mahalanobis:Mahalanobis", "features", "Lee et al., NeurIPS 2018"
    ),
    DetectorEntry("random", "oodbench.detectors.random_scores:RandomScores", "logits", "sanity check"),
):
    DETECTORS.add(_entry.name, _entry)


def list_detectors() -> list[str]:
    return DETECTORS.names()


def detector_class(name: str) -> type[Detector]:
    """The class of a registered detector (imports its module)."""
    return DETECTORS.get(name).load()


def create_detector(name: str, **params: Any) -> Detector:
    """Instantiate a registered detector; unknown parameters give a one-line error."""
    cls = detector_class(name)
    try:
        return cls(**params)
    except TypeError as error:
        raise UserInputError(f"Bad parameters for detector {name!r}: {error}") from None


_BASE_EXPORTS = ("Detector", "ForwardOutputs", "collect_outputs", "max_softmax")


def __getattr__(name: str) -> Any:
    if name in _BASE_EXPORTS:
        return getattr(importlib.import_module("oodbench.detectors.base"), name)
    raise AttributeError(f"module 'oodbench.detectors' has no attribute {name!r}")


__all__ = [
    "DETECTORS",
    "DetectorEntry",
    "Detector",
    "ForwardOutputs",
    "collect_outputs",
    "create_detector",
    "detector_class",
    "list_detectors",
    "max_softmax",
]
