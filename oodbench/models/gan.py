"""DCGAN generator and discriminator of Lee et al. 2018 (after pytorch/examples `dcgan`).

At 3x32x32 with width 64 these are exactly the networks of alinlab/Confident_classifier
`models/gan.py`:
  generator      z(100) -> ConvT 512 (4x4) -> 256 (8x8) -> 128 (16x16) -> 3 (32x32), BatchNorm +
                 ReLU between, Sigmoid output (images in [0, 1]); no biases;
  discriminator  3 -> 128 (16x16) -> 256 (8x8) -> 512 (4x4) -> 1, LeakyReLU 0.2, BatchNorm on the
                 middle layers, Sigmoid output (a probability); no biases.
The 28x28 variants drop one resolution step (7 -> 14 -> 28): ConvT nz -> 4w (7x7, kernel 7) ->
2w (14x14) -> C (28x28), and the discriminator mirrors it (C -> 2w -> 4w -> 1, last kernel 7).
Weights: conv N(0, 0.02), BatchNorm weight N(1, 0.02) and bias 0 (DCGAN initialisation).

Generators take z of shape (N, nz) and return (N, C, H, W) in [0, 1]; discriminators return
probabilities of shape (N,). Small MLP versions for 2-D toy data take/return (N, D).
"""

from __future__ import annotations

import torch
from torch import nn

from oodbench.errors import UserInputError


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _check_image_shape(shape: tuple[int, ...], what: str) -> tuple[int, int]:
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in (28, 32):
        raise UserInputError(
            f"The DCGAN {what} supports 28x28 and 32x32 images (C, H, W); got shape {tuple(shape)}. "
            "Resize the data to one of these or use another architecture."
        )
    return shape[0], shape[1]


class DCGANGenerator(nn.Module):
    """z (N, nz) -> images (N, C, H, W) in [0, 1]; H = W = 32 (paper) or 28."""

    def __init__(self, out_shape: tuple[int, int, int], nz: int = 100, width: int = 64) -> None:
        super().__init__()
        channels, size = _check_image_shape(out_shape, "generator")
        self.nz = nz
        w = width
        if size == 32:
            layers: list[nn.Module] = [
                nn.ConvTranspose2d(nz, w * 8, 4, 1, 0, bias=False),  # 4x4
                nn.BatchNorm2d(w * 8),
                nn.ReLU(True),
                nn.ConvTranspose2d(w * 8, w * 4, 4, 2, 1, bias=False),  # 8x8
                nn.BatchNorm2d(w * 4),
                nn.ReLU(True),
                nn.ConvTranspose2d(w * 4, w * 2, 4, 2, 1, bias=False),  # 16x16
                nn.BatchNorm2d(w * 2),
                nn.ReLU(True),
                nn.ConvTranspose2d(w * 2, channels, 4, 2, 1, bias=False),  # 32x32
            ]
        else:
            layers = [
                nn.ConvTranspose2d(nz, w * 4, 7, 1, 0, bias=False),  # 7x7
                nn.BatchNorm2d(w * 4),
                nn.ReLU(True),
                nn.ConvTranspose2d(w * 4, w * 2, 4, 2, 1, bias=False),  # 14x14
                nn.BatchNorm2d(w * 2),
                nn.ReLU(True),
                nn.ConvTranspose2d(w * 2, channels, 4, 2, 1, bias=False),  # 28x28
            ]
        self.main = nn.Sequential(*layers, nn.Sigmoid())
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.nz, 1, 1))


class DCGANDiscriminator(nn.Module):
    """images (N, C, H, W) -> probability of being real, shape (N,); H = W = 32 (paper) or 28."""

    def __init__(self, in_shape: tuple[int, int, int], width: int = 64) -> None:
        super().__init__()
        channels, size = _check_image_shape(in_shape, "discriminator")
        w = width
        layers: list[nn.Module] = [
            nn.Conv2d(channels, w * 2, 4, 2, 1, bias=False),  # 16x16 | 14x14
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w * 2, w * 4, 4, 2, 1, bias=False),  # 8x8 | 7x7
            nn.BatchNorm2d(w * 4),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        if size == 32:
            layers += [
                nn.Conv2d(w * 4, w * 8, 4, 2, 1, bias=False),  # 4x4
                nn.BatchNorm2d(w * 8),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(w * 8, 1, 4, 1, 0, bias=False),  # 1x1
            ]
        else:
            layers += [nn.Conv2d(w * 4, 1, 7, 1, 0, bias=False)]  # 1x1
        self.main = nn.Sequential(*layers, nn.Sigmoid())
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).reshape(-1)


class MLPGenerator(nn.Module):
    """z (N, nz) -> points (N, D): two ReLU hidden layers, linear output (for 2-D toy data)."""

    def __init__(self, out_dim: int, nz: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(nz, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """points (N, D) -> probability of being real (N,): two LeakyReLU hidden layers, Sigmoid."""

    def __init__(self, in_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(-1)
