"""A suite's per-image preprocessing: decode -> channels -> resize -> centre crop -> uint8 (C, H, W).

    Preprocess(channels=3, size=(224, 224), resize=256, crop=(224, 224), interpolation="bilinear")

1. Decode with `oodbench.data.image_folders.read_pil_image` (the bit-depth rule of README.md:
   16-bit keeps its 8 high bits, float / 32-bit images by their range; alpha dropped, palettes
   expanded), giving mode L or RGB.
2. Channels by `oodbench.data.convert`'s rule: 1 -> 3 repeats the grey channel (PIL's L -> RGB
   does exactly that), 3 -> 1 is BT.601 luma computed in float by `convert_channels`, rounded.
3. `resize` (an int: the shorter side to that length, aspect kept; a pair: exactly (H, W)) and
   `crop` (a centred (H, W) window) are torchvision's own `resize` / `center_crop` on the PIL
   image, so pixels equal `torchvision.transforms.Resize(...)` + `CenterCrop(...)` on PIL images
   (the classic ImageNet evaluation pipeline), antialiased as PIL always is.
4. Neither given and the image is not `size`: oodbench.data.convert's rule (largest centred window
   of the target aspect, then bilinear with antialiasing), in float, rounded back to uint8, the
   one place the streamed values can differ from the in-memory float path (by <= 0.5 / 255).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from oodbench.errors import UserInputError

if TYPE_CHECKING:  # torch is imported when an image is decoded, not with the suite files
    import torch

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


@dataclass(frozen=True)
class Preprocess:
    """What every image of a suite becomes. `size` (H, W) is the final shape (None: native size,
    then all images of a batch must share one)."""

    channels: int = 3
    size: tuple[int, int] | None = None
    resize: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise UserInputError(f"channels must be 1 or 3; got {self.channels!r}.")
        if self.interpolation not in INTERPOLATIONS:
            raise UserInputError(
                f"Unknown interpolation {self.interpolation!r}; use one of {', '.join(INTERPOLATIONS)}."
            )
        if self.crop is not None and self.size is not None and tuple(self.crop) != tuple(self.size):
            raise UserInputError(f"crop {tuple(self.crop)} must equal the image size {tuple(self.size)}.")

    @property
    def shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) of every item, or None when images keep their native size."""
        return None if self.size is None else (self.channels, *self.size)

    def key(self) -> str:
        """Stable text of the preprocessing (part of every source's fingerprint)."""
        return (
            f"c={self.channels};size={self.size};resize={self.resize};crop={self.crop};"
            f"interp={self.interpolation}"
        )


def decode(path: Path, pre: Preprocess) -> torch.Tensor:
    """One image file -> uint8 (C, H, W) by the module's rule; bad files raise UserInputError."""
    from oodbench.data.image_folders import read_pil_image

    return transform_pil(read_pil_image(path), pre, name=str(path))


def transform_pil(image, pre: Preprocess, *, name: str = "image") -> torch.Tensor:
    """A PIL image of mode L or RGB -> uint8 (C, H, W) by steps 2-4 of the module's rule."""
    import torch

    if pre.channels == 3 and image.mode == "L":
        image = image.convert("RGB")  # repeats the grey value: the rule's 1 -> 3
    elif pre.channels == 1 and image.mode == "RGB":
        image = _luma(image)
    if pre.resize is not None or pre.crop is not None:
        # Imported only here: torchvision's import costs ~1.8 s and ~170 MB (it loads torch._dynamo),
        # which sets that need no resizing should not pay in every loader worker.
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        if pre.resize is not None:
            size = [pre.resize] if isinstance(pre.resize, int) else list(pre.resize)
            mode = InterpolationMode(pre.interpolation)
            image = TF.resize(image, size, interpolation=mode, antialias=True)
        if pre.crop is not None:
            image = TF.center_crop(image, list(pre.crop))
    array = np.asarray(image, dtype=np.uint8)
    x = torch.from_numpy(array[None].copy() if array.ndim == 2 else array.transpose(2, 0, 1).copy())
    if pre.size is not None and tuple(x.shape[1:]) != tuple(pre.size):
        x = to_size(x, pre, name=name)
    return x


def _luma(image):
    """RGB -> L by `convert_channels` (BT.601 in float), rounded: the same rule as in-memory sets."""
    import torch
    from PIL import Image

    from oodbench.data.convert import convert_channels, uint8_to_float

    rgb = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)[None]
    grey = convert_channels(uint8_to_float(rgb), 1)[0, 0]
    return Image.fromarray(grey.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy())


def to_size(x: torch.Tensor, pre: Preprocess, *, name: str) -> torch.Tensor:
    """uint8 (C, H, W) -> pre.shape by oodbench.data.convert.to_shape, rounded back to uint8."""
    import torch

    from oodbench.data.convert import as_float, to_shape

    out = to_shape(as_float(x[None]), pre.shape, name=name)[0]
    return out.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
