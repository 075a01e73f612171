"""Images that stay in their file: an uncompressed .npz member read one batch at a time.

`np.savez` stores each array as a plain .npy inside a zip without compression, so its bytes
sit at a fixed offset in the file. `ImagesOnDisk` reads only the rows asked for, so scoring a
large `--out npz:` set needs memory for one batch, not for the set. Compressed members
(`np.savez_compressed`) cannot be read this way; they are loaded into memory (as uint8).

It offers what oodbench's consumers use of an image tensor: len, shape, dtype, slicing with a
step of 1 (`iter_batches`), indexing with an index array (`cap`, `subset`) and a streamed
content hash (the runner's `fingerprint`).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

_CHUNK_BYTES = 1 << 24  # 16 MiB per read when hashing


class ImagesOnDisk:
    """uint8 images (N, C, H, W) stored C-contiguously at `offset` in `path`."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], *, channel_axis_added: bool) -> None:
        self.path, self.offset = Path(path), int(offset)
        self._stored_shape = tuple(int(s) for s in shape)  # (N, H, W) or (N, C, H, W) as stored
        self._add_channel = channel_axis_added
        self.row_bytes = int(np.prod(self._stored_shape[1:]))

    @property
    def shape(self) -> tuple[int, ...]:
        n, *rest = self._stored_shape
        return (n, 1, *rest) if self._add_channel else (n, *rest)

    @property
    def dtype(self):
        import torch

        return torch.uint8

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return self._stored_shape[0]

    def _rows(self, start: int, stop: int) -> np.ndarray:
        count = max(0, stop - start)
        with open(self.path, "rb") as handle:
            handle.seek(self.offset + start * self.row_bytes)
            data = np.fromfile(handle, dtype=np.uint8, count=count * self.row_bytes)
        return data.reshape((count, *self.shape[1:]))

    def __getitem__(self, index) -> torch.Tensor:
        import torch

        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise IndexError("ImagesOnDisk reads contiguous rows only (step 1)")
            return torch.from_numpy(self._rows(start, stop))
        rows = np.asarray(index.cpu() if hasattr(index, "cpu") else index).reshape(-1)
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        for i, row in enumerate(rows):  # indexed reads: only used to cap a set (small n)
            out[i] = self._rows(int(row), int(row) + 1)[0]
        return torch.from_numpy(out)

    def content_hash(self) -> str:
        """sha1 of the bytes, read in chunks (what `fingerprint` hashes for an in-memory tensor)."""
        digest = hashlib.sha1()
        remaining = len(self) * self.row_bytes
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            while remaining:
                block = handle.read(min(_CHUNK_BYTES, remaining))
                if not block:
                    raise OSError(f"{self.path} is shorter than its array header says")
                digest.update(block)
                remaining -= len(block)
        return digest.hexdigest()


def open_npz_member(path: Path, key: str) -> ImagesOnDisk | None:
    """`key` of an .npz as ImagesOnDisk when it is stored uncompressed, uint8, C-ordered, 3-D
    (N, H, W) or 4-D channel-first (N, C, H, W); else None (the caller loads it into memory)."""
    with zipfile.ZipFile(path) as archive:
        try:
            info = archive.getinfo(f"{key}.npy")
        except KeyError:
            return None
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                return None
            header_len = member.tell()
    if fortran or dtype != np.uint8 or len(shape) not in (3, 4):
        return None
    if len(shape) == 4 and (shape[1] not in (1, 3) or shape[3] in (1, 3)):
        return None  # channels last (or ambiguous): transposed or refused in memory
    # The member's data start: the local file header (30 bytes + name + extra) then the .npy header.
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
    name_len = int.from_bytes(local[26:28], "little")
    extra_len = int.from_bytes(local[28:30], "little")
    offset = info.header_offset + 30 + name_len + extra_len + header_len
    return ImagesOnDisk(path, offset, tuple(shape), channel_axis_added=len(shape) == 3)
