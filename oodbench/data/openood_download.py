"""`--download` for the OpenOOD v1.5 suites: OpenOOD's Google-Drive archives, fetched with gdown.

OpenOOD (github.com/Jingkang50/OpenOOD, `scripts/download/download.py` and
`openood/evaluation_api/datasets.py`) publishes one zip per image set plus one of all image
lists, each a Google Drive file id. They unpack into OpenOOD's data root:

    ROOT/benchmark_imglist.zip            -> ROOT/benchmark_imglist/<benchmark>/*.txt
    <set>.zip (cifar10, tin, svhn, ...)   -> ROOT/images_classic/<set>/...
    <set>.zip (ssb_hard, ninco, ...)      -> ROOT/images_largescale/<set>/...

For each suite, `SUITE_ARCHIVES` names the archives its lists and sets need (OpenOOD's
`benchmarks_dict`, restricted to the sets of oodbench/suites/openood-*.toml). An archive already
in the data root is never fetched again:

- its unpacked folder exists and holds something: reused as it is (its contents are checked
  later, when the suite file's lists are read);
- its zip is at ROOT/<group>/<set>/<set>.zip (where OpenOOD's script leaves it),
  ROOT/<group>/<set>.zip or ROOT/<set>.zip (the lists: ROOT/benchmark_imglist.zip): unpacked,
  not fetched, and left where it is.

Anything else is fetched with gdown (the `[openood]` extra, imported only here) into a temporary
folder inside the data root, unpacked there and only then renamed into place: a failed or
killed download leaves no half-unpacked set behind. An archive whose only top-level entry is a
folder named after the set (`benchmark_imglist/` in the list archive) is unpacked from inside
that folder, so both ways of zipping a set give ROOT/<group>/<set>/...

ImageNet-1K images (images_largescale/imagenet_1k, the in-distribution images of
openood-imagenet200 and openood-imagenet1k) are never downloaded: they are the user's own
ILSVRC2012 copy, at the paths the lists expect.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from oodbench.errors import DataNotFoundError, UserInputError, one_line

# OpenOOD's Google Drive file ids (scripts/download/download.py, download_id_dict; read 2026-12).
DRIVE_IDS: dict[str, str] = {
    "benchmark_imglist": "1lI1j0_fDDvjIt9JlWAw09X8ks-yrR_H1",
    "cifar10": "1Co32RiiWe16lTaiOU6JMMnyUYS41IlO1",
    "cifar100": "1PGKheHUsf29leJPPGuXqzLBMwl8qMF8_",
    "tin": "1PZ-ixyx52U989IKsMA2OT-24fToTrelC",
    "mnist": "1CCHAGWqA1KJTFFswuF9cbhmB-j98Y1Sb",
    "svhn": "1DQfc11HOtB1nEwqS4pWUFp8vtQ3DczvI",
    "texture": "1OSz1m3hHfVWbRdmMwKbUzoU8Hg9UKcam",
    "places365": "1Ec-LRSTf6u5vEctKX9vRp9OA6tqnJ0Ay",
    "ssb_hard": "1PzkA-WGG8Z18h0ooL_pDdz9cO-DCIouE",
    "ninco": "1Z82cmvIB0eghTehxOGP5VTdLt7OD3nk6",
    "inaturalist": "1zfLfMvoUD0CUlKNnkk7LgxZZBnTBipdj",
    "openimage_o": "1VUFXnB_z70uHfdgJG2E_pjYOcEgqM7tE",
    "imagenet_v2": "1akg2IiE22HcbvTBpwXQoD7tgfPCdkoho",
    "imagenet_c": "1JeXL9YH4BO8gCJ631c5BHbaSsl-lekHt",
    "imagenet_r": "1EzjMN2gq-bVV7lg-MEAdeuBuz-7jbGYU",
}

# The image root of each set (OpenOOD's dir_dict); the list archive unpacks into the data root.
_CLASSIC = ("cifar10", "cifar100", "tin", "mnist", "svhn", "texture", "places365")
_LARGESCALE = ("ssb_hard", "ninco", "inaturalist", "openimage_o", "imagenet_v2", "imagenet_c", "imagenet_r")
GROUP: dict[str, str] = {
    **{name: "images_classic" for name in _CLASSIC},
    **{name: "images_largescale" for name in _LARGESCALE},
}

_CIFAR_SETS = ("cifar10", "cifar100", "tin", "mnist", "svhn", "texture", "places365")
_IMAGENET_SETS = (
    "ssb_hard", "ninco", "inaturalist", "texture", "openimage_o", "imagenet_v2", "imagenet_c", "imagenet_r"
)  # fmt: skip

# suite name -> (OpenOOD's benchmark folder in benchmark_imglist/, the image sets it reads).
SUITE_ARCHIVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "openood-cifar10": ("cifar10", _CIFAR_SETS),
    "openood-cifar100": ("cifar100", _CIFAR_SETS),
    "openood-imagenet200": ("imagenet200", _IMAGENET_SETS),
    "openood-imagenet1k": ("imagenet", _IMAGENET_SETS),
}
_IMAGENET_SUITES = ("openood-imagenet200", "openood-imagenet1k")
IMAGENET_NOTE = (
    "ImageNet-1K images are not downloaded: put your own ILSVRC2012 copy under "
    "{root}/images_largescale/imagenet_1k/ at the paths the lists expect."
)
LIST_ARCHIVE = "benchmark_imglist"


def is_downloadable_suite(name: str) -> bool:
    """Whether `--download` can fetch the data of the suite called `name` (openood-*)."""
    return name in SUITE_ARCHIVES


def downloadable_suite_of(suite: str | Path) -> str | None:
    """The openood-* suite a `--suite` value names (its name, or the shipped file's path), or None."""
    from oodbench.data.suite_file import builtin_suite_files

    shipped = builtin_suite_files()
    name = str(suite)
    if is_downloadable_suite(name):
        return name
    path = Path(suite).expanduser()
    if is_downloadable_suite(path.stem) and path.stem in shipped and path.is_file():
        if path.resolve() == shipped[path.stem].resolve():
            return path.stem
    return None


def download_for_suite_file(suite: str | Path, data_dir: str | Path | None, *, progress: bool) -> list[str]:
    """`--download` with `--suite`: `ensure_openood_data` for the shipped openood-* suites (data
    root: `data_dir`, else $OODBENCH_DATA, else <cache>/data); refused for any other suite file,
    whose data only its author knows how to get."""
    from oodbench.paths import data_dir as default_data_dir

    name = downloadable_suite_of(suite)
    if name is None:
        raise UserInputError(
            f"--download fetches the data of the OpenOOD suites only ({', '.join(SUITE_ARCHIVES)}); "
            f"{suite} is your own suite file: drop --download and put its data where it says."
        )
    return ensure_openood_data(name, default_data_dir(data_dir), progress=progress)


def drive_url(drive_id: str) -> str:
    """The address a browser downloads a Google Drive file id from."""
    return f"https://drive.google.com/uc?id={drive_id}"


@dataclass(frozen=True)
class _Archive:
    name: str  # OpenOOD's name: "cifar10", "benchmark_imglist"
    target: Path  # the unpacked folder this archive provides
    place: Path  # where a hand-downloaded <name>.zip goes

    @property
    def drive_id(self) -> str:
        return DRIVE_IDS[self.name]


def _archives(suite_name: str, root: Path) -> list[_Archive]:
    benchmark, sets = SUITE_ARCHIVES[suite_name]
    needed = [_Archive(LIST_ARCHIVE, root / LIST_ARCHIVE / benchmark, root)]
    needed += [_Archive(name, root / GROUP[name] / name, root / GROUP[name]) for name in sets]
    return needed


def _unpacked(archive: _Archive) -> bool:
    """The archive's folder exists and holds more than the archive itself."""
    if not archive.target.is_dir():
        return False
    return any(entry.name != f"{archive.name}.zip" for entry in archive.target.iterdir())


def _present_zip(archive: _Archive, root: Path) -> Path | None:
    """A <name>.zip already in the data root, in one of the places the module docstring names."""
    zip_name = f"{archive.name}.zip"
    candidates = [archive.place / zip_name, root / zip_name]
    if archive.name != LIST_ARCHIVE:  # the list archive's target is one benchmark's folder
        candidates.insert(0, archive.target / zip_name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def ensure_openood_data(suite_name: str, data_root: Path, *, progress: bool) -> list[str]:
    """Fetch and unpack the archives of an openood-* suite missing from `data_root`.

    Archives already there (unpacked, or as a zip) are reused; the rest are fetched with gdown.
    Returns the names of the archives fetched (empty when everything was present). Raises
    UserInputError (one line) for an unknown suite, a missing gdown, a failed download or a
    broken zip; the message names the archive, its Drive id and where to put it by hand.
    """
    if not is_downloadable_suite(suite_name):
        raise UserInputError(
            f"--download fetches the OpenOOD suites only ({', '.join(SUITE_ARCHIVES)}); "
            f"{suite_name!r} is not one of them."
        )
    root = Path(data_root).expanduser()
    if suite_name in _IMAGENET_SUITES:
        print(IMAGENET_NOTE.format(root=root), file=sys.stderr)
    todo = [a for a in _archives(suite_name, root) if not _unpacked(a)]
    fetch = [a for a in todo if _present_zip(a, root) is None]
    gdown = _import_gdown() if fetch else None
    fetched = []
    for archive in todo:
        given = _present_zip(archive, root)
        _install(archive, root, given, gdown, progress=progress)
        if given is None:
            fetched.append(archive.name)
    return fetched


def _import_gdown():
    try:
        import gdown
    except ImportError:
        raise UserInputError(
            "--download needs gdown to fetch OpenOOD's Google Drive archives: pip install 'oodbench[openood]'"
        ) from None
    return gdown


def _by_hand(archive: _Archive) -> str:
    return (
        f"get it by hand from {drive_url(archive.drive_id)} and put {archive.name}.zip in "
        f"{archive.place} (or unpacked as {archive.target}), then run again"
    )


def _install(archive: _Archive, root: Path, given: Path | None, gdown, *, progress: bool) -> None:
    """Unpack `given` (or the fetched zip) in a temporary folder inside `root`, then rename."""
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".oodbench-openood-", dir=root))
    try:
        zip_path = given
        if zip_path is None:
            zip_path = staging / f"{archive.name}.zip"
            if progress:
                print(f"Downloading OpenOOD's {archive.name}: {drive_url(archive.drive_id)}", file=sys.stderr)
            _fetch(gdown, archive, zip_path, progress=progress)
        content = _unzip(archive, zip_path, staging / "unpacked", fetched=given is None)
        _move_into_place(archive, content, given)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch(gdown, archive: _Archive, dest: Path, *, progress: bool) -> None:
    try:
        written = gdown.download(id=archive.drive_id, output=str(dest), quiet=not progress)
    except Exception as error:  # gdown raises for Drive quota pages, HTTP and network errors
        reason = one_line(error, max_chars=200)
    else:
        reason = "" if written and dest.is_file() else "gdown wrote no file"
    if reason:
        raise DataNotFoundError(
            f"Could not download OpenOOD's {archive.name} archive (Google Drive id {archive.drive_id}: "
            f"{reason}); {_by_hand(archive)}."
        )


