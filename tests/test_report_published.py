"""`--against published`: comparable or not, and why; legacy preferred; external checkpoints."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from oodbench import report
from oodbench.errors import UserInputError
from oodbench.results import ResultRow, rows_to_frame


def paper_row(**overrides) -> ResultRow:
    """A row made exactly like Lee et al. 2018 Table 1 (CIFAR-10 vs LSUN resize, MSP)."""
    values = dict(
        suite="cifar10", in_dataset="cifar10", out_dataset="lsun_resize", model_source="cross_entropy",
        model_arch="vgg13", training_recipe="lee2018-cifar10", detector="msp", seed=1,
        tnr_at_tpr95=0.5, auroc=0.42, aupr_in=0.8, aupr_out=0.85, detection_accuracy=0.82,
        fpr95_openood=0.3, classification_accuracy=0.8, n_in=10000, n_out=10000, device="cpu",
        metrics_convention="legacy", created_at="2024-01-01T00:00:00+00:00",
    )  # fmt: skip
    values.update(overrides)
    return ResultRow(**values)


def compare(*rows, **kwargs) -> pd.DataFrame:
    return report.published_comparison(rows_to_frame(list(rows)), report.load_published(), **kwargs)


def lee_row(comparison: pd.DataFrame) -> pd.Series:
    lee = comparison[comparison["source"].str.startswith("Lee et al. ICLR 2018")]
    assert len(lee) == 1
    return lee.iloc[0]


def test_a_cell_made_like_the_paper_is_comparable():
    comparison = compare(paper_row())
    row = lee_row(comparison)
    assert (row["ours"], row["published"], row["convention"]) == (42.0, 40.7, "legacy")
    assert row["comparable"] and row["why_not"] == ""
    # Other papers' networks: never comparable, and each says why.
    others = comparison[~comparison["source"].str.startswith("Lee et al. ICLR 2018")]
    assert len(others) == 4 and not others["comparable"].any()
    assert all("architecture vgg13, paper" in why for why in others["why_not"])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model_arch": "resnet18"}, "architecture resnet18, paper vgg13"),
        ({"training_recipe": "embedded"}, "recipe embedded, paper lee2018-cifar10"),
        ({"train_overrides": {"epochs": 5}}, 'training overrides {"epochs": 5}'),
        ({"eval_limit": 500}, "evaluated on at most 500 images per set"),
        ({"metrics_convention": "exact"}, "exact metrics, paper legacy grid"),
        ({"model_source": "external"}, "external checkpoint: training recipe unknown"),
    ],
)
def test_each_difference_is_named(change, reason):
    kwargs = {"as_training": "cross_entropy"} if change.get("model_source") == "external" else {}
    row = lee_row(compare(paper_row(**change), **kwargs))
    assert not row["comparable"]
    assert reason in row["why_not"]


def test_legacy_rows_are_preferred_and_the_convention_is_shown():
    both = compare(paper_row(auroc=0.42), paper_row(metrics_convention="exact", auroc=0.44))
    row = lee_row(both)
    assert (row["ours"], row["convention"], row["comparable"]) == (42.0, "legacy", True)
    text = report.render_published(both, "markdown", metric="auroc")
    assert "| cifar10->lsun_resize | cross_entropy (vgg13) | msp      | 42.0 | legacy  |      40.7 |" in text
    only_exact = lee_row(compare(paper_row(metrics_convention="exact", auroc=0.44)))
    assert (only_exact["ours"], only_exact["convention"]) == (44.0, "exact")


def test_comparable_only_keeps_the_comparable_rows():
    rows = (paper_row(), paper_row(out_dataset="tinyimagenet_resize", training_recipe="embedded"))
    comparison = compare(*rows, comparable_only=True)
    assert len(comparison) == 1 and comparison.iloc[0]["published"] == 40.7
    assert "Only comparable rows are shown." in report.render_published(comparison, "html", metric="auroc")


def test_odin_cells_are_never_comparable_because_of_the_tuning_protocol():
    row = compare(paper_row(detector="odin"), metric="tnr_at_tpr95")
    assert not row["comparable"].any()
    assert row["why_not"].str.contains("tuned hyperparameters on held-out test-OOD images").all()


def test_external_checkpoint_matched_as_joint():
    external = paper_row(
        in_dataset="svhn", model_source="external", model_label="my-vgg", checkpoint_sha256="ab",
        training_recipe="unknown", tnr_at_tpr95=0.97,
    )  # fmt: skip
    unmatched = compare(external, metric="tnr_at_tpr95")
    assert len(unmatched) == 1 and "say --as METHOD" in unmatched.iloc[0]["why_not"]
    matched = compare(external, metric="tnr_at_tpr95", as_training="joint")
    row = matched.iloc[0]
    # Lee et al. 2018, introduction: joint confidence loss, SVHN vs LSUN, TNR at 95% TPR 99.9.
    assert (row["model"], row["ours"], row["published"]) == ("my-vgg (vgg13) as joint", 97.0, 99.9)
    assert not row["comparable"] and "external checkpoint" in row["why_not"]
    with pytest.raises(UserInputError, match="--as matches rows of external checkpoints"):
        compare(paper_row(), as_training="joint")
    with pytest.raises(UserInputError, match="Unknown --as 'gan'"):
        compare(external, as_training="gan")


def test_published_csv_ships_inside_the_package():
    import importlib.resources

    resource = importlib.resources.files("oodbench.report") / "published_results.csv"
    assert resource.is_file()
    frame = report.load_published()
    assert len(frame) == 128
    csv = report.render_published(compare(paper_row()), "csv", metric="auroc")
    assert pd.read_csv(io.StringIO(csv))["comparable"].tolist() == [True, False, False, False, False]
