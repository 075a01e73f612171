"""User-supplied OOD test sets: `--out [NAME=]folder:PATH` and `--out [NAME=]npz:PATH`.

- folder:PATH  every image file below PATH (an ImageFolder tree of class sub-folders or a flat
               folder; labels are not used), sorted by path.
- npz:PATH     a NumPy .npz with an array named `x` or `images`, laid out (N, H, W), (N, H, W, C)
               or (N, C, H, W) with C = 1 or 3, either uint8 (0..255) or float in [0, 1].

Each set is named NAME (letters, digits, _ . + -) or, without NAME=, "folder:<folder name>" /
"npz:<file stem>". Two sets with one name, or a name equal to one of the suite's OOD sets, are
refused (rows are keyed by the set's name, so one would silently replace the other).

A run streams them (`load_custom_outs`): a `StreamedSet` (oodbench.data.streamed) over an
`ImageFolderSource` / `NpzSource` whose transform is the in-distribution shape
(`Preprocess(channels=C, size=(H, W))`: oodbench.data.convert's rule per image, rounded to uint8).
`--limit N` picks the items with `select` before any file is opened; unreadable files are
skipped and counted in the row's `n_skipped`, or refused before scoring with `strict`. Each
source's `origin` (the row's `out_source`) names the absolute path and the native sizes seen.
`load_custom_out` reads one set whole into memory (float conversion, no uint8 rounding).
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from oodbench.data.convert import as_float, to_shape, uint8_to_float
from oodbench.data.image_folders import read_image_folder
from oodbench.data.ondisk import ImagesOnDisk, open_npz_member
from oodbench.data.spec import LabeledImages, Shape, check_shape, one_line
from oodbench.errors import DataNotFoundError, UserInputError

if TYPE_CHECKING:
    import torch

_KEYS = ("x", "images")
_NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.+-]*)=((?:folder|npz):.*)$")


@dataclass(frozen=True)
class OutSpec:
    """One parsed `--out`: the set's name, "folder" or "npz", the path, and the text given."""

    name: str
    kind: str
    path: Path
    text: str


def parse_out(text: str) -> OutSpec:
    """ "[NAME=]folder:PATH" or "[NAME=]npz:PATH" -> OutSpec (no file is touched)."""
    match = _NAMED.match(str(text))
    name, rest = (match.group(1), match.group(2)) if match else (None, str(text))
    kind, sep, raw_path = rest.partition(":")
    if not sep or kind not in ("folder", "npz") or not raw_path:
        raise UserInputError(
            "Custom OOD data must be given as 'folder:PATH' or 'npz:PATH', optionally named "
            f"'NAME=folder:PATH'. Got {text!r} instead."
        )
    path = Path(raw_path).expanduser()
    if name is None:
        name = f"{kind}:{path.name if kind == 'folder' else path.stem}"
    return OutSpec(name, kind, path, str(text))


def parse_outs(texts: Sequence[str], *, taken: Collection[str] = ()) -> list[OutSpec]:
    """Parse every `--out` and refuse a name used twice or equal to a suite OOD set (`taken`)."""
    specs = [parse_out(text) for text in texts]
    seen: dict[str, OutSpec] = {}
    for spec in specs:
        if spec.name in taken:
            raise UserInputError(
                f"--out {spec.text!r} is named {spec.name!r} like one of the suite's OOD sets; "
                f"give it another name: --out OTHER={spec.kind}:{spec.path}."
            )
        if spec.name in seen:
            raise UserInputError(
                f"--out {seen[spec.name].text!r} and {spec.text!r} are both named {spec.name!r}; "
                f"name them apart: --out NAME={spec.kind}:PATH."
            )
        seen[spec.name] = spec
    return specs


def load_custom_outs(
    texts: Sequence[str],
    *,
    shape: Shape,
    taken: Collection[str] = (),
    limit: int | None = None,
    progress: bool = False,
    workers: int | None = None,
    strict: bool = False,
) -> dict[str, LabeledImages]:
    """Every `--out` set by name, as a streamed set (x is a `StreamedSet`; nothing is decoded
    until the runner reads its batches). Names are checked before any file is touched; then
    each set is listed, capped at `limit` images (`select`: the first `limit` of a fixed
    shuffle, seed 0, the images `cap` picks) and only the chosen files' headers are read (their
    native sizes go to the set's `origin`; with `strict`, unreadable ones are refused here).
    `workers`: decoding processes (None = min(CPUs, 8), 0 = in this process)."""
    specs = parse_outs(texts, taken=taken)
    return {
        spec.name: stream_custom_out(
            spec, shape=shape, limit=limit, workers=workers, strict=strict, progress=progress
        )
        for spec in specs
    }


