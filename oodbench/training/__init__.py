"""Training: cross-entropy, confidence loss and joint confidence loss (Lee et al., ICLR 2018).

from oodbench.training import RECIPES, checkpoint_path, train, load_classifier, ensure_model
path = ensure_model("joint", "mnist")            # cached, or trained now with the suite's recipe
model, meta = load_classifier(path, expect_dataset="mnist", expect_shape=(1, 28, 28))
"""

from oodbench.training.checkpoints import checkpoint_path, load_classifier, read_checkpoint, save_checkpoint
from oodbench.training.joint import c_step, d_step, g_step, joint_confidence_step
from oodbench.training.loop import confidence_step, cross_entropy_step, ensure_model, train
from oodbench.training.losses import confidence_loss, kl_uniform_to_softmax
from oodbench.training.recipes import METHODS, RECIPES, Recipe, format_config, resolve_config

__all__ = [
    "METHODS",
    "RECIPES",
    "Recipe",
    "c_step",
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
