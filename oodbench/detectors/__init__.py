"""OOD detectors: one file per detector; the built-in ones are registered here.

`create_detector("odin", temperature=1000)` builds one; `list_detectors()` names the registered
ones. Every score is HIGHER for inputs that look more in-distribution. Detectors from outside
oodbench (`@oodbench.register_detector`, the `oodbench.detectors` entry points,
`package.module:Class`, `path/to/file.py:Class`, `pytorch-ood:NAME`) go through
oodbench.detectors.plugins; `create_detector` takes all of them.

The registry holds light `DetectorEntry` records (where the class lives, what it uses, its paper),
so listing detectors or checking a `-d` name does not import torch; the class is imported when a
detector is created. tests/test_detectors.py checks every entry against its class.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    cls: type | None = field(default=None, compare=False, repr=False)  # set by the decorator

    def load(self) -> type[Detector]:
        if self.cls is not None:
            return self.cls
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


def builtin_detectors() -> list[str]:
    """The detectors oodbench ships (the default of `oodbench run` and `evaluate`)."""
    return [name for name, entry in DETECTORS.items() if entry.source == "built-in"]


def detector_class(name: str) -> type[Detector]:
    """The class of a registered detector, an entry point or a `module:Class` spec (imports it)."""
    from oodbench.detectors.plugins import resolve_class

    return resolve_class(name)


def create_detector(name: str, **params: Any) -> Detector:
    """Instantiate a detector by name or spec; unknown parameters give a one-line error."""
    from oodbench.detectors.plugins import create

    return create(name, **params)


def register_detector(name: str):
    """Class decorator registering a third-party detector; see oodbench.detectors.plugins."""
    from oodbench.detectors.plugins import register_detector as register

    return register(name)


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
    "builtin_detectors",
    "list_detectors",
    "max_softmax",
    "register_detector",
]
