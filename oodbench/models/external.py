"""Users' own models: any checkpoint format, the model's own preprocessing, features by layer.

    model = load_model("resnet.pt", arch="torchvision:resnet18", normalize="cifar10")

Formats (`load_model`), none of which unpickles arbitrary objects:
- oodbench checkpoints (`oodbench train`);
- TorchScript files (`torch.jit.save`) and `torch.export` programs (`.pt2`): self-contained;
- plain weights plus `arch`: a `state_dict` saved with `torch.save` (read with
  `weights_only=True`) or a `.safetensors` file. `arch` is a registered oodbench classifier
  (`vgg13`, `small_cnn`, ...), `torchvision:NAME`, `timm:NAME`, or a factory
  `path/to/file.py:function` / `package.module:function` returning an `nn.Module` (importing a
  user's factory runs their code; that is what the user asked for).

Every model is wrapped in `EvalModel`: it takes the suite's [0, 1] pixel images, resizes and
normalises them INSIDE the module, then runs the network. Detectors therefore always work in
pixel space, and the input-perturbation steps of ODIN and Mahalanobis stay in pixel units, as
ODIN defines eps.

Features (for feature-based detectors) are, in this order of defaults:
1. `features(x)` of oodbench's own classifiers (the penultimate layer, then `head`);
2. timm's `forward_features` + `forward_head(pre_logits=True)`;
3. otherwise the input of the model's last `nn.Linear` (a forward pre-hook).
`features="layer.name"` names any submodule instead: its output, global-average-pooled if 4-D,
then flattened. Features come from the same forward pass as the logits.

Logits (`select_logits`): a network returning one tensor returns its logits. One returning a
tuple, list, dict (a HuggingFace `ModelOutput` too) or dataclass is accepted when exactly one of
its top-level elements is a 2-D floating-point tensor with one row per input, counting, once the
model is checked against a suite (`check_against_suite`), only those with one column per class;
otherwise `logits=NAME|INDEX` (`--logits-key`) names the element, and none or several matches are
refused with the list of elements.

A `torch.export` program exported with a fixed batch size runs on batches of exactly that size:
the last batch is padded with zero images whose outputs are dropped (in eval mode each image's
output depends only on that image).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import logging
import math
import re
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from oodbench.errors import DataNotFoundError, UserInputError, in_user_code, one_line, user_code_error

# Per-channel (mean, std) presets for --normalize. ImageNet: the constants torchvision's
# pretrained weights use. CIFAR-10 and SVHN: per-channel statistics of their training sets, the
# values common in the training scripts of those models.
NORMALIZE_PRESETS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}

FORMATS = ("oodbench", "torchscript", "torch.export", "state_dict", "safetensors", "module")
_NOT_READABLE_HINT = (
    "oodbench reads oodbench checkpoints, TorchScript (torch.jit.save), torch.export programs (.pt2), "
    "and plain weights (torch.save(model.state_dict()) or .safetensors) with --arch"
)


# --- preprocessing --------------------------------------------------------------------------


def parse_normalize(text: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A preset name (imagenet, cifar10, svhn) or "MEAN/STD" with comma-separated per-channel values."""
    text = text.strip()
    if text.lower() in NORMALIZE_PRESETS:
        return NORMALIZE_PRESETS[text.lower()]
    mean_text, sep, std_text = text.partition("/")
    try:
        mean = tuple(float(v) for v in mean_text.split(","))
        std = tuple(float(v) for v in std_text.split(","))
    except ValueError:
        sep = ""
    # inf or nan would turn every image into nan (or 0) silently: finite values only.
    finite = sep and all(math.isfinite(v) for v in (*mean, *std))
    if not finite or len(mean) != len(std) or any(not s > 0 for s in std):
        raise UserInputError(
            f"--normalize takes a preset ({', '.join(NORMALIZE_PRESETS)}) or MEAN/STD per channel, "
            f"e.g. 0.5,0.5,0.5/0.25,0.25,0.25 (finite numbers, std > 0). Got {text[:80]!r}."
        )
    return mean, std


