"""Data set and suite specifications, their registries, and `load_dataset`.

A `DatasetSpec` says what a data set is (shape, classes, source, licence, splits) and where its
files live under the data root; its `loader` reads them. The data root is `--data-dir`, else
$OODBENCH_DATA, else <cache>/data (see oodbench.paths.data_dir). Nothing is downloaded unless
`download=True` is passed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oodbench import errors, paths
from oodbench.data.convert import as_float, to_shape
from oodbench.errors import UserInputError
from oodbench.registry import Registry

if TYPE_CHECKING:
    import torch

Shape = tuple[int, int, int]

# Where the data of each kind of spec comes from (shown by `oodbench list datasets`).
KIND_FILES = "files"  # files under the data root, in their published on-disk format
KIND_EMBEDDED = "embedded"  # small arrays vendored inside the oodbench package
KIND_GENERATED = "generated"  # made on the fly from a seed (noise)


@dataclass
class LabeledImages:
    """Images x: (N, C, H, W), uint8 as stored or float32 in [0, 1] (read batches through
    `oodbench.data.convert.as_float`); labels y: int64 (N,) or None (OOD sets)."""

    x: torch.Tensor
    y: torch.Tensor | None
    name: str
    split: str = ""

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray | torch.Tensor) -> LabeledImages:
        import torch

        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return LabeledImages(self.x[index], None if self.y is None else self.y[index], self.name, self.split)


@dataclass(frozen=True)
class LoadRequest:
    """What a spec's loader is asked for. `folder` is data root / spec.folder (None if no files)."""

    split: str
    folder: Path | None
    download: bool
    shape: Shape | None
    seed: int
    n: int | None
    progress: bool = False  # a progress bar while reading large sets (oodbench.progress)


@dataclass(frozen=True)
class DatasetSpec:
    """One data set. `loader(spec, request)` returns LabeledImages in the native `image_shape`
    (generated sets: in `request.shape`). `files_hint` says which files, where, and how to get them.
    """

    name: str
    image_shape: Shape
    num_classes: int | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    source: str
    licence: str
    splits: tuple[str, ...]
    loader: Callable[[DatasetSpec, LoadRequest], LabeledImages] = field(repr=False)
    files_hint: str
    kind: str = KIND_FILES
    folder: str | None = None  # sub-folder of the data root holding the files
    # (split, paths relative to `folder` that split reads): every file that must exist.
    required: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # missing(folder) -> the names of the missing files (replaces `required`), e.g. for ODIN's
    # folders (any image below the folder) and MNIST (.gz or unpacked).
    missing: Callable[[Path], list[str]] | None = field(default=None, repr=False)
    # Other sub-folders of the data root where a `required` file is also found ("" = the root
    # itself: torchvision.datasets.SVHN(root) stores train_32x32.mat directly in root).
    also_in: tuple[str, ...] = ()
    sizes: tuple[tuple[str, int], ...] = ()  # (split, number of images) of the published data

    def location(self, data_dir: str | os.PathLike | None = None) -> str:
        """Where oodbench looks for this data set's files (or where its data come from)."""
        if self.kind == KIND_EMBEDDED:
            return str(paths.EMBEDDED_DIR)
        if self.kind == KIND_GENERATED:
            return "generated from a seed"
        return str(paths.data_dir(data_dir) / (self.folder or ""))

    def folders(self, data_dir: str | os.PathLike | None = None) -> list[Path]:
        """Every folder oodbench looks in for this set's files, in order (empty if no files)."""
        if self.kind != KIND_FILES:
            return []
        root = paths.data_dir(data_dir)
        return [root / (self.folder or ""), *(root / extra for extra in self.also_in)]

    def find(self, rel: str, data_dir: str | os.PathLike | None = None) -> Path | None:
        """The first existing file `rel` among `folders()`, or None."""
        return next((f / rel for f in self.folders(data_dir) if (f / rel).is_file()), None)

    def missing_files(
        self, data_dir: str | os.PathLike | None = None, splits: Iterable[str] | None = None
    ) -> list[str]:
        """The names of the files that `splits` (default: all) read and that are not there
        (files, not folders)."""
        if self.kind != KIND_FILES:
            return []
        if self.missing is not None:
            return self.missing(self.folders(data_dir)[0])
        wanted = set(self.splits if splits is None else splits)
        needed = [rel for split, files in self.required if split in wanted for rel in files]
        return [rel for rel in dict.fromkeys(needed) if self.find(rel, data_dir) is None]

    def present(self, data_dir: str | os.PathLike | None = None) -> bool:
        """Whether the files this spec needs exist (always True for embedded and generated sets)."""
        return not self.missing_files(data_dir)

    def size(self, split: str) -> int | None:
        return dict(self.sizes).get(split)


@dataclass(frozen=True)
class Suite:
    """An in-distribution data set with its OOD test sets, seen OOD training set and validation data.

    Splits used: in-dist train/test, `seen_ood`'s train split (its only split if it has no
    train split), OOD test sets' test split, `val_ood`'s val split (else its test split). In-dist
    validation: the in-dist set's own "val" split when `val_in_from == "val"`; otherwise
    `val_in_size` images held out of the in-dist train split (stratified, fixed seed) and removed
    from training. `val_ood` never appears in `out_datasets`, so validation and test are disjoint.
    """

    name: str
    in_dataset: str
    out_datasets: tuple[str, ...]
    seen_ood: str
    val_ood: str
    recipe: str
    description: str
    val_in_from: str = "train"  # "train" (held out of train) or "val" (the data set's val split)
    val_in_size: int = 1000
    val_ood_size: int = 1000  # cap on the validation OOD images (first N after a fixed shuffle)

    @property
    def validation(self) -> str:
        """Human-readable description of the tuning data (recorded with every result)."""
        if self.val_in_from == "val":
            size = DATASETS.get(self.in_dataset).size("val") if self.in_dataset in DATASETS else None
            in_part = f"{self.in_dataset} val split" + (f" ({size})" if size else "")
        else:
            in_part = (
                f"{self.in_dataset} train hold-out ({self.val_in_size}, stratified, removed from training)"
            )
        return f"{in_part} + {self.val_ood} (up to {self.val_ood_size})"