def stream_custom_out(
    out: OutSpec,
    *,
    shape: Shape,
    limit: int | None = None,
    workers: int | None = None,
    strict: bool = False,
    progress: bool = False,
) -> LabeledImages:
    """One parsed `--out` as LabeledImages(StreamedSet, None, name, "test"); see `load_custom_outs`."""
    from oodbench.data.sources import (
        ImageFolderSource,
        NpzSource,
        Preprocess,
        refuse_bad,
        scan_headers,
        select,
    )
    from oodbench.data.streamed import StreamedSet

    c, h, w = check_shape(shape)
    pre = Preprocess(channels=c, size=(h, w))  # no resize / crop given: convert.py's rule per image
    path = out.path
    if out.kind == "folder":
        if not path.is_dir():
            raise DataNotFoundError(f"Custom OOD folder {path} not found (from {out.text!r}).")
        source = select(ImageFolderSource(path, pre, name=out.name), limit, stratified=False)
        sizes, bad = scan_headers(source, progress=progress)  # the chosen files' headers only
        if strict:
            refuse_bad(source, bad)
        if not sizes:
            raise UserInputError(
                f"None of the {len(source)} image(s) chosen in {path} can be read (from {out.text!r}); "
                "replace them or give another folder."
            )
        native = _describe_sizes(sizes)
    else:
        if not path.is_file():
            raise DataNotFoundError(f"Custom OOD file {path} not found (from {out.text!r}).")
        source = NpzSource(path, pre, name=out.name)
        if len(source) == 0:
            raise UserInputError(
                f"Custom OOD file {path} holds no images (from {out.text!r}); give at least one."
            )
        stored, dtype = source.x, str(source.x.dtype).removeprefix("torch.")
        native = f"native CxHxW {'x'.join(map(str, stored.shape[1:]))} {dtype}"
        source = select(source, limit, stratified=False)
    source.origin = f"{out.kind}:{path.resolve()} ({native})"
    streamed = StreamedSet(source, workers=workers, strict=strict)
    return LabeledImages(streamed, None, out.name, "test")  # type: ignore[arg-type]


def _describe_sizes(sizes: Counter[str]) -> str:
    """The row's words for native `sizes`: "native HxW 224x224 RGB", or the 3 most common of
    several with their counts and how many more."""
    if len(sizes) == 1:
        return f"native HxW {next(iter(sizes))}"
    common = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{size} x{count}" for size, count in common[:3])
    more = f", +{len(common) - 3} more" if len(common) > 3 else ""
    return f"native HxW {shown}{more}"


def load_custom_out(spec: str, *, shape: Shape, progress: bool = False) -> LabeledImages:
    """Load "[NAME=]folder:PATH" or "[NAME=]npz:PATH" WHOLE into memory as an OOD set of `shape`
    = (C, H, W); y is None. Runs stream their sets instead (`load_custom_outs`).

    The set's name is NAME, else "folder:<folder name>" or "npz:<file stem>". uint8 images that
    already have `shape` stay uint8 (4x less memory than float32; batches are converted when
    used). A set with no images is refused. `progress`: a bar on stderr while a large folder is
    read.
    """
    import torch

    out = parse_out(spec)
    shape = check_shape(shape)
    path = out.path
    if out.kind == "folder":
        if not path.is_dir():
            raise DataNotFoundError(f"Custom OOD folder {path} not found (from {spec!r}).")
        x = read_image_folder(
            path, shape=shape, name=f"custom OOD set {spec!r}", keep_uint8=True, progress=progress
        )
        return LabeledImages(x, None, out.name, "test")
    if not path.is_file():
        raise DataNotFoundError(f"Custom OOD file {path} not found (from {spec!r}).")
    check_npz_header(path)  # before numpy allocates what a (possibly forged) header declares
    on_disk = _on_disk(path)
    if on_disk is not None and len(on_disk) > 0 and tuple(on_disk.shape[1:]) == tuple(shape):
        # Large uncompressed uint8 sets are read one batch at a time from the file.
        return LabeledImages(on_disk, None, out.name, "test")
    x = read_npz_images(path, keep_uint8=True)
    if len(x) == 0:
        raise UserInputError(f"Custom OOD file {path} holds no images (from {spec!r}); give at least one.")
    if x.dtype != torch.uint8 or tuple(x.shape[1:]) != tuple(shape):
        x = to_shape(as_float(x), shape, name=f"custom OOD set {spec!r}")
    return LabeledImages(x, None, out.name, "test")


def _on_disk(path: Path) -> ImagesOnDisk | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            key = next((k for k in _KEYS if k in archive.files), None)
        return None if key is None else open_npz_member(path, key)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None  # read_npz_images gives the one-line error


