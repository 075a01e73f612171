"""Per-step overhead of DistributedDataParallel on gloo (2 processes x 1 thread) vs one process.

    PYTHONPATH=. python benchmarks/bench_ddp.py                 # ~1-2 min on 2 cores
    PYTHONPATH=. python benchmarks/bench_ddp.py --rounds 2 --steps 3   # quicker

Side by side in one run: two ranks are spawned once (gloo, torch threads 1 each) and, in every
round, three contenders run one after the other with the same models (the embedded recipe's
tiny_cnn classifier and dcgan_small GAN at 1x28x28) and oodbench's own step functions:
  single B     rank 0 alone, one thread, the global batch B (rank 1 waits in a barrier);
  single B/2   rank 0 alone, one thread, half the batch: the compute one rank does under DDP;
  2 x B/2 no sync  both ranks at once, B/2 each, unwrapped: the same compute, no communication
               (shows what two processes sharing the machine cost by themselves);
  DDP 2 x B/2  both ranks, networks wrapped in DDP, B/2 each: one global step of batch B.
Per-step time = median over rounds of (time of `--steps` steps) / steps, measured on rank 0
after a barrier. DDP - single B/2 = everything DDP adds over one rank's compute; DDP - no sync =
the communication alone (gradient all-reduce, BatchNorm buffer broadcasts, waiting for the
slower rank); speed-up = single B / DDP (2.0 would be perfect).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from oodbench.models import create_classifier, create_discriminator, create_generator
from oodbench.training import cross_entropy_step, joint_confidence_step
from oodbench.training.distributed import wrap


def build(method: str, wrapped: bool) -> dict:
    torch.manual_seed(0)
    nets = {"classifier": create_classifier("tiny_cnn", in_shape=(1, 28, 28), num_classes=10)}
    if method == "joint":
        nets["generator"] = create_generator("dcgan_small", out_shape=(1, 28, 28), nz=100)
        nets["discriminator"] = create_discriminator("dcgan_small", in_shape=(1, 28, 28))
    opts = {name: torch.optim.Adam(net.parameters(), lr=1e-3) for name, net in nets.items()}
    if wrapped:
        nets = {name: wrap(net, torch.device("cpu")) for name, net in nets.items()}
    return {"nets": nets, "opts": opts}


def step_fn(method: str, parts: dict, batch: int):
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    nets, opts = parts["nets"], parts["opts"]
    if method == "cross_entropy":
        return lambda: cross_entropy_step(x, y, classifier=nets["classifier"], opt_c=opts["classifier"])
    return lambda: joint_confidence_step(
        x,
        y,
        classifier=nets["classifier"],
        generator=nets["generator"],
        discriminator=nets["discriminator"],
        opt_c=opts["classifier"],
        opt_g=opts["generator"],
        opt_d=opts["discriminator"],
        beta=1.0,
        nz=100,
    )


def timed(fn, steps: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def worker(rank: int, port: int, args: argparse.Namespace, queue) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    batch = args.batch
    results: dict = {}
    for method in ("cross_entropy", "joint"):
        steps = args.steps if method == "cross_entropy" else max(1, args.steps // 2)
        single_full = step_fn(method, build(method, wrapped=False), batch) if rank == 0 else None
        single_half = step_fn(method, build(method, wrapped=False), batch // 2)
        ddp = step_fn(method, build(method, wrapped=True), batch // 2)
        times = {"single B": [], "single B/2": [], "2 x B/2 no sync": [], "DDP 2 x B/2": []}
        for _ in range(args.rounds):
            for name, fn in (("single B", single_full), ("single B/2", single_half)):
                dist.barrier()
                if rank == 0:
                    times[name].append(timed(fn, steps))
                dist.barrier()
            dist.barrier()
            times["2 x B/2 no sync"].append(timed(single_half, steps))
            dist.barrier()
            times["DDP 2 x B/2"].append(timed(ddp, steps))
        results[method] = {name: statistics.median(values) for name, values in times.items() if values}
    if rank == 0:
        queue.put(results)
    dist.barrier()
    dist.destroy_process_group()


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "uptime not available"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="global batch B (the embedded recipe's 64)")
    parser.add_argument("--steps", type=int, default=10, help="steps per timing (joint: half)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    args = parser.parse_args()
    print(f"uptime before: {uptime()}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    started = time.perf_counter()
    mp.start_processes(worker, args=(port, args, queue), nprocs=2, join=True, start_method="spawn")
    results = queue.get()
    print(f"uptime after:  {uptime()}  ({time.perf_counter() - started:.0f} s)")
    print(
        f"\ntiny_cnn (+ dcgan_small for joint), 1x28x28, global batch B = {args.batch}, gloo, "
        f"torch {torch.__version__}; ms per step, median of {args.rounds} rounds"
    )
    print(
        "| method | single B (1 thread) | single B/2 | 2 x B/2 no sync | DDP 2 x B/2 "
        "| DDP - single B/2 | DDP - no sync | speed-up vs single B |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for method, row in results.items():
        full, half, both, ddp = (row[k] for k in ("single B", "single B/2", "2 x B/2 no sync", "DDP 2 x B/2"))
        print(
            f"| {method} | {1e3 * full:.1f} | {1e3 * half:.1f} | {1e3 * both:.1f} | {1e3 * ddp:.1f} "
            f"| {1e3 * (ddp - half):+.1f} | {1e3 * (ddp - both):+.1f} | {full / ddp:.2f}x |"
        )


if __name__ == "__main__":
    main()
