"""Detectors from outside oodbench: the decorator, installed packages, `MODULE:Class`, `FILE.py:Class`.

Four ways a detector reaches `-d` (and `oodbench.evaluate(detectors=[...])`), none of which needs
an edit to oodbench:

- `@oodbench.register_detector("name")` on a `Detector` subclass: registered when its module is
  imported (source "plug-in");
- an installed package that declares the entry point group `oodbench.detectors`
  (`name = "package.module:Class"` in its pyproject's `[project.entry-points."oodbench.detectors"]`):
  listed by name without importing it, loaded when used;
- a spec naming the class directly: `package.module:Class` or `path/to/file.py:Class`;
- `pytorch-ood:NAME`: one of pytorch-ood's detectors through the adapter in
  `oodbench.detectors.pytorch_ood_adapter` (needs `pip install -e ".[pytorch-ood]"`).

This module imports no torch: listing and name checks stay light. A file plug-in is imported
under a module name made from its path AND its content, so editing the file changes the score
cache key of its detector (`runner._detector_key` uses the class's module).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodbench.errors import UserInputError, import_user_file, in_user_code, user_code_error
from oodbench.names import PYTORCH_OOD_PREFIX

if TYPE_CHECKING:
    from oodbench.detectors.base import Detector

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "oodbench.detectors"
PYTORCH_OOD_INSTALL = 'pip install -e ".[pytorch-ood]" (or pip install "pytorch-ood>=0.4")'
SPEC_HELP = "NAME, package.module:Class, path/to/file.py:Class or pytorch-ood:NAME"

# A detector's name labels result rows and (today) names score-cache folders: a safe charset, never
# a path ("../../x"), never "." or "..".
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")
# name -> where its class comes from, for every plug-in class loaded in this process: two plug-ins
# with one name would write the same rows and cache files, the second silently replacing the first.
_CLAIMED: dict[str, str] = {}
# Methods of a plug-in class whose exceptions are reported as the plug-in's (one line + -v).
_USER_METHODS = ("validate", "fit", "score_outputs", "score", "params", "tuned_on_validation")


def check_name(name: object, source: str) -> str:
    """`name` if it is a safe detector name (letters, digits, _ . + -, or pytorch-ood:NAME)."""
    body = (
        name[len(PYTORCH_OOD_PREFIX) :]
        if isinstance(name, str) and name.startswith(PYTORCH_OOD_PREFIX)
        else name
    )
    if not isinstance(body, str) or not _SAFE_NAME.fullmatch(body) or ".." in body:
        raise UserInputError(
            f"Detector name {name!r} (from {source}) is not allowed: use 1-100 letters, digits and _ . + - "
            "starting with a letter or digit (no '..'); it labels result rows and cache folders."
        )
    return body if body is name else str(name)


def _class_source(cls: type) -> str:
    """Where a class comes from, for messages: its file (plug-in files) or module, and its name."""
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    where = file if file and cls.__module__.startswith("oodbench_plugin_") else cls.__module__
    return f"{where}:{cls.__qualname__}"


def _claim(name: str, cls: type, source: str) -> None:
    """Refuse a plug-in whose name is a built-in's, a registered plug-in's or another loaded class's."""
    from oodbench.detectors import DETECTORS

    if name in DETECTORS:
        entry = DETECTORS.get(name)
        same = (
            entry.cls is cls
            if entry.cls is not None
            else entry.target == f"{cls.__module__}:{cls.__qualname__}"
        )
        if not same:
            raise UserInputError(
                f"Detector {source} is named {name!r}, like the {entry.source} detector {entry.target}; "
                "give it another name (the class attribute `name`): its rows would replace that detector's."
            )
        return
    prior = _CLAIMED.setdefault(name, source)
    if prior != source:
        raise UserInputError(
            f"Detectors {prior} and {source} are both named {name!r}; give one another name "
            "(the class attribute `name`): their rows would replace each other's."
        )


def guard_user_code(cls: type) -> type:
    """Make the exceptions of a plug-in class's own methods one line naming its file, method, line.

    The class is patched in place, once: its identity, module and source file (what the score
    cache key is made of) stay the user's, and instances stay plain (copyable, picklable). A
    `UserInputError` raised by the plug-in passes unchanged.
    """
    file = _source_file(cls)
    where = _class_source(cls)
    for method_name in _USER_METHODS:
        method = cls.__dict__.get(method_name)
        if inspect.isfunction(method) and not getattr(method, "_oodbench_guarded", False):
            setattr(cls, method_name, _guarded(method, method_name, where, file))
    return cls


