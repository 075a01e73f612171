"""Checksummed downloads that leave nothing half-written behind.

Every download goes into a temporary folder beside its destination (same file system), is
checked against its recorded MD5, unpacked there if it is an archive, and only then renamed into
place. A failed or interrupted download removes the temporary folder, so the data root holds
either the complete files or nothing new. Only called when the user asked for `--download`.
"""

from __future__ import annotations

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


def fetch_archive(url: str, filename: str, *, md5: str | None, root: Path, members: tuple[str, ...]) -> None:
    """Download the archive `filename`, unpack it, and move its top-level `members` into `root`.

    A member that already exists in `root` is left alone (never overwritten or deleted).
    """
    with _staging(root) as staging:
        log.info("downloading %s", url)
        try:
            _download_url(url, staging, filename, md5)
        except Exception as error:
            raise DataNotFoundError(
                f"Could not download {url} ({one_line(error)}). "
                f"Get {filename} by hand and unpack it in {root}."
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
            raise UserInputError(f"Could not unpack {filename} ({one_line(error)}).") from None
        for member in members:
            source, target = unpacked / member, root / member
            if not source.exists():
                raise UserInputError(f"{filename} has no {member!r} inside; it may have changed upstream.")
            if target.exists():
                raise UserInputError(
                    f"{target} exists but lacks files oodbench needs; move it away and download again."
                )
            os.replace(source, target)
