"""The one training loop for the three methods (cross_entropy, confidence, joint).

Flat, top to bottom, in the manner of nanoGPT's train.py: resolve the config, build every
network / optimiser / scheduler from the seed, optionally restore a checkpoint over them, then
loop over epochs and minibatches and write a checkpoint after every epoch.

Determinism: on CPU a run is a function of (config, data). The data order comes from an
explicit torch.Generator whose state is saved with the torch / NumPy / Python RNG states in
every checkpoint, so `resume=True` from epoch k ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from oodbench import __version__
from oodbench.devices import resolve_device, seed_everything
from oodbench.errors import UserInputError
from oodbench.models import create_classifier, create_discriminator, create_generator
from oodbench.training.checkpoints import (
    checkpoint_path,
    get_rng_state,
    read_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from oodbench.training.joint import autocast, joint_confidence_step
from oodbench.training.losses import kl_uniform_to_softmax
from oodbench.training.recipes import METHODS, RECIPES, Recipe, format_config, resolve_config

logger = logging.getLogger(__name__)


# --- the per-minibatch steps of the two simple methods (joint's lives in joint.py) -----------


def cross_entropy_step(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    classifier: nn.Module,
    opt_c: torch.optim.Optimizer,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """One Adam step on E_in[-log p(y|x)]."""
    opt_c.zero_grad(set_to_none=True)
    with autocast(x.device, amp_dtype):
        logits = classifier(x)
    loss = F.cross_entropy(logits.float(), y)
    loss.backward()
    opt_c.step()
    accuracy = (logits.detach().argmax(dim=1) == y).float().mean()
    return {"loss": loss.item(), "acc": accuracy.item()}


def confidence_step(
    x: torch.Tensor,
    y: torch.Tensor,
    x_out: torch.Tensor,
    *,
    classifier: nn.Module,
    opt_c: torch.optim.Optimizer,
    beta: float,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """One Adam step on E_in[-log p(y|x)] + beta * E_out[KL(U || p(.|x_out))] (the confidence loss)."""
    opt_c.zero_grad(set_to_none=True)
    with autocast(x.device, amp_dtype):
        logits = classifier(x)
        logits_out = classifier(x_out)
    nll = F.cross_entropy(logits.float(), y)
    kl = kl_uniform_to_softmax(logits_out.float())
    (nll + beta * kl).backward()
    opt_c.step()
    accuracy = (logits.detach().argmax(dim=1) == y).float().mean()
    return {"loss": nll.item(), "kl": kl.item(), "acc": accuracy.item()}


# --- helpers -------------------------------------------------------------------------------


def check_runtime(device: torch.device, *, bf16: bool, channels_last: bool) -> None:
    """bf16 autocast and channels_last are GPU options; on other devices they are refused, not ignored."""
    if device.type != "cuda":
        flags = [flag for flag, on in (("--bf16", bf16), ("--channels-last", channels_last)) if on]
        if flags:
            raise UserInputError(
                f"{' and '.join(flags)} {'needs' if len(flags) == 1 else 'need'} a CUDA device; "
                f"this run uses {device}. "
                "Drop the flag or pass --device cuda."
            )


def _seen_ood_name(data: Any) -> str | None:
    suite = getattr(data, "suite", None)
    name = getattr(suite, "seen_ood", None)
    if name:
        return str(name)
    seen = getattr(data, "seen_ood", None)
    return getattr(seen, "name", None)


def _check_images(images: Any, shape: tuple[int, ...], what: str, *, labels: bool) -> None:
    if images is None or len(images.x) == 0:
        raise UserInputError(f"The {what} set is empty; training needs data there.")
    if tuple(images.x.shape[1:]) != tuple(shape):
        raise UserInputError(
            f"The {what} set has images of shape {tuple(images.x.shape[1:])}; the run needs {tuple(shape)}."
        )
    if labels and images.y is None:
        raise UserInputError(f"The {what} set has no labels; a classifier cannot be trained on it.")


def _cycled_order(pool_size: int, needed: int, generator: torch.Generator) -> torch.Tensor:
    """`needed` indices into a pool: fresh shuffles of the pool concatenated (cycling a smaller pool)."""
    reps = math.ceil(needed / pool_size)
    return torch.cat([torch.randperm(pool_size, generator=generator) for _ in range(reps)])[:needed]


def _config_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)


def run_config(
    method: str, data: Any, recipe: Recipe | str, *, seed: int, **overrides: Any
) -> dict[str, Any]:
    """The effective config `train` will use for these arguments (what `oodbench train` prints)."""
    recipe = RECIPES.get(recipe) if isinstance(recipe, str) else recipe
    spec = data.spec
    return resolve_config(
        method,
        recipe,
        dataset=spec.name,
        in_shape=tuple(spec.image_shape),
        num_classes=spec.num_classes,
        seed=seed,
        seen_ood=_seen_ood_name(data) if method == "confidence" else None,
        overrides=overrides,
    )


# --- the loop ----------------------------------------------------------------------------


def train(
    method: str,
    data: Any,
    recipe: Recipe | str,
    *,
    seed: int,
    device: str | torch.device,
    checkpoint: str | Path,
    resume: bool = False,
    progress: bool = True,
    bf16: bool = False,
    channels_last: bool = False,
    epoch_callback: Callable[[int, dict[str, nn.Module]], None] | None = None,
    **overrides: Any,
) -> Path:
    """Train `method` on `data` (a SuiteData: .spec, .train, .seen_ood) with `recipe`; return the checkpoint.

    overrides: epochs, beta, batch_size, lr, gan_warmup_epochs (None = the recipe's value); they
    are recorded in the checkpoint config. A checkpoint is written after every epoch; with
    `resume=True` an existing checkpoint of the same config is continued from its last epoch.
    `epoch_callback(epochs_done, nets)`, if given, runs after each epoch's checkpoint (e.g. to save
    generator samples); nets maps "classifier" (and "generator", "discriminator") to the modules.
    It must not change them or draw from the global RNG (that would change the rest of the run).
    """
    # 1. The effective config: recipe + overrides + method + data + seed. Nothing else changes it.
    recipe = RECIPES.get(recipe) if isinstance(recipe, str) else recipe
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    checkpoint = Path(checkpoint)
    config = run_config(method, data, recipe, seed=seed, **overrides)
    check_runtime(device, bf16=bf16, channels_last=channels_last)
    amp_dtype = torch.bfloat16 if bf16 else None
    runtime = {
        "device": str(device),
        "bf16": bf16,
        "channels_last": channels_last,
        "torch_version": str(torch.__version__),
        "oodbench_version": __version__,
    }
    in_shape = tuple(config["in_shape"])
    _check_images(data.train, in_shape, "training", labels=True)
    train_x, train_y = data.train.x, data.train.y
    ood_x = None
    if method == "confidence":
        _check_images(data.seen_ood, in_shape, "seen OOD", labels=False)
        ood_x = data.seen_ood.x
    logger.info("training %s -> %s\n%s\nruntime: %s", method, checkpoint, format_config(config), runtime)

    # 2. Build everything from the seed (a resumed run builds the same objects, then loads states).
    seed_everything(config["seed"])
    classifier = create_classifier(config["arch"], in_shape=in_shape, num_classes=config["num_classes"])
    nets: dict[str, nn.Module] = {"classifier": classifier}
    if method == "joint":
        nets["generator"] = create_generator(config["gen_arch"], out_shape=in_shape, nz=config["nz"])
        nets["discriminator"] = create_discriminator(config["disc_arch"], in_shape=in_shape)
    for net in nets.values():
        net.to(device)
        if channels_last:
            net.to(memory_format=torch.channels_last)
    optimizers = {
        "classifier": torch.optim.Adam(
            classifier.parameters(),
            lr=config["lr"],
            betas=tuple(config["classifier_adam_betas"]),
            weight_decay=config["weight_decay"],
        )
    }
    if method == "joint":
        for name in ("generator", "discriminator"):
            optimizers[name] = torch.optim.Adam(
                nets[name].parameters(), lr=config["lr"], betas=tuple(config["gan_adam_betas"])
            )
    # All learning rates x lr_gamma after each milestone epoch (stepped once per epoch).
    schedulers = {
        name: torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=config["lr_milestones"], gamma=config["lr_gamma"]
        )
        for name, opt in optimizers.items()
    }
    # The data order has its own generator, saved in checkpoints, so resuming replays it exactly.
    data_generator = torch.Generator().manual_seed(config["seed"])
    start_epoch, history = 0, []

    # 3. Resume: load every state over the freshly built objects.
    if resume and checkpoint.is_file():
        state = read_checkpoint(checkpoint)
        if state["config"] != config:
            raise UserInputError(
                f"checkpoint {checkpoint} was made with another config "
                f"({_config_diff(state['config'], config)}); "
                "drop --resume to start over, or resume with the same options."
            )
        for name, net in nets.items():
            net.load_state_dict(state["models"][name])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
            schedulers[name].load_state_dict(state["schedulers"][name])
        set_rng_state(state["rng"], data_generator)
        start_epoch, history = state["epoch"], list(state["history"])
        logger.info("resuming %s from epoch %d of %d", checkpoint, start_epoch, config["epochs"])
    elif resume:
        logger.warning("--resume: no checkpoint at %s yet; starting from epoch 0", checkpoint)
    elif checkpoint.exists():
        logger.warning("replacing the existing checkpoint %s (pass resume=True to continue it)", checkpoint)

    # 4. The epochs.
    n_train, batch_size, epochs = len(train_x), config["batch_size"], config["epochs"]
    steps_per_epoch = math.ceil(n_train / batch_size)
    bar = tqdm(
        total=epochs * steps_per_epoch,
        initial=start_epoch * steps_per_epoch,
        desc=method,
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
        leave=True,
    )
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        for net in nets.values():
            net.train()
        beta = config.get("beta", 0.0)
        if method == "joint" and epoch < config["gan_warmup_epochs"]:
            beta = 0.0  # warm-up: plain GAN + cross-entropy classifier
        perm = torch.randperm(n_train, generator=data_generator)
        if ood_x is not None:
            ood_order = _cycled_order(len(ood_x), n_train, data_generator)
        sums: dict[str, float] = defaultdict(float)
        seen = 0
        for step in range(steps_per_epoch):
            idx = perm[step * batch_size : (step + 1) * batch_size]
            x = train_x[idx].to(device, non_blocking=True)
            y = train_y[idx].to(device, non_blocking=True).long()
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if method == "cross_entropy":
                stats = cross_entropy_step(
                    x, y, classifier=classifier, opt_c=optimizers["classifier"], amp_dtype=amp_dtype
                )
            elif method == "confidence":
                x_out = ood_x[ood_order[step * batch_size : step * batch_size + len(idx)]].to(device)
                if channels_last:
                    x_out = x_out.contiguous(memory_format=torch.channels_last)
                stats = confidence_step(
                    x,
                    y,
                    x_out,
                    classifier=classifier,
                    opt_c=optimizers["classifier"],
                    beta=beta,
                    amp_dtype=amp_dtype,
                )
            else:
                stats = joint_confidence_step(
                    x,
                    y,
                    classifier=classifier,
                    generator=nets["generator"],
                    discriminator=nets["discriminator"],
                    opt_c=optimizers["classifier"],
                    opt_g=optimizers["generator"],
                    opt_d=optimizers["discriminator"],
                    beta=beta,
                    nz=config["nz"],
                    amp_dtype=amp_dtype,
                )
            for key, value in stats.items():
                sums[key] += value * len(idx)
            seen += len(idx)
            bar.update(1)
            if step % 10 == 0 or step == steps_per_epoch - 1:
                bar.set_postfix(
                    epoch=f"{epoch + 1}/{epochs}",
                    loss=f"{sums['loss'] / seen:.3f}",
                    acc=f"{sums['acc'] / seen:.3f}",
                    refresh=False,
                )
        lr_used = optimizers["classifier"].param_groups[0]["lr"]
        for scheduler in schedulers.values():
            scheduler.step()
        # No wall-clock time in the checkpoint: identical runs give byte-identical files.
        record = {"epoch": epoch + 1, "lr": lr_used} | ({"beta": beta} if "beta" in config else {})
        record |= {k: v / seen for k, v in sums.items()}
        history.append(record)
        logger.info(
            "epoch %d/%d (%.1f s): %s",
            epoch + 1,
            epochs,
            time.perf_counter() - started,
            ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"),
        )
        save_checkpoint(
            checkpoint,
            {
                "config": config,
                "epoch": epoch + 1,
                "complete": epoch + 1 == epochs,
                "history": history,
                "data": {
                    "train": str(data.train.name),
                    "n_train": n_train,
                    "n_seen_ood": 0 if ood_x is None else len(ood_x),
                },
                "runtime": runtime,
                "models": {name: net.state_dict() for name, net in nets.items()},
                "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
                "schedulers": {name: sch.state_dict() for name, sch in schedulers.items()},
                "rng": get_rng_state(data_generator),
            },
        )
        if epoch_callback is not None:
            epoch_callback(epoch + 1, nets)
    bar.close()
    return checkpoint


def ensure_model(
    method: str,
    suite_name: str,
    *,
    seed: int = 0,
    recipe: str | None = None,
    device: str | torch.device = "auto",
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """The cached final checkpoint of (method, suite, recipe, seed), training it first if needed.

    recipe None = the suite's default recipe. A cached file is reused only when complete and its
    config equals the one this call would train; an unfinished one with the same config is resumed;
    any other file at that path is replaced (with a warning). `overrides` (e.g. {"beta": 0.0})
    change the recipe and get their own checkpoint file, never the default one.
    """
    from oodbench.data import DATASETS, SUITES, load_suite  # here: data is only needed when training

    METHODS.get(method)
    suite = SUITES.get(suite_name)
    recipe_obj = RECIPES.get(recipe or suite.recipe)
    spec = DATASETS.get(suite.in_dataset)
    config = resolve_config(
        method,
        recipe_obj,
        dataset=spec.name,
        in_shape=tuple(spec.image_shape),
        num_classes=spec.num_classes,
        seed=seed,
        seen_ood=suite.seen_ood if method == "confidence" else None,
        overrides=overrides,
    )
    path = checkpoint_path(method, recipe_obj.name, spec.name, seed, cache_dir=cache_dir, overrides=overrides)
    resume = False
    if path.is_file():
        try:
            state = read_checkpoint(path)
        except UserInputError as error:
            logger.warning("ignoring unreadable cached checkpoint: %s", error)
            state = None
        if state is not None and state["config"] == config:
            if state["complete"]:
                logger.info("using cached checkpoint %s", path)
                return path
            resume = True
        elif state is not None:
            logger.warning(
                "cached checkpoint %s has another config (%s); retraining",
                path,
                _config_diff(state["config"], config),
            )
    data = load_suite(suite_name, data_dir=data_dir)
    return train(
        method,
        data,
        recipe_obj,
        seed=seed,
        device=device,
        checkpoint=path,
        resume=resume,
        progress=progress,
        **(overrides or {}),
    )
