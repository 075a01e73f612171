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
from torch import nn

from oodbench import paths
from oodbench.atomic import atomic_write_bytes
from oodbench.errors import DataNotFoundError, UserInputError, one_line
from oodbench.provenance import sha256_file

logger = logging.getLogger(__name__)

FORMAT = "oodbench-checkpoint"
FORMAT_VERSION = 1


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


def read_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an oodbench checkpoint with weights_only=True; one-line errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"Checkpoint {path} does not exist; train one with `oodbench train` (or check the path)."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to unpickle means "not a checkpoint"
        first_line = one_line(error, prefer=("WeightsUnpickler error",))
        raise UserInputError(
            f"{path} is not an oodbench checkpoint (torch.load failed: {first_line})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserInputError(f"{path} is not an oodbench checkpoint (no '{FORMAT}' marker).")
    if state.get("format_version") != FORMAT_VERSION:
        raise UserInputError(
            f"{path} has checkpoint format {state.get('format_version')}; this oodbench reads "
            f"{FORMAT_VERSION}. Retrain it with `oodbench train`."
        )
    return state


def _describe(dataset: str, shape: tuple[int, ...] | list[int]) -> str:
    return f"{dataset} ({'x'.join(str(int(s)) for s in shape)})"


def check_compatible(
    config: dict[str, Any],
    path: str | Path,
    *,
    expect_dataset: str | None,
    expect_shape: tuple[int, ...] | None,
) -> None:
    """Refuse a checkpoint trained on another data set or input shape."""
    trained_on = (config["dataset"], tuple(config["in_shape"]))
    needed = (expect_dataset or trained_on[0], tuple(expect_shape) if expect_shape else trained_on[1])
    if needed != trained_on:
        raise UserInputError(
            f"checkpoint {path} was trained on {_describe(*trained_on)}; this run needs {_describe(*needed)}"
        )


def load_classifier(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    expect_dataset: str | None = None,
    expect_shape: tuple[int, ...] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The trained classifier of a checkpoint, in eval mode on `device`, and its metadata.

    meta: config, epoch, complete, history, data, runtime, path, sha256 (of the file, what
    results record). Refuses a checkpoint for another data set or input shape.
    """
    from oodbench.models import create_classifier  # here, to keep this module free of model imports

    path = Path(path)
    state = read_checkpoint(path)
    config = state["config"]
    check_compatible(config, path, expect_dataset=expect_dataset, expect_shape=expect_shape)
    if not state.get("complete", False):
        logger.warning(
            "checkpoint %s is from an unfinished run (epoch %d of %d)", path, state["epoch"], config["epochs"]
        )
    model = create_classifier(
        config["arch"], in_shape=tuple(config["in_shape"]), num_classes=config["num_classes"]
    )
    model.load_state_dict(state["models"]["classifier"])
    model.to(device).eval()
    meta = {
        "config": config,
        "epoch": state["epoch"],
        "complete": state.get("complete", False),
        "history": state.get("history", []),
        "data": state.get("data", {}),
        "runtime": state.get("runtime", {}),
        "path": str(path),
        "sha256": sha256_file(path),
    }
    return model, meta
