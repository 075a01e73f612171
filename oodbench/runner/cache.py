"""The score cache: keys (code, hyperparameters, fit data, model pipeline), entries and
their fit ids (`evaluate` reuses a detector's cached sets only when all come from one fit)."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from oodbench import __version__
from oodbench.detectors.base import Detector
from oodbench.errors import UserInputError
from oodbench.results import load_scores, safe_file_name

log = logging.getLogger(__name__)


# The oodbench package: built-in detectors depend on all of it (metrics, data conversion, models).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _source_tree_digest(root: Path) -> str:
    """A hash of every .py file under `root` (computed once per process)."""
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.cache
def code_fingerprint(cls: type) -> str:
    """A hash of the oodbench version, the whole oodbench source tree and the source files of
    `cls` and its base classes outside it (a plug-in's own file): cached scores are reused
    only while the code that made them is unchanged."""
    digest = hashlib.sha1(__version__.encode() + _source_tree_digest(PACKAGE_ROOT).encode())
    for klass in cls.__mro__:
        try:
            source = inspect.getsourcefile(klass)
        except TypeError:  # built-in classes (object)
            continue
        if not source or not Path(source).is_file():
            continue
        if Path(source).resolve().is_relative_to(PACKAGE_ROOT):
            continue  # already in the tree digest
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:12]


def load_cached(path: Path, use_cache: bool) -> dict[str, np.ndarray] | None:
    """A cache entry, or None when absent, disabled or unreadable (then warned about and rebuilt)."""
    if not use_cache or not path.exists():
        return None
    try:
        return load_scores(path)
    except UserInputError as error:
        log.warning("ignoring an unreadable cache entry (it will be rebuilt): %s", error)
        return None


def fit_id(entry: dict[str, np.ndarray]) -> str | None:
    """The fit a cache entry's scores came from (None for entries of older oodbench versions)."""
    try:
        return json.loads(str(entry["meta"])).get("fit_id")
    except (KeyError, ValueError, AttributeError):
        return None


def one_fit(cached: dict[str, dict[str, np.ndarray]], names: Sequence[str]) -> bool:
    """Whether every set has a cache entry and all come from one fit of the detector."""
    ids = {fit_id(cached[name]) if name in cached else None for name in names}
    return len(ids) == 1 and None not in ids


def _stable(value: Any, depth: int = 0) -> Any:
    """A JSON-ready, process-independent description of a hyperparameter value (arrays and
    tensors by content hash; objects by class and attributes, never by a memory address)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return ["array", str(data.dtype), list(data.shape), hashlib.sha1(data.tobytes()).hexdigest()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _stable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_stable(v, depth + 1) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, nn.Module):
        return ["module", type(value).__qualname__, _stable(dict(value.state_dict()), depth + 1)]
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if callable(value) and hasattr(value, "__qualname__"):
        return ["callable", f"{getattr(value, '__module__', '')}.{value.__qualname__}"]
    if depth < 4 and hasattr(value, "__dict__"):
        return ["object", kind, _stable(vars(value), depth + 1)]
    return ["value", kind, repr(value)]


def detector_folder(name: str) -> str:
    """The cache folder of a detector: its name made file-safe, plus a digest of the exact name,
    so that no name (a plug-in's `..`, `a/b` or `pytorch-ood:ViM`) can leave the cache or share a
    folder with another."""
    readable = safe_file_name(name).lstrip(".")[:40] or "detector"
    return f"{readable}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def detector_key(detector: Detector) -> str:
    """Cache key text of a detector: its class and every attribute set before fitting, whatever
    its name (plug-ins may keep hyperparameters under `_private` names); learned state (a name
    ending in `_`, scikit-learn's convention) is left out: the runner fits again anyway."""
    state = {
        k: _stable(v) for k, v in vars(detector).items() if not (k.endswith("_") and not k.startswith("_"))
    }
    return f"{type(detector).__module__}.{type(detector).__qualname__}" + json.dumps(state, sort_keys=True)


def cache_entry(scores: np.ndarray, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """A cache entry: checked scores and their meta (parameters, tuning, fit id, provenance)."""
    return {"scores": scores, "meta": np.array(json.dumps(meta))}