def in_detector_code(detector: Detector, method: str) -> contextlib.AbstractContextManager[None]:
    """For callers holding a detector OBJECT (e.g. the runner, given instances through the API):
    `with in_detector_code(detector, "fit"): detector.fit(...)` reports the exceptions of a
    non-oodbench detector in one line like `guard_user_code`; oodbench's own run bare."""
    cls = type(detector)
    if cls.__module__.startswith("oodbench."):
        return contextlib.nullcontext()
    return in_user_code(f"{method}()", _class_source(cls), file=_source_file(cls))


def _guarded(method: Callable[..., Any], name: str, where: str, file: str | None) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with in_user_code(f"{name}()", where, file=file):
            return method(*args, **kwargs)

    call._oodbench_guarded = True  # type: ignore[attr-defined]
    return call


def register_detector(name: str) -> Callable[[type], type]:
    """Class decorator: make a `Detector` subclass available as `-d name` (source "plug-in").

        @oodbench.register_detector("my_score")
        class MyScore(Detector):
            uses = "logits"
            def score_outputs(self, outputs): ...

    The class gets `name` if it has none; a different `name` on the class is an error.
    """
    from oodbench.detectors import DETECTORS, DetectorEntry

    source = f"@register_detector({name!r})"
    check_name(name, source)
    if name.startswith(PYTORCH_OOD_PREFIX):
        raise UserInputError(
            f"{source}: the prefix {PYTORCH_OOD_PREFIX!r} is pytorch-ood's; choose another name."
        )

    def add(cls: type) -> type:
        own = cls.__dict__.get("name")
        if own is not None and own != name:
            raise UserInputError(f"register_detector({name!r}) on a class whose name is {own!r}")
        if name in DETECTORS:
            entry = DETECTORS.get(name)
            if entry.cls is not cls and entry.target != f"{cls.__module__}:{cls.__qualname__}":
                raise UserInputError(
                    f"register_detector({name!r}) on {cls.__module__}:{cls.__qualname__}: {name!r} is "
                    f"already registered as the {entry.source} detector {entry.target}; choose another name."
                )
        cls.name = name
        entry = DetectorEntry(
            name,
            f"{cls.__module__}:{cls.__qualname__}",
            getattr(cls, "uses", "logits"),
            getattr(cls, "paper", "") or "",
            source="plug-in",
            cls=cls,
        )
        if name in DETECTORS and DETECTORS.get(name) == entry:
            return cls  # the same module imported twice registers the same class again
        DETECTORS.add(name, entry)
        return guard_user_code(cls)

    return add


