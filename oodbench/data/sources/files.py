"""Sources over image files: a folder, a folder of class sub-folders, an image list file.

    ImageFolderSource(root, pre, recursive=True)   every image below root (labels -1), sorted by path
    ClassFolderSource(root, pre)                   root/<class>/**/image; classes = sorted folder names
                                                   (torchvision.datasets.ImageFolder's order)
    ImageListSource(list_file, root, pre)          OpenOOD v1.5 lists: "relative/path label" per line

They hold relative paths and labels only; `source[i]` opens one file (transform.decode).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from oodbench.data.image_folders import IMAGE_SUFFIXES, list_image_names
from oodbench.data.sources.base import NO_LABEL, ImageSource
from oodbench.data.sources.transform import Preprocess, decode
from oodbench.errors import DataNotFoundError, UserInputError


class FileSource(ImageSource):
    """Items are files `root / rel[i]` (posix relative paths) with labels."""

    kind = "files"

    def __init__(self, root: Path, rel: list[str], labels: np.ndarray, pre: Preprocess, *, name: str) -> None:
        self.root = Path(root)
        self.rel = list(rel)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.preprocess = pre
        self.name = name

    def path(self, i: int) -> Path:
        return self.root / self.rel[i]

    def item_name(self, i: int) -> str:
        return self.rel[i]

    def _decode(self, i: int) -> torch.Tensor:
        return decode(self.path(i), self.preprocess)

    def _select(self, index: np.ndarray) -> FileSource:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.rel = [self.rel[i] for i in index]
        new.labels = self.labels[index]
        return new

    def _content_key(self) -> bytes:
        """Sorted (path, size, mtime_ns) of every file: a file replaced or touched changes it."""
        return _listing(self.root, self.rel)


def _listing(root: Path, rel: list[str]) -> bytes:
    h = hashlib.sha256()
    for r in sorted(rel):
        try:
            st = os.stat(root / r)
            h.update(f"{r}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{r}\0missing\n".encode())  # the loader reports it; the set still differs
    return h.digest()


def _require_folder(root: Path, what: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"{what} folder {root} not found; give an existing folder.")
    return root


class ImageFolderSource(FileSource):
    """Every image file below `root` (any depth with `recursive`, else only root's own files),
    hidden entries skipped, sorted by relative path; no labels."""

    def __init__(
        self, root: Path, pre: Preprocess, *, recursive: bool = True, name: str | None = None
    ) -> None:
        root = _require_folder(root, "Image")
        if recursive:
            rel = list_image_names(root)
        else:
            rel = sorted(
                e.name
                for e in os.scandir(root)
                if e.is_file()
                and not e.name.startswith(".")
                and Path(e.name).suffix.lower() in IMAGE_SUFFIXES
            )
        if not rel:
            raise UserInputError(
                f"Folder {root} has no images; looked for {', '.join(IMAGE_SUFFIXES)} files"
                + (", also in sub-folders." if recursive else " (not in sub-folders: use recursive=True).")
            )
        super().__init__(root, rel, np.full(len(rel), NO_LABEL), pre, name=name or root.name)


class ClassFolderSource(FileSource):
    """root/<class>/... : one class per sub-folder, labels 0..K-1 in sorted folder-name order
    (as torchvision.datasets.ImageFolder: `sorted(entry.name for entry in os.scandir(root) if
    entry.is_dir())`), images below each class folder at any depth. `classes` lists the names."""

    def __init__(self, root: Path, pre: Preprocess, *, name: str | None = None) -> None:
        root = _require_folder(root, "Class")
        self.classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
        if not self.classes:
            raise UserInputError(
                f"Folder {root} has no class sub-folders; put each class's images in root/<class name>/."
            )
        rel, labels, empty = [], [], []
        for label, cls in enumerate(self.classes):
            files = list_image_names(root / cls)
            if not files:
                empty.append(cls)
            rel += [f"{cls}/{name}" for name in files]
            labels += [label] * len(files)
        if empty:
            raise UserInputError(
                f"Class folders without images in {root}: {', '.join(empty[:5])}"
                + (f" (and {len(empty) - 5} more)" if len(empty) > 5 else "")
                + "; remove them or add images."
            )
        super().__init__(root, rel, np.asarray(labels), pre, name=name or root.name)


class ImageListSource(FileSource):
    """An image list file (OpenOOD v1.5 `benchmark_imglist/*.txt`): one image per line,
    "relative/path label" (the label an integer, -1 for none; the path may contain spaces, the
    label is the last field) or "relative/path" alone (no label). Blank lines and lines starting
    with # are skipped. Paths are relative to `root` and may not leave it. Every bad line is
    reported in one message with its line number."""

    kind = "list"

    def __init__(self, list_file: Path, root: Path, pre: Preprocess, *, name: str | None = None) -> None:
        self.list_file = Path(list_file).expanduser()
        if not self.list_file.is_file():
            raise DataNotFoundError(f"Image list {self.list_file} not found; give an existing list file.")
        root = _require_folder(root, "Image root")
        rel, labels = read_image_list(self.list_file)
        self.list_sha256 = hashlib.sha256(self.list_file.read_bytes()).hexdigest()
        super().__init__(root, rel, np.asarray(labels), pre, name=name or self.list_file.stem)

    def _content_key(self) -> bytes:
        # The list's own bytes, plus the listing of the files it names under root.
        return self.list_sha256.encode() + _listing(self.root, self.rel)


def read_image_list(list_file: Path) -> tuple[list[str], list[int]]:
    """(relative paths, labels) of an image list file; errors: one UserInputError, every bad line."""
    rel, labels, bad = [], [], []
    try:
        text = Path(list_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(
            f"Image list {list_file} could not be read ({error}); give a UTF-8 text file."
        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        label = NO_LABEL
        path = line
        if len(parts) == 2 and _is_int(parts[1]):
            path, label = parts[0], int(parts[1])
        if label < NO_LABEL:
            bad.append(f"line {number}: label {label} (labels are >= 0, or -1 for none)")
            continue
        posix = Path(path).as_posix()
        if Path(path).is_absolute() or ".." in Path(path).parts:
            bad.append(f"line {number}: {path!r} is not a path inside the root")
            continue
        if Path(posix).suffix.lower() not in IMAGE_SUFFIXES:
            bad.append(f"line {number}: {path!r} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
            continue
        rel.append(posix)
        labels.append(label)
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise UserInputError(
            f"Image list {list_file} has {len(bad)} bad line(s): {shown}. "
            "Write one 'relative/path label' per line."
        )
    if not rel:
        raise UserInputError(
            f"Image list {list_file} names no images; write one 'relative/path label' per line."
        )
    return rel, labels


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
