"""Checkpoints: where they live, how they are written (atomically) and read back (weights only).

A checkpoint is one `torch.save`d dict of plain types and tensors, so that
`torch.load(..., weights_only=True)` reads it:
  format, format_version, config (the effective run config, see recipes.resolve_config),
  epoch (epochs completed), complete (epoch == config["epochs"]), history (per-epoch stats),
  data (sizes of the sets trained on), runtime (device, bf16, channels_last; not part of the
  identity of the run), models {classifier, generator?, discriminator?} state dicts,
  optimizers {...}, schedulers {...}, rng (torch CPU, CUDA, NumPy, Python, data-order generator).
It is written to a temporary file and renamed over the previous one, so a killed run always
leaves the last complete epoch's checkpoint intact.

Data-parallel runs (torchrun): rank 0 alone writes; models hold the unwrapped modules' state
(no DDP `module.` or torch.compile `_orig_mod.` prefix), rng holds rank 0's states and the shared
data-order generator. Ranks > 0 reseed their noise every epoch from (seed, rank, epoch) and need
nothing saved. Hence a checkpoint resumes under any world size: the data order continues
exactly; a single process continues rank 0's noise stream. `runtime` records world_size,
compile, data placement and fused Adam beside device, bf16 and channels_last.
"""

from __future__ import annotations

import io
import logging
import random
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench import paths
from oodbench.atomic import atomic_write_bytes
from oodbench.checkpoint_format import FORMAT, FORMAT_VERSION, check_compatible, read_checkpoint
from oodbench.models.trained import load_classifier

logger = logging.getLogger(__name__)



def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", str(value)).strip("-")


def checkpoint_path(
    method: str,
    recipe_name: str,
    dataset: str,
    seed: int,
    *,
    cache_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """<cache>/checkpoints/<dataset>/<method>-<recipe>-seed<seed>[-<overrides>].pt

    Runs with overridden hyperparameters get their own file (e.g. `...-seed1-epochs5.pt`) so they
    never replace the recipe's checkpoint that the runner reuses.
    """
    name = f"{_slug(method)}-{_slug(recipe_name)}-seed{int(seed)}"
    for key, value in sorted((overrides or {}).items()):
        if value is not None:
            name += f"-{_slug(key)}{_slug(value)}"
    return paths.cache_dir(cache_dir) / "checkpoints" / _slug(dataset) / f"{name}.pt"


# --- RNG states, as tensors and plain types so that weights_only loading accepts them ---------


def get_rng_state(data_generator: torch.Generator | None = None) -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "algorithm": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if data_generator is not None:
        state["data"] = data_generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], data_generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["algorithm"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            logger.warning(
                "checkpoint has CUDA RNG states for %d devices, this machine has %d; not restored",
                len(state["cuda"]),
                torch.cuda.device_count(),
            )
    if data_generator is not None:
        data_generator.set_state(state["data"])


# --- writing and reading --------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """A copy with every string interned and fresh containers.

    Pickle memoises repeated objects by identity, so the same content could serialise to
    different bytes depending on where its strings came from (code literals or a loaded
    checkpoint). Canonical copies make a resumed run's file byte-identical to a straight run's,
    hence the same sha256 in the results.
    """
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {_canonical(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_canonical(v) for v in value)
    return value


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Serialise in memory, then write atomically (temp file + fsync + rename)."""
    buffer = io.BytesIO()
    torch.save(_canonical({"format": FORMAT, "format_version": FORMAT_VERSION, **state}), buffer)
    atomic_write_bytes(path, buffer.getvalue())


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "check_compatible",
    "checkpoint_path",
    "get_rng_state",
    "load_classifier",
    "read_checkpoint",
    "save_checkpoint",
    "set_rng_state",
]