def _unzip(archive: _Archive, zip_path: Path, into: Path, *, fetched: bool) -> Path:
    """Extract `zip_path` into `into`; the folder holding the set's contents."""
    try:
        with zipfile.ZipFile(zip_path) as handle:
            for member in handle.namelist():  # refuse entries that would land outside `into`
                parts = Path(member).parts
                if Path(member).is_absolute() or ".." in parts:
                    raise zipfile.BadZipFile(f"unsafe entry {member!r}")
            handle.extractall(into)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        where = f"the file downloaded from {drive_url(archive.drive_id)}" if fetched else str(zip_path)
        fix = _by_hand(archive)
        if not fetched:
            fix = f"delete it and run again with --download, or {fix}"
        raise DataNotFoundError(
            f"OpenOOD's {archive.name} archive ({where}) is not a readable zip "
            f"({one_line(error, max_chars=200)}); {fix}."
        ) from None
    entries = [e for e in into.iterdir() if e.name != "__MACOSX"]
    # Zipped with its own folder (benchmark_imglist/...): that folder is the set's contents.
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name == archive.name:
        return entries[0]
    return into


def _move_into_place(archive: _Archive, content: Path, given: Path | None) -> None:
    if archive.name == LIST_ARCHIVE:
        # All benchmarks' lists in one archive: every benchmark folder not yet in the data root
        # is renamed in whole; folders already there are kept (never merged or overwritten).
        lists = archive.target.parent
        if not lists.exists():
            os.rename(content, lists)
            return
        for folder in sorted(content.iterdir()):
            if not (lists / folder.name).exists():
                os.rename(folder, lists / folder.name)
        if not archive.target.is_dir():
            raise DataNotFoundError(
                f"OpenOOD's {archive.name} archive has no {archive.target.name}/ folder; {_by_hand(archive)}."
            )
        return
    target = archive.target
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        # Only the hand-placed zip is in it (else it counted as unpacked): keep the zip with the
        # unpacked files, then replace the emptied folder.
        if given is not None and given.parent == target:
            os.replace(given, content / given.name)
        target.rmdir()
    os.rename(content, target)
