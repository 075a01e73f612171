"""Suites as files: a declarative TOML format, its parser and validator, and `suite_init`.

    format = 1
    name = "my-suite"
    description = "My classifier's classes vs. what it must reject"

    [in_distribution]
    classes = 10
    train = { classes = "data/train" }          # a class-subfolder folder
    val = { holdout = 1000 }                    # held out of train (stratified, seed 0), or a source
    test = { list = "lists/test.txt", root = "data" }

    [preprocess]
    channels = 3
    size = [224, 224]
    resize = 256                                # optional: shorter side, then
    crop = [224, 224]                           # optional: centred crop (= size)
    interpolation = "bilinear"
    normalize = "imagenet"                      # none | imagenet | cifar10 | svhn | {mean, std}

    [[ood]]                                     # OOD test sets, in this order; group: near, far, ...
    name = "textures"
    group = "far"
    folder = "data/dtd"

    [validation_ood]                            # tunes ODIN / Mahalanobis; never a test set
    name = "isun"
    dataset = "isun"
    limit = 1000

    [[covariate_shift]]                         # optional: shifted ID sets, labelled
    name = "test-blur"
    classes = "data/test_blur"

    [training]                                  # optional: training-time methods
    recipe = "lee2018-cifar10"
    seen_ood = { dataset = "svhn", split = "train" }

A source is a table with exactly one of: `dataset` (a registered data set, `split` optional),
`folder` (every image below it), `classes` (class sub-folders, labels from sorted folder
names), `list` (an OpenOOD image list, `root` required) or `npz`; `limit` caps it. Relative
paths are relative to the suite file's folder.

Data roots (OpenOOD's layout, oodbench/suites/openood-*.toml): a path may begin with
`{data_root}`, replaced by the folder given as `load_suite_file(path, data_root=...)`. Without
one the file still parses (its sets are listed) but nothing can be read; with one, every list
and folder is checked at once and `DataNotFoundError` names all that are missing in one line,
with the optional top-level `[data] get = "..."` saying how to obtain them. List sources take
`sha256 = "<64 hex>"`, a pin of the list file's bytes: `SuiteFile.verify_lists()` records each
list's digest, and a list that differs from its pin is an error unless accepted explicitly
(`accept_changed=True`, recorded in the result). `native = true` reads a set at its stored
size, without `resize` / `crop` (OpenOOD's ImageNet-C: ToTensor + Normalize only).

Every problem of a file is reported in ONE UserInputError naming the file and each key's
line. `SuiteFile.sha256` is the file's digest for result rows; `SuiteFile.to_suite()` gives
today's `Suite` when every set is registered.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oodbench.data.sources.transform import INTERPOLATIONS, Preprocess

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as a package (a dependency there only)
    import tomli as tomllib
from oodbench.errors import UserInputError

FORMAT = 1
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "suites"
SOURCE_KINDS = ("dataset", "folder", "classes", "list", "npz")
# Names the wiring maps to the models' normalisation presets (README: --normalize).
NORMALIZE_PRESETS = ("none", "imagenet", "cifar10", "svhn")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_TOP = ("format", "name", "description", "in_distribution", "preprocess", "ood", "validation_ood")
_TOP_OPTIONAL = ("covariate_shift", "training", "data", "tuning")
DATA_ROOT = "{data_root}"  # placeholder at the start of a path: the folder given as data_root
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SourceSpec:
    """Where one set's images come from (not read): `kind` is one of SOURCE_KINDS."""

    kind: str
    value: str  # the data set name or the path as written
    split: str | None = None
    root: str | None = None
    limit: int | None = None
    base: Path = field(default=Path("."), compare=False)  # the suite file's folder
    sha256: str | None = None  # list sources: pinned sha256 of the list file's bytes
    native: bool = False  # read at the stored size: no resize / crop
    data_root: Path | None = field(default=None, compare=False)  # replaces {data_root}

    @property
    def needs_data_root(self) -> bool:
        """Whether a path of this source starts with {data_root}."""
        return self.kind != "dataset" and any(
            v is not None and v.startswith(DATA_ROOT) for v in (self.value, self.root)
        )

    def _resolve(self, text: str) -> Path:
        if text.startswith(DATA_ROOT):
            if self.data_root is None:
                raise UserInputError(
                    f"{text} is relative to a data root; load the suite file with data_root=FOLDER."
                )
            return (Path(self.data_root).expanduser() / text[len(DATA_ROOT) :].lstrip("/\\")).resolve()
        return (self.base / Path(text).expanduser()).resolve()

    def path(self) -> Path:
        return self._resolve(self.value)

    def root_path(self) -> Path:
        """The folder a list's image paths are relative to."""
        return self._resolve(self.root or ".")

    def list_sha256(self) -> str:
        """sha256 hex of a list source's file bytes."""
        return hashlib.sha256(self.path().read_bytes()).hexdigest()

    def build(self, pre: Preprocess, *, data_dir: str | None = None, name: str | None = None):
        """The streaming source (oodbench.data.sources) of this set, `limit` applied by `select`."""
        from oodbench.data import sources

        if self.native:
            pre = Preprocess(pre.channels, None, None, None, pre.interpolation)
        if self.kind == "dataset":
            from oodbench.data.spec import load_dataset

            images = load_dataset(self.value, self.split or "test", data_dir=data_dir)
            source = sources.TensorSource.from_labeled(images, pre)
        elif self.kind == "folder":
            source = sources.ImageFolderSource(self.path(), pre, name=name)
        elif self.kind == "classes":
            source = sources.ClassFolderSource(self.path(), pre, name=name)
        elif self.kind == "list":
            source = sources.ImageListSource(self.path(), self.root_path(), pre, name=name)
        else:
            source = sources.NpzSource(self.path(), pre, name=name)
        return sources.select(source, self.limit)


