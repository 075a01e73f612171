"""Names and small helpers shared by the report modules (no table logic here)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from oodbench.errors import DataNotFoundError, UserInputError
from oodbench.metrics import HIGHER_IS_BETTER
from oodbench.names import TABLE_METRICS

MISSING = "—"


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: True for all but fpr95_openood; classification accuracy: True."""
    if metric == "classification_accuracy":
        return True
    return HIGHER_IS_BETTER[metric]


def check_metric(metric: str, allowed: Sequence[str] = TABLE_METRICS) -> None:
    if metric not in allowed:
        raise UserInputError(f"Unknown metric {metric!r}. Available: {', '.join(allowed)}.")


def percent(value: float) -> str:
    """A fraction as percent with one decimal: 0.9314 -> '93.1'."""
    return f"{100.0 * value:.1f}"


def read_csv(path: str | os.PathLike, *, what: str, how: str, **kwargs) -> pd.DataFrame:
    """pd.read_csv with one-line errors: a missing file names `how` to get one."""
    target = Path(path)
    if not target.is_file():
        raise DataNotFoundError(f"No {what} CSV at {target}; {how}.")
    try:
        return pd.read_csv(target, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(f"{target} is not a readable CSV ({reason}).") from None
