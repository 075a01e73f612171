"""`EvalModel`: the wrapper every evaluated model goes through: preprocessing inside, logits
selected from any output, features by layer (see oodbench/models/loading.py for the defaults)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from oodbench.errors import UserInputError
from oodbench.models.preprocess import Preprocess

# --- features -------------------------------------------------------------------------------


def pool_flatten(t: torch.Tensor) -> torch.Tensor:
    """A layer's output as one vector per input: global-average-pooled if 4-D, then flattened."""
    if t.ndim == 4:
        t = t.mean(dim=(2, 3))
    return t.flatten(1)


def _is_oodbench_classifier(net: nn.Module) -> bool:
    return type(net).__module__ == "oodbench.models.classifiers" and hasattr(net, "head")


def _last_linear(net: nn.Module) -> str | None:
    names = [name for name, module in net.named_modules() if isinstance(module, nn.Linear)]
    return names[-1] if names else None


def parse_logits_key(key: str | int | None) -> str | int | None:
    """--logits-key NAME|INDEX: digits are an index into a tuple or list, anything else a name."""
    if key is None or (isinstance(key, int) and not isinstance(key, bool)):
        return key
    if isinstance(key, str) and key.strip():
        return int(key) if key.strip().isdigit() else key.strip()
    raise UserInputError(f"--logits-key takes a name or an index (an integer >= 0); got {key!r}.")


def output_elements(out: Any) -> list[tuple[str | int, Any]] | None:
    """The top-level (key, value) pairs of a model output: a tuple/list (index; a namedtuple's field
    names), a mapping (its keys) or a dataclass (its fields); None for anything else."""
    if hasattr(out, "_fields") and isinstance(out, tuple):
        return list(zip(out._fields, out, strict=True))
    if isinstance(out, (tuple, list)):
        return list(enumerate(out))
    if isinstance(out, Mapping):
        return list(out.items())
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return [(f.name, getattr(out, f.name)) for f in dataclasses.fields(out)]
    return None


def _shape_text(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} {'x'.join(map(str, value.shape))}"
    return type(value).__name__


def select_logits(
    out: Any, *, n: int, key: str | int | None = None, num_classes: int | None = None
) -> torch.Tensor:
    """The logits in a network's output for `n` inputs, by the rule of the module docstring."""
    if isinstance(out, torch.Tensor):
        if key is not None:
            raise UserInputError(
                f"--logits-key {key} was given, but the model returns a single tensor (its logits); drop it."
            )
        return out
    elements = output_elements(out)
    if elements is None:
        raise UserInputError(
            f"The model returns a {type(out).__name__}; oodbench needs its logits: a tensor, or a tuple, "
            "list, dict or dataclass holding them."
        )
    listing = ", ".join(f"{k}: {_shape_text(v)}" for k, v in elements) or "nothing"
    kind = type(out).__name__
    if key is not None:
        by_position = isinstance(key, int) and isinstance(out, (tuple, list))
        found = [v for i, (k, v) in enumerate(elements) if (i == key if by_position else str(k) == str(key))]
        if not found or not isinstance(found[0], torch.Tensor):
            raise UserInputError(
                f"--logits-key {key} names no tensor in the model's output ({kind} of {listing})."
            )
        return found[0]
    matches = [
        (k, v)
        for k, v in elements
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.ndim == 2 and v.shape[0] == n
    ]
    if num_classes is not None and len(matches) > 1:
        matches = [(k, v) for k, v in matches if v.shape[1] == num_classes]
    if len(matches) != 1:
        why = "none" if not matches else "several"
        raise UserInputError(
            f"The model returns a {kind} ({listing}) and {why} of its elements look like logits (a 2-D float "
            f"tensor of {n} rows{'' if num_classes is None else f' and {num_classes} columns'}); name "
            "the logits with --logits-key NAME|INDEX (API: logits=...)."
        )
    return matches[0][1]


def export_batch_size(program: Any) -> int | None:
    """The batch size a torch.export program was exported with, None when its batch is dynamic."""
    try:
        name = program.graph_signature.user_inputs[0]
        node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == name)
        size = node.meta["val"].shape[0]
    except (AttributeError, IndexError, KeyError, StopIteration, TypeError):
        return None  # not an image batch we can read; the trial pass in check_against_suite decides
    return size if isinstance(size, int) else None


