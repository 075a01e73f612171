"""Exceptions for problems the user can fix (bad names, missing files, bad values).

The CLI turns a `UserInputError` into one line on stderr and exit code 2; anything
else is a bug and keeps its traceback.
"""


class UserInputError(ValueError):
    """Raised for input the user can correct; the message names the fix."""


class DataNotFoundError(UserInputError, FileNotFoundError):
    """A data set's files are not where oodbench looks for them."""
