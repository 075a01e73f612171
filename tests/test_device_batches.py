"""Batches travel as uint8 and become float on the device (issue 17): the same floats as the
CPU conversion, for in-memory tensors and streamed sets; pinned memory on CUDA."""

from __future__ import annotations

import pytest
import torch

from oodbench.data.sources import Preprocess, TensorSource
from oodbench.data.streamed import StreamedSet
from oodbench.detectors.base import iter_batches


def _images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (10, 3, 5, 5), dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("device", ["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
def test_batches_converted_on_the_device_equal_the_cpu_conversion(device):
    x = _images()
    streamed = StreamedSet(
        TensorSource(x, None, pre=Preprocess(channels=3, size=(5, 5)), name="random"), workers=0
    )
    reference = list(iter_batches(x, 4))
    assert [b.dtype for b in reference] == [torch.float32] * 3
    for given in (x, streamed):
        moved = list(iter_batches(given, 4, device=device))
        assert [b.device.type for b in moved] == [device] * 3
        for a, b in zip(reference, moved, strict=True):
            assert torch.equal(a, b.cpu())  # bit-equal: x / 255 in float32 on either side


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (pinned host memory)")
def test_a_streamed_set_is_read_into_pinned_memory_for_cuda(monkeypatch):
    from oodbench.data.sources import loader

    asked = []
    real = loader.make_loader

    def recording(source, batch_size, workers=None, pin_memory=False, **kwargs):
        asked.append(pin_memory)
        return real(source, batch_size, workers, pin_memory, **kwargs)

    monkeypatch.setattr(loader, "make_loader", recording)
    streamed = StreamedSet(
        TensorSource(_images(), None, pre=Preprocess(channels=3, size=(5, 5)), name="random"), workers=0
    )
    list(streamed.batches(4, device="cuda"))
    list(streamed.batches(4, device="cpu"))
    assert asked == [True, False]
