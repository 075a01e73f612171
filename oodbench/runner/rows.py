"""Building result rows: scores checked before anything is written, metrics, row fields."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from oodbench import metrics
from oodbench.detectors.base import Detector
from oodbench.errors import UserInputError
from oodbench.results import ResultRow, save_row_scores
from oodbench.runner.model import ModelUnderTest

if TYPE_CHECKING:
    from oodbench.data.spec import SuiteData


def check_scores(scores: Any, n: int, *, where: str) -> np.ndarray:
    """A detector's output as float64 of shape (n,), or a one-line UserInputError.

    Refused: None, non-numeric or complex values, not 1-D, another length than the data set,
    NaN or inf. Integers are cast to float64. `where` names the detector, model and data set.
    """
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    if scores is None:
        raise UserInputError(f"{where}: the detector returned None instead of one score per image.")
    try:
        array = np.asarray(scores)
    except (ValueError, TypeError) as error:
        raise UserInputError(f"{where}: the scores are not an array of numbers ({error}).") from None
    if array.dtype.kind not in "fiu":
        raise UserInputError(
            f"{where}: the scores have dtype {array.dtype}; they must be real numbers (float64)."
        )
    if array.ndim != 1:
        raise UserInputError(f"{where}: the scores have shape {array.shape}; they must be 1-D ({n},).")
    if len(array) != n:
        raise UserInputError(f"{where}: {len(array)} scores for {n} images; one score per image is needed.")
    array = array.astype(np.float64, copy=False)
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise UserInputError(f"{where}: {bad} of {n} scores are NaN or infinite.")
    return array


def build_rows(
    model_ut: ModelUnderTest,
    scored: Sequence[tuple[Detector, dict[str, dict[str, np.ndarray]]]],
    data: SuiteData,
    *,
    seed: int,
    accuracy: float | None,
    csid_accuracy: dict[str, float | None] | None = None,
    legacy: bool,
    convention: str | None = None,
    eval_limit: int | None,
    fit_limit: int | None,
    prints: dict[str, str],
    results_dir: Path | None,
    model_input: str = "",
    sizes: dict[str, int] | None = None,
) -> list[ResultRow]:
    """One ResultRow per (detector, OOD set) from checked cache entries ({"in": ..., "out:NAME":
    ...}, all of one fit), with metrics computed here; with `results_dir`, each row's scores are
    saved under a file named by the row's identity and a digest (oodbench.results). `sizes`:
    the images of each set; fewer scores than images = unreadable images skipped (n_skipped).

    Full spectrum (`data.covariate_shift` non-empty, OpenOOD's fsood): the ID side is the ID
    test scores followed by each csID set's ("csid:NAME" entries, in the suite's order); the
    row's in_dataset is "<in_dataset>+csid", its in_fingerprint covers every ID-side set, and
    `csid_accuracy` gives each csID set's accuracy."""
    rows: list[ResultRow] = []
    suite = data.suite
    convention = metrics.resolve_convention(convention, legacy=legacy)
    shifted = list(getattr(data, "covariate_shift", None) or {})
    id_side = ["in", *(f"csid:{n}" for n in shifted)]
    in_dataset = suite.in_dataset + ("+csid" if shifted else "")
    in_print = prints["in"] if not shifted else _joint_print([prints[k] for k in id_side])
    lists = getattr(data, "lists", None) or {}
    tuning_lists = ["train", "val", "test", f"validation_ood:{suite.val_ood}"]
    for detector, cached in scored:
        meta = json.loads(str(cached["in"]["meta"]))
        s_in = np.concatenate([cached[k]["scores"] for k in id_side]) if shifted else cached["in"]["scores"]
        # A suite grid's search names every point's validation AUROC (oodbench.detectors.grid).
        tuning = (
            data.grid_tuning(meta["grid"]) if meta.get("grid") else data.tuning if meta["tuned"] else "none"
        )
        for out_name in data.test_out:
            s_out = cached[f"out:{out_name}"]["scores"]
            skipped = 0
            if sizes is not None:
                skipped = sum(sizes[k] for k in id_side) - len(s_in) + sizes[f"out:{out_name}"] - len(s_out)
            read = [n for n in (*tuning_lists, out_name, *shifted) if n in lists]
            row = ResultRow(
                suite=suite.name,
                in_dataset=in_dataset,
                out_dataset=out_name,
                model_source=model_ut.source,
                model_label=model_ut.label,
                model_arch=model_ut.arch,
                training_recipe=model_ut.recipe,
                train_overrides=dict(model_ut.train_overrides),
                detector=detector.name,
                seed=seed,
                **metrics.compute(s_in, s_out, convention=convention),
                metrics_convention=convention,
                classification_accuracy=accuracy,
                n_in=len(s_in),
                n_out=len(s_out),
                eval_limit=eval_limit,
                fit_limit=fit_limit,
                in_fingerprint=in_print,
                out_fingerprint=prints[f"out:{out_name}"],
                detector_params=meta["params"],
                tuning=tuning,
                checkpoint_sha256=model_ut.checkpoint_sha256,
                # Where the scores were computed: the cache entry's record, not this process.
                device=meta["device"],
                torch_version=meta["torch_version"],
                host_cpu=meta["host_cpu"],
                torch_threads=meta["torch_threads"],
                suite_sha256=getattr(data, "suite_sha256", ""),
                n_skipped=skipped,
                input_channels=model_ut.input_channels,
                list_sha256={n: lists[n]["sha256"] for n in read},
                list_changed_accepted=[n for n in read if lists[n]["accepted"]],
                full_spectrum=bool(shifted),
                csid_accuracy={n: a for n, a in (csid_accuracy or {}).items() if a is not None},
                tuning_flags=list(meta.get("tuning_flags", [])),
                model_input=model_input,
                # A --out set's source says where it came from (oodbench.data.custom).
                out_source=getattr(getattr(data.test_out[out_name].x, "source", None), "origin", ""),
            )
            if results_dir is not None:
                save_row_scores(results_dir, row, s_in, s_out)
            rows.append(row)
    return rows


def _joint_print(prints: Sequence[str]) -> str:
    """One fingerprint of several sets scored together (the full-spectrum ID side), in order."""
    import hashlib

    return hashlib.sha256("+".join(prints).encode()).hexdigest()[: len(prints[0])]
