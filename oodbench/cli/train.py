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
    beta_option,
    epochs_option,
    estimate_echo,
    gan_warmup_option,
    lr_option,
    method_names,
    recipe_option,
    suite_option,
    train_limit_option,
)


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
@epochs_option()
@train_limit_option("Train on at most N in-dist images (a fixed stratified subset) and N seen OOD images.")
@beta_option("Override the KL weight beta.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Override the batch size.")
@lr_option("Override the Adam learning rate (all networks).")
@gan_warmup_option("joint only: first N epochs train a plain GAN (beta 0) beside a cross-entropy classifier.")
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
    from oodbench.api import train_model
    from oodbench.training import checkpoint_summary
    from oodbench.training.distributed import env_rank

    main_rank = env_rank() == 0  # under torchrun only rank 0 prints
    if not main_rank:
        logging.getLogger().setLevel(logging.ERROR)
    overrides = {
        "epochs": epochs,
        "beta": beta,
        "batch_size": batch_size,
        "lr": lr,
        "gan_warmup_epochs": gan_warmup_epochs,
        "train_limit": train_limit,
    }
    path = train_model(
        method,
        suite,
        seed=seed,
        recipe=recipe,
        overrides=overrides,
        device=device,
        data_dir=data_dir,
        download=download,
        cache_dir=cache_dir,
        checkpoint=checkpoint,
        resume=resume,
        progress=not quiet,
        bf16=bf16,
        channels_last=channels_last,
        compile=compile_,
        on_estimate=estimate_echo(f"oodbench train -m {method} --in {suite}"),
        say=click.echo if main_rank else None,
    )
    if main_rank:
        for line in checkpoint_summary(path):
            click.echo(line)
