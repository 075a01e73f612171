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
