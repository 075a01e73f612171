"""The GPU-efficient loop, checked on the CPU: no host reads per step, data placements, uint8
storage and torch.compile plumbing all leave a CPU run's result unchanged."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import oodbench.training.loop as loop_module
from oodbench.training import read_checkpoint, train
from oodbench.training.feed import DEVICE_FRACTION, Feed, choose_placement

sys.path.insert(0, str(Path(__file__).parent))
from test_training import IMAGE_RECIPE, image_suite, state_tensors  # noqa: E402

# Tensor methods that copy a value to the host (on CUDA: wait for the device).
HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")


def count_host_reads(monkeypatch) -> dict[str, int]:
    """Patch torch.Tensor's host reads to count the calls made from oodbench's own code."""
    counts = dict.fromkeys(HOST_READS, 0)
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _name=name, _original=original, **kwargs):
            if sys._getframe(1).f_globals.get("__name__", "").startswith("oodbench"):
                counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return counts


@pytest.mark.parametrize("method", ["cross_entropy", "confidence", "joint"])
def test_host_reads_grow_with_epochs_not_with_steps(method, monkeypatch, tmp_path):
    counts = count_host_reads(monkeypatch)
    totals = {}
    for n_images, epochs in ((32, 1), (96, 1), (32, 2)):  # 2, 6 and 2 x 2 steps of 16
        for key in counts:
            counts[key] = 0
        train(
            method,
            image_suite(n_images),
            IMAGE_RECIPE,
            seed=0,
            device="cpu",
            checkpoint=tmp_path / f"{n_images}-{epochs}.pt",
            progress=False,
            epochs=epochs,
        )
        totals[(n_images, epochs)] = sum(counts.values())
    assert totals[(32, 1)] >= 1  # the counter sees the once-per-epoch read
    assert totals[(96, 1)] == totals[(32, 1)]  # 3x the steps, not one read more
    assert totals[(32, 2)] == 2 * totals[(32, 1)]  # O(epochs)


def test_placement_is_decided_by_size_against_free_memory():
    cuda = torch.device("cuda")
    assert choose_placement(225_000_000, torch.device("cpu")) == "cpu"
    assert choose_placement(225_000_000, cuda, free_bytes=140 * 2**30) == "device"  # SVHN uint8 on an H200
    assert choose_placement(225_000_000, cuda, free_bytes=int(225_000_000 / DEVICE_FRACTION) - 1) == "pinned"


@pytest.mark.parametrize("placement", ["device", "pinned"])
def test_every_placement_gives_the_cpu_result(placement, tmp_path):
    data = image_suite(40)
    ref = train(
        "confidence", data, IMAGE_RECIPE, seed=1, device="cpu", checkpoint=tmp_path / "a.pt", progress=False
    )
    other = train(
        "confidence",
        data,
        IMAGE_RECIPE,
        seed=1,
        device="cpu",
        checkpoint=tmp_path / "b.pt",
        progress=False,
        data_placement=placement,
    )
    a, b = state_tensors(ref), state_tensors(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_checkpoint(other)["runtime"]["data_placement"] == placement


def test_uint8_images_train_exactly_like_their_float_copy(tmp_path):
    data = image_suite(40)
    as_uint8 = (data.train.x * 255).round().to(torch.uint8)
    data.train.x = as_uint8.float() / 255  # the float copy as_float gives
    ref = train(
        "confidence", data, IMAGE_RECIPE, seed=2, device="cpu", checkpoint=tmp_path / "f.pt", progress=False
    )
    data.train.x = as_uint8
    feed = Feed(as_uint8, data.train.y, torch.device("cpu"))
    assert feed.batch(torch.tensor([0, 1]))[0].dtype == torch.float32
    got = train(
        "confidence", data, IMAGE_RECIPE, seed=2, device="cpu", checkpoint=tmp_path / "u.pt", progress=False
    )
    a, b = state_tensors(ref), state_tensors(got)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_compile_wraps_every_network_and_is_recorded(monkeypatch, tmp_path):
    compiled = []

    def fake_compile(module, **kwargs):
        compiled.append(type(module).__name__)
        return module

    monkeypatch.setattr(loop_module.torch, "compile", fake_compile)
    path = train(
        "joint",
        image_suite(16),
        IMAGE_RECIPE,
        seed=0,
        device="cpu",
        checkpoint=tmp_path / "c.pt",
        progress=False,
        compile=True,
        epochs=1,
    )
    assert len(compiled) == 3
    state = read_checkpoint(path)
    assert state["runtime"]["compile"] is True


@pytest.mark.slow
def test_compiled_training_on_cpu_matches_eager(tmp_path):
    """Real torch.compile on the CPU (inductor, C++ compiler): ~1 min of compiling."""
    data = image_suite(32)
    eager = train(
        "cross_entropy",
        data,
        IMAGE_RECIPE,
        seed=0,
        device="cpu",
        checkpoint=tmp_path / "e.pt",
        progress=False,
    )
    compiled = train(
        "cross_entropy",
        data,
        IMAGE_RECIPE,
        seed=0,
        device="cpu",
        checkpoint=tmp_path / "c.pt",
        progress=False,
        compile=True,
    )
    a, b = state_tensors(eager), state_tensors(compiled)
    assert a.keys() == b.keys()  # unprefixed: no "_orig_mod."
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


def test_gpu_benchmark_cpu_smoke_writes_its_summary(tmp_path):
    """bench_gpu.py --device cpu --quick runs every section (tiny sizes) and writes the summary."""
    root = Path(__file__).parents[1]
    summary = tmp_path / "gpu_results.md"
    result = subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "bench_gpu.py"),
            "--device",
            "cpu",
            "--quick",
            "--summary",
            str(summary),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = summary.read_text()
    assert "FAILED" not in text, text
    for needle in (
        "cross_entropy steps/s",
        "joint steps/s",
        "implied 100-epoch lee2018-svhn joint run",
        "load_classifier on cpu: OK",
    ):
        assert needle in text


@pytest.mark.slow
def test_gpu_sh_cpu_smoke(tmp_path):
    """benchmarks/gpu.sh --smoke: the whole script on the CPU (~30-60 s)."""
    root = Path(__file__).parents[1]
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "PYTHON": sys.executable,
        "OODBENCH_CACHE": str(tmp_path / "c"),
    }
    result = subprocess.run(
        ["bash", str(root / "benchmarks" / "gpu.sh"), "--smoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    text = (tmp_path / "gpu_results.md").read_text()
    assert "FAILED" not in text and "(DDP path): OK" in text, text
