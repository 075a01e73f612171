"""OpenOOD leaderboard (package data), group means and `against_openood` on made-up rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from oodbench.report import openood
from oodbench.report.openood import against_openood, group_means, load_leaderboard

C10_GROUPS = {"near": ["cifar100", "tin"], "far": ["mnist", "svhn", "texture", "places365"]}
C10_SETS = [*C10_GROUPS["near"], *C10_GROUPS["far"]]
DIGESTS = {f"s{i}": f"{i}" * 64 for i in range(3)}
LISTS = json.dumps({"test": "a" * 64, "cifar100": "b" * 64})


def rows(
    aurocs: dict[str, list[float]],
    *,
    detector: str = "msp",
    arch: str = "openood:resnet18_32x32",
    convention: str = "exact",
    tuning: str = "none",
    list_sha256: str = LISTS,
    suite: str = "openood-cifar10",
) -> pd.DataFrame:
    """One row per (checkpoint, OOD set): aurocs[set][k] is checkpoint k's AUROC on that set."""
    records = []
    for name, values in aurocs.items():
        for k, value in enumerate(values):
            records.append(
                dict(
                    suite=suite, in_dataset="test", out_dataset=name, model_source="external",
                    model_label="openood-r18", model_arch=arch, training_recipe="external",
                    detector=detector, seed=0, auroc=value, metrics_convention=convention,
                    checkpoint_sha256=DIGESTS[f"s{k}"], tuning=tuning, eval_limit=None,
                    fit_limit=None, list_sha256=list_sha256,
                )
            )  # fmt: skip
    return pd.DataFrame.from_records(records)


def full(n: int = 3, base: float = 0.8) -> dict[str, list[float]]:
    rng = np.random.default_rng(0)
    return {s: list(base + 0.1 * rng.random(n)) for s in C10_SETS}


def test_leaderboard_is_the_issue_table() -> None:
    board = load_leaderboard()
    assert len(board) == 48 and set(board.groupby("suite").size()) == {12}
    assert set(board["method"]) == set(openood.DETECTOR_TO_METHOD.values())
    cell = board.set_index(["suite", "method"])
    assert tuple(cell.loc[("openood-cifar10", "MSP"), ["near_auroc", "near_auroc_std"]]) == (88.03, 0.25)
    assert tuple(cell.loc[("openood-cifar100", "KNN"), ["far_auroc", "far_auroc_std"]]) == (82.40, 0.17)
    assert tuple(cell.loc[("openood-imagenet200", "SCALE"), ["near_auroc", "far_auroc"]]) == (84.84, 93.98)
    assert cell.loc[("openood-imagenet1k", "ASH"), "far_auroc"] == 95.74
    assert math.isnan(cell.loc[("openood-imagenet1k", "ASH"), "far_auroc_std"])
    assert board["near_fpr95"].isna().all() and board["far_fpr95"].isna().all()  # none published
    acc = board.groupby("suite")["id_accuracy"].unique()
    assert {k: list(v) for k, v in acc.items()} == {
        "openood-cifar10": [95.06], "openood-cifar100": [77.25],
        "openood-imagenet200": [86.37], "openood-imagenet1k": [76.18],
    }  # fmt: skip
    assert dict(board.groupby("suite")["checkpoints"].unique().map(list)) == {
        "openood-cifar10": [3], "openood-cifar100": [3],
        "openood-imagenet200": [3], "openood-imagenet1k": [1],
    }  # fmt: skip
    assert board["source"].str.contains("leaderboard").all() and (board["date"] == "2026-12").all()


