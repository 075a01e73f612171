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

import importlib
from typing import Any

# Imported on first use: suite files (oodbench.data.suite_file) need only `transform`, and
# `oodbench list suites` must not import torch (tests/test_cli_startup.py).
_EXPORTS = {
    "NO_LABEL": "base",
    "ImageSource": "base",
    "Item": "base",
    "select": "base",
    "ClassFolderSource": "files",
    "FileSource": "files",
    "ImageFolderSource": "files",
    "ImageListSource": "files",
    "read_image_list": "files",
    "BadFilesWarning": "loader",
    "Batch": "loader",
    "ImageLoader": "loader",
    "default_workers": "loader",
    "make_loader": "loader",
    "precheck": "loader",
    "refuse_bad": "loader",
    "scan_headers": "loader",
    "NpzSource": "tensors",
    "TensorSource": "tensors",
    "Preprocess": "transform",
    "decode": "transform",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'oodbench.data.sources' has no attribute {name!r}")
    return getattr(importlib.import_module(f"oodbench.data.sources.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
