"""Classifier and GAN architectures, by name.

    create_classifier("vgg13", in_shape=(3, 32, 32), num_classes=10)   # the paper's VGG-13
    create_generator("dcgan", out_shape=(3, 32, 32), nz=100)           # the paper's DCGAN
    create_discriminator("dcgan", in_shape=(3, 32, 32))

Classifiers take images in [0, 1] (no normalisation) and expose `features(x)` (penultimate,
(N, D)) and `head` with `forward(x) = head(features(x))`. Generators map z (N, nz) to
(N, *out_shape) in [0, 1] (images) and discriminators return probabilities (N,).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from oodbench.errors import UserInputError
from oodbench.registry import Registry

if TYPE_CHECKING:
    from torch import nn

# Classes are imported on first use, so listing the registries does not import torch.
_CLASS_MODULES = {
    "VGG13": "classifiers",
    "SmallCNN": "classifiers",
    "MLPClassifier": "classifiers",
    "DCGANGenerator": "gan",
    "DCGANDiscriminator": "gan",
    "MLPGenerator": "gan",
    "MLPDiscriminator": "gan",
}


def __getattr__(name: str) -> Any:
    if name not in _CLASS_MODULES:
        raise AttributeError(f"module 'oodbench.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"oodbench.models.{_CLASS_MODULES[name]}"), name)


def _cls(name: str) -> Any:
    return __getattr__(name)


# Each entry builds a module from shapes: classifiers (in_shape, num_classes), generators
# (out_shape, nz), discriminators (in_shape).
CLASSIFIERS: Registry[Callable[..., nn.Module]] = Registry("classifier architecture")
GENERATORS: Registry[Callable[..., nn.Module]] = Registry("generator architecture")
DISCRIMINATORS: Registry[Callable[..., nn.Module]] = Registry("discriminator architecture")

CLASSIFIERS.add("vgg13", lambda in_shape, num_classes: _cls("VGG13")(in_shape, num_classes))
CLASSIFIERS.add("small_cnn", lambda in_shape, num_classes: _cls("SmallCNN")(in_shape, num_classes))
CLASSIFIERS.add(
    "tiny_cnn", lambda in_shape, num_classes: _cls("SmallCNN")(in_shape, num_classes, channels=(16, 32))
)
CLASSIFIERS.add("mlp", lambda in_shape, num_classes: _cls("MLPClassifier")(in_shape, num_classes))

# "dcgan" is the paper's width (64); "dcgan_small" (width 16) keeps the embedded CPU suite fast.
GENERATORS.add("dcgan", lambda out_shape, nz: _cls("DCGANGenerator")(out_shape, nz, width=64))
GENERATORS.add("dcgan_small", lambda out_shape, nz: _cls("DCGANGenerator")(out_shape, nz, width=16))
GENERATORS.add("mlp", lambda out_shape, nz: _cls("MLPGenerator")(_flat_dim(out_shape, "generator"), nz))
DISCRIMINATORS.add("dcgan", lambda in_shape: _cls("DCGANDiscriminator")(in_shape, width=64))
DISCRIMINATORS.add("dcgan_small", lambda in_shape: _cls("DCGANDiscriminator")(in_shape, width=16))
DISCRIMINATORS.add("mlp", lambda in_shape: _cls("MLPDiscriminator")(_flat_dim(in_shape, "discriminator")))


def _flat_dim(shape: Sequence[int], what: str) -> int:
    if len(shape) != 1:
        raise UserInputError(f"The MLP {what} takes flat points, shape (D,); got shape {tuple(shape)}.")
    return int(shape[0])


def _check_positive(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserInputError(f"The '{name}' parameter must be an int >= 1. Got {value!r} instead.")
    return value


def create_classifier(arch: str, *, in_shape: Sequence[int], num_classes: int) -> nn.Module:
    """A freshly initialised classifier `arch` for inputs of `in_shape` (C, H, W) and K classes."""
    factory = CLASSIFIERS.get(arch)
    _check_positive("num_classes", num_classes)
    return factory(tuple(int(s) for s in in_shape), num_classes)


def create_generator(arch: str, *, out_shape: Sequence[int], nz: int = 100) -> nn.Module:
    """A freshly initialised generator mapping z (N, nz) to (N, *out_shape) in [0, 1]."""
    factory = GENERATORS.get(arch)
    _check_positive("nz", nz)
    return factory(tuple(int(s) for s in out_shape), nz)


def create_discriminator(arch: str, *, in_shape: Sequence[int]) -> nn.Module:
    """A freshly initialised discriminator returning P(real) of shape (N,)."""
    return DISCRIMINATORS.get(arch)(tuple(int(s) for s in in_shape))


def list_classifiers() -> list[str]:
    return CLASSIFIERS.names()


def list_generators() -> list[str]:
    return GENERATORS.names()


def list_discriminators() -> list[str]:
    return DISCRIMINATORS.names()


__all__ = [
    "CLASSIFIERS",
    "DISCRIMINATORS",
    "GENERATORS",
    "VGG13",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPClassifier",
    "MLPDiscriminator",
    "MLPGenerator",
    "SmallCNN",
    "create_classifier",
    "create_discriminator",
    "create_generator",
    "list_classifiers",
    "list_discriminators",
    "list_generators",
]
