"""Convert images to an in-distribution shape (C, H, W) by one documented rule.

The rule, applied in this order to float images (N, C, H, W) in [0, 1]:

1. Channels. Same count: unchanged. 1 -> 3: the grey channel is repeated. 3 -> 1: ITU-R BT.601
   luma, Y = 0.299 R + 0.587 G + 0.114 B (the weights PIL's convert("L") uses). Any other pair
   (2 or 4 channels, ...) cannot be converted and raises `UserInputError`.
2. Size. Same (H, W): unchanged. Otherwise, when the aspect ratio differs from the target's,
   the largest centred window with the target's aspect ratio is cropped first (so nothing is
   stretched); then the image is resized to the target (H, W) with bilinear interpolation and
   antialiasing (a triangle filter as wide as the scale factor when shrinking, so downscaled
   images do not alias).

Noise sets are not converted: they are generated directly at the target shape (resizing noise
would change its statistics).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from oodbench.errors import UserInputError

if TYPE_CHECKING:
    import torch

# ITU-R BT.601 luma weights for R, G, B.
LUMA_601 = (0.299, 0.587, 0.114)

# Convert this many images at a time to bound the memory of intermediate copies.
_CHUNK = 2048


def uint8_to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) array -> float32 tensor in [0, 1] (x / 255)."""
    import torch
    images = np.ascontiguousarray(images)
    if not images.flags.writeable:  # torch.from_numpy warns on read-only arrays (cached embedded data)
        images = images.copy()
    return torch.from_numpy(images).to(torch.float32).div_(255.0)


def uint8_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) array -> uint8 tensor, as stored (4x less memory than float32).

    Consumers convert one batch at a time with `as_float`, which gives exactly the floats of
    `uint8_to_float`.
    """
    import torch

    images = np.ascontiguousarray(images)
    if not images.flags.writeable:  # torch.from_numpy warns on read-only arrays (cached embedded data)
        images = images.copy()
    return torch.from_numpy(images)


def as_float(batch: torch.Tensor) -> torch.Tensor:
    """A batch as float32 in [0, 1]: uint8 images are divided by 255, float images pass through.

    Data sets may be held as uint8 and converted one batch at a time; every consumer of
    `LabeledImages.x` batches goes through this function so both storages give equal floats.
    """
    import torch
    if batch.dtype == torch.uint8:
        return batch.to(torch.float32).div_(255.0)
    return batch


def to_shape(x: torch.Tensor, shape: tuple[int, int, int], *, name: str = "images") -> torch.Tensor:
    """Convert float images (N, C, H, W) in [0, 1] to `shape` = (C, H, W) by the module's rule.

    `name` only appears in error messages. Returns `x` itself when it already has the shape.
    """
    import torch
    if x.ndim != 4:
        raise UserInputError(
            f"{name} must be a batch of images (N, C, H, W); got a tensor of shape {tuple(x.shape)}."
        )
    target_c, target_h, target_w = (int(v) for v in shape)
    if tuple(x.shape[1:]) == (target_c, target_h, target_w):
        return x
    _check_channels(x.shape[1], target_c, name)
    if x.shape[0] == 0:
        return x.new_zeros((0, target_c, target_h, target_w))
    chunks = [
        _convert_chunk(x[i : i + _CHUNK], target_c, target_h, target_w) for i in range(0, len(x), _CHUNK)
    ]
    return torch.cat(chunks)


def convert_channels(x: torch.Tensor, channels: int, *, name: str = "images") -> torch.Tensor:
    """Step 1 of the rule alone: 1 -> 3 by repetition, 3 -> 1 by BT.601 luma."""
    import torch
    _check_channels(x.shape[1], channels, name)
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor(LUMA_601, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def crop_box(height: int, width: int, target_h: int, target_w: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the largest centred window with the aspect ratio target_h : target_w."""
    if height * target_w == width * target_h:
        return 0, 0, height, width
    if height * target_w > width * target_h:  # too tall: keep the full width
        h = max(1, round(width * target_h / target_w))
        return (height - h) // 2, 0, h, width
    w = max(1, round(height * target_w / target_h))  # too wide: keep the full height
    return 0, (width - w) // 2, height, w


def _check_channels(have: int, want: int, name: str) -> None:
    if have == want or (have, want) in ((1, 3), (3, 1)):
        return
    raise UserInputError(
        f"{name} has {have} channel(s) and cannot be converted to {want}: oodbench converts only "
        f"grayscale (1) <-> RGB (3). Convert the images to 1 or 3 channels first."
    )


def _convert_chunk(x: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    import torch.nn.functional as F
    x = convert_channels(x, channels)
    if tuple(x.shape[2:]) == (height, width):
        return x
    top, left, h, w = crop_box(x.shape[2], x.shape[3], height, width)
    x = x[:, :, top : top + h, left : left + w]
    if (h, w) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    # The triangle filter has non-negative weights, but float rounding can step just outside [0, 1].
    return x.clamp_(0.0, 1.0)
