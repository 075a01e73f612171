"""Streaming data sources: map-style Datasets holding paths or indices, decoded one item at a time.

    from oodbench.data.sources import ClassFolderSource, Preprocess, make_loader, select
    pre = Preprocess(channels=3, size=(224, 224), resize=256, crop=(224, 224))
    source = select(ClassFolderSource("~/imagenet/val", pre), 5000, seed=0)  # nothing read yet
    for batch in make_loader(source, batch_size=256, workers=None):
        scores = score(as_float(batch.x.to(device)))

Modules: transform (Preprocess, decode), base (ImageSource, Item, select, fingerprints), files
(ImageFolderSource, ClassFolderSource, ImageListSource), tensors (TensorSource, NpzSource),
loader (make_loader, precheck, Batch).
"""

from oodbench.data.sources.base import NO_LABEL, ImageSource, Item, select
from oodbench.data.sources.files import (
    ClassFolderSource,
    FileSource,
    ImageFolderSource,
    ImageListSource,
    read_image_list,
)
from oodbench.data.sources.loader import (
    BadFilesWarning,
    Batch,
    ImageLoader,
    default_workers,
    make_loader,
    precheck,
)
from oodbench.data.sources.tensors import NpzSource, TensorSource
from oodbench.data.sources.transform import Preprocess, decode

__all__ = [
    "NO_LABEL",
    "BadFilesWarning",
    "Batch",
    "ClassFolderSource",
    "FileSource",
    "ImageFolderSource",
    "ImageListSource",
    "ImageLoader",
    "ImageSource",
    "Item",
    "NpzSource",
    "Preprocess",
    "TensorSource",
    "decode",
    "default_workers",
    "make_loader",
    "precheck",
    "read_image_list",
    "select",
]
