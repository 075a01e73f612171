"""SVHN, CIFAR-10, CIFAR-100 and MNIST, read from their published files (torchvision's layouts).

Expected files under the data root (the layouts torchvision's own downloaders produce):

- svhn:     <root>/svhn/train_32x32.mat, test_32x32.mat (MATLAB v5: X uint8 (32, 32, 3, N),
            y (N, 1) with label 10 for the digit 0)  http://ufldl.stanford.edu/housenumbers/
            Also found directly in <root> (where torchvision.datasets.SVHN(root) puts them).
- cifar10:  <root>/cifar-10-batches-py/data_batch_1..5, test_batch  (unpacked cifar-10-python.tar.gz)
- cifar100: <root>/cifar-100-python/train, test                     (unpacked cifar-100-python.tar.gz)
- mnist:    <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, gzip'd (.gz) or not

`--download` fetches them with the URLs and MD5 checksums recorded in torchvision; a CIFAR
archive already in the data root (or in its folder) is checked against that MD5 and unpacked.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from oodbench.data import download as dl
from oodbench.data.convert import uint8_tensor
from oodbench.data.spec import DATASETS, DatasetSpec, LabeledImages, LoadRequest, one_line
from oodbench.errors import DataNotFoundError, UserInputError

if TYPE_CHECKING:
    import torch

_ENV_HINT = "or set --data-dir / OODBENCH_DATA to a folder that has it"


def _missing(title: str, filename: str, folder: Path | str, source: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"{title} file {filename} not found in {folder}. Download it with `oodbench run --download ...` "
        f"or from {source} and put it there, {_ENV_HINT}."
    )


def _corrupt(title: str, path: Path, what: str, error: BaseException | str) -> UserInputError:
    reason = error if isinstance(error, str) else one_line(error)
    return UserInputError(
        f"{title} file {path} is not a valid {what} ({reason}); delete it and download it again."
    )


def _labels(values: np.ndarray, num_classes: int, title: str, path: Path) -> torch.Tensor:
    import torch
    labels = np.asarray(values).reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise _corrupt(title, path, "label file", f"labels outside 0..{num_classes - 1}")
    return torch.from_numpy(labels)


# ----------------------------------------------------------------------------------------------- SVHN
_SVHN_SOURCE = "http://ufldl.stanford.edu/housenumbers/"


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """SVHN's cropped-digit .mat -> (uint8 (N, 3, 32, 32), int64 (N,)), label 10 mapped to 0."""
    import scipy.io
    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except Exception as error:  # scipy raises ValueError, MatReadError, OSError, ... on bad files
        raise _corrupt("SVHN", path, "MATLAB file", error) from None
    images, labels = mat.get("X"), mat.get("y")
    if images is None or labels is None:
        raise _corrupt("SVHN", path, "SVHN file", "variables X and y missing")
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.dtype != np.uint8:
        raise _corrupt(
            "SVHN", path, "SVHN file", f"X has shape {images.shape} {images.dtype}, not 32x32x3xN uint8"
        )
    if labels.size != images.shape[3]:
        raise _corrupt("SVHN", path, "SVHN file", f"{images.shape[3]} images but {labels.size} labels")
    labels = labels.reshape(-1).astype(np.int64)
    labels[labels == 10] = 0  # SVHN stores the digit 0 as class 10
    # (H, W, C, N) -> (N, C, H, W)
    return np.transpose(images, (3, 2, 0, 1)), labels


def _load_svhn(spec: DatasetSpec, req: LoadRequest) -> LabeledImages:
    from torchvision.datasets import SVHN

    url, filename, md5 = SVHN.split_list[req.split]
    # <root>/svhn/ first, then <root>/ itself (torchvision's layout).
    path = next((p for p in (req.folder / filename, req.folder.parent / filename) if p.is_file()), None)
    if path is None:
        if not req.download:
            raise _missing("SVHN", filename, f"{req.folder} or {req.folder.parent}", _SVHN_SOURCE)
        path = req.folder / filename
        dl.fetch_file([url], path, md5=md5)
    images, labels = read_svhn_mat(path)
    return LabeledImages(uint8_tensor(images), _labels(labels, 10, "SVHN", path), spec.name, req.split)


