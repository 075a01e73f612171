"""`make_loader`: a DataLoader over a source whose batches are uint8, with bad files counted.

    loader = make_loader(source, batch_size=256, workers=None, pin_memory=False, strict=False)
    for batch in loader:            # Batch(x uint8 (B, C, H, W), y int64 (B,), index int64 (B,))
        ...
    loader.n_skipped, loader.skipped  # unreadable files left out (named in one warning)

Workers: `None` = min(CPUs, 8), 0 = decode in this process. Order is the source's order for any
worker count (DataLoader keeps it), so workers change speed, never results. Images cross from
workers to this process as uint8 (4x less than float32); convert with
`oodbench.data.convert.as_float` on the device.

Bad files: by default an unreadable image is left out of its batch and counted; after the pass
one `BadFilesWarning` names them. `strict=True` refuses them: `precheck(source)` opens every
file's header before any scoring (call it first, it is cheap), and a file whose body fails to
decode later still ends the pass with one UserInputError line.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch.utils.data import DataLoader

from oodbench.data.sources.base import ImageSource, Item
from oodbench.errors import UserInputError

MAX_DEFAULT_WORKERS = 8


class BadFilesWarning(UserWarning):
    """Unreadable images were skipped (the message names them)."""


class Batch(NamedTuple):
    x: torch.Tensor  # uint8 (B, C, H, W) (float32 for float in-memory sets)
    y: torch.Tensor  # int64 (B,), -1 = no label
    index: torch.Tensor  # int64 (B,): positions in the source, to map scores back
    errors: tuple[tuple[int, str], ...] = ()  # (index, message) of items left out of this batch


def default_workers() -> int:
    """min(CPUs this process may use, 8): decoding scales to a few cores, then the disk rules."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return min(cpus, MAX_DEFAULT_WORKERS)


def collate(items: Sequence[Item]) -> Batch:
    """Stack the readable items; unreadable ones travel as (index, error) only."""
    good = [it for it in items if it.image is not None]
    errors = tuple((it.index, it.error) for it in items if it.image is None)
    shapes = {tuple(it.image.shape) for it in good}
    if len(shapes) > 1:
        raise UserInputError(
            f"Images of different sizes in one batch ({', '.join(map(str, sorted(shapes)[:2]))}); "
            "give the suite an image size (or resize / crop) so every image is converted to it."
        )
    if good:
        x = torch.stack([it.image for it in good])
    else:
        x = torch.empty((0,), dtype=torch.uint8)
    y = torch.tensor([it.label for it in good], dtype=torch.int64)
    index = torch.tensor([it.index for it in good], dtype=torch.int64)
    return Batch(x, y, index, errors)


class ImageLoader:
    """Iterates `Batch`es of a source; counts and names unreadable files (see the module doc)."""

    def __init__(
        self, source: ImageSource, batch_size: int, workers: int, pin_memory: bool, strict: bool
    ) -> None:
        self.source = source
        self.strict = strict
        self.workers = workers
        self.skipped: list[str] = []
        self.loader = DataLoader(
            source,
            batch_size=batch_size,
            shuffle=False,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=pin_memory,
            # Each worker prefetches 2 batches: memory = workers x 2 x batch, whatever the set size.
            prefetch_factor=2 if workers else None,
        )

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        self.skipped = []
        first_error = ""
        for batch in self.loader:
            for index, error in batch.errors:
                if self.strict:
                    raise UserInputError(f"{error} (strict mode: unreadable images are refused)")
                self.skipped.append(self.source.item_name(index))
                first_error = first_error or error
            if len(batch.x):
                yield batch
        if self.skipped:
            names = ", ".join(self.skipped[:10]) + (
                f" and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            )
            warnings.warn(
                f"{self.source.name}: skipped {len(self.skipped)} unreadable image(s): {names} "
                f"(first error: {first_error}). Replace or delete them, or pass strict to refuse them.",
                BadFilesWarning,
                stacklevel=2,
            )


def make_loader(
    source: ImageSource,
    batch_size: int = 256,
    workers: int | None = None,
    pin_memory: bool = False,
    *,
    strict: bool = False,
) -> ImageLoader:
    """A loader of `source` in batches of `batch_size`; `workers` None = min(CPUs, 8), 0 = in process."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserInputError(f"The batch size must be an integer >= 1. Got {batch_size!r} instead.")
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise UserInputError(f"The number of workers must be an integer >= 0. Got {workers!r} instead.")
    # No more workers than batches: a worker without a batch costs its start and nothing else.
    workers = min(workers, -(-len(source) // batch_size))
    if workers:
        _import_transforms_before_fork(source)
    return ImageLoader(source, batch_size, workers, pin_memory, strict)


def _import_transforms_before_fork(source: ImageSource) -> None:
    """Import what the workers' transform needs HERE, once: forked workers inherit it. Otherwise
    every worker of every loader (one per evaluated set) imports torchvision itself (~1.5 s each
    on a 2-core machine, measured), which dominated runs of many small sets."""
    pre = getattr(source, "preprocess", None)
    if pre is not None and (pre.resize is not None or pre.crop is not None):
        import torchvision.transforms.functional  # noqa: F401


def precheck(source: ImageSource) -> None:
    """Strict mode's check before scoring: open every file's header (no pixel decoding) and raise
    one UserInputError naming every missing or unreadable file. Sources without files pass."""
    _, bad = scan_headers(source)
    refuse_bad(source, bad)


def refuse_bad(source: ImageSource, bad: Sequence[str]) -> None:
    """The one-line strict-mode refusal of `bad` files (as `scan_headers` lists them), if any."""
    if bad:
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise UserInputError(
            f"{source.name}: {len(bad)} unreadable image(s) under {source.root}: {shown}. "
            "Replace or delete them, or run without strict mode to skip them."
        )


def scan_headers(source: ImageSource, *, progress: bool = False) -> tuple[Counter[str], list[str]]:
    """Open every file's header (no pixel decoding): (how many files have each native "HxW MODE",
    the unreadable files as "name (ErrorType)"). Sources without files give two empty results.
    `progress`: a bar on stderr for large sets (oodbench.progress)."""
    from PIL import Image, UnidentifiedImageError

    from oodbench.data.sources.files import FileSource
    from oodbench.progress import progress_bar

    sizes: Counter[str] = Counter()
    bad: list[str] = []
    if not isinstance(source, FileSource):
        return sizes, bad
    shown = progress_bar(
        range(len(source)), n_images=len(source), desc=f"reading {source.root.name} headers",
        unit="image", show=progress,
    )  # fmt: skip
    for i in shown:
        path = source.path(i)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:  # the header is parsed by open
                    width, height = image.size
                    sizes[f"{height}x{width} {image.mode}"] += 1
        except (
            UnidentifiedImageError,
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as error:
            bad.append(f"{source.item_name(i)} ({type(error).__name__})")
    return sizes, bad
