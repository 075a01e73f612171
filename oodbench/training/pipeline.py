"""The one training pipeline: plan, load the training data, estimate, train.

`ensure_model` is used by `oodbench train` (through `oodbench.api.train_model`), `oodbench run`
and the sweep jobs (through `oodbench.runner.run_suite`) and the figures. Two modes:

- `resume=None` (run, sweep, figures): the cached checkpoint of the config is reused when
  complete, an unfinished one of the same config is resumed, any other file is replaced.
- `resume=True/False` (`oodbench train`): always train; True continues the checkpoint of this
  exact config from its last epoch, False starts again and replaces it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from oodbench.checkpoint_format import read_checkpoint
from oodbench.devices import resolve_device
from oodbench.errors import UserInputError
from oodbench.training import distributed, loop
from oodbench.training.estimate import TrainingEstimate, estimate_training
from oodbench.training.plan import TrainingPlan, plan_training
from oodbench.training.recipes import format_config

logger = logging.getLogger(__name__)


def ensure_model(
    method: str,
    suite_name: str,
    *,
    seed: int | None = 0,
    recipe: str | None = None,
    device: str | torch.device = "auto",
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    download: bool = False,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    on_estimate: Callable[[TrainingEstimate], None] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool | None = None,
    bf16: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    say: Callable[[str], None] | None = None,
) -> Path:
    """The final checkpoint of (method, suite, recipe, seed), trained now if needed (see the
    module docstring for `resume`).

    recipe None = the suite's default recipe; seed None = the recipe's. `overrides` (e.g.
    {"epochs": 1, "train_limit": 1000}) change the recipe and get their own checkpoint file
    (keyed by them), never the default one; `checkpoint` writes elsewhere than the cache. Only
    the training data are loaded (the in-dist train split and the seen OOD set). Before
    training, the duration is estimated (training/estimate.py) and passed to `on_estimate`;
    without it, an estimate over 30 minutes is logged as a warning. `say` receives the lines
    `oodbench train` prints (the effective configuration, notes on the checkpoint file).
    """
    from oodbench.data import load_suite  # here: data is only needed when training

    torch_device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    if resume is not None:
        loop.check_runtime(torch_device, bf16=bf16, channels_last=channels_last)
    # Option errors (e.g. --beta with cross_entropy) fail here, before any data is loaded.
    plan = plan_training(
        method,
        suite_name,
        recipe=recipe,
        seed=seed,
        overrides=overrides,
        cache_dir=cache_dir,
        checkpoint=checkpoint,
    )
    config, path = plan.config, plan.checkpoint
    world_size = distributed.env_world_size()
    if resume is None:
        state = _cached_state(path, config)
        if state is not None and state["complete"]:
            logger.info("using cached checkpoint %s", path)
            return path
        resume, done_epochs = state is not None, 0 if state is None else int(state["epoch"])
    else:
        _check_explicit_run(plan, world_size)
        done_epochs = _epochs_done(path, config) if resume else 0
    data = load_suite(suite_name, data_dir=data_dir, download=download, training_only=True)
    n_train = min(len(data.train.x), config.get("train_limit", len(data.train.x)))
    if say is not None:
        say(
            f"Training {method} on suite {suite_name} ({n_train} training images) with recipe "
            f"{plan.recipe.name}. Effective configuration:"
        )
        say(format_config(config))
        say(
            f"runtime: device {torch_device}, bf16 {bf16}, channels_last {channels_last}, compile {compile}, "
            f"processes {world_size}"
        )
    if distributed.env_rank() == 0 and world_size == 1:  # the estimate is for one process
        estimate = estimate_training(
            method, config, images=n_train, device=torch_device, epochs=config["epochs"] - done_epochs
        )
        if on_estimate is not None:
            on_estimate(estimate)
        elif estimate.long:
            logger.warning("%s", estimate.describe())
    runtime_flags = {"bf16": bf16, "channels_last": channels_last, "compile": compile}
    if say is not None and resume and not path.exists():
        say(f"Note: --resume, but {path} does not exist yet; starting from epoch 0.")
    elif say is not None and not resume and path.exists():
        say(f"Note: replacing {path} (pass --resume to continue it instead).")
    return loop.train(  # looked up at call time: tests replace it
        method,
        data,
        plan.recipe,
        seed=plan.seed,
        device=torch_device,
        checkpoint=path,
        resume=resume,
        progress=progress,
        **{flag: True for flag, on in runtime_flags.items() if on},  # train's defaults are False
        **plan.overrides,
    )


def _cached_state(path: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The cached checkpoint at `path` when it holds this config (complete or not), else None
    (absent, unreadable, or another config: warned about, then retrained)."""
    if not path.is_file():
        return None
    try:
        state = read_checkpoint(path)
    except UserInputError as error:
        logger.warning("ignoring unreadable cached checkpoint: %s", error)
        return None
    if state["config"] == config:
        return state
    logger.warning(
        "cached checkpoint %s has another config (%s); retraining",
        path,
        loop.config_diff(state["config"], config),
    )
    return None


def _check_explicit_run(plan: TrainingPlan, world_size: int) -> None:
    """`oodbench train`: remove temporary files of killed writes, and refuse an indivisible
    global batch before loading data (one line, from rank 0 only)."""
    from oodbench.atomic import remove_stale_temp_files

    remove_stale_temp_files(plan.checkpoint.parent)
    try:
        distributed.per_rank_batch(plan.config["batch_size"], world_size)
    except UserInputError:
        if distributed.env_rank() != 0:
            raise SystemExit(2) from None
        raise


def _epochs_done(path: Path, config: dict) -> int:
    """Epochs already in a resumable checkpoint of this config (0 if none or another config)."""
    if not path.is_file():
        return 0
    try:
        state = read_checkpoint(path)
    except UserInputError:
        return 0
    return int(state["epoch"]) if state["config"] == config else 0


def checkpoint_summary(path: Path) -> list[str]:
    """What `oodbench train` prints at the end: the last epoch's statistics, the file and its sha256."""
    from oodbench.provenance import sha256_file

    last = read_checkpoint(path)["history"][-1]
    return [
        "Last epoch: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items()),
        f"Checkpoint: {path}\nsha256: {sha256_file(path)}",
    ]
