"""Checksummed downloads that leave nothing half-written behind.

Every download goes into a temporary folder beside its destination (same file system), is
checked against its recorded MD5, unpacked there if it is an archive, and only then renamed into
place. A failed or interrupted download removes the temporary folder, so the data root holds
either the complete files or nothing new. Only called when the user asked for `--download`.

An archive the user already put in the data root (or in its data set's folder) is used instead
of downloading it again, once its MD5 matches the recorded one; a mismatch is a one-line error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from oodbench.data.spec import one_line
from oodbench.errors import DataNotFoundError, UserInputError

log = logging.getLogger(__name__)


def _download_url(url: str, folder: Path, filename: str, md5: str | None) -> None:
    """Download with torchvision's downloader, which checks the MD5 and raises if it differs."""
    from torchvision.datasets.utils import download_url

    download_url(url, str(folder), filename=filename, md5=md5)


def _extract(archive: Path, folder: Path) -> None:
    from torchvision.datasets.utils import extract_archive

    extract_archive(str(archive), str(folder))


@contextmanager
def _staging(root: Path) -> Iterator[Path]:
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".oodbench-download-", dir=root))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_file(urls: list[str], dest: Path, *, md5: str | None) -> None:
    """Download `dest.name` from the first of `urls` that works into `dest`, checked against `md5`."""
    errors = []
    with _staging(dest.parent) as staging:
        for url in urls:
            log.info("downloading %s", url)
            try:
                _download_url(url, staging, dest.name, md5)
            except Exception as error:  # network errors, HTTP errors, checksum mismatch
                errors.append(f"{url}: {one_line(error)}")
                (staging / dest.name).unlink(missing_ok=True)
                continue
            if not (staging / dest.name).is_file():
                errors.append(f"{url}: no file was written")
                continue
            os.replace(staging / dest.name, dest)
            return
    raise DataNotFoundError(
        f"Could not download {dest.name} ({'; '.join(errors)}). Get it by hand and put it in {dest.parent}."
    )


def file_md5(path: Path) -> str:
    """The MD5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def local_archive(candidates: tuple[Path, ...], md5: str | None) -> Path | None:
    """The first existing file of `candidates`, after checking its MD5 (a mismatch: UserInputError)."""
    for path in candidates:
        if path.is_file():
            found = file_md5(path) if md5 else None
            if md5 and found != md5:
                raise UserInputError(
                    f"{path} has MD5 {found}, not the published {md5}; it is incomplete or another "
                    "file: delete or replace it, then run with --download again."
                )
            log.info("using %s (MD5 checked) instead of downloading it", path)
            return path
    return None


def _merge(source: Path, target: Path) -> None:
    """Move `source` to `target`; if `target` is a folder, move in only the entries it lacks."""
    if not target.exists():
        os.replace(source, target)
    elif target.is_dir() and source.is_dir():
        for child in source.iterdir():
            _merge(child, target / child.name)
    # An existing file is never overwritten.


def fetch_archive(
    url: str,
    filename: str,
    *,
    md5: str | None,
    root: Path,
    members: tuple[str, ...],
    local: tuple[Path, ...] = (),
) -> None:
    """Unpack the archive `filename` and move its top-level `members` into `root`.

    The archive is the first of `local` that exists (its MD5 checked), else downloaded from
    `url`. Existing files in `root` are left alone (never overwritten or deleted): a member
    folder that exists already only gains the entries it lacks.
    """
    with _staging(root) as staging:
        archive = local_archive(local, md5)
        if archive is None:
            log.info("downloading %s", url)
            try:
                _download_url(url, staging, filename, md5)
            except Exception as error:
                raise DataNotFoundError(
                    f"Could not download {url} ({one_line(error)}). "
                    f"Get {filename} by hand and put it in {root}, then run with --download again."
                ) from None
            archive = staging / filename
            if not archive.is_file():
                raise DataNotFoundError(
                    f"Downloading {url} wrote no file. Get {filename} by hand and unpack it in {root}."
                )
        unpacked = staging / "unpacked"
        try:
            _extract(archive, unpacked)
        except Exception as error:
            raise UserInputError(f"Could not unpack {archive} ({one_line(error)}).") from None
        for member in members:
            source, target = unpacked / member, root / member
            if not source.exists():
                raise UserInputError(f"{filename} has no {member!r} inside; it may have changed upstream.")
            _merge(source, target)