def _memory_budget() -> int:
    """Bytes a user's image array may take in memory: half the machine's physical memory
    (the array is converted to float32 next to it)."""
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30  # no sysconf (Windows): 8 GiB


def check_npz_header(path: Path, *, budget: int | None = None) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a user's .npz image member, read from its header only, after checking it:
    a zip archive (not a renamed .npy), no object dtype, no zero-sized image axis, no more data
    declared than the member holds, and (float32 copy included) within the memory `budget`."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            is_npy = handle.read(6) == b"\x93NUMPY"
        what = "a plain .npy file, not an archive" if is_npy else "not a zip archive"
        raise UserInputError(
            f"{path} is not a readable .npz file ({what}); save the images with numpy.savez(path, x=images)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            key = next((k for k in _KEYS if f"{k}.npy" in archive.namelist()), None)
            if key is None:
                names = ", ".join(n.removesuffix(".npy") for n in archive.namelist()) or "nothing"
                raise UserInputError(f"{path} has no array named 'x' or 'images' (it has: {names}).")
            info = archive.getinfo(f"{key}.npy")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0  # 2.0 and 3.0 share the layout
                )
                shape, _fortran, dtype = read_header(member)
                header_len = member.tell()
    except UserInputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as error:
        raise UserInputError(f"{path} is not a readable .npz file ({one_line(error)}).") from None
    shape = tuple(int(n) for n in shape)
    if dtype.hasobject:
        raise UserInputError(f"{path} stores Python objects in {key!r}; oodbench never unpickles them.")
    if len(shape) >= 3 and any(n == 0 for n in shape[1:]):
        raise UserInputError(f"Images in {path} have shape {shape}: an image axis has size 0.")
    count = int(np.prod(shape, dtype=object))
    declared = count * dtype.itemsize
    held = info.file_size - header_len
    if declared > held:
        raise UserInputError(
            f"{path}: {key!r} declares shape {shape} ({declared:,} bytes) but holds {max(held, 0):,} bytes; "
            "the file is truncated or its header is wrong."
        )
    needed = declared + count * 4  # the array, then its float32 copy
    limit = _memory_budget() if budget is None else budget
    if needed > limit:
        raise UserInputError(
            f"{path}: {key!r} of shape {shape} needs about {needed / 2**30:,.1f} GiB in memory, more than "
            f"the {limit / 2**30:,.1f} GiB oodbench allows (half the memory); give fewer or smaller images "
            "(uint8 images of the suite's shape, stored uncompressed, are read from disk instead)."
        )
    return shape, dtype


def read_npz_images(path: Path, *, keep_uint8: bool = False) -> torch.Tensor:
    """The image array of a user's .npz as float32 (N, C, H, W) in [0, 1] (uint8 kept with keep_uint8)."""
    check_npz_header(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            key = next((k for k in _KEYS if k in archive.files), None)
            if key is None:
                raise UserInputError(
                    f"{path} has no array named 'x' or 'images' "
                    f"(it has: {', '.join(archive.files) or 'nothing'})."
                )
            array = archive[key]
    except UserInputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UserInputError(f"{path} is not a readable .npz file ({one_line(error)}).") from None
    array = _to_nchw(array, path)
    if keep_uint8 and array.dtype == np.uint8:
        import torch

        return torch.from_numpy(np.ascontiguousarray(array))
    return _to_float(array, path)


def _to_nchw(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4:
        first, last = array.shape[1] in (1, 3), array.shape[3] in (1, 3)
        if first and not last:
            return array
        if last and not first:
            return array.transpose(0, 3, 1, 2)
        if first and last:
            raise UserInputError(
                f"Cannot tell the channel axis of the images in {path} (shape {array.shape}); "
                f"store them as (N, H, W, C) with H, W > 3."
            )
    raise UserInputError(
        f"Images in {path} have shape {array.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) "
        f"with C = 1 or 3."
    )


def _to_float(array: np.ndarray, path: Path) -> torch.Tensor:
    import torch

    if array.dtype == np.uint8:
        return uint8_to_float(array)
    if np.issubdtype(array.dtype, np.floating):
        if array.size and not np.isfinite(array).all():
            raise UserInputError(f"Images in {path} contain NaN or infinite values.")
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            raise UserInputError(
                f"Float images in {path} must lie in [0, 1]; "
                f"got values from {array.min():g} to {array.max():g}"
                f" (divide 0..255 data by 255, or store it as uint8)."
            )
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    raise UserInputError(
        f"Images in {path} are {array.dtype}; store them as uint8 (0..255) or float in [0, 1]."
    )
