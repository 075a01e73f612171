"""Exceptions for problems the user can fix (bad names, missing files, bad values).

The CLI turns a `UserInputError` into one line on stderr and exit code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType


class UserInputError(ValueError):
    """Raised for input the user can correct; the message names the fix."""


class DataNotFoundError(UserInputError, FileNotFoundError):
    """A data set's files are not where oodbench looks for them."""


class UserCodeError(UserInputError):
    """An exception raised inside the user's own code (a plug-in, a model factory).

    The message is one line naming the file, the function and the exception; the original
    exception is kept as `__cause__`, and the CLI prints its traceback under `-v`.
    """


def user_code_error(what: str, where: str, error: BaseException, *, file: str | None = None) -> UserCodeError:
    """The one-line error for `error` raised by user code: `what` (e.g. "fit") in `where`
    (e.g. "my_det.py:MyDet"); the line in `file` where it was raised is added when found."""
    line = None
    if file is not None:
        import os

        target = os.path.realpath(file)
        tb = error.__traceback__
        while tb is not None:  # the innermost frame in the user's file is the useful one
            if os.path.realpath(tb.tb_frame.f_code.co_filename) == target:
                line = tb.tb_lineno
            tb = tb.tb_next
    text = str(error).strip().splitlines()
    detail = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    at = f" (line {line})" if line is not None else ""
    return UserCodeError(f"{what} in {where}{at} raised {detail}. Run with -v for the traceback.")


@contextmanager
def in_user_code(what: str, where: str, *, file: str | None = None) -> Iterator[None]:
    """Run user code: a `UserInputError` passes as it is; any other exception becomes one
    `UserCodeError` line (see `user_code_error`), chained to the original for `-v`.

        with in_user_code("fit", "my_det.py:MyDet", file="my_det.py"):
            detector.fit(...)
    """
    try:
        yield
    except UserInputError:
        raise
    except Exception as error:
        raise user_code_error(what, where, error, file=file) from error


class OutOfMemory(UserInputError):
    """The run ran out of memory; the message names what was being done and the options that
    lower the memory (`out_of_memory`)."""


# Messages of allocation failures that are not a MemoryError: torch's CPU allocator, CUDA and
# other accelerators (torch.OutOfMemoryError is a RuntimeError), and a DataLoader worker killed
# by the kernel's out-of-memory killer (SIGKILL).
_OOM_WORDS = ("can't allocate memory", "out of memory", "unable to allocate", "killed by signal: killed")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is a failed allocation (MemoryError, or a RuntimeError saying so)."""
    if isinstance(error, MemoryError):
        return True
    return isinstance(error, RuntimeError) and any(word in str(error).lower() for word in _OOM_WORDS)


def out_of_memory(error: BaseException, *, what: str = "") -> OutOfMemory:
    """The one-line error for an allocation failure `error` while doing `what` (e.g. "scoring
    'mine' (5,000 images of 3x224x224, batches of 256)"): the cause and the options that help."""
    doing = f" while {what}" if what else ""
    return OutOfMemory(
        f"Out of memory{doing} ({one_line(error, with_type=True, max_chars=160)}). Lower the memory "
        "with a smaller --batch-size, fewer --workers (each holds 2 batches), or --limit N / "
        "--fit-limit N (fewer images); nothing stored earlier was changed."
    )


_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def one_line(
    error: BaseException,
    *,
    prefer: tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
    with_type: bool = False,
    max_chars: int | None = None,
) -> str:
    """The informative line of an exception's message (messages of parsers and torch.load span
    lines): the first line containing one of `prefer`, else the first line; lines containing
    one of `drop` (lower case) are skipped. `with_type` puts the exception's name in front."""
    lines = [_ANSI_COLOUR.sub("", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line and not any(word in line.lower() for word in drop)]
    chosen = next((line for line in lines if any(word in line for word in prefer)), lines[0] if lines else "")
    if with_type:
        chosen = f"{type(error).__name__}: {chosen}".rstrip(": ")
    chosen = chosen or type(error).__name__
    return chosen if max_chars is None else chosen[:max_chars]


def import_user_file(path: Path, module_name: str) -> ModuleType:
    """Execute a user's .py file as module `module_name` (registered in sys.modules, so its
    classes pickle); a syntax error or an exception at import is one line naming the file, and
    leaves no half-imported module behind."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with in_user_code("importing", str(path), file=str(path)):
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
