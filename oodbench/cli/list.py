"""`oodbench list datasets|suites|detectors|recipes|models`: what is registered."""

from __future__ import annotations

from pathlib import Path

import click

from oodbench import paths
from oodbench.cli.app import list_group
from oodbench.cli.options import (
    DATA_DIR_OPTION,
    apply_options,
)
from oodbench.names import SHORTHAND_DETECTORS

_DATA_DIR_HELP = "Data root. Default: $OODBENCH_DATA, else <cache>/data ($OODBENCH_CACHE, ~/.cache/oodbench)."


def _data_root_line(data_dir: Path | None) -> str:
    import os

    origin = "$OODBENCH_DATA" if os.environ.get("OODBENCH_DATA") else "default"
    if data_dir:
        origin = "--data-dir"
    return f"Data root: {paths.data_dir(data_dir)} (from {origin})"


@list_group.command("datasets")
@apply_options(DATA_DIR_OPTION)
@click.option(
    "--details", is_flag=True, help="Also show source, licence, split sizes and how to get the files."
)
def list_datasets_command(data_dir: Path | None, details: bool) -> None:
    """Every data set: shape, classes, splits, whether its files are present, and where oodbench looks."""
    from oodbench.data import DATASETS

    click.echo(_data_root_line(data_dir))
    header = ("name", "shape", "classes", "splits", "files", "where")
    rows = []
    for name, spec in DATASETS.items():
        status = spec.kind if spec.kind != "files" else ("present" if spec.present(data_dir) else "missing")
        rows.append(
            (
                name,
                "x".join(map(str, spec.image_shape)) + ("*" if spec.kind == "generated" else ""),
                "-" if spec.num_classes is None else str(spec.num_classes),
                ",".join(spec.splits),
                status,
                spec.location(data_dir),
            )
        )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]))
    click.echo(
        "* generated at the in-distribution shape.  "
        "Missing files: `oodbench run --download`, or see --details."
    )
    if details:
        for name, spec in DATASETS.items():
            sizes = ", ".join(f"{split} {count:,}" for split, count in spec.sizes) or "any size"
            click.echo(
                f"\n{name}\n  source:  {spec.source}\n  licence: {spec.licence}\n  sizes:   {sizes}"
                f"\n  files:   {spec.files_hint}"
            )


@list_group.command("suites")
@apply_options(DATA_DIR_OPTION)
def list_suites_command(data_dir: Path | None) -> None:
    """Every suite: in-distribution set, OOD test sets, seen OOD training set, validation data, recipe;
    then the packaged suite files run with `--suite NAME` (OpenOOD v1.5's), which read a data root."""
    from oodbench.data import DATASETS, DEFAULT_SUITE, SUITES
    from oodbench.data.suites import seen_split

    for i, (name, suite) in enumerate(SUITES.items()):
        spec = DATASETS.get(suite.in_dataset)
        shape = "x".join(map(str, spec.image_shape))
        title = name + (" (default)" if name == DEFAULT_SUITE else "")
        click.echo(("\n" if i else "") + f"{title}  - {suite.description}")
        click.echo(f"  in-dist:     {suite.in_dataset} ({shape}, {spec.num_classes} classes)")
        click.echo(f"  OOD test:    {', '.join(suite.out_datasets)}")
        click.echo(
            f"  seen OOD:    {suite.seen_ood} {seen_split(DATASETS.get(suite.seen_ood))} split"
            " (trains the confidence loss)"
        )
        click.echo(f"  validation:  {suite.validation}")
        click.echo(f"  recipe:      {suite.recipe}")
    _list_suite_files(data_dir)


