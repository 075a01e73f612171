"""The one training loop for the three methods (cross_entropy, confidence, joint).

Flat, top to bottom, in the manner of nanoGPT's train.py: resolve the config, build every
network / optimiser / scheduler from the seed, optionally restore a checkpoint over them, then
loop over epochs and minibatches and write a checkpoint after every epoch.

Determinism: on CPU a run is a function of (config, data). The data order comes from an
explicit torch.Generator whose state is saved with the torch / NumPy / Python RNG states in
every checkpoint, so `resume=True` from epoch k ends bit-identical to an uninterrupted run.

Multi-process (DDP): decided by the environment, as in nanoGPT. Launched by torchrun (RANK,
LOCAL_RANK, WORLD_SIZE set), `train` joins the process group (nccl on CUDA, gloo on CPU), splits
each epoch's order over the ranks (DistributedSampler's rule), keeps the recipe's batch size as
the global batch (B / world_size per rank, refused if not divisible) and wraps the classifier,
generator and discriminator in DistributedDataParallel; otherwise it runs as one process. Rank 0
alone writes checkpoints, runs `epoch_callback`, shows progress and logs epochs; the epoch
statistics are summed over the ranks. Checkpoints hold the unwrapped modules and rank 0's RNG
states, so they resume in either mode. Details: oodbench/training/distributed.py.

GPU efficiency: no host-device synchronisation inside an epoch. Step statistics stay on the
device as tensors, summed there, and are read once per epoch (one `.tolist()`). The training set
sits on the device when it fits (training/feed.py), else batches come through pinned memory;
either way each batch is converted to float by `as_float` when it is used. On CUDA, Adam is
the fused kernel and cudnn.benchmark is switched on. Options: bf16
autocast and channels_last (CUDA only), and `compile=True` (torch.compile of every network; it
works on CPU too, with a C++ compiler). None of these changes a CPU run without them: the order
of random draws and the operations are those of the single-process loop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from oodbench import __version__
from oodbench.data.suites import limit_training
from oodbench.devices import resolve_device, seed_everything
from oodbench.errors import UserInputError
from oodbench.models import create_classifier, create_discriminator, create_generator
from oodbench.training import distributed
from oodbench.training.checkpoints import (
    get_rng_state,
    read_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from oodbench.training.feed import Feed
from oodbench.training.joint import autocast, joint_confidence_step
from oodbench.training.losses import kl_uniform_to_softmax
from oodbench.training.recipes import RECIPES, Recipe, format_config, resolve_config

logger = logging.getLogger(__name__)


# --- the per-minibatch steps of the two simple methods (joint's lives in joint.py) -----------


def cross_entropy_step(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    classifier: nn.Module,
    opt_c: torch.optim.Optimizer,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """One Adam step on E_in[-log p(y|x)]; statistics as detached 0-d tensors on the device."""
    opt_c.zero_grad(set_to_none=True)
    with autocast(x.device, amp_dtype):
        logits = classifier(x)
    loss = F.cross_entropy(logits.float(), y)
    loss.backward()
    opt_c.step()
    accuracy = (logits.detach().argmax(dim=1) == y).float().mean()
    return {"loss": loss.detach(), "acc": accuracy}


def confidence_step(
    x: torch.Tensor,
    y: torch.Tensor,
    x_out: torch.Tensor,
    *,
    classifier: nn.Module,
    opt_c: torch.optim.Optimizer,
    beta: float,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
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
    return {"loss": nll.detach(), "kl": kl.detach(), "acc": accuracy}


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


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The keys whose values differ, as "key: old -> new" (for messages)."""
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


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
    compile: bool = False,
    data_placement: str | None = None,
    epoch_callback: Callable[[int, dict[str, nn.Module]], None] | None = None,
    **overrides: Any,
) -> Path:
    """Train `method` on `data` (a SuiteData: .spec, .train, .seen_ood) with `recipe`; return the checkpoint.

    overrides: epochs, beta, batch_size, lr, gan_warmup_epochs, train_limit (None = the recipe's
    value); they are recorded in the checkpoint config. train_limit N trains on a fixed
    stratified subset of N training images and at most N seen OOD images. A checkpoint is
    written after every epoch; with `resume=True` an existing checkpoint of the same config is
    continued from its last epoch.
    `epoch_callback(epochs_done, nets)`, if given, runs after each epoch's checkpoint (e.g. to save
    generator samples); nets maps "classifier" (and "generator", "discriminator") to the modules.
    It must not change them or draw from the global RNG (that would change the rest of the run).
    compile: torch.compile every network. data_placement: "cpu", "device" or "pinned" (None =
    chosen by size, see training/feed.py). Under torchrun the run is data-parallel (module
    docstring); every rank calls `train` and gets the checkpoint path back, rank 0 writes it.
    """
    # 1. The effective config: recipe + overrides + method + data + seed. Nothing else changes it.
    recipe = RECIPES.get(recipe) if isinstance(recipe, str) else recipe
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    checkpoint = Path(checkpoint)
    config = run_config(method, data, recipe, seed=seed, **overrides)
    if "train_limit" in config:
        data = limit_training(data, config["train_limit"])
    check_runtime(device, bf16=bf16, channels_last=channels_last)
    local_batch = distributed.per_rank_batch(config["batch_size"], distributed.env_world_size())
    amp_dtype = torch.bfloat16 if bf16 else None
    in_shape = tuple(config["in_shape"])
    _check_images(data.train, in_shape, "training", labels=True)
    if method == "confidence":
        _check_images(data.seen_ood, in_shape, "seen OOD", labels=False)
    ctx, device = distributed.setup(device)
    finished = False
    try:
        path = _train(
            method,
            data,
            config,
            ctx=ctx,
            device=device,
            checkpoint=checkpoint,
            local_batch=local_batch,
            resume=resume,
            progress=progress,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
            compile=compile,
            data_placement=data_placement,
            epoch_callback=epoch_callback,
        )
        finished = True
        return path
    finally:
        # After a failure on one rank the others may be inside a collective: no final barrier then.
        distributed.teardown(ctx, barrier=finished)


