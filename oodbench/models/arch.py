"""Architectures of plain weights: oodbench's, torchvision's, timm's, OpenOOD v1.5's
(`openood:NAME`, oodbench.models.openood_arch) or a user's factory, and loading a state dict
into them."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oodbench.errors import (
    DataNotFoundError,
    UserInputError,
    import_user_file,
    in_user_code,
    one_line,
    user_code_error,
)


def torch_error_line(error: BaseException) -> str:
    """The informative line of a torch.load / export / TorchScript error."""
    return one_line(error, prefer=("Unsupported global", "WeightsUnpickler"), drop=("weights_only",))


def unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    """The tensor dict inside `obj` (itself, or under state_dict / model / model_state_dict)."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
    return None


def strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
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
            raise UserInputError(f"timm cannot build {name!r}: {torch_error_line(error)}") from None
    if arch.startswith("openood:"):
        from oodbench.models.openood_arch import ARCHITECTURES

        name = arch.split(":", 1)[1]
        if name not in ARCHITECTURES:
            raise UserInputError(
                f"OpenOOD has no architecture {name!r} here; use openood:"
                + " or openood:".join(ARCHITECTURES)
                + "."
            )
        if in_shape is not None and in_shape[0] != 3:
            raise UserInputError(
                f"--arch {arch} takes 3-channel images; the suite's are {in_shape[0]}-channel."
            )
        return ARCHITECTURES[name](num_classes=num_classes)
    if ":" in arch:
        return _call_factory(arch, num_classes=num_classes, in_shape=in_shape)
    from oodbench.models import CLASSIFIERS, create_classifier

    if arch not in CLASSIFIERS:
        raise UserInputError(
            CLASSIFIERS.unknown_message(arch)
            + ". Or use torchvision:NAME, timm:NAME, openood:NAME, or a factory path/to/file.py:function."
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
        module = import_user_file(path, module_name)
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


def load_weights(net: nn.Module, state: dict[str, torch.Tensor], *, path: Path, arch: str) -> None:
    state = strip_prefix(state)
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
            else torch_error_line(error)
        )
        raise UserInputError(
            f"The weights in {path} do not fit --arch {arch} ({detail}); "
            "check --arch and the number of classes."
        ) from None


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:3])
    return shown + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
