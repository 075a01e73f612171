"""The result row schema and the run-output files: JSONL rows, NPZ scores (all writes atomic).

One flat `ResultRow` per (model source, detector, in-dist, out-dist, seed). Metric values are
FRACTIONS in [0, 1]; percent appears only when a table is rendered (oodbench.report).

Run output folder (default `paths.results_dir()`, i.e. ./runs or $OODBENCH_RESULTS):

    rows.jsonl          one JSON object per line, one line per ResultRow (`append_rows`)
    rows/<job>.jsonl    the same, one shard per sweep job (`write_rows`; see oodbench.store)
    scores/<...>.npz    raw scores of one row (`save_row_scores`), path in `scores_file`
    tables/, plots/     rendered outputs (`oodbench report --output`, `oodbench plot`)

Scores NPZ naming (pinned): a row's NPZ holds the 1-D float arrays "scores_in" (scores of the
in-distribution test set) and "scores_out" (scores of that row's OOD test set), both with the
oodbench direction (higher = more in-distribution). Other arrays may be added; readers ignore
them. `scores_file` is relative to the results folder (the one that holds rows.jsonl and
rows/), or "" if none was kept. Since schema 3 the file name holds a hash of the row identity
and of the scores (`default_scores_file`), so no later run overwrites it; the NPZ also holds
"row_identity" (JSON) and "scores_sha256", and the row records the same digest in
`scores_sha256`, which readers of scores check (`checked_scores_pair`).

Concurrency: `append_rows` is atomic against crashes (the file is rewritten to a temporary
file and renamed) and safe with concurrent writers: the read-modify-rename runs under an
exclusive lock (oodbench.store.file_lock). Sweep jobs write one shard each instead
(rows/<job-id>.jsonl, `write_rows`); `load_rows` of a folder reads rows.jsonl and every shard.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import numbers
import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oodbench import __version__, store
from oodbench.atomic import atomic_open
from oodbench.errors import DataNotFoundError, UserInputError
from oodbench.names import METRIC_NAMES, METRICS_CONVENTIONS, MODEL_SOURCES, ROWS_FILENAME

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3
# Schema 1 rows (oodbench 0.1.0) lack model_label, train_overrides, eval_limit, torch_threads and host_cpu;
# schema 2 rows lack in_fingerprint, out_fingerprint and scores_sha256. Both are read with those
# fields' defaults ("" = unknown: such rows are not told apart by data and their score files
# cannot be verified).
READABLE_SCHEMAS = (1, 2, 3)

# "external": a user's model; "checkpoint": what schema-1 rows called any --checkpoint.
METRIC_FIELDS = METRIC_NAMES  # the metric fields of a row
# The fields that identify a row (a rerun with the same key and seed replaces it in reports).
KEY_FIELDS = ("model_source", "detector", "in_dataset", "out_dataset")

# Pinned array names inside a row's scores NPZ.
SCORES_IN = "scores_in"
SCORES_OUT = "scores_out"


@functools.lru_cache(maxsize=1)
def _cached_git_commit() -> str:
    # Imported here: oodbench.provenance imports torch, which reading rows does not need.
    from oodbench.provenance import git_commit

    return git_commit()


def _torch_threads() -> int | None:
    """The torch CPU thread count of this process (CPU results are bit-identical only for equal counts)."""
    import sys

    torch = sys.modules.get("torch")
    return None if torch is None else int(torch.get_num_threads())


@functools.lru_cache(maxsize=1)
def _cached_host_cpu() -> str:
    from oodbench.provenance import host_cpu

    return host_cpu()


@functools.lru_cache(maxsize=1)
def _cached_torch_version() -> str:
    from oodbench.provenance import versions

    return versions()["torch_version"]


def utc_now_iso() -> str:
    """The current time as ISO 8601 UTC with seconds, e.g. '2024-05-01T12:00:00+00:00'."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def provenance_fields() -> dict[str, str]:
    """oodbench_version, git_commit, torch_version and created_at for a row made now."""
    return {
        "oodbench_version": __version__,
        "git_commit": _cached_git_commit(),
        "torch_version": _cached_torch_version(),
        "created_at": utc_now_iso(),
    }


