"""Minibatches for the training loop: where the training images live and how a batch gets to the device.

Three placements, chosen once per run by `choose_placement`:
- "cpu":    the run is on the CPU; a batch is the indexed rows, nothing is copied or moved.
- "device": the images (as stored: uint8 where the data set holds uint8) and labels are copied
            to the accelerator once; an epoch's order goes to the device once per epoch, and a
            batch is gathered there. Chosen when images + labels take at most
            DEVICE_FRACTION of the device's free memory (SVHN train at uint8: 225 MB).
- "pinned": the data stays in host memory; a batch is gathered on the host, copied into pinned
            (page-locked) memory and sent with non_blocking=True, so the copy overlaps the
            previous step's kernels (the loop never waits for the GPU).
In every placement a batch is converted to float with `oodbench.data.convert.as_float` one
batch at a time, so uint8 and float storage give equal inputs, and the CPU path does exactly
what the loop did before (index, then convert), keeping CPU runs bit-identical.
"""

from __future__ import annotations

import logging

import torch

from oodbench.data.convert import as_float

logger = logging.getLogger(__name__)

# Hold the training set on the accelerator when it takes at most this share of the free memory
# (the rest is for the networks, activations and the allocator's caches).
DEVICE_FRACTION = 0.25

PLACEMENTS = ("cpu", "device", "pinned")


def choose_placement(nbytes: int, device: torch.device, *, free_bytes: int | None = None) -> str:
    """ "cpu" on the CPU; on CUDA "device" if nbytes <= DEVICE_FRACTION * free memory, else "pinned".

    Other accelerators (mps) get "pinned" semantics without pinning: per-batch copies.
    """
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        return "pinned"
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(device)
    return "device" if nbytes <= DEVICE_FRACTION * free_bytes else "pinned"


class Feed:
    """Images x (and labels y, or None) handed out as (float x, long y) batches on `device`.

    placement None = `choose_placement`; tests may force "device" or "pinned" on the CPU, where
    they exercise the same indexing (pinning is skipped without CUDA).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        device: torch.device,
        *,
        channels_last: bool = False,
        placement: str | None = None,
    ) -> None:
        nbytes = x.numel() * x.element_size() + (0 if y is None else y.numel() * 8)
        self.placement = placement or choose_placement(nbytes, device)
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, not {self.placement!r}")
        self.device = device
        self.channels_last = channels_last
        self.pin = self.placement == "pinned" and device.type == "cuda"
        if self.placement == "device":
            self.x = x.to(device)
            self.y = None if y is None else y.to(device).long()
        else:
            self.x, self.y = x, y
        logger.info("training data (%.1f MB, %s) placed: %s", nbytes / 1e6, str(x.dtype), self.placement)

    def order_for_epoch(self, order: torch.Tensor) -> torch.Tensor:
        """The epoch's index order where the gathers happen (the device for "device", else the host)."""
        return order.to(self.device) if self.placement == "device" else order

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rows `idx` (from `order_for_epoch`) as float images and long labels on the device."""
        x = self.x[idx]
        y = None if self.y is None else self.y[idx]
        if self.placement == "pinned":
            if self.pin:
                x = x.pin_memory()
                y = None if y is None else y.pin_memory()
            x = x.to(self.device, non_blocking=True)
            y = None if y is None else y.to(self.device, non_blocking=True)
        x = as_float(x)
        if y is not None:
            y = y.long()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y
