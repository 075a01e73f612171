"""Named training recipes and the resolution of a recipe + overrides into one effective config.

`lee2018-svhn` / `lee2018-cifar10` are the public recipe of Lee et al. 2018
(alinlab/Confident_classifier, `run_joint_confidence.py` after commit dbdf427): VGG-13, DCGAN
(nz 100), Adam lr 2e-4 for all three networks (G and D with betas (0.5, 0.999), the classifier
with Adam's defaults and no weight decay), 100 epochs, every learning rate x0.1 after epoch 60,
seed 1; beta 1 and batch 128 for SVHN, beta 0.1 and batch 64 for CIFAR-10 (the public script
sets these two silently for CIFAR-10; here they are part of the named recipe and shown).
No augmentation and no normalisation: inputs are images in [0, 1].

`embedded` trains all three methods on the embedded MNIST suite in under 2 minutes on 2 CPU
cores (see benchmarks/README.md, "Training", for the measurement).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from oodbench.errors import UserInputError
from oodbench.registry import Registry

# The training methods. The loop in `oodbench.training.loop` has one branch per name.
METHODS: Registry[str] = Registry("training method")
METHODS.add("cross_entropy", "cross-entropy on the in-distribution training set")
METHODS.add("confidence", "cross-entropy + beta * KL(U || p) on the suite's seen OOD training set")
METHODS.add(
    "joint", "joint confidence loss: classifier + DCGAN generating boundary samples (Lee et al. 2018)"
)

# Hyperparameters a run may override (CLI: --epochs, --beta, --batch-size, --lr, --gan-warmup-epochs,
# --train-limit). train_limit: train on at most N in-distribution images (a fixed stratified
# subset) and at most N seen OOD images (oodbench.data.suites.limit_training).
OVERRIDABLE = ("epochs", "beta", "batch_size", "lr", "gan_warmup_epochs", "train_limit")
CONFIG_VERSION = 1


@dataclass(frozen=True)
class Recipe:
    """Every hyperparameter of a training run except the method, the data and the seed.

    `method_epochs` sets a different number of epochs for some methods (e.g. fewer for the
    expensive joint method of the embedded recipe). `gan_warmup_epochs` (joint only): the first
    N epochs use beta = 0, i.e. a plain GAN next to a cross-entropy classifier, so that the
    generator has learned the data before the KL term pushes it towards the boundary.
    """

    name: str
    description: str
    arch: str
    epochs: int
    batch_size: int
    lr: float
    beta: float
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    classifier_adam_betas: tuple[float, float] = (0.9, 0.999)
    gan_adam_betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    gen_arch: str = "dcgan"
    disc_arch: str = "dcgan"
    nz: int = 100
    gan_warmup_epochs: int = 0
    method_epochs: dict[str, int] = field(default_factory=dict)
    seed: int = 1


RECIPES: Registry[Recipe] = Registry("training recipe")

RECIPES.add(
    "lee2018-svhn",
    Recipe(
        name="lee2018-svhn",
        description="Lee et al. 2018 public recipe for SVHN: VGG-13, beta 1, batch 128",
        arch="vgg13",
        epochs=100,
        batch_size=128,
        lr=2e-4,
        beta=1.0,
        lr_milestones=(60,),
    ),
)
RECIPES.add(
    "lee2018-cifar10",
    Recipe(
        name="lee2018-cifar10",
        description="Lee et al. 2018 public recipe for CIFAR-10: VGG-13, beta 0.1, batch 64",
        arch="vgg13",
        epochs=100,
        batch_size=64,
        lr=2e-4,
        beta=0.1,
        lr_milestones=(60,),
    ),
)
# Lee et al. 2018 train no CIFAR-100 model; the odin-cifar100 suite needs one, so this applies
# their CIFAR-10 settings unchanged (the classifier head adapts to 100 classes).
RECIPES.add(
    "lee2018-cifar100",
    dataclasses.replace(
        RECIPES.get("lee2018-cifar10"),
        name="lee2018-cifar100",
        description="Not from the paper: lee2018-cifar10 settings applied to CIFAR-100 (odin-cifar100)",
    ),
)
RECIPES.add(
    "embedded",
    Recipe(
        name="embedded",
        description="CPU-sized: tiny_cnn + small DCGAN on 28x28 digits; 3 methods < 2 min on 2 cores",
        arch="tiny_cnn",
        epochs=4,
        batch_size=64,
        lr=1e-3,
        beta=1.0,
        gen_arch="dcgan_small",
        disc_arch="dcgan_small",
        nz=100,
        gan_warmup_epochs=1,
        # Seed 0 = the default of `oodbench run --seeds`, so `oodbench train --in mnist` makes the
        # checkpoint that `oodbench run` reuses.
        seed=0,
    ),
)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserInputError(f"The '{name}' parameter must be an int >= {minimum}. Got {value!r} instead.")
    return value


def _check_float(name: str, value: Any, *, positive: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (value > 0 if positive else value >= 0):
        bound = "> 0" if positive else ">= 0"
        raise UserInputError(f"The '{name}' parameter must be a float {bound}. Got {value!r} instead.")
    return float(value)


def resolve_config(
    method: str,
    recipe: Recipe,
    *,
    dataset: str,
    in_shape: tuple[int, ...],
    num_classes: int,
    seed: int,
    seen_ood: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The effective configuration of one run: plain JSON-able values, stored in checkpoints.

    Keys that do not apply to `method` are left out (cross_entropy has no beta; only joint has
    GAN settings), and an override that would have no effect is refused rather than ignored.
    """
    METHODS.get(method)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise UserInputError(f"Cannot override {', '.join(unknown)}; overridable: {', '.join(OVERRIDABLE)}.")
    if method == "cross_entropy" and "beta" in overrides:
        raise UserInputError("--beta has no effect with --method cross_entropy; drop it.")
    if method != "joint" and "gan_warmup_epochs" in overrides:
        raise UserInputError("--gan-warmup-epochs only applies to --method joint; drop it.")
    if method == "confidence" and not seen_ood:
        raise UserInputError("--method confidence needs a suite with a seen OOD training set.")
    if num_classes is None or num_classes < 2:
        raise UserInputError(f"Training needs a labelled in-distribution set; {dataset!r} has no classes.")

    epochs = overrides.get("epochs", recipe.method_epochs.get(method, recipe.epochs))
    config: dict[str, Any] = {
        "config_version": CONFIG_VERSION,
        "method": method,
        "recipe": recipe.name,
        "dataset": dataset,
        "in_shape": [int(s) for s in in_shape],
        "num_classes": int(num_classes),
        "seed": _check_int("seed", seed, 0),
        "arch": recipe.arch,
        "epochs": _check_int("epochs", epochs, 1),
        "batch_size": _check_int("batch_size", overrides.get("batch_size", recipe.batch_size), 1),
        "optimizer": "adam",
        "lr": _check_float("lr", overrides.get("lr", recipe.lr), positive=True),
        "classifier_adam_betas": list(recipe.classifier_adam_betas),
        "weight_decay": recipe.weight_decay,
        "lr_milestones": list(recipe.lr_milestones),
        "lr_gamma": recipe.lr_gamma,
        "augmentation": "none",
        "input_normalisation": "none",
    }
    if "train_limit" in overrides:  # only when given: recipe configs (and their caches) stay as they were
        config["train_limit"] = _check_int("train_limit", overrides["train_limit"], 1)
    if method in ("confidence", "joint"):
        config["beta"] = _check_float("beta", overrides.get("beta", recipe.beta), positive=False)
    if method == "confidence":
        config["seen_ood"] = seen_ood
        config["ood_batch_size"] = config["batch_size"]
    if method == "joint":
        warmup = _check_int(
            "gan_warmup_epochs", overrides.get("gan_warmup_epochs", recipe.gan_warmup_epochs), 0
        )
        if warmup >= config["epochs"]:
            raise UserInputError(
                f"gan_warmup_epochs ({warmup}) must be smaller than epochs ({config['epochs']}); "
                "lower --gan-warmup-epochs or raise --epochs."
            )
        config |= {
            "gen_arch": recipe.gen_arch,
            "disc_arch": recipe.disc_arch,
            "nz": recipe.nz,
            "gan_adam_betas": list(recipe.gan_adam_betas),
            "gan_warmup_epochs": warmup,
        }
    config["overrides"] = dict(sorted(overrides.items()))
    return config


def format_config(config: dict[str, Any]) -> str:
    """One `key: value` line per effective hyperparameter (what `oodbench train` prints)."""
    width = max(len(k) for k in config)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in config.items())
