"""Running the benchmark: the forward pass, the score cache, building rows, orchestration.

    evaluation.py   evaluate(): one model, its detectors, one suite -> rows (its invariants are
                    written at the top of evaluation.py)
    forward.py      the shared forward pass that feeds every output-based detector
    cache.py        score-cache keys and entries
    rows.py         score checks and result rows
    model.py        ModelUnderTest and DetectorRequest, what evaluate() takes
    shorthands.py   the paper's shorthands (-d joint = the joint model scored by msp)
    suite.py        run_suite(): per seed and model, train or reuse, load, evaluate, append rows
"""

from __future__ import annotations

from oodbench.names import SHORTHAND_DETECTORS, TRAINED_SOURCES
from oodbench.runner.cache import code_fingerprint
from oodbench.runner.evaluation import evaluate
from oodbench.runner.forward import fingerprint, shared_forward_pass
from oodbench.runner.model import DetectorRequest, ModelUnderTest
from oodbench.runner.rows import build_rows, check_scores
from oodbench.runner.shorthands import expand_shorthands
from oodbench.runner.suite import run_suite, train_for_run

__all__ = [
    "SHORTHAND_DETECTORS",
    "TRAINED_SOURCES",
    "DetectorRequest",
    "ModelUnderTest",
    "build_rows",
    "check_scores",
    "code_fingerprint",
    "evaluate",
    "expand_shorthands",
    "fingerprint",
    "run_suite",
    "shared_forward_pass",
    "train_for_run",
]
