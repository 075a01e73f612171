"""Loading users' own models: any checkpoint format, the model's own preprocessing, features by layer.

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

Channels (`check_against_suite`): a model that takes 3 channels gets a grayscale suite as RGB
(the channel repeated), one that takes 1 gets an RGB suite as grey (ITU-R 601-2 luma, as PIL's
convert("L")), inside `Preprocess`. The model's channel count is `channels` (`--channels`) when
given, else its first `nn.Conv2d`'s `in_channels` (TorchScript's too), else a trial pass with each
count. For plain weights whose architecture is built for the suite's shape (oodbench's, `timm:`,
factories taking `in_shape`), it is `channels` or the in-channels of the weights' first 4-D
tensor. Rows record the conversion (`input_channels`), and the score cache key holds it.

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
import hashlib
import logging
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oodbench.errors import DataNotFoundError, UserInputError
from oodbench.models.arch import (
    build_arch,
    guess_num_classes,
    load_weights,
    strip_prefix,
    torch_error_line,
    unwrap_state_dict,
)
from oodbench.models.evalmodel import EvalModel, export_batch_size, parse_logits_key
from oodbench.models.preprocess import Preprocess, parse_normalize

FORMATS = ("oodbench", "torchscript", "torch.export", "state_dict", "safetensors", "module")
_NOT_READABLE_HINT = (
    "oodbench reads oodbench checkpoints, TorchScript (torch.jit.save), torch.export programs (.pt2), "
    "and plain weights (torch.save(model.state_dict()) or .safetensors) with --arch"
)


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
    channels: int | None = None,
) -> LoadedModel:
    """Load any supported checkpoint file and wrap it for evaluation (see the module docstring).

    `num_classes`: for `arch` builders; default: read from the weights (the last 2-D weight).
    `in_shape` (C, H, W): the suite's image shape, needed by oodbench's own architectures.
    `channels` (1 or 3): the channels the model takes (`--channels`); architectures built for the
    input shape are built for it. The conversion itself is set by `check_against_suite`.
    `expect_dataset`: oodbench checkpoints trained on another data set are refused.
    `logits`: the name or index of the logits in a tuple/dict/dataclass output (`select_logits`).
    """
    key = parse_logits_key(logits)  # checked before the file is read
    check_channels_option(channels)
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
        channels=channels,
    )
    loaded.module.logits_key = key
    return loaded


def _load_model(
    path, arch, *, num_classes, in_shape, normalize, resize, features, label, expect_dataset, device, channels
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
            state, path, arch, num_classes, in_shape, preprocess, features, "safetensors", common, channels
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
        line = torch_error_line(error)
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
    state = unwrap_state_dict(obj)
    if state is None:
        raise UserInputError(f"{path} holds no weights oodbench can use; {_NOT_READABLE_HINT}.")
    return _from_weights(
        state, path, arch, num_classes, in_shape, preprocess, features, "state_dict", common, channels
    )


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
                        f"not plain tensor data ({torch_error_line(error)}); oodbench never unpickles code."
                    ) from None
    except (zipfile.BadZipFile, OSError, KeyError) as error:
        raise UserInputError(
            f"{path} is not a readable torch.export program ({torch_error_line(error)})."
        ) from None


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
            raise _PickledCode(torch_error_line(error)) from None

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
        raise UserInputError(
            f"{path} is not a readable torch.export program ({torch_error_line(error)})."
        ) from None


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
        raise UserInputError(
            f"{path} is not a readable TorchScript file ({torch_error_line(error)})."
        ) from None
    try:
        with _no_code_from_pickles():
            return torch.jit.load(str(path), map_location="cpu")
    except _PickledCode as error:
        raise UserInputError(
            f"{path} holds pickled Python objects ({error}); oodbench never unpickles code."
        ) from None
    except Exception as error:  # noqa: BLE001 - a corrupt or hand-edited file
        raise UserInputError(
            f"{path} is not a readable TorchScript file ({torch_error_line(error)})."
        ) from None


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
        raise UserInputError(
            f"{path} is not a readable .safetensors file ({torch_error_line(error)})."
        ) from None


def _from_weights(
    state, path, arch, num_classes, in_shape, preprocess, features, fmt, common, channels=None
) -> LoadedModel:
    if arch is None:
        raise UserInputError(
            f"{path} holds plain weights (a state_dict); say which architecture they belong to with --arch "
            "(an oodbench name such as vgg13, torchvision:NAME, timm:NAME, or path/to/file.py:function)."
        )
    state = strip_prefix(state)
    classes = num_classes or guess_num_classes(state)
    if classes is None:
        raise UserInputError(f"Cannot tell the number of classes from {path}; pass num_classes.")
    if in_shape is not None:  # build for the channels the weights take; the suite's are converted
        in_shape = (channels or _weights_input_channels(state) or in_shape[0], *in_shape[1:])
    net = build_arch(arch, num_classes=classes, in_shape=in_shape)
    load_weights(net, state, path=path, arch=arch)
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


CHANNEL_CHOICES = (1, 3)


def check_channels_option(channels: Any) -> None:
    """`channels` is None, 1 or 3 (the only conversions are grey <-> RGB)."""
    if channels is not None and (isinstance(channels, bool) or channels not in CHANNEL_CHOICES):
        raise UserInputError(f"--channels takes 1 or 3 (the channels the model takes); got {channels!r}.")


def _weights_input_channels(state: dict[str, torch.Tensor]) -> int | None:
    """The in-channels of the first 4-D tensor of a state dict (a first conv's weight,
    (out, in, kh, kw)) when 1 or 3, else None."""
    first = next((v for v in state.values() if isinstance(v, torch.Tensor) and v.ndim == 4), None)
    return int(first.shape[1]) if first is not None and int(first.shape[1]) in CHANNEL_CHOICES else None


def first_conv_channels(net: nn.Module) -> int | None:
    """The in_channels of the net's first registered 2-D convolution (nn.Conv2d, or a TorchScript
    module compiled from one), None when it has none (torch.export programs: use a trial pass)."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
        if getattr(module, "original_name", None) == "Conv2d":  # TorchScript keeps the weights
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.ndim == 4:
                try:
                    groups = int(module.groups)
                except (AttributeError, RuntimeError, TypeError):
                    groups = 1  # traced modules drop constants; a grouped first conv is rare
                return int(weight.shape[1]) * groups
    return None


