"""Training: cross-entropy, confidence loss and joint confidence loss (Lee et al., ICLR 2018).

from oodbench.training import RECIPES, checkpoint_path, train, load_classifier, ensure_model
path = ensure_model("joint", "mnist")            # cached, or trained now with the suite's recipe
model, meta = load_classifier(path, expect_dataset="mnist", expect_shape=(1, 28, 28))
"""

import importlib
from typing import Any

# Names are imported on first use, so that `oodbench --help` and `oodbench list recipes` do not
# import torch (the recipes module is plain Python).
_EXPORTS = {
    "checkpoint_path": "checkpoints",
    "load_classifier": "checkpoints",
    "read_checkpoint": "checkpoints",
    "save_checkpoint": "checkpoints",
    "c_step": "joint",
    "d_step": "joint",
    "g_step": "joint",
    "joint_confidence_step": "joint",
    "confidence_step": "loop",
    "cross_entropy_step": "loop",
    "ensure_model": "pipeline",
    "checkpoint_summary": "pipeline",
    "train": "loop",
    "confidence_loss": "losses",
    "kl_uniform_to_softmax": "losses",
    "METHODS": "recipes",
    "RECIPES": "recipes",
    "Recipe": "recipes",
    "format_config": "recipes",
    "resolve_config": "recipes",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'oodbench.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"oodbench.training.{_EXPORTS[name]}"), name)


__all__ = [
    "METHODS",
    "RECIPES",
    "Recipe",
    "c_step",
    "checkpoint_summary",
    "checkpoint_path",
    "confidence_loss",
    "confidence_step",
    "cross_entropy_step",
    "d_step",
    "ensure_model",
    "format_config",
    "g_step",
    "joint_confidence_step",
    "kl_uniform_to_softmax",
    "load_classifier",
    "read_checkpoint",
    "resolve_config",
    "save_checkpoint",
    "train",
]
