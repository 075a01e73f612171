"""Synthetic noise OOD sets, generated at any shape from a seed (nothing is stored).

- gaussian: every pixel clamp(N(0.5, 1), 0, 1), independently (Liang et al. 2018; Lee et al.
  2018). About 30.9% of pixels are exactly 0 and 30.9% exactly 1 (P(Z < -0.5)).
- uniform: every pixel U[0, 1), independently.

Draws come from numpy's legacy RandomState seeded with (seed, set, split): its streams are frozen
across numpy versions, so a seed gives the same images everywhere. Each split has its own stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from oodbench.data.spec import DATASETS, KIND_GENERATED, DatasetSpec, LabeledImages, LoadRequest, Shape
from oodbench.errors import UserInputError

if TYPE_CHECKING:
    import torch

DEFAULT_SIZE = 10_000  # images per noise set, as in ODIN's evaluation
SPLITS = ("train", "val", "test")
_KINDS = ("gaussian", "uniform")
_CHUNK = 1000  # images drawn per call, to bound the float64 temporary


def noise(kind: str, n: int, shape: Shape, *, seed: int = 0, split: str = "test") -> torch.Tensor:
    """`n` noise images of `shape` = (C, H, W) as float32 (n, C, H, W) in [0, 1]."""
    import torch
    if kind not in _KINDS:
        raise UserInputError(f"Unknown noise {kind!r}. Available: {', '.join(_KINDS)}.")
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise UserInputError(f"The noise seed must be an integer in [0, 2**32). Got {seed!r} instead.")
    rng = np.random.RandomState([seed, _KINDS.index(kind), SPLITS.index(split) if split in SPLITS else 99])
    out = torch.empty((n, *shape), dtype=torch.float32)
    for start in range(0, n, _CHUNK):
        size = (min(_CHUNK, n - start), *shape)
        if kind == "gaussian":
            block = np.clip(rng.standard_normal(size) + 0.5, 0.0, 1.0)
        else:
            block = rng.random_sample(size)
        out[start : start + len(block)] = torch.from_numpy(block.astype(np.float32))
    return out


def _load_noise(spec: DatasetSpec, req: LoadRequest) -> LabeledImages:
    shape = req.shape or spec.image_shape
    x = noise(spec.name, req.n or DEFAULT_SIZE, shape, seed=req.seed, split=req.split)
    return LabeledImages(x, None, spec.name, req.split)


for _kind, _formula, _mean, _std in (
    # std of clamp(N(0.5, 1), 0, 1): sqrt(E[clamp(Z, -1/2, 1/2)^2]) = 0.4303 (numerical integral).
    ("gaussian", "clamp(N(0.5, 1), 0, 1) per pixel", 0.5, 0.4303),
    ("uniform", "U[0, 1) per pixel", 0.5, 0.2887),
):
    DATASETS.add(
        _kind,
        DatasetSpec(
            name=_kind,
            image_shape=(3, 32, 32),  # default only: generated at whatever shape is asked for
            num_classes=None,
            mean=(_mean,),
            std=(_std,),
            source=f"synthetic noise, {_formula}, seeded (numpy RandomState)",
            licence="none needed (generated)",
            splits=SPLITS,
            loader=_load_noise,
            files_hint="generated on the fly, any shape; 10,000 images unless asked otherwise",
            kind=KIND_GENERATED,
        ),
    )
