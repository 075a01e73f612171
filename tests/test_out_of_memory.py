"""Running out of memory is one line with the cause and the fix, exit code 2, nothing stored
damaged (oodbench.errors.out_of_memory; the runner's forward pass and the CLI map it)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from test_data_formats import write_image_folder
from test_stream_outs import _model
from torch import nn

from oodbench.cli import cli
from oodbench.data.sources.loader import ImageLoader
from oodbench.errors import OutOfMemory, UserInputError, is_out_of_memory
from oodbench.runner import shared_forward_pass

ALLOCATION_FAILURES = [
    MemoryError("Unable to allocate 718. MiB for an array with shape (5000, 3, 224, 224)"),
    RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 771751936 bytes. Error code 12 (Cannot allocate memory)"
    ),
    RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)"),
]


def _files(folder) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _failing_iter(error: BaseException):
    """ImageLoader.__iter__ that fails for the set named "mine" (every set streams in a run)."""
    real = ImageLoader.__iter__

    def __iter__(self):
        if self.source.name == "mine":
            raise error
        yield from real(self)

    return __iter__


@pytest.mark.parametrize("error", ALLOCATION_FAILURES, ids=["MemoryError", "cpu", "cuda"])
def test_a_loader_out_of_memory_is_one_line_naming_set_size_and_fix(tmp_path, monkeypatch, error):
    write_image_folder(tmp_path / "imgs", 6, size=(28, 28))
    args = [*_model(tmp_path), "--out", f"mine=folder:{tmp_path / 'imgs'}"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    stored = _files(tmp_path / "runs") | _files(tmp_path / "cache")
    assert any(p.name == "rows.jsonl" for p in stored) and any(p.suffix == ".npz" for p in stored)
    (tmp_path / "imgs" / "00000.png").touch()  # a changed set: scored again, through its loader
    monkeypatch.setattr(ImageLoader, "__iter__", _failing_iter(error))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    line = lines[0]
    assert "Out of memory while scoring 'mine' (6 images of 1x28x28, batches of 256)" in line
    assert all(option in line for option in ("--batch-size", "--workers", "--limit"))
    assert _files(tmp_path / "runs") | _files(tmp_path / "cache") == stored  # rows, scores, cache intact


def test_out_of_memory_elsewhere_is_one_line_too(tmp_path, monkeypatch):
    def load_suite(*args, **kwargs):
        raise MemoryError("Unable to allocate 46.0 GiB for an array")

    monkeypatch.setattr("oodbench.data.load_suite", load_suite)
    result = CliRunner().invoke(cli, _model(tmp_path))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: Out of memory (MemoryError: Unable to allocate")
    assert "--batch-size" in lines[0]


def test_other_runtime_errors_are_not_taken_for_out_of_memory():
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert is_out_of_memory(MemoryError()) and all(is_out_of_memory(e) for e in ALLOCATION_FAILURES)
    net = nn.Sequential(nn.Flatten(), nn.Linear(10, 2))
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        shared_forward_pass(net, torch.rand(3, 1, 28, 28), device="cpu", batch_size=2)


def test_forward_pass_names_an_in_memory_set_by_its_label(monkeypatch):
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2))

    def fail(self, x):
        raise MemoryError()

    monkeypatch.setattr(nn.Sequential, "forward", fail)
    with pytest.raises(OutOfMemory) as caught:
        shared_forward_pass(
            net, torch.rand(3, 1, 28, 28), device="cpu", batch_size=2, progress_label="scoring in"
        )
    assert isinstance(caught.value, UserInputError) and "\n" not in str(caught.value)
    assert "scoring 'in' (3 images of 1x28x28, batches of 2)" in str(caught.value)
