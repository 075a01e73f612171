"""pytorch-ood's detectors inside oodbench: `-d pytorch-ood:NAME`, `--param pytorch-ood:NAME.key=value`.

`PytorchOOD("ViM", d=64)` wraps `pytorch_ood.detector.ViM`. pytorch-ood (Kirchheim et al.,
CVPR-W 2022) scores HIGHER = more OUT-of-distribution; oodbench's convention is the opposite,
so every score is negated: score = -pytorch_ood_score, in float64.

What the adapter supplies, by the name of the constructor argument:
- `model`: None for logit detectors (oodbench feeds them the logits of its shared forward pass,
  `predict_logits` / `fit_logits`); the evaluated model ([0, 1] pixels in, preprocessing
  inside) for detectors that run the model themselves (gradients, dropout);
- `encoder`: None for feature detectors (`predict_features` / `fit_features` on oodbench's
  features, see oodbench.models.loading); `model.features` for gradient detectors;
- `backbone`: feature-map detectors (ReAct, ASH, SCALE, RankFeat, VRA) get oodbench's pooled
  features as (N, D, 1, 1) maps, so their activation shaping acts on the penultimate vector;
- `head`, `w`, `b`: the model's last `nn.Linear` (refused in one line when the model has none,
  or when that layer does not map the features to the logits);
- `device`: the evaluation device.
Everything else comes from `params` (`--param pytorch-ood:NAME.key=value`); required arguments
oodbench cannot supply (ViM's `d`, DICE's `p`) must be given there.

Fitting uses the suite's TRAINING split (features or logits and labels, or a loader of
(x, y) batches for detectors that need the model). Detectors that need several layers
(Gram, MultiMahalanobis, NACUE), spatial feature maps (RankFeat) or data oodbench does not have
(MCM's text embeddings) are refused with one line.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytorch_ood
import pytorch_ood.api as ood_api
import pytorch_ood.detector as ood_detectors
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from oodbench.detectors.base import (
    Detector,
    ForwardOutputs,
    NotFittedError,
    collect_outputs,
    first_images,
    iter_batches,
    labelled_batches,
)
from oodbench.detectors.grid import tune as grid_search
from oodbench.errors import UserInputError
from oodbench.names import PYTORCH_OOD_PREFIX

# Constructor arguments the adapter fills in; users cannot override them.
SUPPLIED = ("model", "encoder", "backbone", "head", "w", "b", "device")
# Arguments that name parts of a model oodbench cannot pick for the user.
UNSUPPORTED = {
    "feature_layers": "several layers of the model",
    "layers": "several layers of the model",
    "text_embeddings": "text embeddings of a vision-language model",
}
# Meaningless on oodbench's pooled (N, D, 1, 1) features: the rank-1 part of a (D, 1) matrix is
# all of it, so RankFeat would remove the whole feature vector.
NEEDS_SPATIAL_MAPS = {"RankFeat"}


def detector_classes() -> dict[str, type]:
    """Every detector class pytorch-ood exports, by class name."""
    return {
        name: cls
        for name in ood_detectors.__all__
        if isinstance(cls := getattr(ood_detectors, name), type) and issubclass(cls, ood_api.Detector)
    }


def uses_of(cls: type) -> str:
    """What oodbench feeds a pytorch-ood detector: its logits, its features, or the input."""
    if issubclass(cls, ood_api.LogitsDetector):
        return "logits"
    if issubclass(cls, (ood_api.FeaturesDetector, ood_api.FeatureMapsDetector)):
        return "features"
    return "input"  # gradient, structured and plain detectors run the model themselves


class PytorchOOD(Detector):
    """A pytorch-ood detector as an oodbench Detector; see the module docstring."""

    needs_fit = True  # fitting binds the model (and its head) and fits on training data
    accepts_streams = True  # fit reads train batch by batch (a DataLoader for pytorch-ood's fit)

    def __init__(self, detector: str, /, **params: Any) -> None:
        classes = detector_classes()
        if detector not in classes:
            close = difflib.get_close_matches(detector, classes, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise UserInputError(
                f"pytorch-ood has no detector {detector!r}.{hint} Available: {', '.join(sorted(classes))}."
            )
        self.detector = detector
        self.name = PYTORCH_OOD_PREFIX + detector
        self.uses = uses_of(classes[detector])
        self.kwargs = dict(params)
        self.pytorch_ood_version = pytorch_ood.__version__  # part of the score cache key

    @property
    def _cls(self) -> type:
        return detector_classes()[self.detector]

    def validate(self) -> None:
        signature = inspect.signature(self._cls.__init__)
        arguments = {k: p for k, p in signature.parameters.items() if k != "self"}
        takes_any = any(p.kind is p.VAR_KEYWORD for p in arguments.values())
        given = set(self.kwargs)
        supplied = sorted(given & set(SUPPLIED))
        if supplied:
            raise UserInputError(f"{self.name}: oodbench supplies {', '.join(supplied)}; drop the --param.")
        unknown = sorted(given - set(arguments)) if not takes_any else []
        if unknown:
            raise UserInputError(
                f"{self.name} has no parameter {', '.join(unknown)}; it takes "
                f"{', '.join(k for k in arguments if k not in SUPPLIED) or 'none'}."
            )
        if self.detector in NEEDS_SPATIAL_MAPS:
            raise UserInputError(
                f"{self.name} needs spatial feature maps; oodbench gives pooled features, on which its "
                "rank-1 removal removes everything. Use pytorch-ood directly with a convolutional backbone."
            )
        for key, parameter in arguments.items():
            if key in ("model", "encoder") and "List" in str(parameter.annotation):
                raise UserInputError(
                    f"{self.name} needs a list of models or layers ({key!r}), which oodbench cannot pass "
                    "through -d; use pytorch-ood directly for it."
                )
            if key in UNSUPPORTED:
                raise UserInputError(
                    f"{self.name} needs {UNSUPPORTED[key]} ({key!r}), which oodbench cannot pass through "
                    "-d; use pytorch-ood directly for it."
                )
        for key, value in self.kwargs.items():
            _check_value(self.name, key, value, arguments[key].annotation if key in arguments else None)
        missing = [
            k
            for k, p in arguments.items()
            if p.default is p.empty
            and p.kind is p.POSITIONAL_OR_KEYWORD
            and k not in {*SUPPLIED, *given, *getattr(self, "grid", {})}  # a suite grid supplies it
        ]
        if missing:
            first = missing[0]
            raise UserInputError(
                f"{self.name} needs {', '.join(missing)}: give them with --param {self.name}.{first}=VALUE "
                f"(API: params={{{self.name!r}: {{{first!r}: ...}}}})."
            )

    def params(self) -> dict[str, Any]:
        """The hyperparameters as used: pytorch-ood may change one while fitting (ViM lowers `d` to
        the feature dimension), and rows must record the value that made the scores."""
        impl = getattr(self, "impl_", None)
        given = {**self.kwargs, **getattr(self, "chosen_", {})}  # with the values a grid search chose
        effective = {k: getattr(impl, k, v) if _is_json(getattr(impl, k, v)) else v for k, v in given.items()}
        return {k: v if _is_json(v) else repr(v) for k, v in effective.items()}

    def needs_model(self) -> bool:
        return self.uses == "input"

    def tuned_on_validation(self) -> bool:
        return bool(getattr(self, "grid", None))

    # --- fit --------------------------------------------------------------------------------

    def fit(self, model, *, train=None, val_in=None, val_out=None, device="cpu", batch_size=256):
        """Build the pytorch-ood object around `model` and fit it on `train` (x, y) if it needs it.
        With a suite's grid (`self.grid`, oodbench.detectors.suite_grids), one such fit per grid
        point, the one of highest AUROC on val_in vs val_out kept (oodbench.detectors.grid)."""
        self.validate()
        if getattr(self, "grid", None):
            with _train_outputs_shared():  # one pass over the training split for every point
                best, self.grid_result_ = self._search(model, train, val_in, val_out, device, batch_size)
            self.impl_, self.chosen_ = best.impl_, self.grid_result_.chosen
            return self
        return self._fit_one(model, train, val_in, val_out, device, batch_size)

    def _search(self, model, train, val_in, val_out, device, batch_size):
        return grid_search(
            lambda point: PytorchOOD(self.detector, **self.kwargs, **point),
            self.grid,
            model,
            train=train,
            val_in=val_in,
            val_out=val_out,
            device=device,
            batch_size=batch_size,
            name=self.name,
        )

    def _fit_one(self, model, train, val_in, val_out, device, batch_size):
        cls = self._cls
        wants_head = {"head", "w", "b"} & set(inspect.signature(cls.__init__).parameters)
        head = _last_linear(model) if wants_head else None
        try:
            impl = cls(**self._arguments(cls, model, head, device))
        except TypeError as error:
            raise UserInputError(f"Bad parameters for {self.name}: {error}") from None
        if cls.requires_fit:
            if train is None or getattr(train, "y", None) is None:
                raise ValueError(f"{self.name} needs labelled in-distribution training data to fit")
            self._fit_impl(impl, model, train, head, device, batch_size)
        elif head is not None:
            _check_head(self.name, model, head, train, val_in, device)
        self.impl_ = impl
        # Some detectors fill caches on their first prediction (pNML); do it here, so that
        # scoring never changes the fitted detector (the contract checks it).
        first = train.x if train is not None else val_in
        warm = None if first is None else first_images(first, 2)
        if warm is not None:
            self.score(model, warm, device=device, batch_size=batch_size)
        return self

    def _arguments(self, cls: type, model: nn.Module, head: nn.Linear | None, device) -> dict[str, Any]:
        parameters = inspect.signature(cls.__init__).parameters
        kwargs: dict[str, Any] = {}
        for key in parameters:
            if key == "model":
                kwargs[key] = None if self.uses == "logits" else model
            elif key == "encoder":
                kwargs[key] = None if self.uses == "features" else model.features
            elif key == "backbone":
                kwargs[key] = _identity
            elif key == "head":
                kwargs[key] = nn.Sequential(nn.Flatten(), head) if _is_maps(cls) else head
            elif key == "w":
                kwargs[key] = head.weight.detach().to(device)
            elif key == "b":
                bias = head.bias if head.bias is not None else torch.zeros(head.out_features)
                kwargs[key] = bias.detach().to(device)
            elif key == "device":
                kwargs[key] = device
        for key, value in self.kwargs.items():
            # Tensor arguments (e.g. WeightedEBO's weights) arrive from JSON as lists.
            wants_tensor = "Tensor" in str(parameters.get(key, inspect.Parameter("x", 1)).annotation)
            if wants_tensor and isinstance(value, list):
                value = torch.as_tensor(value, device=device)
            kwargs[key] = value
        return kwargs

    def _fit_impl(self, impl, model, train, head, device, batch_size) -> None:
        """pytorch-ood's `fit(DataLoader)` when it runs the model itself; otherwise its
        `fit_logits` / `fit_features` on outputs collected batch by batch (in memory or streamed:
        the same batches, so the same floats), with the labels of the images actually read."""
        if self.uses == "input":
            impl.to(device)
            impl.fit(fit_loader(train, batch_size))
            return
        outputs, y = _labelled_outputs(model, train, device, batch_size, self.uses == "features")
        y = y.to(device)
        if head is not None:
            _check_head(self.name, model, head, train, None, device, outputs=outputs)
        if issubclass(type(impl), ood_api.LogitsDetector):
            impl.fit_logits(outputs.logits.to(device), y)
        elif _is_maps(type(impl)):
            impl.fit_feature_maps(outputs.features.to(device)[:, :, None, None], y)
        else:
            impl.fit_features(outputs.features.to(device), y)

    # --- score ------------------------------------------------------------------------------

    def _fitted(self):
        impl = getattr(self, "impl_", None)
        if impl is None:
            raise NotFittedError(f"{self.name} must be fitted first: call fit(model, train=...)")
        return impl

    def score_outputs(self, outputs: ForwardOutputs) -> np.ndarray:
        impl = self._fitted()
        if self.uses == "logits":
            scores = impl.predict_logits(outputs.logits)
        elif self.uses == "features" and _is_maps(type(impl)):
            scores = impl.predict_feature_maps(outputs.features[:, :, None, None])
        elif self.uses == "features":
            scores = impl.predict_features(outputs.features)
        else:
            raise NotImplementedError(f"{self.name} scores from the model, use score()")
        return _negated(scores, len(outputs.logits))

    def score(self, model: nn.Module, x: torch.Tensor, *, device="cpu", batch_size=256) -> np.ndarray:
        impl = self._fitted()
        if self.uses != "input":
            return super().score(model, x, device=device, batch_size=batch_size)
        model.eval()
        parts = [_negated(impl.predict(b.to(device)), len(b)) for b in iter_batches(x, batch_size)]
        return np.concatenate(parts) if parts else np.empty(0)


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _is_maps(cls: type) -> bool:
    return issubclass(cls, ood_api.FeatureMapsDetector)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _negated(scores: torch.Tensor, n: int) -> np.ndarray:
    """pytorch-ood's outlier scores (higher = more OOD) -> oodbench's (higher = more ID), float64."""
    out = -scores.detach().double().cpu().reshape(-1).numpy()
    if out.shape != (n,):
        raise ValueError(f"pytorch-ood returned {out.shape[0]} scores for {n} inputs")
    return out


def _last_linear(model: nn.Module) -> nn.Linear:
    net = getattr(model, "net", model)  # an EvalModel wraps the user's network
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserInputError(
            "This pytorch-ood detector needs the model's last layer (an nn.Linear from features to logits); "
            "the model has no nn.Linear."
        )
    return linears[-1]


def _check_head(name, model, head, train, fallback, device, *, outputs=None) -> None:
    """Refuse (one line) when the last Linear does not turn oodbench's features into the logits."""
    if outputs is None:
        x = train.x if train is not None else fallback
        if x is None:
            return
        outputs = collect_outputs(model, first_images(x, 64), device=device, with_features=True)
    feats, logits = outputs.features[:64], outputs.logits[:64]
    with torch.no_grad():
        ok = feats.shape[1] == head.in_features and torch.allclose(
            head(feats.to(device)).float().cpu(), logits, rtol=1e-3, atol=1e-4
        )
    if not ok:
        raise UserInputError(
            f"{name} needs the model's last nn.Linear to map the features to the logits, and it does not "
            f"(features from {getattr(model, 'feature_source', 'features()')}); drop --features or use "
            "another detector."
        )


