"""Sources over arrays: in-memory tensors (the embedded sets, generated noise) and .npz files.

    TensorSource(x, y=None, pre, name=...)   x (N, C, H, W) uint8 or float in [0, 1]
    NpzSource(path, pre)                     a user's .npz ('x' or 'images', optional 'y'/'labels')
    TensorSource.from_labeled(images, pre)   an oodbench LabeledImages (e.g. load_dataset(...))

Items go through the same interface as files: uint8 images come out as uint8 (C, H, W) of the
preprocessing's shape (converted by oodbench.data.convert's rule if needed); float sets (noise)
stay float32 so generated data are not quantised. An uncompressed uint8 .npz member is read
one row at a time from disk (oodbench.data.ondisk), so the set is never held whole.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench.data.sources.base import NO_LABEL, ImageSource
from oodbench.data.sources.transform import Preprocess, to_size
from oodbench.errors import DataNotFoundError, UserInputError

_HASH_ROWS = 4096  # rows hashed per step: bounded memory for on-disk sets


class TensorSource(ImageSource):
    """Items x[i] of an image tensor (or `oodbench.data.ondisk.ImagesOnDisk`) with labels y.
    The fingerprint hashes content only: the same bytes in memory or in an .npz are one set."""

    kind = "tensor"

    def __init__(self, x: Any, y: Any = None, *, pre: Preprocess, name: str) -> None:
        if getattr(x, "ndim", 0) != 4 or x.shape[1] not in (1, 3):
            raise UserInputError(
                f"{name}: images must be (N, C, H, W) with C = 1 or 3; got {tuple(x.shape)}."
            )
        self.x = x
        self.index = np.arange(len(x), dtype=np.int64)  # rows of x this source covers
        self.labels = (
            np.full(len(x), NO_LABEL, dtype=np.int64) if y is None else np.asarray(y, dtype=np.int64).copy()
        )
        if len(self.labels) != len(x):
            raise UserInputError(f"{name}: {len(x)} images but {len(self.labels)} labels.")
        self.preprocess = pre
        self.name = name

    @classmethod
    def from_labeled(cls, images, pre: Preprocess) -> TensorSource:
        """A source over `oodbench.data.spec.LabeledImages` (x may be uint8, float or on disk)."""
        return cls(images.x, images.y, pre=pre, name=images.name)

    def _decode(self, i: int) -> torch.Tensor:
        from oodbench.data.convert import convert_channels, to_shape

        row = int(self.index[i])
        x = self.x[row : row + 1]
        shape = self.preprocess.shape
        if x.dtype == torch.uint8:
            if shape is not None and tuple(x.shape[1:]) != shape:
                return to_size(x[0], self.preprocess, name=self.name)
            if shape is None and x.shape[1] != self.preprocess.channels:
                return to_size(x[0], Preprocess(self.preprocess.channels, tuple(x.shape[2:])), name=self.name)
            return x[0].clone()  # not a view: a worker sends it through shared memory on its own
        x = x.float()
        if shape is not None:
            return to_shape(x, shape, name=self.name)[0]
        return convert_channels(x, self.preprocess.channels, name=self.name)[0]

    def _select(self, index: np.ndarray) -> TensorSource:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.index = self.index[index]
        new.labels = self.labels[index]
        return new

    def _content_key(self) -> bytes:
        """sha256 of the covered rows' bytes (dtype and shape included), read in blocks."""
        h = hashlib.sha256(f"{self.x.dtype};{tuple(self.x.shape[1:])}".encode())
        h.update(self.index.astype("<i8").tobytes())
        contiguous = len(self.index) == len(self.x) and bool((self.index == np.arange(len(self.x))).all())
        for start in range(0, len(self.index), _HASH_ROWS):
            if contiguous:  # slices: ImagesOnDisk reads them in one go
                block = self.x[start : start + _HASH_ROWS]
            else:
                block = self.x[torch.as_tensor(self.index[start : start + _HASH_ROWS])]
            h.update(np.ascontiguousarray(torch.as_tensor(block).numpy()).tobytes())
        return h.digest()


class NpzSource(TensorSource):
    """A user's .npz: images under 'x' or 'images' ((N, H, W), (N, H, W, C) or (N, C, H, W);
    uint8 or float in [0, 1]), labels under 'y' or 'labels' if present. Checked as `--out npz:`
    files are (oodbench.data.custom.check_npz_header: no forged sizes, no pickles)."""

    def __init__(self, path: Path, pre: Preprocess, *, name: str | None = None) -> None:
        from oodbench.data.custom import _KEYS, check_npz_header, read_npz_images
        from oodbench.data.ondisk import open_npz_member

        path = Path(path).expanduser()
        if not path.is_file():
            raise DataNotFoundError(f"File {path} not found; give an existing .npz file.")
        check_npz_header(path)
        with np.load(path, allow_pickle=False) as archive:
            key = next(k for k in _KEYS if k in archive.files)
            label_key = next((k for k in ("y", "labels") if k in archive.files), None)
            y = None if label_key is None else archive[label_key]
        x = open_npz_member(path, key)
        if x is None:  # compressed, float or channels-last: into memory (uint8 kept)
            x = read_npz_images(path, keep_uint8=True)
        if y is not None and (y.ndim != 1 or not np.issubdtype(y.dtype, np.integer)):
            raise UserInputError(f"{path}: labels {label_key!r} must be a 1-D integer array.")
        self.path = path
        super().__init__(x, y, pre=pre, name=name or path.stem)
