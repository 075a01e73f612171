"""The shared forward pass: one streamed pass over a data set feeds every logit- and
feature-based detector (`evaluate` step 2). Not `detectors.base.collect_outputs`, which a single
detector uses to get its own outputs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from oodbench.detectors.base import Detector, ForwardOutputs, features_and_logits, iter_batches
from oodbench.errors import is_out_of_memory, out_of_memory
from oodbench.progress import progress_bar


def fingerprint(x: torch.Tensor) -> str:
    """A short content hash of a tensor (data set identity for the score cache); a streamed set
    of a suite file is named by its source's fingerprint (files, labels, preprocessing)."""
    if not isinstance(x, torch.Tensor) and hasattr(x, "fingerprint"):
        whole = _whole_array(x)
        # An in-memory set streamed as it is: named by its array, as when it was a tensor, so
        # rows and cached scores of the same images keep their fingerprint.
        return x.fingerprint() if whole is None else fingerprint(whole)
    if hasattr(x, "content_hash"):  # images read from their file (oodbench.data.ondisk)
        return hashlib.sha1((x.content_hash() + str(tuple(x.shape))).encode()).hexdigest()[:16]
    # Hash the buffer in place: a .tobytes() copy would double the memory of a large set.
    digest = hashlib.sha1(np.ascontiguousarray(x.detach().cpu().numpy()).view(np.uint8).reshape(-1))
    digest.update(str(tuple(x.shape)).encode() + str(x.dtype).encode())
    return digest.hexdigest()[:16]


def _whole_array(x: Any) -> Any:
    """The array of a streamed set that yields every row of it unchanged, in order (a
    `TensorSource` over all of x whose preprocessing is x's own shape); else None."""
    from oodbench.data.sources.tensors import TensorSource

    source = getattr(x, "source", None)
    if type(source) is not TensorSource:  # an NpzSource is named by its source fingerprint
        return None
    array = source.x
    if source.preprocess.shape != tuple(array.shape[1:]) or len(source.index) != len(array):
        return None
    return array if bool((source.index == np.arange(len(array))).all()) else None


# Checks each detector's scores before anything is stored: (detector, scores, expected length)
# -> float64 array, or a UserInputError naming the detector, the model and the data set.
ScoreCheck = Callable[[Detector, Any, int], np.ndarray]


@torch.no_grad()
def shared_forward_pass(
    model: nn.Module,
    x: Any,
    *,
    device: torch.device | str,
    batch_size: int,
    feature_detectors: Sequence[Detector] = (),
    progress_label: str | None = None,
    check: ScoreCheck | None = None,
    name: str | None = None,
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """ONE streamed pass over `x`: all logits (N, K), and the scores of every feature detector.

    `x` is a tensor or a suite file's streamed set (oodbench.data.streamed); from the latter,
    unreadable images are left out, so N may be smaller than len(x) (the set's `kept` says which).

    Batches are converted to float one at a time (`iter_batches`); features are scored batch by
    batch and dropped, so memory grows with the batch size, not with N, apart from the logits.
    Feature detectors score each row on its own, so batching does not change their scores.
    `check` validates each batch's scores (see `evaluate`). Running out of memory while reading
    or scoring is one `OutOfMemory` line naming the set (`name`, else the streamed set's, else the
    progress label), its size and image shape, and the options that help.
    """
    try:
        return _forward_pass(model, x, device, batch_size, feature_detectors, progress_label, check)
    except (MemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        label = None if progress_label is None else progress_label.removeprefix("scoring ")
        raise out_of_memory(error, what=_set_words(x, name, label, batch_size)) from error


def _set_words(x: Any, name: str | None, label: str | None, batch_size: int) -> str:
    """ "scoring 'mine' (5,000 images of 3x224x224, batches of 256)" for an out-of-memory message."""
    source = getattr(x, "source", None)
    name = name or getattr(source, "name", None) or label
    shape = getattr(getattr(source, "preprocess", None), "shape", None) if source is not None else None
    if shape is None and hasattr(x, "shape"):
        shape = tuple(x.shape[1:])
    images = f"{len(x):,} images" + (f" of {'x'.join(map(str, shape))}" if shape else "")
    return f"scoring {name or 'a data set'!r} ({images}, batches of {batch_size})"


def _forward_pass(
    model: nn.Module,
    x: Any,
    device: torch.device | str,
    batch_size: int,
    feature_detectors: Sequence[Detector],
    progress_label: str | None,
    check: ScoreCheck | None,
) -> tuple[torch.Tensor, list[np.ndarray]]:
    model.eval()
    # Results go into arrays allocated once: small per-batch tensors kept alive between the
    # large freed temporaries would fragment the heap, and the process would keep growing with
    # N (measured on 100,000 28x28 images: +630 MB with per-batch lists, +3 MB without).
    logits: torch.Tensor | None = None
    scores = [np.empty(len(x), dtype=np.float64) for _ in feature_detectors]
    batches = progress_bar(
        iter_batches(x, batch_size, device=device),  # uint8 to the device, float there
        n_images=len(x),
        total=(len(x) + batch_size - 1) // batch_size,
        desc=progress_label or "",
        unit="batch",
        show=progress_label is not None,
    )
    start = 0
    for batch in batches:
        batch = batch.to(device)
        if feature_detectors:
            feats, out = features_and_logits(model, batch)
            outputs = ForwardOutputs(logits=out.float().cpu(), features=feats.float().cpu())
            for detector, store in zip(feature_detectors, scores, strict=True):
                batch_scores = detector.score_outputs(outputs)
                if check is not None:  # a wrong shape would otherwise fail as a numpy error
                    batch_scores = check(detector, batch_scores, len(batch))
                store[start : start + len(batch)] = batch_scores
        else:
            out = model(batch)
        if logits is None:
            logits = torch.empty((len(x), out.shape[1]), dtype=torch.float32)
        logits[start : start + len(batch)] = out.float().cpu()
        start += len(batch)
    if logits is None:
        logits = torch.empty((0, 0), dtype=torch.float32)
    # A streamed set leaves unreadable images out: keep only the rows that were filled.
    return logits[:start], [store[:start] for store in scores]


def as_eval_model(model: nn.Module) -> nn.Module:
    from oodbench.models.evalmodel import EvalModel

    return model if isinstance(model, EvalModel) else EvalModel(model)