def _train(
    method: str,
    data: Any,
    config: dict[str, Any],
    *,
    ctx: distributed.Context,
    device: torch.device,
    checkpoint: Path,
    local_batch: int,
    resume: bool,
    progress: bool,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    compile: bool,
    data_placement: str | None,
    epoch_callback: Callable[[int, dict[str, nn.Module]], None] | None,
) -> Path:
    """The body of `train`, after the config is resolved and the process group (if any) joined."""
    main = ctx.is_main
    in_shape = tuple(config["in_shape"])
    train_feed = Feed(
        data.train.x, data.train.y, device, channels_last=channels_last, placement=data_placement
    )
    ood_feed = None
    if method == "confidence":
        ood_feed = Feed(data.seen_ood.x, None, device, channels_last=channels_last, placement=data_placement)
    if device.type == "cuda":
        # Let cuDNN time its convolution algorithms once per shape (fixed shapes here): faster,
        # and GPU runs are not bit-reproducible anyway.
        torch.backends.cudnn.benchmark = True
    runtime = {
        "device": str(device),
        "bf16": amp_dtype is not None,
        "channels_last": channels_last,
        "compile": compile,
        "fused_adam": device.type == "cuda",
        "world_size": ctx.world_size,
        "data_placement": train_feed.placement,
        "torch_version": str(torch.__version__),
        "oodbench_version": __version__,
    }
    if main:
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
    # On CUDA, Adam's fused kernel (one launch per step instead of a dozen per tensor list); on
    # CPU torch's default implementation, so CPU runs stay bit-identical to earlier versions.
    fused = True if device.type == "cuda" else None
    optimizers = {
        "classifier": torch.optim.Adam(
            classifier.parameters(),
            lr=config["lr"],
            betas=tuple(config["classifier_adam_betas"]),
            weight_decay=config["weight_decay"],
            fused=fused,
        )
    }
    if method == "joint":
        for name in ("generator", "discriminator"):
            optimizers[name] = torch.optim.Adam(
                nets[name].parameters(), lr=config["lr"], betas=tuple(config["gan_adam_betas"]), fused=fused
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

    # 3. Resume: load every state over the freshly built objects (every rank reads the file).
    if resume and checkpoint.is_file():
        state = read_checkpoint(checkpoint)
        if state["config"] != config:
            raise UserInputError(
                f"checkpoint {checkpoint} was made with another config "
                f"({config_diff(state['config'], config)}); "
                "drop --resume to start over, or resume with the same options."
            )
        for name, net in nets.items():
            net.load_state_dict(state["models"][name])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
            schedulers[name].load_state_dict(state["schedulers"][name])
        set_rng_state(state["rng"], data_generator)
        start_epoch, history = state["epoch"], list(state["history"])
        if main:
            logger.info("resuming %s from epoch %d of %d", checkpoint, start_epoch, config["epochs"])
    elif main and resume:
        logger.warning("--resume: no checkpoint at %s yet; starting from epoch 0", checkpoint)
    elif main and checkpoint.exists():
        logger.warning("replacing the existing checkpoint %s (pass resume=True to continue it)", checkpoint)

    # The modules the steps call: compiled and/or DDP-wrapped views of `nets` (same parameters).
    # Checkpoints and the callback always get `nets` themselves.
    runners: dict[str, nn.Module] = {}
    for name, net in nets.items():
        runner = torch.compile(net) if compile else net
        runners[name] = distributed.wrap(runner, device) if ctx.enabled else runner

    # 4. The epochs.
    n_train, epochs = len(data.train.x), config["epochs"]
    steps_per_epoch = math.ceil(math.ceil(n_train / ctx.world_size) / local_batch)
    stat_dtype = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
    bar = tqdm(
        total=epochs * steps_per_epoch,
        initial=start_epoch * steps_per_epoch,
        desc=method,
        unit="step",
        disable=not (progress and main),
        dynamic_ncols=True,
        leave=True,
    )
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        for runner in runners.values():
            runner.train()
        beta = config.get("beta", 0.0)
        if method == "joint" and epoch < config["gan_warmup_epochs"]:
            beta = 0.0  # warm-up: plain GAN + cross-entropy classifier
        perm = torch.randperm(n_train, generator=data_generator)
        order = train_feed.order_for_epoch(distributed.shard(perm, ctx))
        if ood_feed is not None:
            ood_order = _cycled_order(len(data.seen_ood.x), n_train, data_generator)
            ood_order = ood_feed.order_for_epoch(distributed.shard(ood_order, ctx))
        if ctx.rank > 0:  # other ranks draw other noise (rank 0 keeps the single-process stream)
            torch.manual_seed(distributed.rank_seed(config["seed"], ctx.rank, epoch))
        # Sums of the step statistics x batch size, kept on the device: no sync inside the epoch.
        sums: dict[str, torch.Tensor] = {}
        seen = 0
        for step in range(steps_per_epoch):
            idx = order[step * local_batch : (step + 1) * local_batch]
            x, y = train_feed.batch(idx)
            if method == "cross_entropy":
                stats = cross_entropy_step(
                    x,
                    y,
                    classifier=runners["classifier"],
                    opt_c=optimizers["classifier"],
                    amp_dtype=amp_dtype,
                )
            elif method == "confidence":
                x_out, _ = ood_feed.batch(ood_order[step * local_batch : step * local_batch + len(idx)])
                stats = confidence_step(
                    x,
                    y,
                    x_out,
                    classifier=runners["classifier"],
                    opt_c=optimizers["classifier"],
                    beta=beta,
                    amp_dtype=amp_dtype,
                )
            else:
                stats = joint_confidence_step(
                    x,
                    y,
                    classifier=runners["classifier"],
                    generator=runners["generator"],
                    discriminator=runners["discriminator"],
                    opt_c=optimizers["classifier"],
                    opt_g=optimizers["generator"],
                    opt_d=optimizers["discriminator"],
                    beta=beta,
                    nz=config["nz"],
                    amp_dtype=amp_dtype,
                )
            for key, value in stats.items():
                weighted = value.to(stat_dtype) * len(idx)
                sums[key] = sums[key] + weighted if key in sums else weighted
            seen += len(idx)
            bar.update(1)
        # The one read of the epoch's statistics (summed over the ranks under DDP).
        totals = torch.stack([*sums.values(), torch.tensor(float(seen), dtype=stat_dtype, device=device)])
        totals = distributed.all_reduce_sum(totals, ctx).tolist()
        means = {key: total / totals[-1] for key, total in zip(sums, totals[:-1], strict=True)}
        lr_used = optimizers["classifier"].param_groups[0]["lr"]
        for scheduler in schedulers.values():
            scheduler.step()
        # No wall-clock time in the checkpoint: identical runs give byte-identical files.
        record = {"epoch": epoch + 1, "lr": lr_used} | ({"beta": beta} if "beta" in config else {})
        record |= means
        history.append(record)
        bar.set_postfix(
            epoch=f"{epoch + 1}/{epochs}",
            loss=f"{means['loss']:.3f}",
            acc=f"{means['acc']:.3f}",
            refresh=False,
        )
        if not main:
            continue
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
                    "n_seen_ood": 0 if ood_feed is None else len(data.seen_ood.x),
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
