"""Data-parallel training (DDP, gloo, 2 processes x 1 thread on CPU) against single-process runs.

One spawn of 2 ranks runs every DDP training of this file in one process group (starting
processes is the slow part); the single-process references run in the test process. The
image suite is 64 tiny 28x28 images, global batch 16 (8 per rank), 2 epochs.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import oodbench.training.loop as loop_module
from oodbench.data.convert import as_float
from oodbench.errors import UserInputError
from oodbench.training import distributed, read_checkpoint, train
from oodbench.training.distributed import Context, shard

sys.path.insert(0, str(Path(__file__).parent))
from test_training import IMAGE_RECIPE, image_suite, state_tensors  # noqa: E402

N_IMAGES = 64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Stop(Exception):
    pass


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """One rank: the DDP runs the tests below compare (each in its own folder)."""
    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    dist.init_process_group("gloo", rank=rank, world_size=world)
    out = Path(out)
    data = image_suite(N_IMAGES)

    def run(method, folder, **kwargs):
        return train(
            method,
            data,
            IMAGE_RECIPE,
            seed=0,
            device="cpu",
            checkpoint=out / folder / "m.pt",
            progress=False,
            **kwargs,
        )

    # 1. Straight runs. For joint, record every rank's final weights: DDP must keep them equal.
    wrapped = {}
    original_wrap = distributed.wrap

    def recording_wrap(module, device):
        wrapped[type(module).__name__ + str(len(wrapped))] = module
        return original_wrap(module, device)

    run("cross_entropy", "ce")
    distributed.wrap = recording_wrap
    run("joint", "joint")
    distributed.wrap = original_wrap
    torch.save({k: m.state_dict() for k, m in wrapped.items()}, out / f"joint_rank{rank}_weights.pt")

    # 2. A DDP run stopped after epoch 1 (every rank stops at the epoch-2 statistics, before the save).
    calls = []
    original_reduce = distributed.all_reduce_sum

    def reduce_then_stop(tensor, context):
        calls.append(1)
        if len(calls) == 2:
            raise _Stop
        return original_reduce(tensor, context)

    distributed.all_reduce_sum = reduce_then_stop
    try:
        run("cross_entropy", "ddp_stopped")
    except _Stop:
        pass
    distributed.all_reduce_sum = original_reduce

    # 3. Resume under DDP a checkpoint that a single process stopped after epoch 1.
    run("cross_entropy", "single_stopped", resume=True)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    # The single-process run stopped after epoch 1, for the workers to resume (step 3).
    original_save = loop_module.save_checkpoint

    def save_then_stop(path, state):
        original_save(path, state)
        raise _Stop

    loop_module.save_checkpoint = save_then_stop
    try:
        train(
            "cross_entropy",
            image_suite(N_IMAGES),
            IMAGE_RECIPE,
            seed=0,
            device="cpu",
            checkpoint=out / "single_stopped" / "m.pt",
            progress=False,
        )
    except _Stop:
        pass
    finally:
        loop_module.save_checkpoint = original_save
    assert read_checkpoint(out / "single_stopped" / "m.pt")["epoch"] == 1
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return out


def _single(method, path, **kwargs):
    return train(
        method,
        image_suite(N_IMAGES),
        IMAGE_RECIPE,
        seed=0,
        device="cpu",
        checkpoint=path,
        progress=False,
        **kwargs,
    )


def _accuracy(path) -> float:
    from oodbench.training import load_classifier

    model, _ = load_classifier(path)
    data = image_suite(N_IMAGES, seed=1)  # fresh images of the same two classes
    with torch.no_grad():
        return (model(as_float(data.train.x)).argmax(1) == data.train.y).float().mean().item()


def _close(a_path, b_path, atol):
    a, b = state_tensors(a_path), state_tensors(b_path)
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a if k.startswith("models")) <= atol


def test_ddp_cross_entropy_matches_one_process_and_rank0_writes_one_file(ddp_runs, tmp_path):
    ddp = ddp_runs / "ce" / "m.pt"
    assert sorted(p.name for p in (ddp_runs / "ce").iterdir()) == ["m.pt"]  # rank 0 alone wrote
    state = read_checkpoint(ddp)
    assert state["runtime"]["world_size"] == 2 and state["complete"]
    single = _single("cross_entropy", tmp_path / "single.pt")
    # Gradients averaged over 2 ranks x 8 images = the gradient of the 16-image batch: tiny_cnn
    # has no BatchNorm, so the weights agree up to float summation order.
    assert _close(single, ddp, atol=1e-5)
    assert abs(_accuracy(single) - _accuracy(ddp)) <= 0.02
    one, two = read_checkpoint(single)["history"], state["history"]
    assert [h["acc"] for h in one] == pytest.approx([h["acc"] for h in two], abs=1e-6)


def test_ddp_joint_syncs_all_three_networks_and_matches_accuracy(ddp_runs, tmp_path):
    assert sorted(p.name for p in (ddp_runs / "joint").iterdir()) == ["m.pt"]
    rank0 = torch.load(ddp_runs / "joint_rank0_weights.pt")
    rank1 = torch.load(ddp_runs / "joint_rank1_weights.pt")
    assert len(rank0) == 3  # classifier, generator, discriminator all went through DDP
    for name in rank0:
        for key, value in rank0[name].items():
            if value.is_floating_point() and "running" not in key:  # BN running stats stay per rank
                assert torch.equal(value, rank1[name][key]), (name, key)
    single = _single("joint", tmp_path / "single.pt")
    assert abs(_accuracy(single) - _accuracy(ddp_runs / "joint" / "m.pt")) <= 0.05


def test_ddp_checkpoint_resumes_in_one_process_and_the_other_way_round(ddp_runs, tmp_path):
    straight = _single("cross_entropy", tmp_path / "straight.pt")
    # DDP stopped after epoch 1 -> finished by a single process.
    stopped = ddp_runs / "ddp_stopped" / "m.pt"
    assert read_checkpoint(stopped)["epoch"] == 1
    assert not any(
        k.startswith(("module.", "_orig_mod.")) for k in read_checkpoint(stopped)["models"]["classifier"]
    )
    resumed = _single("cross_entropy", stopped, resume=True)
    assert read_checkpoint(resumed)["epoch"] == 2 and read_checkpoint(resumed)["runtime"]["world_size"] == 1
    assert _close(straight, resumed, atol=1e-5)
    # Single process stopped after epoch 1 -> finished under DDP by the workers.
    other = ddp_runs / "single_stopped" / "m.pt"
    assert read_checkpoint(other)["epoch"] == 2 and read_checkpoint(other)["runtime"]["world_size"] == 2
    assert _close(straight, other, atol=1e-5)


def test_shard_is_distributed_samplers_split_and_covers_each_global_batch():
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    parts = [shard(order, Context(enabled=True, rank=r, world_size=4)) for r in range(4)]
    # DistributedSampler(shuffle=False) on `order`: pad 10 -> 12 by wrapping, rank r takes r::4.
    padded = torch.cat([order, order[:2]])
    assert all(torch.equal(parts[r], padded[r::4]) for r in range(4))
    # With a per-rank batch of 2 (global 8), rank-batch s of every rank together = global batch s.
    for s in range(2):
        together = torch.cat([p[s * 2 : (s + 1) * 2] for p in parts])
        assert sorted(together.tolist()) == sorted(padded[s * 8 : (s + 1) * 8].tolist())
    assert shard(order, Context()) is order


def test_indivisible_global_batch_is_refused_in_one_line(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from oodbench.cli import cli

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(UserInputError, match="batch size 16 is not divisible by the 3 processes"):
        _single("cross_entropy", tmp_path / "m.pt")
    result = CliRunner().invoke(
        cli, ["train", "-m", "cross_entropy", "--epochs", "1", "--cache-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: batch size 64 is not divisible by the 3 processes (WORLD_SIZE); pass --batch-size "
        "with a multiple of 3 or change --nproc_per_node."
    ]
    assert not dist.is_initialized() and not (tmp_path / "m.pt").exists()


def test_rank_seeds_differ_by_rank_and_epoch():
    seeds = {distributed.rank_seed(0, rank, epoch) for rank in (1, 2) for epoch in (0, 1)}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)


@pytest.mark.slow
def test_torchrun_cli_trains_with_two_processes_and_prints_once(tmp_path):
    """`torchrun --nproc_per_node=2 -m oodbench train` end to end on the embedded suite (~30 s)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]), OMP_NUM_THREADS="1")
    path = tmp_path / "ce.pt"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "-m",
            "oodbench",
            "train",
            "-m",
            "cross_entropy",
            "--epochs",
            "1",
            "--quiet",
            "--checkpoint",
            str(path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("Checkpoint: ") == 1 and "processes 2" in result.stdout
    assert read_checkpoint(path)["runtime"]["world_size"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ce.pt"]