class _LabelledBatches(IterableDataset):
    """The (float32 x, int64 y) batches of a fit split (`labelled_batches`), re-iterable."""

    def __init__(self, train: Any, batch_size: int) -> None:
        self.train, self.batch_size = train, batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return labelled_batches(self.train, self.batch_size)

    def __len__(self) -> int:  # batches of the listed images (a stream may skip unreadable ones)
        return -(-len(getattr(self.train, "x", self.train)) // self.batch_size)


def fit_loader(train: Any, batch_size: int) -> DataLoader:
    """A `torch.utils.data.DataLoader` of (x, y) batches for pytorch-ood's `fit`: float32 [0, 1]
    images and int64 labels, read batch by batch from memory or from a stream (whose own loader
    decodes in its workers, so this one runs in process, batch_size=None: batches pass as made)."""
    return DataLoader(_LabelledBatches(train, batch_size), batch_size=None)


# Within one grid search (`PytorchOOD.fit` with a grid), every point's fit reads the same
# training split through the same model: its outputs are computed once, kept here, and each
# point gets copies (pytorch-ood may change the tensors it is given). None outside a search.
_SHARED_TRAIN_OUTPUTS: dict[tuple, tuple[ForwardOutputs, torch.Tensor]] | None = None


@contextlib.contextmanager
def _train_outputs_shared() -> Iterator[None]:
    global _SHARED_TRAIN_OUTPUTS
    _SHARED_TRAIN_OUTPUTS = {}
    try:
        yield
    finally:
        _SHARED_TRAIN_OUTPUTS = None


def _labelled_outputs(
    model: nn.Module, train: Any, device, batch_size: int, with_features: bool
) -> tuple[ForwardOutputs, torch.Tensor]:
    """Logits (and features) of the fit split gathered on the CPU, with its labels, batch by batch:
    `collect_outputs` over `labelled_batches` (the images are never held whole). Inside a grid
    search, computed once per (model, split, device, batch size, features) and copied out."""
    if _SHARED_TRAIN_OUTPUTS is None:
        return _compute_labelled_outputs(model, train, device, batch_size, with_features)
    key = (id(model), id(train), str(device), batch_size, with_features)
    if key not in _SHARED_TRAIN_OUTPUTS:
        computed = _compute_labelled_outputs(model, train, device, batch_size, with_features)
        _SHARED_TRAIN_OUTPUTS[key] = computed
    outputs, labels = _SHARED_TRAIN_OUTPUTS[key]
    return ForwardOutputs(
        logits=outputs.logits.clone(), features=None if outputs.features is None else outputs.features.clone()
    ), labels.clone()


@torch.no_grad()
def _compute_labelled_outputs(
    model: nn.Module, train: Any, device, batch_size: int, with_features: bool
) -> tuple[ForwardOutputs, torch.Tensor]:
    model.eval()
    logits, features, labels = [], [], []
    for images, y in labelled_batches(train, batch_size):
        outputs = collect_outputs(
            model, images, device=device, batch_size=len(images), with_features=with_features
        )
        logits.append(outputs.logits)
        if with_features:
            features.append(outputs.features)
        labels.append(y)
    if not labels:
        raise ValueError("the fit split has no images")
    out = ForwardOutputs(logits=torch.cat(logits), features=torch.cat(features) if with_features else None)
    return out, torch.cat(labels)


# Declared ranges of pytorch-ood hyperparameters (its code does not check them): name -> (low, high).
_RANGES: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("ViM", "d"): (1, None),  # dimensions of the principal subspace
}


def _check_value(detector: str, key: str, value: Any, annotation: Any) -> None:
    """Refuse a value whose type contradicts the annotation of pytorch-ood's argument, a
    non-finite number, or one outside the declared range (`_RANGES`), in one line."""
    import math
    import re

    kind = str(annotation)
    optional = value is None and ("Optional" in kind or "None" in kind)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_num = is_int or isinstance(value, float)
    wants_int = re.search(r"\bint\b", kind) is not None and "float" not in kind
    if wants_int and not is_int and not optional:
        raise UserInputError(f"{detector}.{key} must be an integer. Got {value!r} instead.")
    if re.search(r"\bfloat\b", kind) and not is_num and not optional:
        raise UserInputError(f"{detector}.{key} must be a number. Got {value!r} instead.")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserInputError(f"{detector}.{key} must be a finite number. Got {value!r} instead.")
    low, high = _RANGES.get((detector.removeprefix("pytorch-ood:"), key), (None, None))
    if is_num and ((low is not None and value < low) or (high is not None and value > high)):
        bounds = f">= {low}" if high is None else f"<= {high}" if low is None else f"in [{low}, {high}]"
        raise UserInputError(f"{detector}.{key} must be {bounds}. Got {value!r} instead.")