# ---------------------------------------------------------------------------------------------- CIFAR
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR's python batches contain (dicts, lists, numpy arrays).

    CIFAR is published as Python pickles, so reading it needs pickle; refusing every other class
    means a tampered batch file cannot run code on load.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: Path, label_key: str, title: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python batch -> (uint8 (N, 3, 32, 32), int64 (N,))."""
    try:
        with open(path, "rb") as handle:
            # The batches were pickled by Python 2; latin1 maps their byte strings one to one.
            batch = _ArrayUnpickler(handle, encoding="latin1").load()
    except Exception as error:
        raise _corrupt(title, path, "CIFAR python batch", error) from None
    if not isinstance(batch, dict):
        raise _corrupt(title, path, "CIFAR python batch", "not a dictionary")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or label_key not in batch:
        raise _corrupt(title, path, "CIFAR python batch", f"keys 'data' and {label_key!r} missing")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise _corrupt(title, path, "CIFAR python batch", f"data has shape {data.shape} {data.dtype}")
    # Rows hold the 1024 red, then green, then blue values of a 32x32 image in row-major order.
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


_CIFAR = {
    # name: (title, folder, files per split, label key, classes, torchvision class name)
    "cifar10": (
        "CIFAR-10",
        "cifar-10-batches-py",
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        "labels",
        10,
        "CIFAR10",
    ),
    "cifar100": (
        "CIFAR-100",
        "cifar-100-python",
        {"train": ("train",), "test": ("test",)},
        "fine_labels",
        100,
        "CIFAR100",
    ),
}


def _load_cifar(spec: DatasetSpec, req: LoadRequest) -> LabeledImages:
    import torchvision.datasets

    title, folder_name, files, label_key, classes, tv_class = _CIFAR[spec.name]
    tv = getattr(torchvision.datasets, tv_class)
    missing = [f for f in files[req.split] if not (req.folder / f).is_file()]
    if missing and req.download:
        dl.fetch_archive(
            tv.url,
            tv.filename,
            md5=tv.tgz_md5,
            root=req.folder.parent,
            members=(folder_name,),
            local=(req.folder.parent / tv.filename, req.folder / tv.filename),
        )
        missing = [f for f in files[req.split] if not (req.folder / f).is_file()]
    if missing:
        raise DataNotFoundError(
            f"{title} file {missing[0]} not found in {req.folder}. "
            f"Download it with `oodbench run --download ...` "
            f"or get {tv.filename} from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it in "
            f"{req.folder.parent}, {_ENV_HINT}."
        )
    parts = [read_cifar_batch(req.folder / f, label_key, title) for f in files[req.split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return LabeledImages(
        uint8_tensor(images), _labels(labels, classes, title, req.folder), spec.name, req.split
    )


# ---------------------------------------------------------------------------------------------- MNIST
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def mnist_missing(folder: Path) -> list[str]:
    """The MNIST IDX files missing from `folder` (each may be gzip'd or not)."""
    stems = [s for pair in _MNIST_FILES.values() for s in pair]
    return [f"{s}[.gz]" for s in stems if not ((folder / s).is_file() or (folder / f"{s}.gz").is_file())]


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format; gzip'd if the name ends in .gz) -> uint8 array.

    Layout: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, the
    dimensions as big-endian uint32, then the data.
    """
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise _corrupt("MNIST", path, "IDX file", error) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] == 0:
        raise _corrupt("MNIST", path, "IDX file", "bad header (expected 00 00 08 <dims>)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(dims)):
        raise _corrupt("MNIST", path, "IDX file", f"{len(raw) - header} data bytes for dimensions {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _mnist_file(folder: Path, stem: str, download: bool) -> Path:
    from torchvision.datasets import MNIST

    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    if not download:
        raise _missing("MNIST", f"{stem} (or {stem}.gz)", folder, "https://yann.lecun.com/exdb/mnist/")
    md5 = dict(MNIST.resources)[f"{stem}.gz"]
    dl.fetch_file([mirror + f"{stem}.gz" for mirror in MNIST.mirrors], folder / f"{stem}.gz", md5=md5)
    return folder / f"{stem}.gz"


def _load_mnist(spec: DatasetSpec, req: LoadRequest) -> LabeledImages:
    image_path, label_path = (_mnist_file(req.folder, stem, req.download) for stem in _MNIST_FILES[req.split])
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise _corrupt("MNIST", image_path, "MNIST image file", f"shape {images.shape}, not (N, 28, 28)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise _corrupt(
            "MNIST", label_path, "MNIST label file", f"{labels.size} labels for {len(images)} images"
        )
    return LabeledImages(
        uint8_tensor(images[:, None]), _labels(labels, 10, "MNIST", label_path), spec.name, req.split
    )


# ------------------------------------------------------------------------------------------- registry
DATASETS.add(
    "svhn",
    DatasetSpec(
        name="svhn",
        image_shape=(3, 32, 32),
        num_classes=10,
        mean=(0.4377, 0.4438, 0.4728),
        std=(0.1980, 0.2010, 0.1970),
        source="SVHN cropped digits (Netzer et al. 2011), http://ufldl.stanford.edu/housenumbers/ (no extra)",
        licence="non-commercial use only (per the SVHN web page)",
        splits=("train", "test"),
        loader=_load_svhn,
        files_hint=f"train_32x32.mat, test_32x32.mat in <data root>/svhn or <data root> "
        f"(--download, or {_SVHN_SOURCE})",
        folder="svhn",
        also_in=("",),
        required=(("train", ("train_32x32.mat",)), ("test", ("test_32x32.mat",))),
        sizes=(("train", 73257), ("test", 26032)),
    ),
)
DATASETS.add(
    "cifar10",
    DatasetSpec(
        name="cifar10",
        image_shape=(3, 32, 32),
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        source="CIFAR-10 (Krizhevsky 2009), https://www.cs.toronto.edu/~kriz/cifar.html, python version",
        licence="no licence stated by the authors; cite Krizhevsky 2009",
        splits=("train", "test"),
        loader=_load_cifar,
        files_hint="cifar-10-python.tar.gz unpacked as <data root>/cifar-10-batches-py (or --download)",
        folder="cifar-10-batches-py",
        required=tuple(_CIFAR["cifar10"][2].items()),
        sizes=(("train", 50000), ("test", 10000)),
    ),
)
DATASETS.add(
    "cifar100",
    DatasetSpec(
        name="cifar100",
        image_shape=(3, 32, 32),
        num_classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        source="CIFAR-100 (Krizhevsky 2009), https://www.cs.toronto.edu/~kriz/cifar.html, fine labels",
        licence="no licence stated by the authors; cite Krizhevsky 2009",
        splits=("train", "test"),
        loader=_load_cifar,
        files_hint="cifar-100-python.tar.gz unpacked as <data root>/cifar-100-python (or --download)",
        folder="cifar-100-python",
        required=tuple(_CIFAR["cifar100"][2].items()),
        sizes=(("train", 50000), ("test", 10000)),
    ),
)
DATASETS.add(
    "mnist",
    DatasetSpec(
        name="mnist",
        image_shape=(1, 28, 28),
        num_classes=10,
        mean=(0.1307,),
        std=(0.3081,),
        source="MNIST (LeCun, Cortes, Burges), https://yann.lecun.com/exdb/mnist/, full 60,000 / 10,000",
        licence="CC BY-SA 3.0 (per Yann LeCun's MNIST page)",
        splits=("train", "test"),
        loader=_load_mnist,
        files_hint="{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in <data root>/MNIST/raw (--download)",
        folder="MNIST/raw",
        missing=mnist_missing,  # either the .gz or the unpacked files will do
        sizes=(("train", 60000), ("test", 10000)),
    ),
)
