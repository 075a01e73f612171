"""A model's own input preprocessing (channel conversion, resize, then normalise), applied
inside the model so that detectors work in [0, 1] pixel space."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from oodbench.data.convert import convert_channels
from oodbench.errors import UserInputError

# Per-channel (mean, std) presets for --normalize. ImageNet: the constants torchvision's
# pretrained weights use. CIFAR-10 and SVHN: per-channel statistics of their training sets, the
# values common in the training scripts of those models.
NORMALIZE_PRESETS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}


def parse_normalize(text: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A preset name (imagenet, cifar10, svhn) or "MEAN/STD" with comma-separated per-channel values."""
    text = text.strip()
    if text.lower() in NORMALIZE_PRESETS:
        return NORMALIZE_PRESETS[text.lower()]
    mean_text, sep, std_text = text.partition("/")
    try:
        mean = tuple(float(v) for v in mean_text.split(","))
        std = tuple(float(v) for v in std_text.split(","))
    except ValueError:
        sep = ""
    # inf or nan would turn every image into nan (or 0) silently: finite values only.
    finite = sep and all(math.isfinite(v) for v in (*mean, *std))
    if not finite or len(mean) != len(std) or any(not s > 0 for s in std):
        raise UserInputError(
            f"--normalize takes a preset ({', '.join(NORMALIZE_PRESETS)}) or MEAN/STD per channel, "
            f"e.g. 0.5,0.5,0.5/0.25,0.25,0.25 (finite numbers, std > 0). Got {text[:80]!r}."
        )
    return mean, std


# How each channel conversion is done (what a row's `input_channels` says).
CHANNEL_CONVERSIONS = {
    (1, 3): "repeated",  # grey -> RGB: the one channel three times
    # RGB -> grey: ITU-R 601-2 luma, L = R*299/1000 + G*587/1000 + B*114/1000 (PIL's convert("L"),
    # here on float pixels: no rounding to uint8).
    (3, 1): "ITU-R 601-2 luma",
}


class Preprocess(nn.Module):
    """[0, 1] images -> the model's input: optional channel conversion (`set_channels`: grey ->
    RGB repeats the channel, RGB -> grey is L = 0.299 R + 0.587 G + 0.114 B), optional bilinear
    resize to N x N, then (x - mean) / std."""

    def __init__(
        self,
        *,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        resize: int | None = None,
    ) -> None:
        super().__init__()
        if resize is not None and (isinstance(resize, bool) or not isinstance(resize, int) or resize < 1):
            raise UserInputError(f"--resize must be an integer >= 1. Got {resize!r} instead.")
        self.resize = resize
        self.register_buffer("mean", None if mean is None else torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", None if std is None else torch.tensor(std).view(1, -1, 1, 1))
        # (suite's channels, model's channels) and why, once set_channels has decided a conversion.
        self.channels: tuple[int, int] | None = None
        self.channels_note = ""

    def set_channels(self, have: int, want: int, why: str) -> None:
        """Convert `have`-channel images to `want` channels first; `why` says how `want` was known
        (e.g. "from the model's first conv"). have == want: no conversion."""
        if have == want:
            self.channels, self.channels_note = None, ""
            return
        if (have, want) not in CHANNEL_CONVERSIONS:
            raise UserInputError(
                f"Images of {have} channel(s) cannot be converted to {want}: oodbench converts only "
                "grayscale (1) <-> RGB (3)."
            )
        self.channels = (have, want)
        self.channels_note = f"{have}->{want} ({CHANNEL_CONVERSIONS[(have, want)]}; {why})"

    @property
    def is_identity(self) -> bool:
        return self.resize is None and self.mean is None and self.channels is None

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "resize": self.resize,
            "mean": None if self.mean is None else [round(float(v), 6) for v in self.mean.flatten()],
            "std": None if self.std is None else [round(float(v), 6) for v in self.std.flatten()],
        }
        # Part of the score cache key: added only when converting, so that older keys stay valid.
        if self.channels is not None:
            described["channels"] = "{}->{}".format(*self.channels)
        return described

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels is not None:
            have, want = self.channels
            if x.shape[1] != have:
                raise UserInputError(
                    f"The model converts {have}-channel images to {want}, but these have {x.shape[1]}."
                )
            x = convert_channels(x, want)
        if self.resize is not None and tuple(x.shape[-2:]) != (self.resize, self.resize):
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        if self.mean is not None:
            if x.shape[1] != self.mean.shape[1] and self.mean.shape[1] != 1:
                raise UserInputError(
                    f"--normalize has {self.mean.shape[1]} channels but the images have {x.shape[1]}."
                )
            x = (x - self.mean.to(x)) / self.std.to(x)
        return x