@dataclass(frozen=True)
class NamedSet:
    name: str
    source: SourceSpec
    group: str = ""


@dataclass(frozen=True)
class SuiteFile:
    """A parsed and validated suite file."""

    path: Path
    sha256: str
    name: str
    description: str
    classes: int
    train: SourceSpec
    val: SourceSpec | int  # a source, or the number of images held out of train
    test: SourceSpec
    preprocess: Preprocess
    normalize: str | tuple[tuple[float, ...], tuple[float, ...]]
    ood: tuple[NamedSet, ...]
    validation_ood: NamedSet
    covariate_shift: tuple[NamedSet, ...] = ()
    recipe: str | None = None
    seen_ood: SourceSpec | None = None
    data_root: Path | None = None
    data_get: str = ""  # [data] get: how to obtain the data (shown when some is missing)
    # [tuning]: grids searched on validation data, {detector: {parameter: values}}
    tuning: Mapping[str, Mapping[str, tuple]] = field(default_factory=dict)

    def named_sources(self) -> dict[str, SourceSpec]:
        """Every source by role / set name: train, val, test, each OOD and covariate-shift set
        by its name, the validation OOD set as validation_ood:<name>, seen_ood."""
        out = {"train": self.train, "test": self.test}
        if not isinstance(self.val, int):
            out["val"] = self.val
        out[f"validation_ood:{self.validation_ood.name}"] = self.validation_ood.source
        for entry in (*self.ood, *self.covariate_shift):
            out[entry.name] = entry.source
        if self.seen_ood is not None:
            out["seen_ood"] = self.seen_ood
        return out

    @property
    def needs_data_root(self) -> bool:
        return any(s.needs_data_root for s in self.named_sources().values())

    def missing_data(self) -> list[Path]:
        """Lists and folders the sources name that do not exist (lists, their image roots,
        folders), in file order, each once. Empty when all are there."""
        missing: list[Path] = []
        for source in self.named_sources().values():
            if source.kind == "dataset":
                continue
            paths = [source.path()] + ([source.root_path()] if source.kind == "list" else [])
            missing += [p for p in paths if not p.exists() and p not in missing]
        return missing

    def require_data(self) -> None:
        """DataNotFoundError naming, in one line, every missing list / folder, where it was
        looked for and how to get it; nothing when all exist."""
        from oodbench.errors import DataNotFoundError

        missing = self.missing_data()
        if not missing:
            return
        where = f" under data root {self.data_root}" if self.data_root is not None else ""
        names = ", ".join(str(p) for p in missing)
        raise DataNotFoundError(
            f"Suite {self.name}: {len(missing)} list(s)/folder(s) missing{where}: {names}. "
            + (self.data_get or "Put the files there, or edit the suite file's paths.")
        )

    def list_pins(self) -> dict[str, str]:
        """{set name: pinned sha256} of the list sources that carry a pin."""
        return {n: s.sha256 for n, s in self.named_sources().items() if s.kind == "list" and s.sha256}

    def verify_lists(self, *, accept_changed: bool = False) -> dict[str, dict[str, Any]]:
        """sha256 of every list file, by set name (see `named_sources`), for result rows:
        {"sha256": digest, "pinned": pin or "", "accepted": True where a pinned list differs
        and `accept_changed` accepts it}. A list differing from its pin without
        `accept_changed` is a UserInputError naming every such list in one line."""
        out: dict[str, dict[str, Any]] = {}
        changed = []
        for name, source in self.named_sources().items():
            if source.kind != "list":
                continue
            digest = source.list_sha256()
            pinned = source.sha256 or ""
            differs = bool(pinned) and digest != pinned
            out[name] = {"sha256": digest, "pinned": pinned, "accepted": differs}
            if differs:
                changed.append(f"{name} ({source.path()}: sha256 {digest}, pinned {pinned})")
        if changed and not accept_changed:
            raise UserInputError(
                f"Suite {self.name}: image list(s) differ from the pinned sha256: "
                + "; ".join(changed)
                + ". Get the official lists, or accept them explicitly (--accept-changed-lists, "
                "accept_changed=True; recorded in the rows)."
            )
        return out

    def groups(self) -> dict[str, list[str]]:
        """OOD test set names by group, in file order."""
        out: dict[str, list[str]] = {}
        for entry in self.ood:
            out.setdefault(entry.group, []).append(entry.name)
        return out

    def to_suite(self):
        """Today's `oodbench.data.spec.Suite` (registered data sets only; file sets need the
        streaming wiring). Splits the Suite rules pick are checked to be the ones written."""
        from oodbench.data.spec import Suite

        every = [self.train, self.test, self.validation_ood.source, *(o.source for o in self.ood)]
        every += [self.seen_ood] if self.seen_ood else []
        if not isinstance(self.val, int):
            every.append(self.val)
        files = [s.value for s in every if s.kind != "dataset"]
        if files or self.seen_ood is None or self.recipe is None:
            raise UserInputError(
                f"Suite file {self.path} cannot become a built-in Suite: "
                + (
                    "it reads files (" + ", ".join(files) + ")"
                    if files
                    else "it has no [training] seen_ood/recipe"
                )
                + "; load it with the streaming loader."
            )
        val_from = "train" if isinstance(self.val, int) else "val"
        return Suite(
            name=self.name,
            in_dataset=self.train.value,
            out_datasets=tuple(o.source.value for o in self.ood),
            seen_ood=self.seen_ood.value,
            val_ood=self.validation_ood.source.value,
            recipe=self.recipe,
            description=self.description,
            val_in_from=val_from,
            val_in_size=self.val if isinstance(self.val, int) else (self.val.limit or Suite.val_in_size),
            val_ood_size=self.validation_ood.source.limit or Suite.val_ood_size,
        )