def _runs_on(module: EvalModel, shape: tuple[int, ...], device) -> bool:
    try:
        with torch.no_grad():
            module(torch.zeros((2, *shape), device=device))
    except Exception:  # noqa: BLE001 - a trial pass: any failure means "not this input"
        return False
    return True


def adapt_channels(
    loaded: LoadedModel, *, in_shape: tuple[int, ...], channels: int | None = None, device="cpu"
) -> str:
    """Make the model take the suite's `in_shape` images by converting their channels inside its
    `Preprocess` (1 <-> 3) when the model takes the other count: `channels` if given, else its
    first conv's in_channels, else the count a trial pass succeeds with (the suite's first).
    Returns the row's note ("" = no conversion)."""
    check_channels_option(channels)
    preprocess = loaded.module.preprocess
    preprocess.set_channels(1, 1, "")  # undo an earlier decision: decide from scratch
    have = int(in_shape[0])
    if channels is not None:
        want, why = channels, "--channels"
    else:
        want, why = first_conv_channels(loaded.module.net), "from the model's first conv"
        if want is None and have in CHANNEL_CHOICES and not _runs_on(loaded.module, in_shape, device):
            other = 4 - have  # 1 <-> 3
            preprocess.set_channels(have, other, "from a trial pass")
            if _runs_on(loaded.module, in_shape, device):
                return preprocess.channels_note
            preprocess.set_channels(have, have, "")
    if want is None or want == have or (have, want) not in ((1, 3), (3, 1)):
        return ""  # nothing to convert (or nothing convertible: the trial pass reports it)
    preprocess.set_channels(have, want, why)
    return preprocess.channels_note


def check_against_suite(
    loaded: LoadedModel,
    *,
    in_shape: tuple[int, ...],
    num_classes: int,
    device,
    channels: int | None = None,
) -> None:
    """One trial forward pass at the suite's shape: refuse shape or class-count mismatches in one
    line. First the model's channels are adapted to the suite's (`adapt_channels`; `channels`:
    the --channels option)."""
    module = loaded.module
    module.num_classes = num_classes  # picks the logits out of a tuple/dict output (select_logits)
    note = adapt_channels(loaded, in_shape=in_shape, channels=channels, device=device)
    shape = "x".join(map(str, in_shape))
    try:
        with torch.no_grad():
            # Two batch sizes: a model exported or traced with a fixed batch size fails here, not later.
            module(torch.zeros((3, *in_shape), device=device))
            logits = module(torch.zeros((2, *in_shape), device=device))
    except UserInputError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the model raises, the cause is the input
        detail = torch_error_line(error)
        if "Guard failed" in detail and "size()[0]" in detail:
            raise UserInputError(
                f"Model {loaded.label} was exported with a fixed batch size; export it with a dynamic batch "
                "dimension (torch.export.export(..., dynamic_shapes=...) with torch.export.Dim)."
            ) from None
        wanted = re.search(r"to have (\d+) channels, but got (\d+) channels", detail)
        if wanted:  # --resize changes height and width, never the channel count
            raise UserInputError(
                _channel_message(loaded.label, int(wanted.group(1)), in_shape, note)
            ) from None
        converted = f" converted {note.split(' ', 1)[0]} channels" if note else ""
        raise UserInputError(
            f"Model {loaded.label} cannot take this suite's {shape} images{converted} ({detail}); "
            "check --arch, resize the inputs with --resize N, or set the channels the model takes "
            "with --channels 1|3."
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


def _channel_message(label: str, wanted: int, in_shape: tuple[int, ...], note: str = "") -> str:
    """A model for `wanted`-channel images on a suite of in_shape[0] channels (converted as
    `note` says, "" = not converted): what fixes it."""
    have = in_shape[0]
    shape = "x".join(map(str, in_shape))
    if note:  # the conversion was decided wrongly (e.g. a first conv that is not the first layer)
        return (
            f"Model {label} takes {wanted}-channel images, but this suite's {shape} images were "
            f"converted {note}; pass --channels {wanted} (the channels it takes)."
        )
    if wanted in CHANNEL_CHOICES and have in CHANNEL_CHOICES:
        fix = f"pass --channels {wanted} to convert them (grey <-> RGB)"
    else:
        fix = f"oodbench converts only 1 <-> 3 channels: evaluate it on a suite with {wanted}-channel images"
    return (
        f"Model {label} takes {wanted}-channel images but this suite's have {have} ({shape}); "
        f"--resize changes only height and width; {fix}."
    )
