"""Large --out npz sets are read from their file one batch at a time, with the same scores."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import oodbench
from oodbench.data import load_custom_out
from oodbench.data.ondisk import ImagesOnDisk
from oodbench.data.spec import cap


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def test_uncompressed_uint8_npz_stays_on_disk_and_reads_the_same_rows(tmp_path):
    images = _images(300)
    np.savez(tmp_path / "plain.npz", x=images)
    np.savez_compressed(tmp_path / "packed.npz", x=images)
    np.savez(tmp_path / "nchw.npz", images=images[:, None])
    on_disk = load_custom_out(f"npz:{tmp_path / 'plain.npz'}", shape=(1, 28, 28))
    in_memory = load_custom_out(f"npz:{tmp_path / 'packed.npz'}", shape=(1, 28, 28))
    assert isinstance(on_disk.x, ImagesOnDisk) and isinstance(in_memory.x, torch.Tensor)
    assert isinstance(load_custom_out(f"npz:{tmp_path / 'nchw.npz'}", shape=(1, 28, 28)).x, ImagesOnDisk)
    assert on_disk.x.shape == (300, 1, 28, 28) and len(on_disk) == 300
    assert torch.equal(on_disk.x[0:300], in_memory.x)
    assert torch.equal(on_disk.x[290:400], in_memory.x[290:])  # slices clip like a tensor's
    assert torch.equal(cap(on_disk, 40).x, cap(in_memory, 40).x)  # --limit: indexed reads
    # Another shape is converted in memory (a float tensor at the suite's shape).
    assert isinstance(load_custom_out(f"npz:{tmp_path / 'plain.npz'}", shape=(1, 14, 14)).x, torch.Tensor)


def test_scores_from_disk_equal_scores_from_memory(tmp_path):
    images = _images(200)
    np.savez(tmp_path / "plain.npz", x=images)
    np.savez_compressed(tmp_path / "packed.npz", x=images)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
    frames = [
        oodbench.evaluate(
            net, detectors=["msp", "mahalanobis"], limit=50, extra_out=[f"npz:{tmp_path / name}"]
        )
        for name in ("plain.npz", "packed.npz")
    ]
    a, b = (f[f.out_dataset.str.startswith("npz:")] for f in frames)
    assert list(a["n_out"]) == list(b["n_out"]) and len(a) == 2
    np.testing.assert_array_equal(a["auroc"].to_numpy(), b["auroc"].to_numpy())
