"""Device choice and seeding. Nothing in oodbench hard-codes `.cuda()`."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np

from oodbench.errors import UserInputError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; 'cpu', 'cuda', 'cuda:1', 'mps' (or a torch.device)
    are taken as is, once checked."""
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserInputError(f"Unknown device {name!r}. Use 'auto', 'cpu' or 'cuda[:N]'.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda was asked for but CUDA is not available; use --device cpu")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so CPU runs are deterministic."""
    import torch
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
