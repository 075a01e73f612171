"""`oodbench train`: train one classifier and write its checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from oodbench.cli.app import cli
from oodbench.cli.options import (
    DATA_DIR_OPTION,
    DEVICE_OPTION,
    DOWNLOAD_OPTION,
    MAX_SEED,
    QUIET_OPTION,
    OneLineChoice,
    apply_options,
    estimate_echo,
    method_names,
    recipe_option,
    suite_option,
)
from oodbench.errors import UserInputError


@cli.command("train")
@click.option(
    "--method",
    "-m",
    required=True,
    type=OneLineChoice(method_names, metavar="METHOD"),
    help="cross_entropy, confidence (KL to uniform on the suite's seen OOD set) or joint "
    "(joint confidence loss with a GAN, Lee et al. 2018).",
)
@suite_option("The suite whose in-distribution training set (and seen OOD set) is used.")
@recipe_option("Training recipe (default: the suite's, e.g. embedded for mnist, lee2018-svhn for svhn).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the recipe's epochs.")
@click.option(
    "--train-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Train on at most N in-dist images (a fixed stratified subset) and N seen OOD images.",
)
@click.option("--beta", type=click.FloatRange(min=0), default=None, help="Override the KL weight beta.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Override the batch size.")
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Override the Adam learning rate (all networks).",
)
@click.option(
    "--gan-warmup-epochs",
    type=click.IntRange(min=0),
    default=None,
    help="joint only: first N epochs train a plain GAN (beta 0) beside a cross-entropy classifier.",
)
@click.option(
    "--seed", type=click.IntRange(min=0, max=MAX_SEED), default=None, help="Seed (default: the recipe's)."
)
@apply_options(DEVICE_OPTION)
@click.option(
    "--resume", is_flag=True, help="Continue the checkpoint of this exact config from its last epoch."
)
@click.option("--bf16", is_flag=True, help="bf16 autocast (CUDA only; refused on CPU).")
@click.option(
    "--channels-last", is_flag=True, help="channels_last memory format (CUDA only; refused on CPU)."
)
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="torch.compile every network (slow first steps while it compiles; on CPU needs a C++ compiler).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the checkpoint here instead of the cache (then `oodbench run` will not find it).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Checkpoints go to <cache>/checkpoints (else $OODBENCH_CACHE, else ~/.cache/oodbench).",
)
@apply_options(DATA_DIR_OPTION, DOWNLOAD_OPTION, QUIET_OPTION)
def train_command(
    method,
    suite,
    recipe,
    epochs,
    train_limit,
    beta,
    batch_size,
    lr,
    gan_warmup_epochs,
    seed,
    device,
    resume,
    bf16,
    channels_last,
    compile_,
    checkpoint,
    cache_dir,
    data_dir,
    download,
    quiet,
) -> None:
    """Train one classifier and write per-epoch checkpoints (resumable with --resume).

    Prints every effective hyperparameter first and the checkpoint path at the end. Checkpoints
    of the suite's recipe without overrides are the ones `oodbench run` reuses. Under
    `torchrun --nproc_per_node=N -m oodbench train ...` the model is trained with
    DistributedDataParallel on N processes (the batch size stays the global batch); rank 0
    alone prints and writes the checkpoint.
    """
    from oodbench.atomic import remove_stale_temp_files
    from oodbench.data import load_suite
    from oodbench.devices import resolve_device
    from oodbench.provenance import sha256_file
    from oodbench.training import format_config, train
    from oodbench.training.distributed import env_rank, env_world_size, per_rank_batch
    from oodbench.training.loop import check_runtime
    from oodbench.training.recipes import plan_training

    main_rank = env_rank() == 0  # under torchrun only rank 0 prints

    def echo(message: str) -> None:
        if main_rank:
            click.echo(message)

    if not main_rank:
        logging.getLogger().setLevel(logging.ERROR)

    given = {
        "epochs": epochs,
        "beta": beta,
        "batch_size": batch_size,
        "lr": lr,
        "gan_warmup_epochs": gan_warmup_epochs,
        "train_limit": train_limit,
    }
    torch_device = resolve_device(device)
    check_runtime(torch_device, bf16=bf16, channels_last=channels_last)
    # Option errors (e.g. --beta with cross_entropy) fail here, before any data is loaded.
    plan = plan_training(
        method, suite, recipe=recipe, seed=seed, overrides=given, cache_dir=cache_dir, checkpoint=checkpoint
    )
    recipe_obj, seed, overrides = plan.recipe, plan.seed, plan.overrides
    config, path = plan.config, plan.checkpoint
    remove_stale_temp_files(path.parent)  # left by killed checkpoint writes
    world_size = env_world_size()
    try:  # refuse an indivisible global batch before loading data; one line, from rank 0 only
        per_rank_batch(config["batch_size"], world_size)
    except UserInputError:
        if not main_rank:
            raise SystemExit(2) from None
        raise
    # Training reads only the in-dist train split and the seen OOD set.
    data = load_suite(suite, data_dir=data_dir, download=download, training_only=True)
    n_train = min(len(data.train.x), config.get("train_limit", len(data.train.x)))
    echo(
        f"Training {method} on suite {suite} ({n_train} training images) with recipe "
        f"{recipe_obj.name}. Effective configuration:"
    )
    echo(format_config(config))
    echo(
        f"runtime: device {torch_device}, bf16 {bf16}, channels_last {channels_last}, compile {compile_}, "
        f"processes {world_size}"
    )
    if main_rank and world_size == 1:  # the estimate is for one process (training/estimate.py)
        from oodbench.training.estimate import estimate_training

        done = _epochs_done(path, config) if resume else 0
        estimate = estimate_training(
            method, config, images=n_train, device=torch_device, epochs=config["epochs"] - done
        )
        estimate_echo(f"oodbench train -m {method} --in {suite}")(estimate)
    if resume and not path.exists():
        echo(f"Note: --resume, but {path} does not exist yet; starting from epoch 0.")
    elif not resume and path.exists():
        echo(f"Note: replacing {path} (pass --resume to continue it instead).")
    train(
        method,
        data,
        recipe_obj,
        seed=seed,
        device=torch_device,
        checkpoint=path,
        resume=resume,
        progress=not quiet,
        bf16=bf16,
        channels_last=channels_last,
        compile=compile_,
        **overrides,
    )
    if not main_rank:
        return
    from oodbench.training import read_checkpoint

    last = read_checkpoint(path)["history"][-1]
    echo("Last epoch: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items()))
    echo(f"Checkpoint: {path}\nsha256: {sha256_file(path)}")


def _epochs_done(path: Path, config: dict) -> int:
    """Epochs already in a resumable checkpoint of this config (0 if none or another config)."""
    from oodbench.training import read_checkpoint

    if not path.is_file():
        return 0
    try:
        state = read_checkpoint(path)
    except UserInputError:
        return 0
    return int(state["epoch"]) if state["config"] == config else 0
