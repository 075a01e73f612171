"""`oodbench suite init`: a starter suite file for a user's own data (oodbench.data.suite_file).

The library is imported when the command runs: `oodbench suite --help` stays torch-free.
"""

from __future__ import annotations

from pathlib import Path

import click

from oodbench.cli.app import OodbenchGroup, cli
from oodbench.cli.options import check_writable
from oodbench.errors import UserInputError


@cli.group(name="suite", cls=OodbenchGroup)
def suite_group() -> None:
    """Suite files: your own data as a benchmark suite (`oodbench run --suite FILE.toml`)."""


@suite_group.command("init")
@click.argument("folder_or_list", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--test",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="The ID test set (class folder or image list) when FOLDER_OR_LIST has no train/ and test/.",
)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The folder an image list's paths are relative to.")  # fmt: skip
@click.option("--name", default=None, help="The suite's name (default: the folder's name).")
@click.option("--channels", type=click.Choice(["1", "3"]), default="3", show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("suite.toml"),
    show_default=True,
    help="Where to write the suite file (paths in it are relative to its folder).",
)
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
def init_command(
    folder_or_list: Path,
    test: Path | None,
    root: Path | None,
    name: str | None,
    channels: str,
    output: Path,
    force: bool,
) -> None:
    """Write a starter suite file for a class-subfolder folder (or image list), then edit it.

    The classes and image size are read from the data; Gaussian / uniform noise stand in for the
    OOD sets until you name yours. Evaluate a model on it with `oodbench run --suite FILE`.
    """
    if output.exists() and not force:
        raise UserInputError(f"--output {output} exists; choose another name or add --force.")
    check_writable(output, "--output")
    from oodbench.atomic import atomic_write_text
    from oodbench.data.suite_file import suite_init

    text = suite_init(
        folder_or_list, root=root, test=test, name=name, channels=int(channels), relative_to=output.parent
    )
    atomic_write_text(output, text)
    click.echo(f"wrote {output}; check it, name your OOD sets, then: oodbench run --suite {output} ...")
