"""Where oodbench looks for data and keeps its caches and run outputs.

Each location is resolved as: explicit argument, then environment variable, then default.
"""

from __future__ import annotations

import os
from pathlib import Path

# The small data sets shipped inside the package (oodbench/data/embedded/*.npz).
EMBEDDED_DIR = Path(__file__).resolve().parent / "data" / "embedded"


def _default_cache_home() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "oodbench"


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Checkpoints and score caches: `explicit`, else $OODBENCH_CACHE, else ~/.cache/oodbench."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("OODBENCH_CACHE")
    return Path(env) if env else _default_cache_home()


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Data sets: `explicit` (--data-dir), else $OODBENCH_DATA, else <cache>/data."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("OODBENCH_DATA")
    return Path(env) if env else cache_dir() / "data"


def results_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Run outputs (rows, scores, tables, plots): `explicit`, else $OODBENCH_RESULTS, else ./runs."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("OODBENCH_RESULTS")
    return Path(env) if env else Path("runs")
