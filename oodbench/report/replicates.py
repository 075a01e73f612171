"""Replicates: several checkpoints of one model (OpenOOD releases three per benchmark) pooled as
the seeds of one model, so tables give mean ± std over them and --compare pairs them.

`pool_replicates(frame)`: within each model with a label (`model_label`, with the same source,
architecture, recipe, overrides and limits), every distinct (checkpoint_sha256, seed) becomes
replicate k = 0, 1, ... in the order of the checkpoint hash then seed; the rows' `seed` is set to k
and `checkpoint_sha256` is cleared, so the report's cells pool them (mean ± sample std, n) and
--compare pairs replicate k of A with replicate k of B (for two detectors: the same checkpoint).
Rows without a label are left as they are.
"""

from __future__ import annotations

import pandas as pd

from oodbench.report.rows import with_identity

_MODEL = (
    "model_source",
    "model_label",
    "model_arch",
    "training_recipe",
    "_overrides",
    "_limit",
    "_fit_limit",
)


def pool_replicates(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(rows with replicates renumbered as seeds, one line per pooled model)."""
    frame = with_identity(df)
    labelled = frame["model_label"] != ""
    lines: list[str] = []
    for key, rows in frame[labelled].groupby(list(_MODEL), sort=False):
        reps = sorted(
            {(str(h), int(s)) for h, s in zip(rows["checkpoint_sha256"], rows["seed"], strict=True)}
        )
        if len(reps) < 2:
            continue
        index = {rep: k for k, rep in enumerate(reps)}
        frame.loc[rows.index, "seed"] = [
            index[(str(h), int(s))] for h, s in zip(rows["checkpoint_sha256"], rows["seed"], strict=True)
        ]
        frame.loc[rows.index, "checkpoint_sha256"] = ""
        shown = ", ".join(f"{k}: sha256 {h[:8] or '-'} seed {s}" for (h, s), k in index.items())
        lines.append(f"{key[1]}: {len(reps)} replicates pooled as seeds ({shown}).")
    return frame[df.columns.union(["checkpoint_sha256", "seed"], sort=False)], lines
