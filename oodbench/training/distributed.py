"""Data-parallel training with DistributedDataParallel (DDP), decided by the environment.

One code path runs as a single process or under torchrun, as nanoGPT's train.py does:

    torchrun --nproc_per_node=4 -m oodbench train --method joint --in svhn    # 4 ranks
    python -m oodbench train --method joint --in svhn                         # 1 process

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE. When RANK is set, `train` joins the process group
(backend nccl on CUDA, gloo on CPU; each rank uses cuda:LOCAL_RANK), else it runs alone with no
collectives at all (world size 1). Under DDP:

- Batch: the recipe's batch size B stays the GLOBAL batch; each rank takes B / world_size
  (refused with one line when not divisible).
- Data: every rank draws the same shuffled order from the shared, seeded data generator;
  `shard` pads it by wrapping around to a multiple of the world size W and gives rank r the
  positions r, r + W, r + 2W, ... (what torch.utils.data.DistributedSampler does). Rank r's
  minibatch s then holds global positions [s*B, (s+1)*B): together the ranks see the images of
  the single-process minibatch s, and run the same number of steps per epoch.
- Models: classifier, generator and discriminator are each wrapped in DDP; gradients are averaged
  over the ranks in backward, so a step follows the gradient of the global-batch mean loss.
  BatchNorm statistics (DCGAN) are computed per rank (B / W images), as DDP does by default;
  buffers are broadcast from rank 0 at each wrapped forward.
- Noise: rank 0 draws z and dropout masks from the seeded global RNG exactly as a single process;
  every other rank reseeds its global torch RNG at the start of each epoch with
  `rank_seed(seed, rank, epoch)`, so the ranks draw different noise, reproducibly.
- Rank 0 alone writes checkpoints, runs the epoch callback, shows the progress bar and logs the
  epochs. Epoch statistics are summed over the ranks first (one all_reduce per epoch).
- Checkpoints hold the unwrapped modules' state (no `module.` / `_orig_mod.` prefixes) and rank
  0's RNG states, so a DDP checkpoint resumes in a single process and the other way round: the
  data order continues exactly (its generator is shared), rank 0 / the single process continues
  its saved RNG stream, and ranks > 0 take their per-epoch reseeds.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from oodbench.errors import UserInputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank, local rank, world size; `owns_group` if it created the group."""

    enabled: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_rank() -> int:
    """RANK from the environment (0 when not launched by torchrun): who may print."""
    return int(os.environ.get("RANK", "0") or 0)


def requested() -> bool:
    """True when launched by torchrun (RANK set), as nanoGPT decides `ddp`."""
    return int(os.environ.get("RANK", "-1") or -1) != -1


def env_world_size() -> int:
    """WORLD_SIZE from the environment when launched by torchrun, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) if requested() else 1


def per_rank_batch(global_batch: int, world_size: int) -> int:
    """The recipe's global batch split over the ranks; refused when it does not divide evenly."""
    if global_batch % world_size:
        raise UserInputError(
            f"batch size {global_batch} is not divisible by the {world_size} processes (WORLD_SIZE); "
            f"pass --batch-size with a multiple of {world_size} or change --nproc_per_node."
        )
    return global_batch // world_size


def setup(device: torch.device) -> tuple[Context, torch.device]:
    """Join the process group when launched by torchrun; return the context and this rank's device.

    The group is created here only if none exists yet (then `teardown` destroys it again).
    """
    if not requested() and not dist.is_initialized():
        return Context(), device
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
        owns = True
    context = Context(
        enabled=True,
        rank=dist.get_rank(),
        local_rank=local_rank,
        world_size=dist.get_world_size(),
        owns_group=owns,
    )
    logger.info("DDP rank %d of %d (%s) on %s", context.rank, context.world_size, dist.get_backend(), device)
    return context, device


def teardown(context: Context, *, barrier: bool = True) -> None:
    """Wait for every rank (so the last checkpoint exists everywhere), then leave a group we made."""
    if not context.enabled:
        return
    if barrier:
        dist.barrier()
    if context.owns_group:
        dist.destroy_process_group()


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` in DistributedDataParallel (on its CUDA device, or on CPU for gloo)."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def shard(order: torch.Tensor, context: Context) -> torch.Tensor:
    """This rank's part of an epoch's order, as DistributedSampler(shuffle=False, drop_last=False)
    splits a list: pad by wrapping to a multiple of the world size, then every W-th from the rank.

    A single process gets `order` itself (no copy, no padding).
    """
    world = context.world_size
    if world == 1:
        return order
    padded_len = -(-len(order) // world) * world
    reps = -(-padded_len // len(order))
    padded = torch.cat([order] * reps)[:padded_len] if padded_len > len(order) else order
    return padded[context.rank :: world]


def rank_seed(seed: int, rank: int, epoch: int) -> int:
    """A seed for rank > 0's noise in `epoch`, derived from (seed, rank, epoch) by NumPy's SeedSequence."""
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)


def all_reduce_sum(tensor: torch.Tensor, context: Context) -> torch.Tensor:
    """Sum `tensor` over the ranks in place (a no-op for a single process)."""
    if context.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
