"""`oodbench figures toy|samples`: the paper's figures."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click

from oodbench.cli.app import OodbenchGroup, cli
from oodbench.cli.options import (
    DATA_DIR_OPTION,
    DEVICE_OPTION,
    MAX_SEED,
    QUIET_OPTION,
    apply_options,
    recipe_option,
    suite_option,
)

FIGURES_DIR = Path("results") / "figures"


@cli.group(name="figures", cls=OodbenchGroup)
def figures_group() -> None:
    """Reproduce the paper's figures: the 2-D toy, GAN samples and max-softmax histograms."""


@figures_group.command("toy")
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=MAX_SEED),
    default=0,
    show_default=True,
    help="Seed of the data, the OOD samples and every network.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=FIGURES_DIR,
    show_default=True,
    help="Folder for toy_confidence_loss.png, toy_gan.png, toy_metrics.json.",
)
@click.option(
    "--confidence-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Training steps of each confidence-loss MLP (default: ToyConfig's).",
)
@click.option(
    "--gan-warmup-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Plain-GAN steps before the KL term is switched on (default: ToyConfig's).",
)
@click.option(
    "--gan-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Steps with the KL term, for each of the two KL GANs (default: ToyConfig's).",
)
@click.option(
    "--grid-size",
    type=click.IntRange(min=2),
    default=None,
    help="Resolution of the max-softmax landscape (default: ToyConfig's).",
)
def figures_toy(seed, output_dir, confidence_steps, gan_warmup_steps, gan_steps, grid_size) -> None:
    """Two Gaussian classes in 2-D: far vs close OOD training, plain vs KL vs joint GAN (paper Figs. 1-2)."""
    from oodbench.figures.toy import ToyConfig, make_toy_figures

    sizes = {
        "confidence_steps": confidence_steps,
        "gan_warmup_steps": gan_warmup_steps,
        "gan_steps": gan_steps,
        "grid_size": grid_size,
    }
    config = dataclasses.replace(ToyConfig(), **{k: v for k, v in sizes.items() if v is not None})
    started = time.perf_counter()
    out = make_toy_figures(output_dir, seed=seed, config=config)
    m = out["metrics"]
    click.echo(
        "Mean max-softmax just outside the data: "
        f"far-OOD training {m['confidence_far_msp_near']:.3f}, "
        f"close-OOD training {m['confidence_close_msp_near']:.3f}"
    )
    for name in ("plain", "fixed", "joint"):
        click.echo(
            f"{name:>5} GAN samples: mean max-softmax of its classifier "
            f"{m[f'gan_msp_{name}_{name}']:.3f}, mean distance to the data "
            f"{m[f'gan_nn_distance_{name}']:.3f}"
        )
    click.echo(
        f"Uniform noise: mean distance to the data {m['gan_nn_distance_noise']:.3f} "
        f"(data bounding box), {m['gan_nn_distance_noise_window']:.3f} (figure window)"
    )
    for path in out["paths"]:
        click.echo(f"Wrote {path}")
    click.echo(f"Took {time.perf_counter() - started:.1f} s")


@figures_group.command("samples")
@suite_option("The in/out suite; mnist is embedded and needs no download.")
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=MAX_SEED),
    default=0,
    show_default=True,
    help="Training seed of the four models, and the seed of the generator noise.",
)
@recipe_option("Training recipe (default: the suite's).")
@apply_options(DEVICE_OPTION)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=FIGURES_DIR,
    show_default=True,
    help="Folder for the PNGs and <suite>_samples_metrics.json.",
)
@apply_options(DATA_DIR_OPTION)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Cap each evaluation set at this many images (the models still train on everything).",
)
@click.option(
    "--n-eval",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Generator samples (and uniform-noise images) behind each reported mean.",
)
@apply_options(QUIET_OPTION)
def figures_samples(suite, seed, recipe, device, output_dir, data_dir, limit, n_eval, quiet) -> None:
    """Plain vs joint-confidence GAN samples and max-softmax histograms (trains missing models first)."""
    from oodbench.figures.samples import METHODS as FIGURE_METHODS
    from oodbench.figures.samples import make_sample_figures

    started = time.perf_counter()
    out = make_sample_figures(
        output_dir,
        suite=suite,
        seed=seed,
        recipe=recipe,
        device=device,
        data_dir=data_dir,
        limit=limit,
        n_eval=n_eval,
        progress=not quiet,
    )
    m = out["metrics"]
    for name in ("plain_gan", "joint_gan", "uniform_noise"):
        confidences = ", ".join(f"{method} {m[f'msp_{method}_{name}']:.3f}" for method in FIGURE_METHODS)
        click.echo(
            f"{name}: mean max-softmax {confidences}; mean L2 distance to the nearest training "
            f"image {m[f'nn_distance_{name}']:.2f}"
        )
    for path in out["paths"]:
        click.echo(f"Wrote {path}")
    click.echo(f"Took {time.perf_counter() - started:.1f} s")
