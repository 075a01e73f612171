"""Data sets and in/out suites: registries, loaders, the embedded offline suite, custom OOD data.

    from oodbench.data import load_suite, load_dataset, DATASETS, SUITES
    data = load_suite("mnist")            # the embedded suite: no download, loads in milliseconds
    cifar = load_dataset("cifar10", "test", data_dir="~/data", download=True)

Modules: spec (DatasetSpec, LabeledImages, Suite, SuiteData, registries, load_dataset),
torchvision_formats (svhn, cifar10, cifar100, mnist), image_folders (ODIN's folders, image
folders), noise (gaussian, uniform), embedded (vendored arrays), suites (the suites,
load_suite), custom (folder:/npz: OOD sets), convert (the shape conversion rule), download.
"""

from oodbench.data import embedded, image_folders, noise, torchvision_formats  # noqa: F401  (register specs)
from oodbench.data.convert import to_shape
from oodbench.data.custom import load_custom_out, load_custom_outs
from oodbench.data.spec import (
    DATASETS,
    SUITES,
    DatasetSpec,
    LabeledImages,
    Suite,
    SuiteData,
    load_dataset,
)
from oodbench.data.suites import DEFAULT_SUITE, load_suite

__all__ = [
    "DATASETS",
    "DEFAULT_SUITE",
    "SUITES",
    "DatasetSpec",
    "LabeledImages",
    "Suite",
    "SuiteData",
    "load_custom_out",
    "load_custom_outs",
    "load_dataset",
    "load_suite",
    "to_shape",
]