# ---------------------------------------------------------------------------------------- parse
def load_suite_file(
    path: str | Path, *, data_root: str | Path | None = None, check_data: bool = True
) -> SuiteFile:
    """Parse and validate a suite file; every problem in one UserInputError with lines.

    data_root: the folder that replaces {data_root} in its paths; with `check_data`, every
    list / folder it names must exist (`SuiteFile.require_data`: one DataNotFoundError)."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserInputError(f"Suite file {path} could not be read ({error.strerror or error}).") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserInputError(f"Suite file {path} is not UTF-8 text; save it as UTF-8.") from None
    suite = parse_suite(text, path=path, sha256=hashlib.sha256(data).hexdigest(), data_root=data_root)
    if data_root is not None and check_data:
        suite.require_data()
    return suite


def suite_file_sha256(path: str | Path) -> str:
    """sha256 hex of a suite file's bytes (what result rows record)."""
    return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()


def parse_suite(
    text: str,
    *,
    path: Path = Path("<suite>"),
    sha256: str | None = None,
    data_root: str | Path | None = None,
) -> SuiteFile:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # tomllib's message ends "(at line L, column C)": already the file's line.
        raise UserInputError(f"Suite file {path}: invalid TOML: {error}. Fix that line.") from None
    root = None if data_root is None else Path(data_root).expanduser().resolve()
    checker = _Checker(text, path, data_root=root)
    suite = checker.suite(doc, base=path.parent if path.name != "<suite>" else Path("."))
    checker.raise_if_any()
    assert suite is not None
    return SuiteFile(
        path=path, sha256=sha256 or hashlib.sha256(text.encode()).hexdigest(), data_root=root, **suite
    )


