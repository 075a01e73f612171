"""The detector contract: `score` returns one float64 per input, HIGHER = more in-distribution.

Shape of the API (after scikit-learn): `__init__` only stores keyword-only hyperparameters;
they are validated where they are used; learned state ends in `_`; `fit` returns self.
Detectors that only need the network's outputs (`uses = "logits"` or `"features"`) score from
precomputed `ForwardOutputs`, so the runner feeds all of them from one forward pass.
Detectors that need gradients with respect to the input (`uses = "input"`) score from the model.

Fit data may stream (a suite file's splits: `LabeledImages.x` is a StreamedSet). A class whose
own body defines `fit` and sets `accepts_streams = True` (the built-ins) gets the streams and reads
them with `labelled_batches` / `iter_batches`; any other `fit` (a plug-in's) gets them read into
memory first, as tensors, so user code written for tensors keeps working.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from oodbench.data.convert import as_float
from oodbench.errors import UserInputError


@dataclass
class ForwardOutputs:
    """What one forward pass over a data set yields (on the CPU)."""

    logits: torch.Tensor  # (N, K)
    features: torch.Tensor | None = None  # (N, D) penultimate features, when asked for


def iter_batches(
    x: torch.Tensor, batch_size: int, device: torch.device | str | None = None
) -> Iterator[torch.Tensor]:
    """Batches of `x` as float32 in [0, 1] (data sets may be stored as uint8). `x` may also be a
    streamed set (oodbench.data.streamed.StreamedSet), read through its loader. With `device`,
    each batch is moved there first and converted there: uint8 crosses to a GPU (4x fewer bytes
    than float32), and x / 255 is the same IEEE float32 division on every device."""
    if not isinstance(x, torch.Tensor) and hasattr(x, "batches"):
        yield from x.batches(batch_size, device=device)
        return
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        yield as_float(batch if device is None else batch.to(device))


def is_stream(x: Any) -> bool:
    """Whether `x` is a set read in batches (a StreamedSet), not an in-memory tensor."""
    return not isinstance(x, torch.Tensor) and hasattr(x, "batches")


def labelled_batches(data: Any, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(float32 images in [0, 1], int64 labels) batches of a labelled fit split, in order.

    `data` is an object with `.x` and `.y` (a LabeledImages: in-memory tensors, sliced in batches
    of `batch_size`, or a stream whose `labelled_batches` pairs each image with its label), a
    stream itself, or an iterable of batches with `.x` and `.y` (a `make_loader`; its batch size
    is the loader's). The same images in memory or streamed give the same batches.
    """
    x = getattr(data, "x", None)
    if is_stream(x) or (x is None and hasattr(data, "labelled_batches")):
        yield from (x if x is not None else data).labelled_batches(batch_size)
    elif x is not None:  # a tensor, or images read from their file (oodbench.data.ondisk)
        y = torch.as_tensor(data.y)
        for start in range(0, len(x), batch_size):
            yield as_float(x[start : start + batch_size]), y[start : start + batch_size].long()
    else:
        for batch in data:
            yield as_float(batch.x), torch.as_tensor(batch.y).long()


def first_images(x: Any, n: int) -> torch.Tensor:
    """float32 images of the first `n` items of a tensor or a stream (a shape or warm-up check);
    a stream decodes only those."""
    if is_stream(x):
        return x.head(n)
    return as_float(x[:n])


