"""What `evaluate` takes: a model under test and detector requests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from oodbench.models.loading import LoadedModel


@dataclass(frozen=True)
class DetectorRequest:
    """A detector name and the hyperparameters the user gave (the rest are defaults or tuned)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        return self.name + json.dumps(self.params, sort_keys=True)


@dataclass(frozen=True)
class ModelUnderTest:
    """A classifier and where it came from (what every result row records about it)."""

    source: str  # "cross_entropy" | "confidence" | "joint" | "external"
    model: nn.Module
    checkpoint_sha256: str
    arch: str
    recipe: str
    label: str = ""
    train_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def input_channels(self) -> str:
        """The channel conversion of the evaluated model's input pipeline ("" = none)."""
        return getattr(getattr(self.model, "preprocess", None), "channels_note", "")

    @classmethod
    def from_loaded(cls, loaded: LoadedModel) -> ModelUnderTest:
        return cls(
            source=loaded.source,
            model=loaded.module,
            checkpoint_sha256=loaded.sha256,
            arch=loaded.arch,
            recipe=loaded.recipe,
            label=loaded.label,
            train_overrides=dict(loaded.train_overrides),
        )
