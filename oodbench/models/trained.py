"""A classifier trained by oodbench, loaded from its checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oodbench.checkpoint_format import check_compatible, read_checkpoint
from oodbench.models import create_classifier
from oodbench.provenance import sha256_file

logger = logging.getLogger(__name__)


def load_classifier(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    expect_dataset: str | None = None,
    expect_shape: tuple[int, ...] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The trained classifier of a checkpoint, in eval mode on `device`, and its metadata.

    meta: config, epoch, complete, history, data, runtime, path, sha256 (of the file, what
    results record). Refuses a checkpoint for another data set or input shape.
    """
    path = Path(path)
    state = read_checkpoint(path)
    config = state["config"]
    check_compatible(config, path, expect_dataset=expect_dataset, expect_shape=expect_shape)
    if not state.get("complete", False):
        logger.warning(
            "checkpoint %s is from an unfinished run (epoch %d of %d)", path, state["epoch"], config["epochs"]
        )
    model = create_classifier(
        config["arch"], in_shape=tuple(config["in_shape"]), num_classes=config["num_classes"]
    )
    model.load_state_dict(state["models"]["classifier"])
    model.to(device).eval()
    meta = {
        "config": config,
        "epoch": state["epoch"],
        "complete": state.get("complete", False),
        "history": state.get("history", []),
        "data": state.get("data", {}),
        "runtime": state.get("runtime", {}),
        "path": str(path),
        "sha256": sha256_file(path),
    }
    return model, meta