def features_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and logits from ONE pass.

    An `EvalModel` (oodbench.models.evalmodel) knows where its features are; a bare module is
    asked for `features(x)` then `head(features)` (oodbench's own classifiers).
    """
    if hasattr(model, "features_and_logits"):
        return model.features_and_logits(x)
    features = model.features(x)
    return features, model.head(features)


@torch.no_grad()
def collect_outputs(
    model: nn.Module,
    x: torch.Tensor,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    with_features: bool = False,
) -> ForwardOutputs:
    """Logits (and features) for every row of `x`, in eval mode, gathered on the CPU."""
    model.eval()
    logits, features = [], []
    for batch in iter_batches(x, batch_size):
        batch = batch.to(device)
        if with_features:
            feats, out = features_and_logits(model, batch)
            features.append(feats.float().cpu())
        else:
            out = model(batch)
        logits.append(out.float().cpu())
    return ForwardOutputs(logits=torch.cat(logits), features=torch.cat(features) if with_features else None)


class NotFittedError(ValueError):
    """Scoring a detector that must be fitted first (after scikit-learn's NotFittedError)."""


def check_param(detector: str, name: str, value: Any, condition: bool, expected: str) -> None:
    """Raise the scikit-learn style message when `condition` is false."""
    if not condition:
        raise UserInputError(
            f"The {name!r} parameter of {detector} must be {expected}. Got {value!r} instead."
        )


def is_number(value: Any) -> bool:
    """A real, finite number (not a bool): inf or nan hyperparameters would score every input
    the same or fail late, after the scores were computed."""
    if not isinstance(value, int | float | np.floating | np.integer) or isinstance(value, bool):
        return False
    return bool(np.isfinite(float(value))) if not isinstance(value, int | np.integer) else True


def _is_stored_uint8(x: Any) -> bool:
    return getattr(x, "dtype", None) == torch.uint8


def _float_images_in_score(score: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """`score` that is given float32 [0, 1] images even when a set is stored as uint8.

    Sets are held as uint8 (4x less memory) and become float only in `iter_batches`. A detector
    that scores from the model gets the set itself, and a uint8 tensor cannot carry an input
    gradient (nor be fed to the model), so such a set is passed one float batch at a time: the
    whole set is never converted, and batch-independent scores (the contract) are unchanged.
    """

    @functools.wraps(score)
    def wrapper(self, model, x, *args, **kwargs):
        if not _is_stored_uint8(x) or len(x) == 0:
            return score(self, model, x, *args, **kwargs)
        batch_size = kwargs.get("batch_size", 256)
        parts = [np.asarray(score(self, model, b, *args, **kwargs)) for b in iter_batches(x, batch_size)]
        return np.concatenate(parts)

    return wrapper


def _float_images_in_fit(fit: Callable[..., Any], accepts_streams: bool) -> Callable[..., Any]:
    """`fit` that is given float32 [0, 1] validation images (val_in, val_out) even when stored as
    uint8; validation sets are small (at most a few thousand images), so they are converted whole.
    `train` stays as stored (it can be large): convert its batches with `iter_batches`.

    Streams (a suite file's splits) are left alone when the class declares `accepts_streams`;
    otherwise they are read into memory here, so a plug-in's fit gets tensors as it always did.
    """

    @functools.wraps(fit)
    def wrapper(self, model, *args, **kwargs):
        if not accepts_streams:
            kwargs = _in_memory(kwargs)
        for name in ("val_in", "val_out"):
            if _is_stored_uint8(kwargs.get(name)):
                kwargs[name] = as_float(kwargs[name][:])
        return fit(self, model, *args, **kwargs)

    return wrapper


def _in_memory(kwargs: dict[str, Any]) -> dict[str, Any]:
    """fit's keyword arguments with every stream read into memory: `train` a LabeledImages of
    tensors (x as decoded, y aligned with the images read), `val_in` / `val_out` tensors."""
    from oodbench.data.spec import LabeledImages

    kwargs = dict(kwargs)
    train = kwargs.get("train")
    if train is not None and (is_stream(getattr(train, "x", None)) or is_stream(train)):
        stream = train.x if is_stream(getattr(train, "x", None)) else train
        x, y = stream.in_memory()
        name, split = getattr(train, "name", stream.source.name), getattr(train, "split", "")
        kwargs["train"] = LabeledImages(x, y, name, split)
    for key in ("val_in", "val_out"):
        if is_stream(kwargs.get(key)):
            kwargs[key] = kwargs[key].in_memory()[0]
    return kwargs


class Detector:
    """Base class. Subclasses set `name`, `uses`, and implement `score_outputs` or `score`.

    A subclass's own `score` and `fit` receive images as float32 in [0, 1], never uint8 (see
    `_float_images_in_score`); the training set given to `fit` may be uint8: batch it with
    `iter_batches`, which converts. With `accepts_streams = True` in the class that defines
    `fit`, the fit splits may be streams: read them with `labelled_batches` / `iter_batches`.
    """

    name: ClassVar[str]
    uses: ClassVar[str] = "logits"  # "logits" | "features" | "input"
    needs_fit: ClassVar[bool] = False  # True when fit() must see training data first
    # True: this class's own fit reads streamed fit splits (module docstring); else tensors.
    accepts_streams: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Wrapped where defined, so a subclass calling super().score gets the float batch as is.
        if "score" in cls.__dict__:
            cls.score = _float_images_in_score(cls.__dict__["score"])
        if "fit" in cls.__dict__:
            # Declared by the class that defines fit: a subclass overriding a built-in's fit
            # does not inherit the promise that its own code reads streams.
            accepts = bool(cls.__dict__.get("accepts_streams", False))
            cls.fit = _float_images_in_fit(cls.__dict__["fit"], accepts)

    def fit(
        self,
        model: nn.Module,
        *,
        train: Any = None,
        val_in: torch.Tensor | None = None,
        val_out: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
        batch_size: int = 256,
    ) -> Detector:
        """Learn what the detector needs (class statistics, tuned hyperparameters). No-op here."""
        self.validate()
        return self

    def validate(self) -> None:
        """Check hyperparameters; called by fit and score."""

    def tuned_on_validation(self) -> bool:
        """Whether fit chose hyperparameters on a validation split."""
        return False

    def needs_model(self) -> bool:
        """True when scoring needs the model itself (input gradients), not precomputed outputs."""
        return self.uses == "input"

    def params(self) -> dict[str, Any]:
        """Effective hyperparameters (given and tuned) to store with each result row."""
        return {}

    def score_outputs(self, outputs: ForwardOutputs) -> np.ndarray:
        raise NotImplementedError(f"{self.name} scores from the model, use score()")

    def score(
        self,
        model: nn.Module,
        x: torch.Tensor,
        *,
        device: torch.device | str = "cpu",
        batch_size: int = 256,
    ) -> np.ndarray:
        """Scores for `x` (N, C, H, W), float64 of shape (N,), higher = more in-distribution."""
        self.validate()
        outputs = collect_outputs(
            model, x, device=device, batch_size=batch_size, with_features=self.uses == "features"
        )
        return self.score_outputs(outputs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def max_softmax(logits: torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    """max_k softmax(logits / T)_k computed in float64 via log-softmax.

    In float32 a confident net saturates at exactly 1.0 and creates artificial ties.
    """
    log_probs = torch.log_softmax(logits.double() / temperature, dim=1)
    return log_probs.max(dim=1).values.exp().numpy()
