"""Progress bars for long passes over large sets: tqdm on stderr, only when a caller asks.

Library functions take ``progress=False`` by default; the CLI passes ``progress=True`` unless
``--quiet``. A pass gets a bar only from PROGRESS_BAR_MIN_IMAGES images on, so small and
embedded runs stay silent (their bars would flash by in milliseconds).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")

# Sets of at least this many images get a bar while they are read or scored.
PROGRESS_BAR_MIN_IMAGES = 10_000


def progress_bar(
    items: Iterable[T], *, n_images: int, desc: str, unit: str, total: int | None = None, show: bool
) -> Iterable[T]:
    """`items`, wrapped in a tqdm bar on stderr when `show` and `n_images` reaches the threshold.
    `total` is the number of items (default `n_images`); the bar is removed when it ends."""
    if not show or n_images < PROGRESS_BAR_MIN_IMAGES:
        return items
    from tqdm import tqdm

    return tqdm(
        items, total=n_images if total is None else total, desc=desc, unit=unit, file=sys.stderr, leave=False
    )