@dataclass(kw_only=True)
class ResultRow:
    """One result: a detector's metrics on one in/out pair for one model and seed.

    Build it with keyword arguments. Provenance fields default to the current process
    (see `provenance_fields`); metric values are fractions in [0, 1].
    """

    schema_version: int = SCHEMA_VERSION
    suite: str
    in_dataset: str
    out_dataset: str
    model_source: str  # "cross_entropy" | "confidence" | "joint" | "external"
    model_label: str = ""  # the model's name in tables: --label, else the checkpoint file's stem
    model_arch: str
    training_recipe: str
    train_overrides: dict[str, Any] = field(default_factory=dict)  # recipe values changed for training
    detector: str
    seed: int
    tnr_at_tpr95: float
    auroc: float
    aupr_in: float
    aupr_out: float
    detection_accuracy: float
    fpr95_openood: float
    metrics_convention: str = "exact"  # "exact" | "legacy" | "openood"
    classification_accuracy: float | None = None
    n_in: int
    n_out: int
    eval_limit: int | None = None  # --limit: at most this many images per set were evaluated
    fit_limit: int | None = None  # --fit-limit: detectors fitted/tuned on at most this many per split
    in_fingerprint: str = ""  # content hash of the ID test set scored ("" in rows before schema 3)
    out_fingerprint: str = ""  # content hash of this row's OOD test set
    detector_params: dict[str, Any] = field(default_factory=dict)
    tuning: str = "none"  # "none" | "validation split: <id val> + <ood val>" | ...
    checkpoint_sha256: str = ""
    oodbench_version: str = __version__
    git_commit: str = field(default_factory=_cached_git_commit)
    torch_version: str = field(default_factory=_cached_torch_version)
    device: str
    torch_threads: int | None = field(default_factory=_torch_threads)
    host_cpu: str = field(default_factory=_cached_host_cpu)
    created_at: str = field(default_factory=utc_now_iso)
    scores_file: str = ""
    scores_sha256: str = ""  # `scores_digest` of the arrays in scores_file ("" = not recorded)
    suite_sha256: str = ""  # sha256 of the suite file evaluated ("" = a built-in suite)
    n_skipped: int = 0  # unreadable images left out of this row's two sets (suite files)
    input_channels: str = ""  # the images' channel conversion, e.g. "1->3 (repeated; --channels)"; "" = none
    # A suite file's image lists this row read (ID test, this OOD set, tuning and csID sets):
    # {set name: sha256 of the list file}; the names whose list differed from its pinned sha256
    # and was accepted (--accept-changed-lists). Empty: no image lists (built-in suites, folders).
    list_sha256: dict[str, str] = field(default_factory=dict)
    list_changed_accepted: list[str] = field(default_factory=list)
    # --full-spectrum (OpenOOD's fsood): the ID side is the ID test set plus the covariate-shifted
    # sets; classification_accuracy stays the ID test set's, csid_accuracy is each csID set's.
    full_spectrum: bool = False
    csid_accuracy: dict[str, float] = field(default_factory=dict)
    # Degenerate tuning picks (oodbench.detectors.grid): [] none; None: not recorded (older rows).
    tuning_flags: list[str] | None = None
    # The model's input pipeline as the score cache keys it (preprocessing incl. channel
    # conversion, feature layer, logits element), JSON; "" = not recorded (older rows). Part of
    # the model's identity in reports: the same weights read two ways are two models.
    model_input: str = ""
    out_source: str = ""  # where a --out set came from: "folder:/abs/path (native HxW ...)"

    def __post_init__(self) -> None:
        if self.schema_version not in READABLE_SCHEMAS:
            raise UserInputError(_schema_message(self.schema_version))
        self.schema_version = SCHEMA_VERSION
        if self.model_source not in MODEL_SOURCES:
            raise UserInputError(
                f"model_source must be one of {', '.join(MODEL_SOURCES)}; got {self.model_source!r}."
            )
        if self.metrics_convention not in METRICS_CONVENTIONS:
            raise UserInputError(
                f"metrics_convention must be one of {', '.join(METRICS_CONVENTIONS)}; "
                f"got {self.metrics_convention!r}."
            )
        for name in METRIC_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise UserInputError(f"{name} must be a number (a fraction in [0, 1]); got {value!r}.")
            if not 0.0 <= float(value) <= 1.0:  # also rejects NaN
                raise UserInputError(f"{name} must be a fraction in [0, 1] (not percent); got {value!r}.")
            setattr(self, name, float(value))
        acc = self.classification_accuracy
        if acc is not None:
            if isinstance(acc, bool) or not isinstance(acc, numbers.Real) or not 0.0 <= acc <= 1.0:
                raise UserInputError(
                    f"classification_accuracy must be a fraction in [0, 1] or None; got {acc!r}."
                )
            self.classification_accuracy = float(acc)
        for name in ("seed", "n_in", "n_out"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise UserInputError(f"{name} must be an integer; got {value!r}.")
            setattr(self, name, int(value))
        if not isinstance(self.train_overrides, dict):
            kind = type(self.train_overrides).__name__
            raise UserInputError(f"train_overrides must be a dict; got {kind}.")
        for name in ("eval_limit", "fit_limit"):
            limit = getattr(self, name)
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
                raise UserInputError(f"{name} must be an integer or None; got {limit!r}.")
        for name in (
            "in_fingerprint",
            "out_fingerprint",
            "scores_sha256",
            "suite_sha256",
            "input_channels",
            "out_source",
        ):
            if not isinstance(getattr(self, name), str):
                raise UserInputError(f"{name} must be a string; got {getattr(self, name)!r}.")
        if isinstance(self.n_skipped, bool) or not isinstance(self.n_skipped, int) or self.n_skipped < 0:
            raise UserInputError(f"n_skipped must be an integer >= 0; got {self.n_skipped!r}.")
        if not isinstance(self.list_sha256, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.list_sha256.items()
        ):
            raise UserInputError(f"list_sha256 must map set names to sha256 text; got {self.list_sha256!r}.")
        if not isinstance(self.list_changed_accepted, list) or not all(
            isinstance(v, str) for v in self.list_changed_accepted
        ):
            raise UserInputError(
                f"list_changed_accepted must be a list of set names; got {self.list_changed_accepted!r}."
            )
        if not isinstance(self.full_spectrum, bool):
            raise UserInputError(f"full_spectrum must be true or false; got {self.full_spectrum!r}.")
        if not isinstance(self.csid_accuracy, dict) or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and 0.0 <= v <= 1.0
            for v in self.csid_accuracy.values()
        ):
            raise UserInputError(
                f"csid_accuracy must map csID set names to fractions in [0, 1]; got {self.csid_accuracy!r}."
            )
        self.csid_accuracy = {str(k): float(v) for k, v in self.csid_accuracy.items()}
        flags = self.tuning_flags
        if flags is not None and (not isinstance(flags, list) or not all(isinstance(f, str) for f in flags)):
            raise UserInputError(f"tuning_flags must be a list of strings or None; got {flags!r}.")
        if not isinstance(self.detector_params, dict):
            kind = type(self.detector_params).__name__
            raise UserInputError(f"detector_params must be a dict; got {kind}.")
        try:
            json.dumps(self.detector_params, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise UserInputError(
                f"detector_params must be JSON-serialisable (numbers, strings, lists, dicts): {error}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of every field (JSON-ready; detector_params stays a dict)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        """Rebuild a row written by `to_dict`; refuses unknown schema versions and fields."""
        if not isinstance(data, dict):
            raise UserInputError(f"A result row must be a JSON object; got {type(data).__name__}.")
        if "schema_version" not in data:
            raise UserInputError("The result row has no 'schema_version'; it was not written by oodbench.")
        if data["schema_version"] not in READABLE_SCHEMAS:
            raise UserInputError(_schema_message(data["schema_version"]))
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if data["schema_version"] == 1:
            # Schema-1 rows lack the identity fields added in 2: read them with neutral values.
            data = {**_SCHEMA_1_DEFAULTS, **data}
        if data["schema_version"] in (1, 2):
            # Rows before schema 3 were fitted on the full splits and recorded no fingerprints.
            data = {**_SCHEMA_2_DEFAULTS, **data}
        data = {**_ADDED_DEFAULTS, **data}  # fields added within schema 3
        missing = [name for name in names if name not in data]
        if unknown:
            raise UserInputError(f"Unknown field(s) in result row: {', '.join(unknown)}.")
        if missing:
            raise UserInputError(f"Result row lacks field(s): {', '.join(missing)}.")
        return cls(**data)


_SCHEMA_1_DEFAULTS: dict[str, Any] = {
    "model_label": "",
    "train_overrides": {},
    "eval_limit": None,
    "torch_threads": None,
    "host_cpu": "",
}


# Added in schema 3 (score files named by the row's identity and verified by digest).
_SCHEMA_2_DEFAULTS: dict[str, Any] = {
    "fit_limit": None,
    "in_fingerprint": "",
    "out_fingerprint": "",
    "scores_sha256": "",
}


# Added within schema 3, with defaults that describe the rows written before them.
_ADDED_DEFAULTS: dict[str, Any] = {
    "suite_sha256": "",
    "n_skipped": 0,
    "input_channels": "",
    "list_sha256": {},
    "list_changed_accepted": [],
    "full_spectrum": False,
    "csid_accuracy": {},
    "tuning_flags": None,
    "model_input": "",
    "out_source": "",
}


def _schema_message(version: object) -> str:
    return (
        f"Result rows with schema_version {version!r} are not supported; this oodbench "
        f"({__version__}) reads schema_version {', '.join(map(str, READABLE_SCHEMAS))}. "
        "Use a matching oodbench version."
    )


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ResultRow))


def _row_line(row: ResultRow) -> str:
    # allow_nan=False: the file stays strict JSON (NaN is not JSON).
    return json.dumps(row.to_dict(), allow_nan=False, ensure_ascii=False) + "\n"


def append_rows(path: str | os.PathLike, rows: Iterable[ResultRow]) -> None:
    """Append rows to a JSONL file, atomically.

    The existing content plus the new lines is written to a temporary file which then replaces
    the old one (oodbench.atomic): a crash leaves the old file whole, never a truncated one.
    """
    rows = list(rows)
    for row in rows:
        if not isinstance(row, ResultRow):
            raise TypeError(f"append_rows takes ResultRow objects, got {type(row).__name__}")
    new_text = "".join(_row_line(row) for row in rows)
    target = Path(path)
    # The lock makes read-old + write + rename one step for every writer of this file.
    with store.file_lock(target):
        old_text = target.read_text(encoding="utf-8") if target.exists() else ""
        if old_text and not old_text.endswith("\n"):
            old_text += "\n"
        with atomic_open(target, "w", encoding="utf-8") as handle:
            handle.write(old_text + new_text)
    logger.info("appended %d row(s) to %s", len(rows), target)


def write_rows(path: str | os.PathLike, rows: Iterable[ResultRow]) -> str:
    """Write rows as a whole new JSONL file in one atomic step (a sweep job's shard).

    Holds the file's lock (the one `append_rows` and `repair_rows` take) so that a repair never
    interleaves with the write. Returns the sha256 of the bytes written (the job's completion marker).
    """
    rows = list(rows)
    for row in rows:
        if not isinstance(row, ResultRow):
            raise TypeError(f"write_rows takes ResultRow objects, got {type(row).__name__}")
    data = "".join(_row_line(row) for row in rows).encode("utf-8")
    with store.file_lock(path):
        with atomic_open(path, "wb") as handle:
            handle.write(data)
    logger.info("wrote %d row(s) to %s", len(rows), path)
    return hashlib.sha256(data).hexdigest()


def _repair_hint(target: Path) -> str:
    return (
        f"fix: `oodbench report --repair --results {target}` moves unreadable lines to "
        f"{target}.rejected (nothing is lost)"
    )


def _rows_target(path: str | os.PathLike) -> Path:
    target = Path(path)
    return target / ROWS_FILENAME if target.is_dir() else target


def _parse_row_lines(target: Path) -> Iterator[tuple[int, bytes, ResultRow | str]]:
    """(line number, raw line, the row or why the line is unreadable) for each non-empty line."""
    for lineno, raw in enumerate(target.read_bytes().splitlines(keepends=True), start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = None
        if line is None or "\x00" in line:
            yield lineno, raw, "binary data, not a JSON result row (is this a rows.jsonl?)"
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            yield lineno, raw, f"not a JSON result row ({error.msg})"
            continue
        try:
            _check_read_fields(data)
            yield lineno, raw, ResultRow.from_dict(data)
        except (UserInputError, TypeError) as error:
            yield lineno, raw, str(error)


def _check_read_fields(data: object) -> None:
    """Checks of stored rows beyond the dataclass's: created_at must be an ISO 8601 timestamp
    string (reports sort by it; a number there breaks the sort much later)."""
    if not isinstance(data, dict) or "created_at" not in data:
        return  # from_dict names what is missing
    value = data["created_at"]
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        datetime.datetime.fromisoformat(value)
    except ValueError:
        raise UserInputError(
            "created_at must be an ISO 8601 timestamp string such as '2024-05-01T12:00:00+00:00'; "
            f"got {value!r}."
        ) from None


def read_rows(path: str | os.PathLike) -> list[ResultRow]:
    """The rows of one JSONL file (or of <folder>/rows.jsonl) as ResultRow objects.

    Errors name file:line and the repair command.
    """
    target = _rows_target(path)
    if not target.is_file():
        raise DataNotFoundError(
            f"No result rows at {target}. Create them with `oodbench run` "
            f"(or point --results / $OODBENCH_RESULTS at an existing {ROWS_FILENAME})."
        )
    rows = []
    for lineno, _, parsed in _parse_row_lines(target):
        if isinstance(parsed, str):
            raise UserInputError(f"{target}:{lineno}: {parsed}; {_repair_hint(target)}.")
        rows.append(parsed)
    return rows


def check_rows_appendable(path: str | os.PathLike) -> None:
    """Refuse to append to a rows file with an unreadable line (later reports would fail there)."""
    target = _rows_target(path)
    if not target.is_file():
        return
    for lineno, _, parsed in _parse_row_lines(target):
        if isinstance(parsed, str):
            raise UserInputError(
                f"{target}:{lineno} is not a readable result row ({parsed}); nothing was run or appended; "
                f"{_repair_hint(target)}."
            )


def repair_rows(path: str | os.PathLike) -> tuple[int, int, Path]:
    """Move every unreadable line of a rows file to "<file>.rejected" (appended, so nothing is
    lost) and keep the readable rows, both written atomically. Returns (kept, moved, rejected file).

    Holds the file's lock (as `append_rows` and `write_rows` do): without it, rows appended
    between this read and its rename were lost.
    """
    target = _rows_target(path)
    if not target.is_file():
        raise DataNotFoundError(f"No result rows at {target} to repair.")
    rejected_file = target.with_name(target.name + ".rejected")
    with store.file_lock(target):
        kept, rejected = [], []
        for _, raw, parsed in _parse_row_lines(target):
            line = raw if raw.endswith(b"\n") else raw + b"\n"
            (rejected if isinstance(parsed, str) else kept).append(line)
        if rejected:
            old = rejected_file.read_bytes() if rejected_file.exists() else b""
            with atomic_open(rejected_file, "wb") as handle:  # first, so a crash loses nothing
                handle.write(old + b"".join(rejected))
            with atomic_open(target, "wb") as handle:
                handle.write(b"".join(kept))
    return len(kept), len(rejected), rejected_file


# Fields added within schema 3 that hold a dict or list: JSON text in frames, as detector_params.
_JSON_ADDED = ("list_sha256", "list_changed_accepted", "csid_accuracy")


def rows_to_frame(rows: Sequence[ResultRow]) -> pd.DataFrame:
    """One DataFrame column per ResultRow field; the dict and list fields (detector_params,
    train_overrides, list_sha256, list_changed_accepted, csid_accuracy) as sorted-key JSON strings."""
    records = []
    for row in rows:
        record = row.to_dict()
        for name in ("detector_params", "train_overrides", *_JSON_ADDED):
            record[name] = json.dumps(record[name], sort_keys=True)
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=list(FIELD_NAMES))
    # None -> NaN so the column is numeric even when some rows lack an accuracy.
    frame["classification_accuracy"] = pd.to_numeric(frame["classification_accuracy"], errors="coerce")
    return frame


def load_rows(path_or_paths: str | os.PathLike | Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Load result rows into a DataFrame (see `rows_to_frame`).

    Each path is a results folder or its rows.jsonl (both mean: rows.jsonl if present plus every
    shard under rows/, see oodbench.store), or any other JSONL file (that file alone).
    """
    if isinstance(path_or_paths, (str, os.PathLike)):
        paths = [path_or_paths]
    else:
        paths = list(path_or_paths)
    rows: list[ResultRow] = []
    for path in paths:
        # Nothing there: read_rows raises the usual "no result rows at ..." message.
        for file in store.rows_files(path) or [Path(path)]:
            rows.extend(read_rows(file))
    return rows_to_frame(rows)


def save_scores(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write arrays to a compressed NPZ, atomically (by convention "scores_in", "scores_out")."""
    if not arrays:
        raise ValueError("save_scores needs at least one array, e.g. scores_in=..., scores_out=...")
    clean = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype == object:
            # Object arrays would need pickle to load; results never use pickle.
            raise ValueError(f"Array {name!r} has dtype object; scores must be numeric arrays.")
        clean[name] = array
    with atomic_open(path, "wb") as handle:
        np.savez_compressed(handle, **clean)


def load_scores(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an NPZ written by `save_scores` (never unpickles)."""
    target = Path(path)
    if not target.is_file():
        raise DataNotFoundError(
            f"No stored scores at {target}. `oodbench run` writes them beside rows.jsonl (scores/)."
        )
    try:
        with np.load(target, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise UserInputError(f"{target} is not a readable scores NPZ ({error}).") from None


def scores_pair(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The pinned ("scores_in", "scores_out") arrays of a row's NPZ."""
    arrays = load_scores(path)
    missing = [name for name in (SCORES_IN, SCORES_OUT) if name not in arrays]
    if missing:
        raise UserInputError(
            f"{path} lacks array(s) {', '.join(missing)}; a row's NPZ must hold "
            f"'{SCORES_IN}' and '{SCORES_OUT}'."
        )
    return arrays[SCORES_IN], arrays[SCORES_OUT]


# What decides a row's scores: the model (checkpoint, recipe, overrides), the detector and its
# parameters, the evaluated data (limit and content) and the seed. Recorded in each row's NPZ.
SCORES_IDENTITY_FIELDS = (
    "suite", "model_source", "model_label", "model_arch", "training_recipe", "train_overrides",
    "checkpoint_sha256", "detector", "detector_params", "in_dataset", "out_dataset",
    "in_fingerprint", "out_fingerprint", "eval_limit", "fit_limit", "seed",
)  # fmt: skip
# Extra arrays of a row's NPZ (schema 3): the row identity (JSON text) and `scores_digest`.
SCORES_IDENTITY = "row_identity"
SCORES_DIGEST = "scores_sha256"


def scores_digest(scores_in: np.ndarray, scores_out: np.ndarray) -> str:
    """sha256 of a row's two score arrays as little-endian float64, shapes included."""
    digest = hashlib.sha256()
    for values in (scores_in, scores_out):
        array = np.ascontiguousarray(np.asarray(values, dtype="<f8"))
        digest.update(repr(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def row_identity(row: ResultRow) -> dict[str, Any]:
    """The fields of `row` that decide its scores (SCORES_IDENTITY_FIELDS)."""
    return {name: getattr(row, name) for name in SCORES_IDENTITY_FIELDS}


def default_scores_file(row: ResultRow) -> str:
    """A relative NPZ path for a row:
    scores/<suite>/<model>-<detector>-<in>-<out>-seed<seed>-<key>.npz.

    <key> hashes the row identity (checkpoint, detector parameters, overrides, recipe, limit,
    data fingerprints) and the scores' digest, so rows with other scores never share a file
    (a later run cannot overwrite the scores an earlier row points at).
    """
    model = row.model_source
    if row.model_label not in ("", row.model_source):
        model = f"{row.model_source}-{row.model_label}"
    identity = json.dumps(row_identity(row), sort_keys=True, default=str) + row.scores_sha256
    key = hashlib.sha256(identity.encode()).hexdigest()[:12]
    name = f"{model}-{row.detector}-{row.in_dataset}-{row.out_dataset}-seed{row.seed}-{key}.npz"
    return str(Path("scores") / row.suite / safe_file_name(name))


def save_row_scores(
    results_dir: str | os.PathLike, row: ResultRow, scores_in: np.ndarray, scores_out: np.ndarray
) -> None:
    """Write a row's scores beside its rows file and record the file and digest in the row.

    The NPZ also holds the row identity and the digest, so a file can be traced to its row.
    """
    row.scores_sha256 = scores_digest(scores_in, scores_out)
    row.scores_file = default_scores_file(row)
    identity = json.dumps(row_identity(row), sort_keys=True, default=str)
    save_scores(
        Path(results_dir) / row.scores_file,
        **{SCORES_IN: scores_in, SCORES_OUT: scores_out},
        **{SCORES_IDENTITY: np.array(identity), SCORES_DIGEST: np.array(row.scores_sha256)},
    )


def checked_scores_pair(
    path: str | os.PathLike, row: Any, *, label: str
) -> tuple[np.ndarray, np.ndarray, bool]:
    """A row's (scores_in, scores_out) from `path`, refused unless they are that row's scores.

    `row` is a ResultRow or a mapping with n_in, n_out and scores_sha256. The sizes must match
    n_in / n_out and, when the row records a digest, the arrays must match it. Returns the two
    arrays and whether the digest was verified (False for rows written before schema 3).
    """
    get = row.get if hasattr(row, "get") else lambda name, default=None: getattr(row, name, default)
    scores_in, scores_out = scores_pair(path)
    fix = (
        "fix: rerun that row with `oodbench run` (each score file is now named by its row's "
        "identity) or remove the row from the rows file"
    )
    n_in, n_out = get("n_in"), get("n_out")
    if (scores_in.size, scores_out.size) != (int(n_in), int(n_out)):
        raise UserInputError(
            f"{path} holds {scores_in.size} ID / {scores_out.size} OOD scores but the row {label} says "
            f"n_in {n_in}, n_out {n_out}: the file belongs to another run; {fix}."
        )
    expected = get("scores_sha256", "")
    if not isinstance(expected, str) or not expected:  # rows before schema 3 (or NaN in a frame)
        return scores_in, scores_out, False
    if scores_digest(scores_in, scores_out) != expected:
        raise UserInputError(
            f"{path} does not hold the scores of the row {label} (digest mismatch: the file was "
            f"overwritten by another run or edited); {fix}."
        )
    return scores_in, scores_out, True


def warn_unverified(count: int) -> None:
    """One warning for rows whose score files could not be verified (no digest recorded)."""
    if count:
        logger.warning(
            "%d row(s) record no scores digest (written before oodbench schema 3): their score files "
            "were read unverified and may hold a later run's scores; rerun them to record one",
            count,
        )


def safe_file_name(name: str) -> str:
    """`name` with every character other than letters, digits and '-_.+' replaced by '_'."""
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in name)


__all__ = [
    "FIELD_NAMES",
    "KEY_FIELDS",
    "METRIC_FIELDS",
    "MODEL_SOURCES",
    "SCHEMA_VERSION",
    "SCORES_IDENTITY_FIELDS",
    "SCORES_IN",
    "SCORES_OUT",
    "ResultRow",
    "append_rows",
    "checked_scores_pair",
    "default_scores_file",
    "load_rows",
    "load_scores",
    "provenance_fields",
    "read_rows",
    "rows_to_frame",
    "row_identity",
    "save_row_scores",
    "save_scores",
    "scores_digest",
    "scores_pair",
    "warn_unverified",
    "write_rows",
]