class Preprocess(nn.Module):
    """[0, 1] images -> the model's input: optional bilinear resize to N x N, then (x - mean) / std."""

    def __init__(
        self,
        *,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        resize: int | None = None,
    ) -> None:
        super().__init__()
        if resize is not None and (isinstance(resize, bool) or not isinstance(resize, int) or resize < 1):
            raise UserInputError(f"--resize must be an integer >= 1. Got {resize!r} instead.")
        self.resize = resize
        self.register_buffer("mean", None if mean is None else torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", None if std is None else torch.tensor(std).view(1, -1, 1, 1))

    @property
    def is_identity(self) -> bool:
        return self.resize is None and self.mean is None

    def describe(self) -> dict[str, Any]:
        return {
            "resize": self.resize,
            "mean": None if self.mean is None else [round(float(v), 6) for v in self.mean.flatten()],
            "std": None if self.std is None else [round(float(v), 6) for v in self.std.flatten()],
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize is not None and tuple(x.shape[-2:]) != (self.resize, self.resize):
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        if self.mean is not None:
            if x.shape[1] != self.mean.shape[1] and self.mean.shape[1] != 1:
                raise UserInputError(
                    f"--normalize has {self.mean.shape[1]} channels but the images have {x.shape[1]}."
                )
            x = (x - self.mean.to(x)) / self.std.to(x)
        return x


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


# --- loading --------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A model ready to evaluate and what the result rows say about it."""

    module: EvalModel
    source: str  # "cross_entropy" | "confidence" | "joint" (oodbench checkpoints) | "external"
    label: str
    sha256: str
    arch: str
    recipe: str
    format: str
    train_overrides: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.label} ({self.format}, arch {self.arch}, sha256 {self.sha256[:12]})"


def sha256_of_module(module: nn.Module) -> str:
    """A content hash of a module's parameters and buffers (for models given as objects)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        if isinstance(tensor, torch.Tensor):
            digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _is_torch_export(path: Path) -> bool:
    if path.suffix == ".pt2":
        return True
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(
            "serialized_exported_program" in n or n.endswith("/archive_format") for n in archive.namelist()
        )


def _one_line(error: BaseException) -> str:
    """The informative line of a torch.load / export / TorchScript error."""
    return one_line(error, prefer=("Unsupported global", "WeightsUnpickler"), drop=("weights_only",))


def _unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    """The tensor dict inside `obj` (itself, or under state_dict / model / model_state_dict)."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
    return None


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # DataParallel / DDP save every key as "module.<name>".
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def guess_num_classes(state: dict[str, torch.Tensor]) -> int | None:
    """Rows of the last 2-D weight in the state dict: the classifier layer for usual architectures."""
    weights = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    return int(weights[-1].shape[0]) if weights else None


def build_arch(arch: str, *, num_classes: int, in_shape: tuple[int, ...] | None) -> nn.Module:
    """An untrained model of `arch` (see the module docstring for the forms) with `num_classes`."""
    if arch.startswith("torchvision:"):
        import torchvision

        name = arch.split(":", 1)[1]
        if name not in torchvision.models.list_models():
            raise UserInputError(f"torchvision has no model {name!r} (see torchvision.models.list_models()).")
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if arch.startswith("timm:"):
        try:
            import timm
        except ImportError:
            raise UserInputError(
                'timm is not installed; install it with `pip install "oodbench[timm]"`.'
            ) from None
        name = arch.split(":", 1)[1]
        kwargs: dict[str, Any] = {"pretrained": False, "num_classes": num_classes}
        if in_shape is not None:
            kwargs["in_chans"] = in_shape[0]
        try:
            return timm.create_model(name, **kwargs)
        except RuntimeError as error:
            raise UserInputError(f"timm cannot build {name!r}: {_one_line(error)}") from None
    if ":" in arch:
        return _call_factory(arch, num_classes=num_classes, in_shape=in_shape)
    from oodbench.models import CLASSIFIERS, create_classifier

    if arch not in CLASSIFIERS:
        raise UserInputError(
            CLASSIFIERS.unknown_message(arch)
            + ". Or use torchvision:NAME, timm:NAME, or a factory path/to/file.py:function."
        )
    if in_shape is None:
        raise UserInputError(f"--arch {arch} needs the input shape: evaluate it on a suite.")
    return create_classifier(arch, in_shape=in_shape, num_classes=num_classes)


def _call_factory(target: str, *, num_classes: int, in_shape: tuple[int, ...] | None) -> nn.Module:
    where, _, func_name = target.rpartition(":")
    is_module = all(part.isidentifier() for part in where.split("."))
    if not func_name.isidentifier() or not (where.endswith(".py") or is_module):
        raise UserInputError(
            f"--arch {target!r} is not a factory: give path/to/file.py:function or package.module:function "
            "(or an oodbench name, torchvision:NAME, timm:NAME)."
        )
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise DataNotFoundError(f"Factory file {path} does not exist (--arch FILE.py:function).")
        module_name = f"oodbench_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            with in_user_code("importing", str(path), file=str(path)):
                spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as error:
            if not error.name or not (where == error.name or where.startswith(error.name + ".")):
                raise user_code_error("importing", f"module {where!r} (--arch {target})", error) from error
            raise UserInputError(f"Cannot import {where!r} for --arch {target}: {error}.") from None
        except Exception as error:  # the factory module's own import-time code failed
            raise user_code_error("importing", f"module {where!r} (--arch {target})", error) from error
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise UserInputError(f"{where} has no function {func_name!r} (--arch {target}).")
    accepted = _accepted_kwargs(factory, {"num_classes": num_classes, "in_shape": in_shape})
    with in_user_code(f"{func_name}()", f"--arch {target}", file=getattr(module, "__file__", None)):
        model = factory(**accepted)
    if not isinstance(model, nn.Module):
        raise UserInputError(f"--arch {target} returned a {type(model).__name__}, not a torch nn.Module.")
    return model


def _accepted_kwargs(func: Callable[..., Any], candidates: dict[str, Any]) -> dict[str, Any]:
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return {k: v for k, v in candidates.items() if v is not None}
    return {k: v for k, v in candidates.items() if k in parameters and v is not None}


def _load_weights(net: nn.Module, state: dict[str, torch.Tensor], *, path: Path, arch: str) -> None:
    state = _strip_prefix(state)
    # Names before shapes: an extra or missing key is the cause, and it also misleads the class-count
    # guess (the last 2-D weight), which would otherwise be reported as a shape mismatch.
    expected = set(net.state_dict())
    unexpected = [k for k in state if k not in expected]
    missing = [k for k in net.state_dict() if k not in state]
    if unexpected or missing:
        named = (("missing keys", missing), ("unexpected keys", unexpected))
        problems = [f"{label} {_few(keys)}" for label, keys in named if keys]
        raise UserInputError(
            f"The weights in {path} do not match --arch {arch}: {'; '.join(problems)}. "
            "Check --arch (the architecture the weights were saved from)."
        )
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        sizes = re.findall(
            r"size mismatch for ([^:]+): copying a param with shape (torch.Size\(\[[^\]]*\]\))"
            r" from checkpoint, the shape in current model is (torch.Size\(\[[^\]]*\]\))",
            str(error),
        )
        detail = (
            "; ".join(f"{k}: file {a[11:-1]}, model {b[11:-1]}" for k, a, b in sizes[:3])
            if sizes
            else _one_line(error)
        )
        raise UserInputError(
            f"The weights in {path} do not fit --arch {arch} ({detail}); "
            "check --arch and the number of classes."
        ) from None


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:3])
    return shown + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")


