"""The `oodbench` command line. Each command: validate -> one library call -> print.

Problems the user can fix (a `UserInputError`, an unreadable or unwritable path) end in one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import logging
import sys

import click

from oodbench import __version__
from oodbench.errors import UserInputError


class _InputError(click.ClickException):
    """One line 'Error: ...' and exit code 2 (a usage error)."""

    exit_code = 2


class OodbenchGroup(click.Group):
    """A click group that turns user-fixable errors into one-line messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserInputError as error:
            raise _InputError(str(error)) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as error:
            raise _InputError(f"{error.strerror or error}: {error.filename}") from None


@click.group(cls=OodbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="oodbench")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def cli(verbose: bool) -> None:
    """oodbench: benchmark out-of-distribution detectors on in/out data set pairs."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@cli.group(name="list", cls=OodbenchGroup)
def list_group() -> None:
    """List what is registered: datasets, suites, detectors, models, recipes."""


def main() -> None:
    cli(prog_name="oodbench")


if __name__ == "__main__":
    main()
