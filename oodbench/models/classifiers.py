"""Classifiers: the paper's VGG-13 and a small CNN for the embedded (CPU) suite.

Every classifier takes images in [0, 1] (no mean/std normalisation, as in Lee et al. 2018)
and exposes `features(x)` -> penultimate features (N, D) and `head`, with
`forward(x) = head(features(x))` -> logits (N, K).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# VGG configuration "B" (13 weight layers: 10 conv + 3 linear); "M" is a 2x2 max-pool.
VGG13_CONFIG: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    "M",
    512,
    512,
    "M",
    512,
    512,
    "M",
)


def _pooled_size(size: int, n_pools: int) -> int:
    # ceil_mode pooling: 32 -> 16 -> 8 -> 4 -> 2 -> 1 and 28 -> 14 -> 7 -> 4 -> 2 -> 1.
    for _ in range(n_pools):
        size = math.ceil(size / 2)
    return size


class VGG13(nn.Module):
    """VGG-13 (config B) of Lee et al. 2018 / alinlab/Confident_classifier, `models/vgg.py`.

    3x3 conv (padding 1) + ReLU, no BatchNorm, five 2x2 max-pools; head 512-512-K with ReLU and
    dropout 0.5. At 3x32x32 this is exactly the paper's network (the flattened map is 512x1x1).
    Other shapes adapt: `in_channels` from the data, and the pools use ceil_mode so that
    28x28 also ends at 1x1 (identical to floor mode whenever the size is even, e.g. 32x32).
    Weights are initialised as in the public code: conv N(0, sqrt(2/(k*k*out))), linear N(0, 0.01),
    zero biases.
    """

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        channels, height, width = in_shape
        layers: list[nn.Module] = []
        for value in VGG13_CONFIG:
            if value == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(channels, int(value), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = int(value)
        self.conv = nn.Sequential(*layers)
        n_pools = VGG13_CONFIG.count("M")
        flat = channels * _pooled_size(height, n_pools) * _pooled_size(width, n_pools)
        self.fc = nn.Sequential(
            nn.Linear(flat, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
        )
        self.head = nn.Linear(512, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, 512): the output of the second 512-unit layer."""
        return self.fc(torch.flatten(self.conv(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallCNN(nn.Module):
    """conv-pool-conv-pool-fc(128)-head: a few-second classifier for 28x28 digits on a CPU.

    3x3 convs with padding 1, ReLU, 2x2 max-pools (ceil_mode, so odd sizes work); PyTorch's
    default initialisation. `channels` sets the two conv widths ("small_cnn" 32, 64; "tiny_cnn"
    16, 32, about 3x cheaper on a CPU) and `hidden` the fc width.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 128,
    ) -> None:
        super().__init__()
        in_channels, height, width = in_shape
        c1, c2 = channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        flat = c2 * _pooled_size(height, 2) * _pooled_size(width, 2)
        self.fc = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(inplace=True))
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, 128)."""
        return self.fc(torch.flatten(self.conv(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLPClassifier(nn.Module):
    """Flat inputs (N, D) -> logits: two ReLU hidden layers (for 2-D toy data and tests)."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, hidden: int = 128) -> None:
        super().__init__()
        in_dim = math.prod(in_shape)
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, hidden)."""
        return self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
