"""OpenOOD v1.5's classifier architectures, so its released checkpoints load by key name.

Written from the published description of the networks (docs/methods.md; OpenOOD v1.5, Zhang
et al. 2023, github.com/Jingkang50/OpenOOD), not from OpenOOD's code:

- ``resnet18_32x32(num_classes)`` (CIFAR-10 / CIFAR-100 checkpoints): a ResNet-18 for 32x32
  inputs. Stem: 3x3 convolution, stride 1, 64 channels, no bias, then BatchNorm and ReLU, and NO
  max-pool. Four stages of two basic blocks (3x3 conv - BN - ReLU - 3x3 conv - BN, plus the
  shortcut, then ReLU) with 64, 128, 256, 512 channels and strides 1, 2, 2, 2; where the shape
  changes the shortcut is a 1x1 strided convolution + BN held in ``layerN.0.shortcut`` (indices
  0 and 1; torchvision calls it ``downsample``). Adaptive average pool to 1x1, then
  ``fc``: 512 -> C. For a 32x32 input the feature maps are 32, 16, 8, 4 pixels wide.
- ``resnet18_224x224(num_classes=200)`` (ImageNet-200 checkpoints): torchvision's ResNet-18
  (7x7 stride-2 stem, max-pool, ``downsample`` shortcuts), whose state_dict keys the
  checkpoints use, with a C-way ``fc``.

Both return logits from ``forward(x)``; ``features(x)`` is the pooled 512-d vector (the input of
``fc``: logits = fc(features(x))), which feature-based detectors (KNN, ViM, Mahalanobis) use.
ImageNet-1K is torchvision's ResNet-50 with ``IMAGENET1K_V1`` weights (no class here).

The released checkpoints are plain state_dicts (``<run>/s{0,1,2}/best.ckpt``); load them with
``model.load_state_dict(torch.load(path, map_location="cpu"))``. ``ARCHITECTURES`` names the
builders for the architecture-spec parser (``--arch openood:NAME``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class BasicBlock(nn.Module):
    """y = ReLU(BN(conv3x3(ReLU(BN(conv3x3(x))))) + shortcut(x)); shortcut = identity, or
    conv1x1(stride) + BN (``shortcut.0`` / ``shortcut.1``) where stride or width changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18_32x32(nn.Module):
    """OpenOOD's CIFAR ResNet-18 (module docstring). forward -> logits; features -> (N, 512)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
        in_planes = 64
        for n, (planes, stride) in enumerate(zip(widths, strides, strict=True), start=1):
            blocks = nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1))
            setattr(self, f"layer{n}", blocks)
            in_planes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        for n in range(1, 5):
            out = getattr(self, f"layer{n}")(out)
        return torch.flatten(self.avgpool(out), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class ResNet18_224x224(nn.Module):
    """torchvision's ResNet-18 with a C-way head and the same state_dict keys (no prefix)."""

    def __init__(self, num_classes: int = 200) -> None:
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None, num_classes=num_classes)
        # Adopt torchvision's children under their own names, so the keys are torchvision's.
        for name, module in net.named_children():
            setattr(self, name, module)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def resnet18_32x32(num_classes: int = 10) -> ResNet18_32x32:
    """OpenOOD's CIFAR ResNet-18 (CIFAR-10: 10 classes, CIFAR-100: 100)."""
    return ResNet18_32x32(num_classes)


def resnet18_224x224(num_classes: int = 200) -> ResNet18_224x224:
    """OpenOOD's ImageNet-200 ResNet-18 (torchvision's keys)."""
    return ResNet18_224x224(num_classes)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet18_32x32": resnet18_32x32,
    "resnet18_224x224": resnet18_224x224,
}