def load_model(
    path: str | Path,
    arch: str | None = None,
    *,
    num_classes: int | None = None,
    in_shape: tuple[int, ...] | None = None,
    normalize: str | tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    resize: int | None = None,
    features: str | None = None,
    label: str | None = None,
    expect_dataset: str | None = None,
    device: str | torch.device = "cpu",
    logits: str | int | None = None,
) -> LoadedModel:
    """Load any supported checkpoint file and wrap it for evaluation (see the module docstring).

    `num_classes`: for `arch` builders; default: read from the weights (the last 2-D weight).
    `in_shape` (C, H, W): the suite's image shape, needed by oodbench's own architectures.
    `expect_dataset`: oodbench checkpoints trained on another data set are refused.
    `logits`: the name or index of the logits in a tuple/dict/dataclass output (`select_logits`).
    """
    key = parse_logits_key(logits)  # checked before the file is read
    loaded = _load_model(
        path,
        arch,
        num_classes=num_classes,
        in_shape=in_shape,
        normalize=normalize,
        resize=resize,
        features=features,
        label=label,
        expect_dataset=expect_dataset,
        device=device,
    )
    loaded.module.logits_key = key
    return loaded


def _load_model(
    path, arch, *, num_classes, in_shape, normalize, resize, features, label, expect_dataset, device
) -> LoadedModel:
    from oodbench.provenance import sha256_file

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"Checkpoint {path} does not exist (check the path given to --checkpoint).")
    mean_std = parse_normalize(normalize) if isinstance(normalize, str) else normalize
    preprocess = Preprocess(
        mean=None if mean_std is None else tuple(mean_std[0]),
        std=None if mean_std is None else tuple(mean_std[1]),
        resize=resize,
    )
    sha = sha256_file(path)
    label = label or path.stem
    common = dict(label=label, sha256=sha)

    if path.suffix == ".safetensors":
        state = _read_safetensors(path)
        return _from_weights(
            state, path, arch, num_classes, in_shape, preprocess, features, "safetensors", common
        )
    if _is_torchscript(path):
        _refuse_arch(arch, path, "a TorchScript file")
        net = _load_torchscript(path)
        return _wrap(net, preprocess, features, "torchscript", "torchscript", common, device)
    if _is_torch_export(path):
        _refuse_arch(arch, path, "a torch.export program")
        program = _load_torch_export(path)
        return _wrap(
            program.module(),
            preprocess,
            features,
            "torch.export",
            "torch.export",
            common,
            device,
            fixed_batch=export_batch_size(program),
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - every failure is reported in one line below
        line = _one_line(error)
        if "Unsupported global" in line or "GLOBAL" in line:
            raise UserInputError(
                f"{path} is a pickled Python object (e.g. a whole model saved with torch.save(model)); "
                "oodbench never unpickles code. Save model.state_dict() and pass --arch, or save the model "
                "with torch.jit.save or torch.export."
            ) from None
        raise UserInputError(
            f"{path} is not a checkpoint oodbench can read ({line}); {_NOT_READABLE_HINT}."
        ) from None
    if isinstance(obj, dict) and obj.get("format") == "oodbench-checkpoint":
        return _from_oodbench(path, arch, preprocess, features, expect_dataset, in_shape, common, device)
    state = _unwrap_state_dict(obj)
    if state is None:
        raise UserInputError(f"{path} holds no weights oodbench can use; {_NOT_READABLE_HINT}.")
    return _from_weights(state, path, arch, num_classes, in_shape, preprocess, features, "state_dict", common)


def _refuse_arch(arch: str | None, path: Path, what: str) -> None:
    if arch is not None:
        raise UserInputError(f"{path} is {what}, which carries its own architecture; drop --arch.")


# --- reading archives without running their code ------------------------------------------------
#
# torch.export.load unpickles several members of a .pt2 with weights_only=False: pickled weights and
# tensor constants outright, and the sample inputs as a FALLBACK when the safe load fails (torch only
# logs "Fallback to weights_only=False succeeded"). A pickle's __reduce__ runs any Python function, so
# a .pt2 from elsewhere could run code just by being evaluated. oodbench therefore (1) checks every
# member torch would unpickle with the safe unpickler first, naming the member it refuses, and
# (2) loads with torch.load forced to weights_only=True and pickle.loads refused, so a member the
# check missed still cannot reach an unsafe unpickler.

# Members a model oodbench evaluates never needs and torch would run or unpickle unsafely:
# compiled AOTInductor libraries (dlopen = native code), opaque constants (pickle.loads) and
# TorchScript custom objects (their own unpickler, which may call registered classes).
_EXPORT_REFUSED_MEMBERS = (
    ("data/aotinductor/", "compiled AOTInductor code"),
    ("data/constants/opaque_obj_", "a pickled Python object"),
    ("data/constants/custom_obj_", "a TorchScript custom object"),
)
# Names in TorchScript code that reach Python itself (modules, builtins, the interpreter); a model's
# forward never names them, and torch.jit.load would only fail on them with a traceback.
_TORCHSCRIPT_FORBIDDEN = re.compile(
    r"(?<![\w.])(builtins|posix|nt|os|sys|subprocess|importlib|shutil|socket|pickle|marshal|ctypes"
    r"|__builtins__)\s*\.|(?<![\w.])(__import__|eval|exec)\s*\("
)


class _PickledCode(Exception):
    """A member of an archive is a pickle that names Python objects (refused by the safe unpickler)."""


def _archive_members(path: Path) -> dict[str, str]:
    """{name without torch's top folder: name in the zip} of an archive's members."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return {(n.split("/", 1)[1] if "/" in n else n): n for n in names}


def _pickle_members_of_export(archive: zipfile.ZipFile, members: dict[str, str]) -> list[str]:
    """The members torch.export.load reads with torch.load (pickles or torch.save archives)."""
    import json

    found = [m for m in members if m.startswith("data/sample_inputs/")]
    # Legacy layouts: the whole state dict / constants as one torch.save file.
    found += [m for m in members if re.fullmatch(r"data/(weights|constants)/[^/]+\.pt", m)]
    for config_name, folder in (
        (r"data/weights/[^/]+_weights_config\.json", "data/weights/"),
        (r"data/constants/[^/]+_constants_config\.json", "data/constants/"),
    ):
        for member in [m for m in members if re.fullmatch(config_name, m)]:
            try:
                config = json.loads(archive.read(members[member])).get("config", {})
            except (ValueError, AttributeError):
                continue  # torch refuses a broken config itself
            for meta in config.values() if isinstance(config, dict) else ():
                if isinstance(meta, dict) and meta.get("use_pickle"):
                    found.append(folder + str(meta.get("path_name", "")))
    # The pre-2.7 layout: torch.save artifacts at the top level.
    legacy = ("serialized_state_dict", "serialized_constants", "serialized_example_inputs")
    found += [m for m in members if m.rpartition(".")[0] in legacy]
    return list(dict.fromkeys(found))


def _check_export_members(path: Path) -> None:
    """Refuse a .pt2 any of whose members could run code when torch.export.load reads it."""
    import io

    try:
        members = _archive_members(path)
        for prefix, what in _EXPORT_REFUSED_MEMBERS:
            bad = next((m for m in members if m.startswith(prefix)), None)
            if bad is not None:
                raise UserInputError(
                    f"{path} holds {what} ({bad}), which oodbench never loads; export the model with "
                    "torch.export.save only (weights, constants and graph)."
                )
        with zipfile.ZipFile(path) as archive:
            for member in _pickle_members_of_export(archive, members):
                if member not in members:
                    continue  # torch reports a missing member itself
                try:
                    _real_torch_load(
                        io.BytesIO(archive.read(members[member])), map_location="cpu", weights_only=True
                    )
                except Exception as error:  # noqa: BLE001 - any failure: refuse before torch's fallback
                    raise UserInputError(
                        f"{path} is not a torch.export program oodbench will load: member {member} is "
                        f"not plain tensor data ({_one_line(error)}); oodbench never unpickles code."
                    ) from None
    except (zipfile.BadZipFile, OSError, KeyError) as error:
        raise UserInputError(f"{path} is not a readable torch.export program ({_one_line(error)}).") from None


_real_torch_load = torch.load


@contextlib.contextmanager
def _no_code_from_pickles() -> Iterator[None]:
    """While torch reads an archive: every torch.load is weights_only=True, pickle.loads and
    TorchScript's object unpickler refuse, and torch's loggers and warnings are silent.

    Not thread-safe (it swaps module attributes); loading a model is a one-off step.
    """
    import pickle
    import types
    import warnings

    from torch.export.pt2_archive import _package

    def safe_load(f: Any, map_location: Any = None, pickle_module: Any = None, **kwargs: Any) -> Any:
        kwargs.pop("weights_only", None)  # torch's fallback asks for False: never granted
        try:
            return _real_torch_load(f, map_location=map_location, weights_only=True, **kwargs)
        except pickle.UnpicklingError as error:
            raise _PickledCode(_one_line(error)) from None

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise _PickledCode("a pickled Python object (refused)")

    guarded_pickle = types.SimpleNamespace(**{**vars(pickle), "loads": refuse, "load": refuse})
    saved = (torch.load, _package.pickle, torch._C._pickle_load_obj, logging.root.manager.disable)
    torch.load, _package.pickle, torch._C._pickle_load_obj = safe_load, guarded_pickle, refuse
    # torch logs a 12-18 line traceback before it re-raises a broken archive's error; ours is one line.
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.load, _package.pickle, torch._C._pickle_load_obj = saved[:3]
        logging.disable(saved[3])


def _load_torch_export(path: Path) -> Any:
    """A .pt2 program, loaded so that no member reaches an unsafe unpickler (see above)."""
    _check_export_members(path)
    try:
        with _no_code_from_pickles():
            return torch.export.load(str(path))
    except _PickledCode as error:
        raise UserInputError(
            f"{path} holds pickled Python objects ({error}); oodbench never unpickles code."
        ) from None
    except UserInputError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure means "not a readable export"
        raise UserInputError(f"{path} is not a readable torch.export program ({_one_line(error)}).") from None


def _load_torchscript(path: Path) -> nn.Module:
    """A TorchScript file whose code names nothing outside torch (no Python modules or builtins)."""
    try:
        members = _archive_members(path)
        with zipfile.ZipFile(path) as archive:
            for member, name in members.items():
                if not (member.startswith("code/") and member.endswith(".py")):
                    continue
                match = _TORCHSCRIPT_FORBIDDEN.search(archive.read(name).decode("utf-8", "replace"))
                if match:
                    raise UserInputError(
                        f"{path} is TorchScript whose code ({member}) calls Python's "
                        f"{match.group(1) or match.group(2)!r}, not a model; oodbench refuses it."
                    )
    except (zipfile.BadZipFile, OSError) as error:
        raise UserInputError(f"{path} is not a readable TorchScript file ({_one_line(error)}).") from None
    try:
        with _no_code_from_pickles():
            return torch.jit.load(str(path), map_location="cpu")
    except _PickledCode as error:
        raise UserInputError(
            f"{path} holds pickled Python objects ({error}); oodbench never unpickles code."
        ) from None
    except Exception as error:  # noqa: BLE001 - a corrupt or hand-edited file
        raise UserInputError(f"{path} is not a readable TorchScript file ({_one_line(error)}).") from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise UserInputError(
            "Reading .safetensors needs the safetensors package: `pip install safetensors`."
        ) from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as error:  # noqa: BLE001 - a corrupt file
        raise UserInputError(f"{path} is not a readable .safetensors file ({_one_line(error)}).") from None


def _from_weights(state, path, arch, num_classes, in_shape, preprocess, features, fmt, common) -> LoadedModel:
    if arch is None:
        raise UserInputError(
            f"{path} holds plain weights (a state_dict); say which architecture they belong to with --arch "
            "(an oodbench name such as vgg13, torchvision:NAME, timm:NAME, or path/to/file.py:function)."
        )
    state = _strip_prefix(state)
    classes = num_classes or guess_num_classes(state)
    if classes is None:
        raise UserInputError(f"Cannot tell the number of classes from {path}; pass num_classes.")
    net = build_arch(arch, num_classes=classes, in_shape=in_shape)
    _load_weights(net, state, path=path, arch=arch)
    return _wrap(net, preprocess, features, fmt, arch, common, "cpu")


def _wrap(
    net,
    preprocess,
    features,
    fmt,
    arch,
    common,
    device,
    *,
    source="external",
    recipe="external",
    fixed_batch=None,
    **fields,
) -> LoadedModel:
    module = EvalModel(net, preprocess=preprocess, features=features, fixed_batch=fixed_batch)
    module = module.to(device).eval()
    return LoadedModel(module=module, source=source, arch=arch, recipe=recipe, format=fmt, **common, **fields)


def _from_oodbench(path, arch, preprocess, features, expect_dataset, in_shape, common, device) -> LoadedModel:
    from oodbench.models.trained import load_classifier

    _refuse_arch(arch, path, "an oodbench checkpoint")
    net, meta = load_classifier(path, expect_dataset=expect_dataset, expect_shape=in_shape)
    config = meta["config"]
    return _wrap(
        net,
        preprocess,
        features,
        "oodbench",
        config["arch"],
        common,
        device,
        source=config["method"],
        recipe=config.get("recipe", "unknown"),
        train_overrides=dict(config.get("overrides", {})),
        config=config,
    )


def wrap_module(
    net: nn.Module,
    *,
    normalize: str | tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    resize: int | None = None,
    features: str | None = None,
    label: str | None = None,
    logits: str | int | None = None,
) -> LoadedModel:
    """A model given as an object (the Python API): wrapped like a loaded file, hashed by its weights."""
    if isinstance(net, EvalModel):
        module = net
        if logits is not None:
            module.logits_key = parse_logits_key(logits)
    else:
        mean_std = parse_normalize(normalize) if isinstance(normalize, str) else normalize
        preprocess = Preprocess(
            mean=None if mean_std is None else tuple(mean_std[0]),
            std=None if mean_std is None else tuple(mean_std[1]),
            resize=resize,
        )
        module = EvalModel(net, preprocess=preprocess, features=features, logits=logits)
    inner = module.net
    return LoadedModel(
        module=module.eval(),
        source="external",
        label=label or type(inner).__name__,
        sha256=sha256_of_module(inner),
        arch=f"{type(inner).__module__}.{type(inner).__name__}",
        recipe="external",
        format="module",
    )


def check_against_suite(loaded: LoadedModel, *, in_shape: tuple[int, ...], num_classes: int, device) -> None:
    """One trial forward pass at the suite's shape: refuse shape or class-count mismatches in one line."""
    module = loaded.module
    module.num_classes = num_classes  # picks the logits out of a tuple/dict output (select_logits)
    shape = "x".join(map(str, in_shape))
    try:
        with torch.no_grad():
            # Two batch sizes: a model exported or traced with a fixed batch size fails here, not later.
            module(torch.zeros((3, *in_shape), device=device))
            logits = module(torch.zeros((2, *in_shape), device=device))
    except UserInputError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the model raises, the cause is the input
        detail = _one_line(error)
        if "Guard failed" in detail and "size()[0]" in detail:
            raise UserInputError(
                f"Model {loaded.label} was exported with a fixed batch size; export it with a dynamic batch "
                "dimension (torch.export.export(..., dynamic_shapes=...) with torch.export.Dim)."
            ) from None
        channels = re.search(r"to have (\d+) channels, but got (\d+) channels", detail)
        if channels:  # --resize changes height and width, never the channel count
            raise UserInputError(_channel_message(loaded.label, int(channels.group(1)), in_shape)) from None
        raise UserInputError(
            f"Model {loaded.label} cannot take this suite's {shape} images ({detail}); "
            "check --arch, or resize the inputs with --resize N."
        ) from None
    if logits.ndim != 2 or logits.shape[0] != 2:
        raise UserInputError(
            f"Model {loaded.label} returns an output of shape {tuple(logits.shape)} for 2 images; "
            "oodbench needs logits of shape (N, classes)."
        )
    if logits.shape[1] != num_classes:
        raise UserInputError(
            f"Model {loaded.label} has {logits.shape[1]} classes but this suite's in-distribution set has "
            f"{num_classes}; evaluate it on a suite with {logits.shape[1]} classes."
        )


def _channel_message(label: str, wanted: int, in_shape: tuple[int, ...]) -> str:
    """A model for `wanted`-channel images on a suite of in_shape[0] channels: what fixes it."""
    from oodbench.data.spec import DATASETS, SUITES

    suites = sorted(
        n for n in SUITES.names() if DATASETS.get(SUITES.get(n).in_dataset).image_shape[0] == wanted
    )
    where = f" ({', '.join(suites)})" if suites else ""
    have = in_shape[0]
    return (
        f"Model {label} takes {wanted}-channel images but this suite's images have {have} "
        f"({'x'.join(map(str, in_shape))}); --resize changes only height and width. Evaluate it on a "
        f"suite with {wanted}-channel images{where}, or use a model built for {have} channel"
        f"{'s' if have != 1 else ''}."
    )