@dataclass
class SuiteData:
    """Everything a run needs, converted to `spec.image_shape`. `test_out` keeps the suite's order.

    Loaded for training only (`load_suite(..., training_only=True)`), just `train` and
    `seen_ood` are filled (and `val_in` when it is held out of train): the rest is None / {}.
    """

    suite: Suite
    spec: DatasetSpec
    train: LabeledImages
    val_in: LabeledImages | None
    test_in: LabeledImages | None
    seen_ood: LabeledImages
    val_ood: LabeledImages | None
    test_out: dict[str, LabeledImages]
    suite_sha256: str = ""  # a suite file's sha256 (oodbench.data.streamed); "" for built-in suites
    # A suite file's image lists: {set name: {"sha256", "pinned", "accepted"}} (SuiteFile.verify_lists).
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)
    # --full-spectrum: the covariate-shifted ID test sets (labelled), scored on the ID side.
    covariate_shift: dict[str, LabeledImages] = field(default_factory=dict)
    # A suite file's [tuning] grids: {detector: {parameter: values}} (oodbench.detectors.suite_grids).
    tuning_grids: dict[str, dict[str, tuple]] = field(default_factory=dict)

    @property
    def validation_sets(self) -> str:
        """'<ID val> (n) + <OOD val> (m)': the data hyperparameters are tuned on."""
        return (
            f"{self.suite.in_dataset} {self.val_in.split} ({len(self.val_in)})"
            f" + {self.suite.val_ood} ({len(self.val_ood)})"
        )

    @property
    def tuning(self) -> str:
        """The value for a result row's `tuning` field when a detector was tuned on this data."""
        return f"validation split: {self.validation_sets}"

    def grid_tuning(self, grid: str) -> str:
        """A row's `tuning` when a suite grid was searched: `grid` lists every point's AUROC."""
        return f"grid on validation: {self.validation_sets}; {grid}"


DATASETS: Registry[DatasetSpec] = Registry("dataset")
SUITES: Registry[Suite] = Registry("suite")


def load_dataset(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    shape: Shape | None = None,
    seed: int = 0,
    n: int | None = None,
    progress: bool = False,
) -> LabeledImages:
    """Load one split of a registered data set as (N, C, H, W) images.

    Images stored as uint8 stay uint8 (convert batches with `oodbench.data.convert.as_float`);
    converted, generated or float-stored sets are float32 in [0, 1].

    `shape` converts to (C, H, W) by oodbench.data.convert's rule (noise is generated at it).
    `seed` only matters for generated sets. `n` caps the number of images (the first n after a
    fixed shuffle; generated sets: exactly n, default 10,000). `progress`: a bar on stderr while
    a large image folder is read.
    """
    spec = DATASETS.get(name)
    if split not in spec.splits:
        raise UserInputError(
            f"Data set {name!r} has no split {split!r}. Available: {', '.join(spec.splits)}."
        )
    if n is not None and (not isinstance(n, int) or n < 1):
        raise UserInputError(f"The number of images must be an integer >= 1. Got {n!r} instead.")
    if shape is not None:
        shape = check_shape(shape)
    folder = paths.data_dir(data_dir) / spec.folder if spec.kind == KIND_FILES and spec.folder else None
    request = LoadRequest(
        split=split, folder=folder, download=download, shape=shape, seed=seed, n=n, progress=progress
    )
    images = spec.loader(spec, request)
    if n is not None:
        images = cap(images, n)
    if shape is not None and tuple(images.x.shape[1:]) != tuple(shape):
        images.x = to_shape(as_float(images.x), shape, name=f"{name} {split}")
    return images


def cap(images: LabeledImages, n: int | None, seed: int = 0) -> LabeledImages:
    """At most `n` images: the first n of a fixed shuffle (RandomState(seed)), kept in file order."""
    if n is None or len(images) <= n:
        return images
    index = np.sort(np.random.RandomState(seed).permutation(len(images))[:n])
    return images.subset(index)


def stratified_holdout(y: torch.Tensor, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) with `size` held out, in proportion to each class.

    Per-class counts use the largest-remainder rule; members are drawn with numpy's legacy
    RandomState (a frozen stream), so the split is the same on every machine and numpy version.
    """
    labels = np.asarray(y)
    if not 0 < size < len(labels):
        raise UserInputError(f"A hold-out of {size} images needs more than {size} images; got {len(labels)}.")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / len(labels)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: size - take.sum()]:
        take[i] += 1
    rng = np.random.RandomState(seed)
    held = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)]
    held_out = np.sort(np.concatenate(held))
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


def one_line(error: BaseException) -> str:
    """The first line of an exception's message (messages from parsers can span lines)."""
    return errors.one_line(error, max_chars=200)


def check_shape(shape) -> Shape:
    try:
        c, h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise UserInputError(f"A shape must be (channels, height, width). Got {shape!r} instead.") from None
    if c not in (1, 3) or h < 1 or w < 1:
        raise UserInputError(
            f"A shape must be (1 or 3, height >= 1, width >= 1). Got {tuple(shape)!r} instead."
        )
    return c, h, w
