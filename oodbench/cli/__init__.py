"""The `oodbench` command line: one module per command, shared options in options.py.

Each command parses its options and calls one library function. Only light modules are
imported here (no torch, pandas or scipy), so that `oodbench --help`, `oodbench list ...` and
usage errors answer at once; each command imports the library when it runs.
"""

from __future__ import annotations

from oodbench.cli import export, figures, report, run, suite, sweep, train
from oodbench.cli import list as list_commands
from oodbench.cli.app import cli

cli.add_command(export.export_group)  # `oodbench export mlflow|wandb`

__all__ = ["cli", "main"]


def main() -> None:
    """The console script `oodbench`."""
    cli(prog_name="oodbench")


_COMMAND_MODULES = (export, figures, list_commands, report, run, suite, sweep, train)  # registered on import