class EvalModel(nn.Module):
    """A classifier as oodbench evaluates it: [0, 1] pixels in, logits out, features on request.

    `forward(x)` = the logits in net(preprocess(x)) (`select_logits`; `logits` names them when
    the network returns several tensors). `features_and_logits(x)` gives both from ONE pass.
    `fixed_batch`: the network only takes batches of exactly this size (a torch.export program
    exported without a dynamic batch dimension): inputs are run in such batches, the last one
    padded with zero images whose outputs are dropped.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        preprocess: Preprocess | None = None,
        features: str | None = None,
        logits: str | int | None = None,
        fixed_batch: int | None = None,
    ):
        super().__init__()
        self.net = net
        self.preprocess = preprocess if preprocess is not None else Preprocess()
        self.feature_layer = features
        self.logits_key = parse_logits_key(logits)
        self.fixed_batch = fixed_batch
        # Set by check_against_suite: it makes the logits of a tuple/dict output unambiguous.
        self.num_classes: int | None = None
        # (layer name, True = its input / False = its output) when features come from a hook.
        self._hook: tuple[str, bool] | None = None
        if features is not None:
            available = dict(net.named_modules())
            if features not in available or features == "":
                close = [n for n in available if n and features.split(".")[-1] in n][:5]
                hint = f" Layers with a similar name: {', '.join(close)}." if close else ""
                raise UserInputError(
                    f"The model has no layer {features!r} for --features.{hint} "
                    "List them with `print([n for n, _ in model.named_modules()])`."
                )
            self.feature_source = f"layer {features}"
            self._hook = (features, False)
        elif _is_oodbench_classifier(net):
            self.feature_source = "penultimate"
        elif callable(getattr(net, "forward_features", None)) and callable(
            getattr(net, "forward_head", None)
        ):
            self.feature_source = "forward_features"
        else:
            last = _last_linear(net)
            self.feature_source = f"input of {last}" if last else "none"
            self._hook = (last, True) if last else None

    def train(self, mode: bool = True) -> EvalModel:
        self.training = mode
        self.preprocess.train(mode)
        try:
            self.net.train(mode)
        except NotImplementedError:
            pass  # torch.export programs are fixed graphs: exported in eval mode, no train()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self.preprocess(x))

    def _chunks(self, n: int) -> list[int]:
        """How many real images each call of the network gets (one call unless the batch is fixed)."""
        size = self.fixed_batch
        if size is None or n == size:
            return [n]
        return [min(size, n - start) for start in range(0, n, size)] or [0]

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """The network's logits for preprocessed `x`, in fixed-size batches when it needs them."""
        if self.fixed_batch is None or len(x) == self.fixed_batch:
            return self._logits(self.net(x), len(x))
        parts, start = [], 0
        for k in self._chunks(len(x)):
            chunk = x[start : start + k]
            if k < self.fixed_batch:  # pad; torch.cat keeps the gradient path to the real images
                chunk = torch.cat([chunk, chunk.new_zeros((self.fixed_batch - k, *chunk.shape[1:]))])
            parts.append(self._logits(self.net(chunk), len(chunk))[:k])
            start += k
        return torch.cat(parts)

    def _logits(self, out: Any, n: int) -> torch.Tensor:
        return select_logits(out, n=n, key=self.logits_key, num_classes=self.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[0]

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.preprocess(x)
        if self.feature_source == "penultimate":
            feats = self.net.features(x)
            return feats, self.net.head(feats)
        if self.feature_source == "forward_features":
            fmap = self.net.forward_features(x)
            return pool_flatten(self.net.forward_head(fmap, pre_logits=True)), self.net.forward_head(fmap)
        if self.feature_source == "none":
            raise UserInputError(
                "This model has no nn.Linear layer to take features from; name one with --features LAYER."
            )
        return self._hooked(x)

    def _hooked(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []
        name, take_input = self._hook
        layer = self.net.get_submodule(name)
        if take_input:
            handle = layer.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        else:
            handle = layer.register_forward_hook(lambda _m, _args, out: captured.append(out))
        try:
            logits = self._run(x)
        finally:
            handle.remove()
        chunks = self._chunks(len(x))
        if len(captured) < len(chunks):
            raise UserInputError(
                f"Layer {name!r} did not run in the forward pass, so it gives no features "
                "(TorchScript and torch.export models run compiled code that bypasses layer hooks: load "
                "their weights with --arch to use feature-based detectors)."
            )
        # One capture per call of the network (the last ones: a layer may run more than once);
        # padding rows of a fixed-size batch are dropped.
        pieces = [c[0] if isinstance(c, (tuple, list)) else c for c in captured[-len(chunks) :]]
        feats = torch.cat([pool_flatten(p)[:k] for p, k in zip(pieces, chunks, strict=True)])
        return feats, logits