def entry_points() -> dict[str, str]:
    """{name: "module:Class"} of the installed `oodbench.detectors` entry points (nothing imported)."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def is_spec(text: str) -> bool:
    """`pytorch-ood:NAME`, `module:Class` and `file.py:Class` are specs; plain names are not."""
    return ":" in text


def load_class(spec: str) -> type[Detector]:
    """The Detector subclass a spec `package.module:Class` or `path/to/file.py:Class` names."""
    from oodbench.detectors.base import Detector

    where, _, class_name = spec.rpartition(":")
    if not where or not class_name:
        raise UserInputError(f"A detector spec is {SPEC_HELP}; got {spec!r}.")
    module = _import_file(where, spec) if where.endswith(".py") else _import_module(where, spec)
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Detector):
        found = "nothing" if cls is None else type(cls).__name__
        raise UserInputError(
            f"{where} has no Detector subclass {class_name!r} (found {found}) for -d {spec}; "
            "subclass oodbench.detectors.base.Detector."
        )
    if getattr(cls, "name", None) is None:
        cls.name = cls.__name__  # rows need a detector name; the class's own name is the natural one
    source = f"{Path(where).expanduser().resolve()}:{class_name}" if where.endswith(".py") else spec
    check_name(cls.name, f"-d {spec}")
    if cls.name.startswith(PYTORCH_OOD_PREFIX):
        raise UserInputError(f"Detector -d {spec} is named {cls.name!r}: that prefix is pytorch-ood's.")
    _claim(cls.name, cls, source)
    return guard_user_code(cls)


def _import_module(where: str, spec: str) -> Any:
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as error:
        if error.name and (where == error.name or where.startswith(error.name + ".")):
            raise UserInputError(f"Cannot import {where!r} for -d {spec}: {error}.") from None
        raise user_code_error("importing", f"module {where!r} (-d {spec})", error) from error
    except UserInputError:
        raise
    except Exception as error:  # an exception raised by the plug-in's own import-time code
        raise user_code_error("importing", f"module {where!r} (-d {spec})", error) from error


def _import_file(where: str, spec: str) -> Any:
    path = Path(where).expanduser()
    if not path.is_file():
        raise UserInputError(f"Detector file {path} does not exist (-d {spec}).")
    content = path.read_bytes()
    digest = hashlib.sha1(str(path.resolve()).encode() + b"\0" + content).hexdigest()[:16]
    module_name = f"oodbench_plugin_{digest}"
    if module_name in sys.modules:  # same file, same content: the same classes
        return sys.modules[module_name]
    return import_user_file(path, module_name)


def pytorch_ood_installed() -> bool:
    """Whether pytorch-ood can be imported (checked without importing it)."""
    return importlib.util.find_spec("pytorch_ood") is not None


def resolve_class(name: str) -> type[Detector]:
    """The class behind a registered name, an entry point name or a module/file spec."""
    from oodbench.detectors import DETECTORS

    points = entry_points()
    if name in DETECTORS:
        entry = DETECTORS.get(name)
        if name in points and points[name] != entry.target:
            # Using the registered class would silently ignore the plug-in the user installed.
            raise UserInputError(
                f"The entry point {name!r} ({points[name]}, group {ENTRY_POINT_GROUP}) has the name "
                f"of the {entry.source} detector {entry.target}; rename the entry point."
            )
        return entry.load()
    if name in points:
        try:
            return load_class(points[name])
        except UserInputError as error:
            raise UserInputError(f"Entry point {name!r} ({ENTRY_POINT_GROUP}): {error}") from None
    if is_spec(name) and not name.startswith(PYTORCH_OOD_PREFIX):
        return load_class(name)
    known = [*DETECTORS.names(), *points]
    message = DETECTORS.unknown_message(name) if not points else _unknown(name, known)
    raise UserInputError(f"{message}. Or give {SPEC_HELP}.")


def _unknown(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"Unknown detector {name!r}.{hint} Available: {', '.join(sorted(known))}"


def create(name: str, **params: Any) -> Detector:
    """A detector from any name or spec, with `params` as its keyword arguments."""
    if name.startswith(PYTORCH_OOD_PREFIX):
        try:
            from oodbench.detectors.pytorch_ood_adapter import PytorchOOD
        except ImportError:
            raise UserInputError(f"-d {name} needs pytorch-ood: {PYTORCH_OOD_INSTALL}.") from None
        check_name(name, f"-d {name}")
        return PytorchOOD(name[len(PYTORCH_OOD_PREFIX) :], **params)
    cls = resolve_class(name)
    if cls.__module__.startswith("oodbench."):  # built-in: its errors are oodbench's own
        try:
            return cls(**params)
        except TypeError as error:
            raise UserInputError(f"Bad parameters for detector {name!r}: {error}") from None
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as error:
        raise UserInputError(f"Bad parameters for detector {name!r}: {error}") from None
    except ValueError:
        pass  # no signature to check against: the call below tells
    with in_user_code("__init__()", _class_source(cls), file=_source_file(cls)):
        return cls(**params)


def _source_file(cls: type) -> str | None:
    try:
        return inspect.getsourcefile(cls)
    except TypeError:
        return None  # classes made at run time have no file


def listing() -> list[tuple[str, str, str, str]]:
    """(name, source, uses, paper or target) of every detector oodbench can find, without torch.

    Entry points are not imported, so what they use is shown as "?"; pytorch-ood's detectors come
    from the adapter's table (checked against the installed pytorch-ood by the tests).
    """
    from oodbench.detectors import DETECTORS

    lines = [(name, e.source, e.uses, e.paper) for name, e in DETECTORS.items()]
    for name, target in sorted(entry_points().items()):
        if name not in DETECTORS:
            lines.append((name, "plug-in", "?", f"entry point {target}"))
        elif target != DETECTORS.get(name).target:
            taken = DETECTORS.get(name).source
            lines.append((name, "plug-in", "?", f"entry point {target}: REFUSED, a {taken} name"))
    if pytorch_ood_installed():
        from oodbench.detectors.pytorch_ood_table import PYTORCH_OOD_DETECTORS

        for cls_name, (uses, paper) in sorted(PYTORCH_OOD_DETECTORS.items(), key=lambda i: i[0].lower()):
            lines.append((PYTORCH_OOD_PREFIX + cls_name, "pytorch-ood", uses, paper))
    return lines