class _Checker:
    """Collects every schema problem with the line of the key it concerns."""

    def __init__(self, text: str, path: Path, data_root: Path | None = None) -> None:
        self.lines = text.splitlines()
        self.path = path
        self.data_root = data_root
        self.problems: list[tuple[int, str]] = []

    # Lines: the header of the table, then the first `key =` after it (inline tables included).
    def line(self, where: Sequence[str | int]) -> int:
        start = 0
        names = [str(p) for p in where if not isinstance(p, int)]
        index = next((p for p in where if isinstance(p, int)), None)
        if names:
            top = names[0]
            headers = [
                i
                for i, line in enumerate(self.lines)
                if re.match(rf"^\s*\[\[?\s*{re.escape(top)}(\.[^\]]*)?\s*\]\]?", line)
            ]
            if index is not None and index < len(headers):
                start = headers[index]
            elif headers:
                start = headers[0]
            else:
                found = self._key_line(top, 0)
                if found is not None:
                    return found + 1
            for key in names[1:]:
                found = self._key_line(key, start)
                if found is not None:
                    start = found
        return start + 1

    def _key_line(self, key: str, start: int) -> int | None:
        pattern = re.compile(rf"(^|[{{,\s]){re.escape(key)}\s*=")
        for i in range(start, len(self.lines)):
            if pattern.search(self.lines[i].split("#", 1)[0]):
                return i
        return None

    def add(self, where: Sequence[str | int], message: str) -> None:
        self.problems.append((self.line(where), message))

    def raise_if_any(self) -> None:
        if self.problems:
            parts = "; ".join(f"line {n}: {m}" for n, m in sorted(self.problems))
            raise UserInputError(f"Suite file {self.path} has {len(self.problems)} problem(s): {parts}.")

    # ----------------------------------------------------------------------------- the schema
    def keys(self, table: Mapping[str, Any], allowed: Sequence[str], where: list) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]}?)" if close else f" (allowed: {', '.join(allowed)})"
                self.add([*where, key], f"unknown key {'.'.join(map(str, [*where, key]))!r}{hint}")

    def suite(self, doc: dict[str, Any], base: Path) -> dict[str, Any] | None:
        self.keys(doc, _TOP + _TOP_OPTIONAL, [])
        for key in _TOP:
            if key not in doc:
                self.add([], f"missing {key!r}")
        if doc.get("format", FORMAT) != FORMAT:
            self.add(["format"], f"format must be {FORMAT}")
        name = doc.get("name", "")
        if not isinstance(name, str) or not _NAME.match(name):
            self.add(["name"], "name must be letters, digits and _ . + - (starting with a letter or digit)")
        description = doc.get("description", "")
        if not isinstance(description, str):
            self.add(["description"], "description must be a string")

        ind = self.table(doc, "in_distribution")
        self.keys(ind, ("classes", "train", "val", "test"), ["in_distribution"])
        classes = ind.get("classes")
        if not (isinstance(classes, int) and not isinstance(classes, bool) and classes >= 2):
            self.add(["in_distribution", "classes"], "in_distribution.classes must be an integer >= 2")
        train = self.source(ind.get("train"), ["in_distribution", "train"], base, required=True)
        if train is not None and isinstance(classes, int) and classes >= 2:
            self.class_count(train, classes)
        test = self.source(ind.get("test"), ["in_distribution", "test"], base, required=True)
        val: SourceSpec | int | None = None
        raw_val = ind.get("val")
        if isinstance(raw_val, dict) and "holdout" in raw_val:
            self.keys(raw_val, ("holdout",), ["in_distribution", "val"])
            val = raw_val["holdout"]
            if not (isinstance(val, int) and not isinstance(val, bool) and val >= 1):
                self.add(["in_distribution", "val", "holdout"], "holdout must be an integer >= 1")
        else:
            val = self.source(raw_val, ["in_distribution", "val"], base, required=True)

        pre, normalize = self.preprocess(self.table(doc, "preprocess"))

        ood = []
        raw_ood = doc.get("ood", [])
        if not isinstance(raw_ood, list) or not raw_ood:
            if "ood" in doc:
                self.add(["ood"], "ood must be one or more [[ood]] tables")
            raw_ood = []
        for i, entry in enumerate(raw_ood):
            item = self.named(entry, ["ood", i], base, group=True)
            if item:
                ood.append(item)
        names = [o.name for o in ood]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            self.add(["ood", names.index(dup), "name"], f"two OOD sets are named {dup!r}; name them apart")

        val_ood = self.named(doc.get("validation_ood"), ["validation_ood"], base, group=False)
        if val_ood and any(o.source == val_ood.source for o in ood):
            self.add(["validation_ood"], "validation_ood is also an OOD test set; tune on data never tested")
        shifted = []
        raw_shift = doc.get("covariate_shift", [])
        if not isinstance(raw_shift, list):
            self.add(["covariate_shift"], "covariate_shift must be [[covariate_shift]] tables")
            raw_shift = []
        for i, entry in enumerate(raw_shift):
            item = self.named(entry, ["covariate_shift", i], base, group=False)
            if item:
                shifted.append(item)

        data_get = ""
        if "data" in doc:
            data = self.table(doc, "data")
            self.keys(data, ("get",), ["data"])
            data_get = data.get("get", "")
            if not isinstance(data_get, str):
                self.add(["data", "get"], "data.get must be a string (how to obtain the data)")
                data_get = ""
        recipe, seen = None, None
        if "training" in doc:
            training = self.table(doc, "training")
            self.keys(training, ("recipe", "seen_ood"), ["training"])
            recipe = training.get("recipe")
            if recipe is not None:
                self.recipe(recipe)
            seen = self.source(training.get("seen_ood"), ["training", "seen_ood"], base, required=False)
            if seen is not None and seen == test:
                self.add(["training", "seen_ood"], "seen_ood is the in-distribution test set")
            if seen is not None and any(o.source == seen for o in ood):
                self.add(["training", "seen_ood"], "seen_ood is also an OOD test set; train on another split")
        tuning = self.tuning(doc["tuning"]) if "tuning" in doc else {}
        if self.problems:
            return None
        return dict(
            tuning=tuning,
            name=name,
            description=description,
            classes=classes,
            train=train,
            val=val,
            test=test,
            preprocess=pre,
            normalize=normalize,
            ood=tuple(ood),
            validation_ood=val_ood,
            covariate_shift=tuple(shifted),
            recipe=recipe,
            seen_ood=seen,
            data_get=data_get,
        )

    def tuning(self, raw: Any) -> dict[str, dict[str, tuple]]:
        """[tuning]: one table per detector, each parameter a non-empty list of distinct values
        (numbers, strings or booleans). Detector and parameter names are checked when a run
        starts (oodbench.detectors.suite_grids), where the detectors are known."""
        if not isinstance(raw, dict):
            self.add(["tuning"], "tuning must be a table of detector tables ([tuning.odin] ...)")
            return {}
        out: dict[str, dict[str, tuple]] = {}
        for detector, grid in raw.items():
            if not isinstance(grid, dict) or not grid:
                self.problems.append(
                    (self.tuning_line(detector), f"tuning.{detector} must be a table of parameter = [values]")
                )
                continue
            out[detector] = {}
            for parameter, values in grid.items():
                ok = isinstance(values, list) and values and all(_grid_value(v) for v in values)
                if not ok:
                    message = f"tuning.{detector}.{parameter} must be a non-empty list of numbers or strings"
                elif len({repr(v) for v in values}) < len(values):
                    message = f"tuning.{detector}.{parameter} lists a value twice"
                else:
                    out[detector][parameter] = tuple(values)
                    continue
                self.problems.append((self.tuning_line(detector, parameter), message))
        return out

    def tuning_line(self, detector: str, parameter: str | None = None) -> int:
        """The line of [tuning.DETECTOR] (or `DETECTOR = {...}` under [tuning]), then of its
        `parameter =`; quoted names ("pytorch-ood:KNN") and bare ones alike."""
        name = rf'(?:"{re.escape(detector)}"|\'{re.escape(detector)}\'|{re.escape(detector)})'
        patterns = (rf"^\s*\[\s*tuning\s*\.\s*{name}\s*\]", rf"^\s*{name}\s*=")
        tables = [i for i, line in enumerate(self.lines) if re.match(r"^\s*\[\s*tuning\b", line)]
        start = next(
            (
                i
                for p in patterns
                for i, line in enumerate(self.lines)
                if tables and i >= tables[0] and re.match(p, line)
            ),
            tables[0] if tables else 0,
        )
        if parameter is not None:
            found = self._key_line(parameter, start)
            start = found if found is not None else start
        return start + 1

    def table(self, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            self.add([key], f"{key} must be a table ([{key}])")
            return {}
        return value

    def named(self, entry: Any, where: list, base: Path, *, group: bool) -> NamedSet | None:
        if entry is None:
            return None
        if not isinstance(entry, dict):
            self.add(where, f"{where[0]} entries must be tables with a name and a source")
            return None
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            self.add([*where, "name"], f"{where[0]} needs a name of letters, digits and _ . + -")
        grp = entry.get("group", "")
        if group and (not isinstance(grp, str) or not _NAME.match(grp)):
            self.add(
                [*where, "group"], "each [[ood]] needs a group (near, far, ...) of letters, digits, _ . + -"
            )
        rest = {k: v for k, v in entry.items() if k not in ("name", "group")}
        if not group and "group" in entry:
            self.add([*where, "group"], f"{where[0]} takes no group")
        source = self.source(rest, where, base, required=True)
        if source is None or not isinstance(name, str):
            return None
        return NamedSet(name, source, grp if group else "")

    def source(self, raw: Any, where: list, base: Path, *, required: bool) -> SourceSpec | None:
        label = ".".join(str(w) for w in where if not isinstance(w, int))
        if raw is None:
            if required:
                self.add(where, f"missing {label}: one of {', '.join(SOURCE_KINDS)}")
            return None
        if not isinstance(raw, dict):
            self.add(where, f"{label} must be a table with one of {', '.join(SOURCE_KINDS)}")
            return None
        self.keys(raw, (*SOURCE_KINDS, "split", "root", "limit", "sha256", "native"), where)
        kinds = [k for k in SOURCE_KINDS if k in raw]
        if len(kinds) != 1:
            self.add(where, f"{label} needs exactly one of {', '.join(SOURCE_KINDS)} (has {len(kinds)})")
            return None
        kind = kinds[0]
        value = raw[kind]
        if not isinstance(value, str) or not value:
            self.add([*where, kind], f"{label}.{kind} must be a non-empty string")
            return None
        split, root, limit = raw.get("split"), raw.get("root"), raw.get("limit")
        if split is not None and kind != "dataset":
            self.add([*where, "split"], "split goes with dataset only")
        if (root is None) == (kind == "list"):
            self.add(
                [*where, "root" if root is not None else kind], "root is needed with list, and only with it"
            )
        if limit is not None and not (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1):
            self.add([*where, "limit"], "limit must be an integer >= 1")
        if kind == "dataset":
            self.dataset(value, split, where)
        pin, native = raw.get("sha256"), raw.get("native", False)
        if pin is not None and (kind != "list" or not isinstance(pin, str) or not _SHA256.match(pin)):
            self.add([*where, "sha256"], "sha256 pins a list file: 64 lowercase hex digits, with list only")
            pin = None
        if not isinstance(native, bool):
            self.add([*where, "native"], "native must be true or false")
            native = False
        for text in (value, root):
            if isinstance(text, str) and DATA_ROOT in text and not text.startswith(DATA_ROOT):
                self.add([*where, kind], f"{DATA_ROOT} may only start a path")
        spec = SourceSpec(kind, value, split, root, limit, base, pin, native, self.data_root)
        # Paths under {data_root} are checked all at once when a data root is given.
        if kind != "dataset" and not spec.needs_data_root and not spec.path().exists():
            self.add([*where, kind], f"{spec.path()} does not exist")
        return spec

    def class_count(self, train: SourceSpec, classes: int) -> None:
        """The training set's own number of classes, where it is known without reading images:
        a registered data set's, or the sub-folders of a class folder (torchvision's rule)."""
        import os

        found = None
        if train.kind == "dataset":
            from oodbench.data.spec import DATASETS

            found = DATASETS.get(train.value).num_classes if train.value in DATASETS else None
        elif train.kind == "classes" and train.path().is_dir():
            found = sum(1 for e in os.scandir(train.path()) if e.is_dir() and not e.name.startswith("."))
        if found is not None and found != classes:
            self.add(
                ["in_distribution", "classes"],
                f"in_distribution.classes is {classes} but the training set has {found} classes",
            )

    def dataset(self, name: str, split: Any, where: list) -> None:
        from oodbench.data.spec import DATASETS

        if name not in DATASETS:
            self.add([*where, "dataset"], DATASETS.unknown_message(name).rstrip("."))
            return
        splits = DATASETS.get(name).splits
        if split is not None and split not in splits:
            self.add(
                [*where, "split"], f"data set {name!r} has no split {split!r} (it has {', '.join(splits)})"
            )

    def recipe(self, recipe: Any) -> None:
        from oodbench.training.recipes import RECIPES

        if not isinstance(recipe, str) or recipe not in RECIPES:
            self.add(
                ["training", "recipe"], f"unknown recipe {recipe!r} (available: {', '.join(RECIPES.names())})"
            )

    def preprocess(self, raw: dict[str, Any]) -> tuple[Preprocess, Any]:
        where = ["preprocess"]
        self.keys(raw, ("channels", "size", "resize", "crop", "interpolation", "normalize"), where)
        channels = raw.get("channels", 3)
        if channels not in (1, 3) or isinstance(channels, bool):
            self.add([*where, "channels"], "channels must be 1 or 3")
            channels = 3
        size = self.pair(raw, "size", required=True)
        resize = raw.get("resize")
        if resize is not None and not (
            isinstance(resize, int) and not isinstance(resize, bool) and resize >= 1
        ):
            resize = self.pair(raw, "resize", required=False)
        crop = self.pair(raw, "crop", required=False)
        if crop is not None and size is not None and crop != size:
            self.add([*where, "crop"], f"crop {list(crop)} must equal size {list(size)}")
        interpolation = raw.get("interpolation", "bilinear")
        if interpolation not in INTERPOLATIONS:
            self.add([*where, "interpolation"], f"interpolation must be one of {', '.join(INTERPOLATIONS)}")
            interpolation = "bilinear"
        normalize = raw.get("normalize", "none")
        if isinstance(normalize, dict):
            self.keys(normalize, ("mean", "std"), [*where, "normalize"])
            mean, std = normalize.get("mean"), normalize.get("std")
            ok = all(
                isinstance(v, list) and len(v) == channels and all(isinstance(e, int | float) for e in v)
                for v in (mean, std)
            )
            if not ok or any(s <= 0 for s in std or []):
                self.add(
                    [*where, "normalize"], f"normalize mean and std need {channels} numbers each, std > 0"
                )
            else:
                normalize = (tuple(map(float, mean)), tuple(map(float, std)))
        elif normalize not in NORMALIZE_PRESETS:
            self.add(
                [*where, "normalize"],
                f"normalize must be one of {', '.join(NORMALIZE_PRESETS)} or {{mean, std}}",
            )
        try:
            pre = Preprocess(channels, size, resize, crop, interpolation)
        except UserInputError:
            pre = Preprocess(channels)
        return pre, normalize

    def pair(self, raw: dict[str, Any], key: str, *, required: bool) -> tuple[int, int] | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.add(["preprocess"], f"missing preprocess.{key} = [height, width]")
            return None
        if (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        ):
            return (value[0], value[1])
        self.add(["preprocess", key], f"preprocess.{key} must be [height, width] (integers >= 1)")
        return None


def _grid_value(value: Any) -> bool:
    """A value a tuning grid may list: a finite number, a string or a boolean."""
    import math

    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int | str)  # bool is an int


