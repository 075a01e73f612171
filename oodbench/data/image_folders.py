"""Folders of image files: ODIN's released 32x32 OOD sets and custom folders.

ODIN (Liang et al. 2018, https://github.com/facebookresearch/odin) released five OOD test sets
as archives of 32x32 JPEGs. Unpack each in the data root; oodbench reads every image below the
folder the archive creates (sorted by path), so the nested layout inside does not matter:

    <root>/Imagenet/          Imagenet.tar.gz          tinyimagenet_crop    10,000 images
    <root>/Imagenet_resize/   Imagenet_resize.tar.gz   tinyimagenet_resize  10,000 images
    <root>/LSUN/              LSUN.tar.gz              lsun_crop            10,000 images
    <root>/LSUN_resize/       LSUN_resize.tar.gz       lsun_resize          10,000 images
    <root>/iSUN/              iSUN.tar.gz              isun                  8,925 images

`--download` fetches the archives from the Dropbox links in ODIN's README and checks them
against MD5 sums that oodbench did not compute itself: they are the ones recorded by
pytorch-ood (src/pytorch_ood/dataset/img/odin.py) and could not be re-verified offline.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from oodbench.data import download as dl
from oodbench.data.convert import to_shape, uint8_to_float
from oodbench.data.spec import DATASETS, DatasetSpec, LabeledImages, LoadRequest, Shape, one_line
from oodbench.errors import DataNotFoundError, UserInputError
from oodbench.progress import progress_bar

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_images(folder: Path) -> list[Path]:
    """Image files below `folder` (any depth, hidden entries skipped), sorted by relative path."""
    return [folder / rel for rel in list_image_names(folder)]


def list_image_names(folder: Path) -> list[str]:
    """The relative posix paths of `list_images(folder)`, in its order.

    os.scandir with plain strings: pathlib's rglob + relative_to cost ~25 us per file (2.4 s for
    100,000 files, measured), which made `--limit` on a large folder slow before any image was
    read. Same rules as rglob("*"): symlinked folders are not descended into, a file (or a
    symlink to one) counts, any hidden part ("." prefix) is skipped.
    """
    found: list[str] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        with os.scandir(os.path.join(folder, prefix) if prefix else folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append(rel + "/")
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                    found.append(rel)
    return sorted(found)


def has_images(folder: Path) -> bool:
    """Whether any image file lies below `folder` (stops at the first one found)."""
    if not folder.is_dir():
        return False
    return any(
        p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
        for p in folder.rglob("*")
    )


def read_image(path: Path) -> np.ndarray:
    """One image file -> uint8 (C, H, W) with C = 1 (grey modes) or 3 (colour; alpha dropped).

    Decoded by `read_pil_image` (the bit-depth rule is there).
    """
    array = np.asarray(read_pil_image(path), dtype=np.uint8)
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def read_pil_image(path: Path) -> Image.Image:
    """One image file -> a loaded PIL image of mode "L" (grey modes) or "RGB" (colour; alpha dropped).

    Grey images with more than 8 bits (see `_wide_grey_to_uint8`): 16-bit ones keep their 8 most
    significant bits; 32-bit integer images in 0..255 or 0..65535 are read as 8- or 16-bit, others
    are scaled from their own min..max; float images in [0, 1] are scaled by 255, others from their
    own min..max. Images over PIL's pixel limit (decompression bombs) are refused.
    """
    try:
        with warnings.catch_warnings():
            # PIL only warns between its limit and twice it; a bomb is refused either way.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                if image.mode.startswith("I;16"):
                    # 16-bit grey: keep the 8 most significant bits.
                    array = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
                    return Image.fromarray(array)  # 2-D uint8: mode "L"
                if image.mode in ("I", "F"):
                    return Image.fromarray(_wide_grey_to_uint8(np.asarray(image), path))
                if image.mode in ("1", "L", "LA"):
                    return image.convert("L")  # a new, loaded image: valid after the file closes
                return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UserInputError(
            f"Image file {path} is too large to decode safely ({one_line(error)}); downscale it, or "
            "remove it if it is not a real image."
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise UserInputError(
            f"Image file {path} could not be read ({one_line(error)}); delete or replace it."
        ) from None


def _wide_grey_to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    """A 32-bit integer ("I") or float ("F") grey image as uint8, by the rule in `read_image`.

    PIL's convert("L") clips these (0..1 floats all become 0, integers above 255 all 255).
    """
    if array.size == 0:
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise UserInputError(f"Image file {path} holds NaN or infinite pixel values; replace it.")
        low, high = float(array.min()), float(array.max())
        if low >= 0.0 and high <= 1.0:
            return np.round(array.astype(np.float64) * 255.0).astype(np.uint8)
    else:
        low, high = int(array.min()), int(array.max())
        if low >= 0 and high <= 255:
            return array.astype(np.uint8)
        if low >= 0 and high <= 65535:
            return (array.astype(np.uint32) >> 8).astype(np.uint8)  # as a 16-bit image
    if high == low:
        return np.zeros(array.shape, dtype=np.uint8)  # a constant image: no range to scale
    scaled = (array.astype(np.float64) - low) / (high - low) * 255.0
    return np.round(scaled).astype(np.uint8)


def read_image_folder(
    folder: Path, *, shape: Shape | None, name: str, keep_uint8: bool = True, progress: bool = False
) -> torch.Tensor:
    """Every image below `folder` as (N, C, H, W): uint8 as stored, or float32 in [0, 1] if converted.

    With `shape`, each image is converted to it by oodbench.data.convert's rule (images of
    different sizes are fine). Without, all images must share one shape. With `keep_uint8`,
    images that need no conversion are returned as uint8 (N, C, H, W). `progress`: a bar on
    stderr while a large folder is read (oodbench.progress).
    """
    import torch

    if not folder.is_dir():
        raise DataNotFoundError(f"Folder {folder} not found ({name}).")
    files = list_images(folder)
    if not files:
        raise UserInputError(
            f"Folder {folder} has no images ({name}); "
            f"looked for {', '.join(IMAGE_SUFFIXES)} files, also in sub-folders."
        )
    shown = progress_bar(
        files, n_images=len(files), desc=f"reading {folder.name}", unit="image", show=progress
    )
    arrays = [read_image(path) for path in shown]
    # Convert same-shaped images together: one batched call per distinct shape.
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, array in enumerate(arrays):
        groups.setdefault(array.shape, []).append(i)
    if shape is None and len(groups) > 1:
        a, b = list(groups)[:2]
        raise UserInputError(f"Images in {folder} have different shapes ({a} and {b}); give a target shape.")
    target = tuple(shape) if shape is not None else next(iter(groups))
    if keep_uint8 and set(groups) == {target}:
        return torch.from_numpy(np.stack(arrays))
    out = torch.empty((len(arrays), *target), dtype=torch.float32)
    for index in groups.values():
        batch = uint8_to_float(np.stack([arrays[i] for i in index]))
        out[torch.as_tensor(index)] = to_shape(batch, target, name=f"images in {folder}")
    return out


# ------------------------------------------------------------------------------------- ODIN folders
_ODIN_BASE = "https://www.dropbox.com/s/"
_ODIN = {
    # name: (title, folder = archive's top-level folder, archive, Dropbox id, md5, images)
    "tinyimagenet_crop": (
        "TinyImageNet (crop)",
        "Imagenet",
        "Imagenet.tar.gz",
        "avgm2u562itwpkl",
        "7c0827e4246c3718a5ee076e999e52e5",
        10000,
    ),
    "tinyimagenet_resize": (
        "TinyImageNet (resize)",
        "Imagenet_resize",
        "Imagenet_resize.tar.gz",
        "kp3my3412u5k9rl",
        "0f9ff11d45babf2eff5fe12281d1ac31",
        10000,
    ),
    "lsun_crop": (
        "LSUN (crop)",
        "LSUN",
        "LSUN.tar.gz",
        "fhtsw1m3qxlwj6h",
        "458a0a0ab8e5f1cb4516d7400568e460",
        10000,
    ),
    "lsun_resize": (
        "LSUN (resize)",
        "LSUN_resize",
        "LSUN_resize.tar.gz",
        "moqh2wh8696c3yl",
        "278b7b31c8cb7e804a1465a8ce03a2dc",
        10000,
    ),
    "isun": ("iSUN", "iSUN", "iSUN.tar.gz", "ssz7qxfqae0cca5", "be77b0f2c26fda898afac5f99645ee70", 8925),
}


def odin_url(name: str) -> str:
    _, _, archive, dropbox_id, _, _ = _ODIN[name]
    return f"{_ODIN_BASE}{dropbox_id}/{archive}?dl=1"  # dl=1: the file itself, not Dropbox's web page


def _odin_missing(spec_name: str):
    _, _, archive, _, _, _ = _ODIN[spec_name]

    def missing(folder: Path) -> list[str]:
        return [] if has_images(folder) else [f"images of {archive}"]

    return missing


def _load_odin(spec: DatasetSpec, req: LoadRequest) -> LabeledImages:
    title, folder_name, archive, _, md5, _ = _ODIN[spec.name]
    if not has_images(req.folder) and req.download:
        dl.fetch_archive(
            odin_url(spec.name),
            archive,
            md5=md5,
            root=req.folder.parent,
            members=(folder_name,),
            local=(req.folder.parent / archive, req.folder / archive),
        )
    if not req.folder.is_dir():
        raise DataNotFoundError(
            f"{title} folder {folder_name} not found in {req.folder.parent}. Download it with "
            f"`oodbench run --download ...` or get {archive} "
            f"(linked from https://github.com/facebookresearch/odin) "
            f"and unpack it there, or set --data-dir / OODBENCH_DATA to a folder that has it."
        )
    x = read_image_folder(req.folder, shape=spec.image_shape, name=title, progress=req.progress)
    return LabeledImages(x, None, spec.name, req.split)


for _name, (_title, _folder, _archive, _, _, _count) in _ODIN.items():
    DATASETS.add(
        _name,
        DatasetSpec(
            name=_name,
            image_shape=(3, 32, 32),
            num_classes=None,
            mean=None,
            std=None,
            source=f"{_title} 32x32 OOD test set released with ODIN (Liang et al. 2018), {_archive}",
            licence="as the source images (ImageNet / LSUN / iSUN terms); research use",
            splits=("test",),
            loader=_load_odin,
            files_hint=f"{_archive} unpacked as <data root>/{_folder}/ (--download, or ODIN's README links)",
            folder=_folder,
            missing=_odin_missing(_name),  # the folder counts only when it holds images
            sizes=(("test", _count),),
        ),
    )
