"""OpenOOD v1.5 wiring: the openood metric convention in rows, `run` and `report`; the report's
--against openood and --groups; --arch openood:NAME."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from oodbench.cli import cli
from oodbench.errors import UserInputError
from oodbench.results import append_rows
from tests.report_rows import make_row


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_rows_accept_the_openood_convention_and_refuse_unknown_ones():
    assert make_row(metrics_convention="openood").metrics_convention == "openood"
    with pytest.raises(UserInputError, match="exact, legacy, openood"):
        make_row(metrics_convention="sklearn")


def test_report_convention_openood_keeps_only_openood_rows(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    append_rows(path, [make_row(auroc=0.91), make_row(metrics_convention="openood", auroc=0.93)])
    mixed = invoke("report", "--results", str(path), "--format", "csv")
    assert mixed.exit_code != 0 and "exact|legacy|openood" in mixed.output
    result = invoke("report", "--results", str(path), "--format", "csv", "--convention", "openood")
    assert result.exit_code == 0, result.output
    assert "93.0" in result.output and "91.0" not in result.output


@pytest.fixture(scope="module")
def mnist_checkpoint(tmp_path_factory) -> Path:
    """A small_cnn trained 1 epoch on 300 embedded MNIST images."""
    import torch

    from oodbench.data import load_suite
    from oodbench.training import train

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "ce.pt"
    train("cross_entropy", load_suite("mnist", limit=300), "embedded", seed=0, device="cpu",
          checkpoint=path, progress=False, epochs=1)  # fmt: skip
    return path


def test_run_convention_openood_records_trapezoid_aupr_and_reuses_cached_scores(
    mnist_checkpoint, tmp_path, monkeypatch
):
    import oodbench.runner.forward as forward_module
    from oodbench import metrics
    from oodbench.results import load_rows, scores_pair

    calls: list[int] = []
    original = forward_module.shared_forward_pass

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(forward_module, "shared_forward_pass", counting)

    common = ["run", "--checkpoint", str(mnist_checkpoint), "-d", "msp", "--limit", "120", "--quiet",
              "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    for convention in ("exact", "openood"):
        result = invoke(*common, "--convention", convention, "--results-dir", str(tmp_path / convention))
        assert result.exit_code == 0, result.output
        if convention == "exact":
            first = len(calls)
    exact = load_rows(tmp_path / "exact" / "rows.jsonl")
    ours = load_rows(tmp_path / "openood" / "rows.jsonl")
    assert set(ours["metrics_convention"]) == {"openood"} and set(exact["metrics_convention"]) == {"exact"}
    for (_, e), (_, o) in zip(exact.iterrows(), ours.iterrows(), strict=True):
        assert e["auroc"] == o["auroc"] and e["fpr95_openood"] == o["fpr95_openood"]
        s_in, s_out = scores_pair(tmp_path / "openood" / o["scores_file"])
        assert o["aupr_in"] == pytest.approx(metrics.aupr_trapezoid(s_in, s_out))
        assert o["aupr_out"] == pytest.approx(metrics.aupr_trapezoid(-s_out, -s_in))
    assert first > 0 and len(calls) == first, "the openood run recomputed scores instead of reusing the cache"
    sweep = invoke("sweep", "--convention", "openood", "--dry-run")
    assert sweep.exit_code == 2 and "oodbench run --convention openood" in sweep.output


C10 = {"near": ["cifar100", "tin"], "far": ["mnist", "svhn", "texture", "places365"]}


def openood_rows(path: Path, aurocs_by_ckpt: list[dict[str, float]], **extra) -> None:
    """Rows of openood-cifar10, one checkpoint (replicate) per dict of {set: auroc}."""
    rows = []
    for k, aurocs in enumerate(aurocs_by_ckpt):
        for name, value in aurocs.items():
            values = dict(suite="openood-cifar10", in_dataset="cifar10", out_dataset=name,
                          model_source="external", model_label="r18", model_arch="openood:resnet18_32x32",
                          training_recipe="external", checkpoint_sha256=f"{k}" * 64, auroc=value)  # fmt: skip
            values.update(extra)
            rows.append(make_row(**values))
    append_rows(path, rows)


def test_report_groups_is_the_unweighted_mean_of_each_groups_sets_over_replicates(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    # Replicate 0: near 0.8, 0.9 -> 0.85; replicate 1: near 0.9, 1.0 -> 0.95. Mean 0.90, std 0.0707.
    first = {"cifar100": 0.8, "tin": 0.9, "mnist": 0.5, "svhn": 0.6, "texture": 0.7, "places365": 0.8}
    second = {"cifar100": 0.9, "tin": 1.0, "mnist": 0.7, "svhn": 0.6, "texture": 0.7, "places365": 0.8}
    openood_rows(path, [first, second])
    result = invoke("report", "--results", str(path), "--groups")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "openood-cifar10" in x)
    assert "90.00 ± 7.07 (n=2)" in line and "67.50 ± 3.54 (n=2)" in line
    assert result.output.index("near") < result.output.index("far")
    csv = invoke("report", "--results", str(tmp_path / "rows.jsonl"), "--groups", "--format", "csv")
    assert 'openood-cifar10,r18,msp,exact,near,"cifar100, tin",0.9' in csv.output


def test_report_groups_says_in_one_line_when_no_suite_has_groups(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    append_rows(path, [make_row(suite="mine")])
    result = invoke("report", "--results", str(path), "--groups")
    assert result.exit_code == 2 and "No suite of these rows has OOD groups (mine)" in result.output
    assert len(result.output.strip().splitlines()) == 1
    openood_rows(path, [dict.fromkeys([*C10["near"], *C10["far"]], 0.9)])
    mixed = invoke("report", "--results", str(path), "--groups", "--format", "csv")
    assert mixed.exit_code == 0 and "Suite mine has no OOD groups" in mixed.output


@pytest.mark.parametrize("fmt", ["markdown", "csv", "latex"])
def test_report_against_openood_marks_every_cell_with_its_reasons(tmp_path: Path, fmt: str):
    path = tmp_path / "rows.jsonl"
    openood_rows(path, [dict.fromkeys([*C10["near"], *C10["far"]], 0.9)], metrics_convention="openood")
    result = invoke("report", "--results", str(path), "--against", "openood", "--format", fmt)
    assert result.exit_code == 0, result.output
    assert "88.03" in result.output  # the leaderboard's MSP near AUROC on CIFAR-10
    assert "checkpoint digests unverifiable" in result.output
    assert "1 checkpoint(s), leaderboard mean of 3" in result.output
    assert "image-list digests not recorded" in result.output
    if fmt == "csv":
        lines = result.output.strip().splitlines()
        assert len(lines) == 3 and all(",False," in x for x in lines[1:])
    both = invoke("report", "--results", str(path), "--against", "openood", "--groups")
    assert both.exit_code == 0 and both.output.count("openood-cifar10") == 3


def test_report_against_openood_refusals(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    append_rows(path, [make_row()])
    result = invoke("report", "--results", str(path), "--against", "openood")
    assert result.exit_code == 2 and "No result rows of an OpenOOD suite" in result.output
    bad = invoke("report", "--results", str(path), "--against", "openood", "--comparable-only")
    assert bad.exit_code == 2 and "--comparable-only works with --against published only" in bad.output
    bad = invoke("report", "--results", str(path), "--groups", "--against", "published")
    assert bad.exit_code == 2 and "--groups works with the plain table or --against openood" in bad.output


def test_load_model_openood_resnet18_32x32_gives_the_modules_logits(tmp_path: Path):
    import torch

    import oodbench
    from oodbench.models import openood_arch

    torch.manual_seed(0)
    net = openood_arch.resnet18_32x32(10).eval()
    torch.save(net.state_dict(), tmp_path / "s0.ckpt")
    loaded = oodbench.load_model(tmp_path / "s0.ckpt", arch="openood:resnet18_32x32", in_shape=(3, 32, 32))
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(x), atol=1e-5)
    with pytest.raises(UserInputError, match="openood:resnet18_32x32 or openood:resnet18_224x224"):
        oodbench.load_model(tmp_path / "s0.ckpt", arch="openood:resnet50")
    with pytest.raises(UserInputError, match="do not match --arch openood:resnet18_224x224"):
        oodbench.load_model(tmp_path / "s0.ckpt", arch="openood:resnet18_224x224")
    listed = invoke("list", "models")
    assert "openood:resnet18_32x32, openood:resnet18_224x224" in listed.output


def test_run_checkpoint_with_arch_openood_on_a_3x32x32_suite(tmp_path: Path, monkeypatch):
    """An OpenOOD-format state_dict through `oodbench run` on a tiny SVHN suite in the real formats."""
    import torch
    from test_data_formats import tiny_svhn_suite

    from oodbench.models import openood_arch
    from oodbench.results import load_rows

    tiny_svhn_suite(monkeypatch)
    torch.manual_seed(0)
    torch.save(openood_arch.resnet18_32x32(10).state_dict(), tmp_path / "s0.ckpt")
    result = invoke("run", "--in", "tiny-svhn", "--checkpoint", str(tmp_path / "s0.ckpt"), "--arch",
                    "openood:resnet18_32x32", "-d", "msp", "--plots", "none", "--quiet",
                    "--convention", "openood", "--results-dir", str(tmp_path / "res"))  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = load_rows(tmp_path / "res" / "rows.jsonl")
    assert set(rows["model_arch"]) == {"openood:resnet18_32x32"} and len(rows) == 4
    assert set(rows["metrics_convention"]) == {"openood"}


def test_report_intervals_of_openood_rows_refuse_or_leave_out_the_trapezoidal_aupr(tmp_path: Path):
    import numpy as np

    from oodbench import metrics
    from oodbench.results import save_scores

    rng = np.random.default_rng(0)
    rows = []
    for detector, shift in (("msp", 1.0), ("energy", 2.0)):
        s_in, s_out = rng.normal(shift, 1, 50), rng.normal(0, 1, 40)
        name = f"scores/{detector}.npz"
        save_scores(tmp_path / name, scores_in=s_in, scores_out=s_out)
        values = metrics.compute(s_in, s_out, convention="openood")
        rows.append(make_row(detector=detector, metrics_convention="openood", scores_file=name, n_in=50,
                             n_out=40, **values))  # fmt: skip
    append_rows(tmp_path / "rows.jsonl", rows)
    base = ["report", "--results", str(tmp_path / "rows.jsonl"), "--resamples", "50"]
    refused = invoke(*base, "--ci", "--metric", "aupr_in")
    assert (
        refused.exit_code == 2 and "--ci has no aupr_in interval in the openood convention" in refused.output
    )
    assert invoke(*base, "--ci", "--metric", "auroc").exit_code == 0
    paired = invoke(*base, "--compare", "msp", "energy", "--format", "csv")
    assert paired.exit_code == 0, paired.output
    assert "auroc" in paired.output and "aupr_in" not in paired.output


def test_report_replicates_pools_the_checkpoints_of_one_label_and_compare_pairs_them(tmp_path: Path):
    import numpy as np

    from oodbench import metrics
    from oodbench.results import save_scores

    rng = np.random.default_rng(1)
    rows = []
    for k in range(3):  # three checkpoints of "r18", each scored by msp and energy
        for detector, shift in (("msp", 1.0), ("energy", 1.5)):
            s_in, s_out = rng.normal(shift + 0.2 * k, 1, 40), rng.normal(0, 1, 30)
            name = f"scores/{k}-{detector}.npz"
            save_scores(tmp_path / name, scores_in=s_in, scores_out=s_out)
            rows.append(make_row(detector=detector, model_source="external", model_label="r18",
                                 model_arch="openood:resnet18_32x32", training_recipe="external",
                                 checkpoint_sha256=f"{k}" * 64, scores_file=name, n_in=40, n_out=30,
                                 **metrics.compute(s_in, s_out)))  # fmt: skip
    append_rows(tmp_path / "rows.jsonl", rows)
    aurocs = [r.auroc for r in rows if r.detector == "msp"]
    base = ["report", "--results", str(tmp_path / "rows.jsonl")]
    apart = invoke(*base, "--format", "csv")
    assert apart.exit_code == 0 and apart.output.count("sha256") == 6  # one column per checkpoint
    pooled = invoke(*base, "--replicates")
    assert pooled.exit_code == 0, pooled.output
    mean, std = 100 * np.mean(aurocs), 100 * np.std(aurocs, ddof=1)
    assert f"{mean:.1f} ± {std:.1f} (n=3)" in pooled.output
    assert "r18: 3 replicates pooled as seeds" in pooled.output
    paired = invoke(
        *base, "--replicates", "--compare", "msp", "energy", "--resamples", "50", "--format", "csv"
    )
    assert paired.exit_code == 0, paired.output
    table = [x for x in paired.output.strip().splitlines() if not x.startswith("r18: ")]
    assert len(table) == 2 and ",3," in table[1]  # one in/out pair, over the 3 replicates
    none = invoke("report", "--results", str(tmp_path / "rows.jsonl"), "--replicates", "--label", "other")
    assert none.exit_code == 2
    lone = tmp_path / "lone.jsonl"
    append_rows(lone, [make_row(model_label="r18", model_source="external", checkpoint_sha256="a" * 64)])
    refused = invoke("report", "--results", str(lone), "--replicates")
    assert refused.exit_code == 2 and "no model label with several checkpoints" in refused.output


def test_report_page_shows_the_openood_leaderboard_comparison(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    openood_rows(path, [dict.fromkeys([*C10["near"], *C10["far"]], 0.9)])
    result = invoke(
        "report", "--results", str(path), "--format", "html", "--output", str(tmp_path / "r.html")
    )
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert "AUROC, OpenOOD near" in page and "88.03 ± 0.25" in page and "90.73 ± 0.43" in page
    assert "checkpoint digests unverifiable" in page


def test_every_convention_option_offers_openood():
    for command in (["report"], ["run"], ["export", "mlflow"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "openood" in result.output.split("--convention", 1)[1][:120]


def test_sweep_jobs_refuse_the_openood_convention():
    from oodbench.options import RunOptions
    from oodbench.sweep.jobs import expand_jobs

    with pytest.raises(UserInputError, match="openood metric convention"):
        expand_jobs(["mnist"], options=RunOptions(openood=True))
    with pytest.raises(UserInputError, match="exclude each other"):
        _ = RunOptions(legacy=True, openood=True).convention