def test_group_means_are_unweighted_means_over_sets_then_over_checkpoints() -> None:
    aurocs = full()
    means = group_means(rows(aurocs), C10_GROUPS).set_index("group")
    for group, sets in C10_GROUPS.items():
        per_checkpoint = [np.mean([aurocs[s][k] for s in sets]) for k in range(3)]
        assert means.loc[group, "mean"] == pytest.approx(np.mean(per_checkpoint), abs=1e-12)
        assert means.loc[group, "std"] == pytest.approx(np.std(per_checkpoint, ddof=1), abs=1e-12)
        assert means.loc[group, "n"] == 3 and means.loc[group, "missing"] == ""
    # A set of a group missing: no value for that group, and the set is named.
    partial = rows({s: v for s, v in aurocs.items() if s != "svhn"})
    far = group_means(partial, C10_GROUPS).set_index("group").loc["far"]
    assert far["n"] == 0 and math.isnan(far["mean"]) and far["missing"] == "svhn"
    # The suite may be named: the built-in file's groups are used.
    assert group_means(rows(aurocs), "openood-cifar10").equals(group_means(rows(aurocs), C10_GROUPS))


def test_against_openood_lists_every_reason() -> None:
    table = against_openood(rows(full()))
    assert list(table["group"]) == ["near", "far"] and set(table["method"]) == {"MSP"}
    near = table.iloc[0]
    assert near["openood"] == 88.03 and near["openood_std"] == 0.25 and near["openood_n"] == 3
    assert near["ours_n"] == 3 and not near["comparable"]
    # Nothing can be confirmed yet: no official checkpoint digests or list pins are recorded.
    assert "checkpoint digests unverifiable" in near["why_not"]
    assert "image-list digests unverifiable" in near["why_not"]

    bad = against_openood(
        rows({s: v[:1] for s, v in full().items()}, arch="torchvision:resnet18", convention="legacy")
    ).iloc[0]["why_not"]
    assert "architecture torchvision:resnet18" in bad
    assert "1 checkpoint(s), leaderboard mean of 3" in bad
    assert "legacy metrics" in bad
    knn = against_openood(rows(full(), detector="pytorch-ood:KNN")).iloc[0]
    assert knn["method"] == "KNN" and "not tuned by OpenOOD's grid search" in knn["why_not"]
    odin_test = against_openood(rows(full(), detector="msp", tuning="test set")).iloc[0]["why_not"]
    assert "OpenOOD does not tune this method" in odin_test
    none = against_openood(rows(full(), detector="random")).iloc[0]
    assert none["method"] == "" and math.isnan(none["openood"]) and not none["comparable"]
    unrecorded = against_openood(rows(full(), list_sha256="")).iloc[0]["why_not"]
    assert "image-list digests not recorded" in unrecorded


def test_against_openood_can_be_comparable(monkeypatch: pytest.MonkeyPatch) -> None:
    """With official digests and pins known and everything made OpenOOD's way, no reason is left."""
    monkeypatch.setitem(openood.OFFICIAL_CHECKPOINTS, "openood-cifar10", frozenset(DIGESTS.values()))
    pins = {"openood-cifar10": {"test": "a" * 64, "cifar100": "b" * 64}}  # every list the rows read
    aurocs = full()
    table = against_openood(rows(aurocs, convention="openood"), pins=pins)
    assert table["comparable"].all(), table["why_not"].tolist()
    expected = np.mean([np.mean([aurocs[s][k] for s in C10_GROUPS["near"]]) for k in range(3)])
    assert table.iloc[0]["ours"] == round(100 * expected, 2)
    changed = against_openood(rows(aurocs), pins={"openood-cifar10": {"test": "c" * 64}})
    assert "image lists differ from the pinned ones: test" in changed.iloc[0]["why_not"]
    tuned = rows(aurocs, detector="odin", tuning="grid on validation: val (9) + tin_val (9); AUROC: ...")
    assert against_openood(tuned, pins=pins)["comparable"].all()
    # oodbench's own ODIN grid (the paper's, chosen by FPR) is not OpenOOD's search.
    paper = rows(aurocs, detector="odin", tuning="validation split: val (9) + tin_val (9)")
    assert "not tuned by OpenOOD's grid search" in against_openood(paper, pins=pins).iloc[0]["why_not"]