# ------------------------------------------------------------------------------------ built-ins
def builtin_suite_files() -> dict[str, Path]:
    """The suite files shipped in oodbench/suites/, by suite name (file stem)."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


def resolve_suite_file(name: str | Path) -> Path:
    """A `--suite` value as a suite file: an existing file, else the packaged suite file of that
    name (`oodbench/suites/NAME.toml`, e.g. "openood-cifar10"); else a one-line UserInputError."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    packaged = builtin_suite_files()
    stem = str(name)[: -len(".toml")] if str(name).endswith(".toml") else str(name)
    if stem in packaged and path.parent == Path("."):  # a bare name, not a missing path
        return packaged[stem]
    raise UserInputError(
        f"Suite file {name} does not exist, and no packaged suite has that name "
        f"({', '.join(packaged)}); give a FILE.toml or one of those names."
    )


# ------------------------------------------------------------------------------------ suite_init
def suite_init(
    folder_or_list: str | Path,
    *,
    root: str | Path | None = None,
    test: str | Path | None = None,
    name: str | None = None,
    size: tuple[int, int] | None = None,
    channels: int = 3,
    relative_to: str | Path | None = None,
) -> str:
    """A starter suite file (TOML text) for a user's class-subfolder folder or image list.

    `folder_or_list`: a folder of class sub-folders, or an image list (with `root`). If it holds
    `train/` and `test/` (and `val/`) class folders, those are used; otherwise it is the training
    set and `test` (a class folder or list) is required. The number of classes is counted, the
    size is the first image's (or `size`), validation is 10% held out of train (at most 1,000);
    Gaussian / uniform noise stand in for the OOD sets until the user names real ones. Paths are
    written relative to `relative_to` (where the file will be saved; default the current folder).
    """
    from PIL import Image

    from oodbench.data.sources import ClassFolderSource, ImageListSource

    where = Path(relative_to or ".").resolve()
    given = Path(folder_or_list).expanduser().resolve()
    pre = Preprocess(channels)

    def open_source(path: Path):
        if path.is_dir():
            return ClassFolderSource(path, pre), {"classes": path}
        if root is None:
            raise UserInputError(f"{path} is a list file: give root= (the folder its paths are relative to).")
        return ImageListSource(path, Path(root).expanduser(), pre), {
            "list": path,
            "root": Path(root).expanduser(),
        }

    if given.is_dir() and (given / "train").is_dir() and (given / "test").is_dir():
        train_path, test_path = given / "train", given / "test"
        val_path = given / "val" if (given / "val").is_dir() else None
    else:
        if test is None:
            raise UserInputError(
                f"{given} has no train/ and test/ class folders; give the test set too: "
                "suite_init(TRAIN, test=TEST_FOLDER_OR_LIST)."
            )
        train_path, test_path, val_path = given, Path(test).expanduser().resolve(), None
    train, train_entry = open_source(train_path)
    _, test_entry = open_source(test_path)
    n_classes = int(train.labels.max()) + 1
    if size is None:
        with Image.open(train.path(0)) as first:
            size = (first.height, first.width)

    def rel(p: Path) -> str:
        try:
            return Path(p).resolve().relative_to(where).as_posix()
        except ValueError:
            return Path(p).resolve().as_posix()

    def inline(entry: dict[str, Path]) -> str:
        return "{ " + ", ".join(f'{k} = "{rel(v)}"' for k, v in entry.items()) + " }"

    suite_name = name or re.sub(r"[^A-Za-z0-9_.+-]", "-", given.stem).strip("-.") or "my-suite"
    holdout = max(1, min(1000, len(train) // 10))
    val_line = f'val = {{ classes = "{rel(val_path)}" }}' if val_path else f"val = {{ holdout = {holdout} }}"
    return f"""# oodbench suite file (format {FORMAT}); made by suite_init from {given.name}.
# Check every value, then replace the noise stand-ins with your OOD sets.
format = {FORMAT}
name = "{suite_name}"
description = "{suite_name}: {n_classes} classes ({len(train)} training images)"

[in_distribution]
classes = {n_classes}
train = {inline(train_entry)}
{val_line}
test = {inline(test_entry)}

[preprocess]
channels = {channels}
size = [{size[0]}, {size[1]}]
interpolation = "bilinear"
normalize = "none"

# OOD test sets, in order; group them (near, far, ...). Sources: dataset, folder, classes, list, npz.
[[ood]]
name = "gaussian"
group = "far"
dataset = "gaussian"

# Tunes ODIN / Mahalanobis (epsilon=None); must not be an OOD test set.
[validation_ood]
name = "uniform"
dataset = "uniform"
limit = 1000
"""
