"""The interface every source shares, `select` (pick N items before reading) and fingerprints.

A source is a map-style `torch.utils.data.Dataset` that holds paths or indices, never decoded
images: `source[i]` decodes item i and returns `Item(image, label, index, error)`; a file that
cannot be read gives `image=None` and the one-line `error`, so the loader can skip and count it
(or refuse it in strict mode) instead of a worker dying. Labels are -1 where a set has none
(OOD sets; OpenOOD's list files also write -1).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from oodbench.data.sources.transform import Preprocess
from oodbench.errors import UserInputError

NO_LABEL = -1


class Item(NamedTuple):
    """One decoded item: uint8 (C, H, W) image (None if unreadable), label (-1: none), index."""

    image: torch.Tensor | None
    label: int
    index: int
    error: str = ""


class ImageSource(Dataset):
    """Base class. Subclasses set `name`, `labels` (int64 array, -1 = none) and implement
    `_decode(i)`, `_select(index)` and `_content_key()`."""

    name: str
    labels: np.ndarray
    preprocess: Preprocess
    kind: str = "source"  # part of the fingerprint: "files", "list", "tensor"
    # Where the set came from, for rows (e.g. a `--out` set's "folder:/abs/path (native HxW ...)").
    origin: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Item:
        i = int(i)
        try:
            image = self._decode(i)
        except UserInputError as error:
            return Item(None, int(self.labels[i]), i, str(error))
        return Item(image, int(self.labels[i]), i, "")

    @property
    def labelled(self) -> bool:
        """Whether any item has a class label (>= 0)."""
        return bool(len(self.labels)) and bool((self.labels >= 0).any())

    def subset(self, index: np.ndarray) -> ImageSource:
        """The same kind of source over items `index` (in that order); nothing is read."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"index out of range for a source of {len(self)} items")
        return self._select(index)

    def item_name(self, i: int) -> str:
        """How item i is named in warnings and errors (a relative path, or "name[i]")."""
        return f"{self.name}[{i}]"

    def fingerprint(self) -> str:
        """sha256 hex of what the items are: the content key of the subclass (file list with sizes
        and mtimes, a list file's sha256, a tensor's bytes), the labels and the preprocessing."""
        h = hashlib.sha256()
        h.update(self.kind.encode())
        h.update(self._content_key())
        h.update(np.ascontiguousarray(self.labels, dtype="<i8").tobytes())
        h.update(self.preprocess.key().encode())
        return h.hexdigest()

    def _decode(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def _select(self, index: np.ndarray) -> ImageSource:
        raise NotImplementedError

    def _content_key(self) -> bytes:
        raise NotImplementedError


def select(source: ImageSource, n: int | None, seed: int = 0, *, stratified: bool = True) -> ImageSource:
    """At most `n` items of `source`, chosen from its item list BEFORE anything is read.

    Labelled sources with `stratified`: per-class counts in proportion (largest remainder) by
    `oodbench.data.spec.stratified_holdout`, the rule of today's `--fit-limit` / `--train-limit`;
    otherwise the first n of a fixed shuffle (`numpy.random.RandomState(seed)`), the rule of
    `oodbench.data.spec.cap` (`--limit`). Both keep file order and use numpy's legacy stream, so
    they pick exactly the images the in-memory path picks from the same list. Items labelled -1
    in a labelled source form their own group.
    """
    from oodbench.data.spec import stratified_holdout

    if n is None or len(source) <= n:
        return source
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserInputError(f"The number of images must be an integer >= 1. Got {n!r} instead.")
    if stratified and source.labelled:
        _, chosen = stratified_holdout(torch.from_numpy(source.labels), n, seed=seed)
    else:
        chosen = np.sort(np.random.RandomState(seed).permutation(len(source))[:n])
    return source.subset(chosen)
