"""Reading oodbench checkpoints: the format marker and a weights-only load with one-line errors.

Below both models (which load trained classifiers) and training (which writes checkpoints,
oodbench/training/checkpoints.py describes the file's fields).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from oodbench.errors import DataNotFoundError, UserInputError, one_line

FORMAT = "oodbench-checkpoint"
FORMAT_VERSION = 1


def read_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an oodbench checkpoint with weights_only=True; one-line errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"Checkpoint {path} does not exist; train one with `oodbench train` (or check the path)."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to unpickle means "not a checkpoint"
        first_line = one_line(error, prefer=("WeightsUnpickler error",))
        raise UserInputError(
            f"{path} is not an oodbench checkpoint (torch.load failed: {first_line})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserInputError(f"{path} is not an oodbench checkpoint (no '{FORMAT}' marker).")
    if state.get("format_version") != FORMAT_VERSION:
        raise UserInputError(
            f"{path} has checkpoint format {state.get('format_version')}; this oodbench reads "
            f"{FORMAT_VERSION}. Retrain it with `oodbench train`."
        )
    return state


def _describe(dataset: str, shape: tuple[int, ...] | list[int]) -> str:
    return f"{dataset} ({'x'.join(str(int(s)) for s in shape)})"


def check_compatible(
    config: dict[str, Any],
    path: str | Path,
    *,
    expect_dataset: str | None,
    expect_shape: tuple[int, ...] | None,
) -> None:
    """Refuse a checkpoint trained on another data set or input shape."""
    trained_on = (config["dataset"], tuple(config["in_shape"]))
    needed = (expect_dataset or trained_on[0], tuple(expect_shape) if expect_shape else trained_on[1])
    if needed != trained_on:
        raise UserInputError(
            f"checkpoint {path} was trained on {_describe(*trained_on)}; this run needs {_describe(*needed)}"
        )
