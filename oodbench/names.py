"""Names shared by the command line and the library, written once.

Plain constants only (no torch, numpy or pandas), so that the CLI can import them and still
answer `--help`, `list` and usage errors at once.
"""

from __future__ import annotations

ROWS_FILENAME = "rows.jsonl"  # the result rows of a results folder

# The six OOD metrics of a row, in table order (oodbench.metrics computes them).
METRIC_NAMES: tuple[str, ...] = (
    "tnr_at_tpr95",
    "auroc",
    "aupr_in",
    "aupr_out",
    "detection_accuracy",
    "fpr95_openood",
)
TABLE_METRICS: tuple[str, ...] = (*METRIC_NAMES, "classification_accuracy")  # report --metric
TABLE_FORMATS: tuple[str, ...] = ("markdown", "csv", "latex", "html")  # report --format
COLUMN_MODES: tuple[str, ...] = ("model+detector", "detector", "model")  # report --columns

# Where a row's model came from: trained by oodbench, or given by the user.
TRAINED_SOURCES: tuple[str, ...] = ("cross_entropy", "confidence", "joint")
MODEL_SOURCES: tuple[str, ...] = (*TRAINED_SOURCES, "external", "checkpoint")

# The paper's shorthands: `-d joint` means the joint model scored by max-softmax.
SHORTHAND_DETECTORS: dict[str, tuple[str, str]] = {
    "joint": ("joint", "msp"),
    "confidence": ("confidence", "msp"),
    "baseline": ("cross_entropy", "msp"),
}

# Metric conventions of result rows (oodbench.metrics.CONVENTIONS): see docs/methods.md.
METRICS_CONVENTIONS: tuple[str, ...] = ("exact", "legacy", "openood")

# OpenOOD v1.5's classifiers (`--arch openood:NAME`, oodbench.models.openood_arch.ARCHITECTURES).
OPENOOD_ARCHITECTURES: tuple[str, ...] = ("resnet18_32x32", "resnet18_224x224")

# The registered built-in suites (oodbench/suites/<name>.toml, read by oodbench.data.suites in
# this order); the other packaged suite files (openood-*) are run with --suite.
BUILTIN_SUITES: tuple[str, ...] = ("mnist", "svhn", "cifar10", "odin-cifar10", "odin-cifar100")

PYTORCH_OOD_PREFIX = "pytorch-ood:"  # `-d pytorch-ood:NAME`: a detector of the pytorch-ood library
