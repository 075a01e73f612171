"""The `oodbench` click group: one-line errors for what the user can fix, -v, and `list`."""

from __future__ import annotations

import errno
import logging
import sys

import click

from oodbench import __version__
from oodbench.errors import UserInputError, is_out_of_memory, out_of_memory


class InputError(click.ClickException):
    """One line 'Error: ...' and exit code 2 (a usage error)."""

    exit_code = 2


# Write failures the user fixes outside oodbench: no space, over quota, read-only file system.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class OodbenchGroup(click.Group):
    """A click group that turns user-fixable errors into one-line messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserInputError as error:
            _traceback_if_verbose(ctx, error)
            raise InputError(str(error)) from None
        except (MemoryError, RuntimeError) as error:
            if not is_out_of_memory(error):
                raise
            # Out of memory where no set was named (reading a suite, fitting): still one line
            # with the fix; rows and caches are written atomically, so what was stored is intact.
            _traceback_if_verbose(ctx, error)
            raise InputError(str(out_of_memory(error))) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as error:
            raise InputError(f"{error.strerror or error}: {error.filename}") from None
        except OSError as error:
            if error.errno not in _WRITE_ERRNOS:
                raise
            # A full disk or a read-only file system: files are written atomically, so what
            # was there before is intact; say so in one line instead of a traceback.
            where = f": {error.filename}" if error.filename else ""
            raise InputError(
                f"{error.strerror or error}{where}; nothing written earlier was damaged "
                "(free some space or choose another folder, then run again)."
            ) from None
        except click.UsageError as error:
            # click prints usage, a hint and the error on three lines; ours is one line with the fix.
            raise InputError(_one_line_usage(error)) from None

    def main(self, *args, **kwargs):
        try:
            # standalone_mode=False lets us format usage errors; click then returns ctx.exit codes.
            code = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.UsageError as error:  # errors in the top-level options, before invoke
            InputError(_one_line_usage(error)).show()
            sys.exit(2)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.exceptions.Exit as exit_:
            sys.exit(exit_.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _traceback_if_verbose(ctx: click.Context, error: BaseException) -> None:
    """Under -v, the traceback behind a one-line error first (for user code: where it failed)."""
    if ctx.find_root().params.get("verbose"):
        import traceback

        traceback.print_exception(error.__cause__ or error, file=sys.stderr)


def _one_line_usage(error: click.UsageError) -> str:
    message = error.format_message().strip()
    command = error.ctx.command_path if error.ctx is not None else "oodbench"
    return f"{message}{'' if message.endswith(('.', '?', ')')) else '.'} See `{command} --help`."


@click.group(cls=OodbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="oodbench")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Log progress details to stderr, and print the traceback behind an error (e.g. in a plug-in).",
)
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