def _list_suite_files(data_dir: Path | None) -> None:
    """The packaged suite files that are not registered suites (oodbench/suites/openood-*.toml)."""
    from oodbench.data.suite_file import builtin_suite_files, load_suite_file
    from oodbench.names import BUILTIN_SUITES

    root = paths.data_dir(data_dir)
    for name, path in builtin_suite_files().items():
        if name in BUILTIN_SUITES:
            continue
        suite = load_suite_file(path, check_data=False)
        shape = "x".join(map(str, suite.preprocess.shape or ()))
        click.echo(f"\n{name}  - {suite.description}")
        click.echo(f"  run:         oodbench run --suite {name} --checkpoint FILE --arch A --data-dir ROOT")
        click.echo(f"  in-dist:     {suite.classes} classes, evaluated at {shape}")
        for group, names in suite.groups().items():
            click.echo(f"  OOD {group + ':':<8} {', '.join(names)}")
        click.echo(f"  validation:  ID val + {suite.validation_ood.name} (tuning only)")
        if suite.covariate_shift:
            shifted = ", ".join(e.name for e in suite.covariate_shift)
            click.echo(f"  csID:        {shifted} (--full-spectrum adds them to the ID side)")
        if suite.needs_data_root:
            click.echo(
                f"  data:        needs OpenOOD's data root (benchmark_imglist/, images_classic/, "
                f"images_largescale/): --data-dir, else $OODBENCH_DATA, else the default; now {root}"
            )


@list_group.command("detectors")
def list_detectors_command() -> None:
    """Every detector oodbench can find: built-in, plug-ins, pytorch-ood's; what each uses, its paper."""
    from oodbench.detectors.plugins import PYTORCH_OOD_INSTALL, listing, pytorch_ood_installed

    lines = listing()
    width = max(len(line[0]) for line in lines)
    for name, source, uses, paper in lines:
        click.echo(f"{name:<{width}}  {source:<11}  uses {uses:<8}  {paper}")
    if not pytorch_ood_installed():
        click.echo(f"pytorch-ood's detectors (-d pytorch-ood:NAME): not installed; {PYTORCH_OOD_INSTALL}.")
    click.echo(
        "Shorthands: "
        + ", ".join(f"{k} = --model {m} --detector {d}" for k, (m, d) in SHORTHAND_DETECTORS.items())
    )
    click.echo("Also: -d package.module:Class or -d path/to/file.py:Class (a Detector subclass).")


@list_group.command("recipes")
def list_recipes_command() -> None:
    """Training recipes and their hyperparameters (`oodbench train` prints the full config)."""
    from oodbench.training.recipes import RECIPES

    for name, recipe in RECIPES.items():
        per_method = [f"{m} {e}" for m, e in sorted(recipe.method_epochs.items())]
        epochs = ", ".join([str(recipe.epochs), *per_method])
        decay = (
            f"x{recipe.lr_gamma:g} after epochs {list(recipe.lr_milestones)}"
            if recipe.lr_milestones
            else "constant"
        )
        click.echo(f"{name}: {recipe.description}")
        click.echo(
            f"    arch {recipe.arch}, epochs {epochs}, batch {recipe.batch_size}, Adam lr {recipe.lr:g} "
            f"({decay}), beta {recipe.beta:g}, "
            f"GAN {recipe.gen_arch}/{recipe.disc_arch} nz {recipe.nz}, "
            f"GAN warm-up epochs {recipe.gan_warmup_epochs}, seed {recipe.seed}"
        )


@list_group.command("models")
def list_models_command() -> None:
    """Registered classifier, generator and discriminator architectures."""
    from oodbench.models import CLASSIFIERS, DISCRIMINATORS, GENERATORS

    for kind, registry in (
        ("classifiers", CLASSIFIERS),
        ("generators", GENERATORS),
        ("discriminators", DISCRIMINATORS),
    ):
        click.echo(f"{kind}: {', '.join(registry.names())}")
    from oodbench.names import OPENOOD_ARCHITECTURES

    names = ", ".join(f"openood:{name}" for name in OPENOOD_ARCHITECTURES)
    click.echo(f"OpenOOD v1.5 classifiers (--arch, plain state_dicts of its checkpoints): {names}")
