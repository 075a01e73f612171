"""`oodbench run` with several --checkpoint files (replicates of one --label, issue 18 "Reports
by group"), and options that a suite file would silently ignore (--in, --download)."""

from __future__ import annotations

import hashlib
import shutil
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import oodbench
from oodbench.cli import cli
from oodbench.errors import UserInputError
from oodbench.results import load_rows

FACTORY = textwrap.dedent(
    """
    from torch import nn


    def make_net(num_classes=10):
        layers = [nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(676, num_classes)]
        return nn.Sequential(*layers)
    """
)
QUIET = ["-d", "msp", "-d", "energy", "--limit", "30", "--plots", "none", "--quiet"]
SAME = ["tnr_at_tpr95", "auroc", "aupr_in", "aupr_out", "detection_accuracy", "classification_accuracy"]


@pytest.fixture
def replicates(tmp_path):
    """Three checkpoints of one tiny architecture (OpenOOD's layout: s0/best.pt, s1/..., s2/...)."""
    (tmp_path / "netdef.py").write_text(FACTORY)
    namespace: dict = {}
    exec(FACTORY, namespace)
    files = []
    for seed in range(3):
        torch.manual_seed(seed)
        path = tmp_path / f"s{seed}" / "best.pt"
        path.parent.mkdir()
        torch.save(namespace["make_net"]().state_dict(), path)
        files.append(path)
    return files, ["--arch", f"{tmp_path / 'netdef.py'}:make_net"]


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _one_line_error(*args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    message = result.output.strip()
    assert result.exit_code == 2 and "\n" not in message and "Traceback" not in message, result.output
    return message


def test_several_checkpoints_are_replicates_equal_to_separate_runs(replicates, tmp_path):
    files, arch = replicates
    given = [x for path in files for x in ("--checkpoint", path)]
    together = tmp_path / "together"
    result = _run("run", *given, *arch, "--label", "tiny", *QUIET, "--results-dir", together)
    assert result.exit_code == 0, result.output
    rows = load_rows(together)
    digests = {hashlib.sha256(path.read_bytes()).hexdigest() for path in files}
    assert len(rows) == 3 * 2 * 5 and set(rows["model_label"]) == {"tiny"}
    assert set(rows["checkpoint_sha256"]) == digests and rows["checkpoint_sha256"].value_counts().eq(10).all()

    # Each checkpoint alone (its own score cache): the same rows, metrics and scores.
    apart = tmp_path / "apart"
    for path in files:
        result = _run(
            "run", "--checkpoint", path, *arch, "--label", "tiny", *QUIET, "--results-dir", apart,
            "--cache-dir", tmp_path / "own-cache",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    key = ["checkpoint_sha256", "detector", "out_dataset"]
    a = rows.sort_values(key).reset_index(drop=True)
    b = load_rows(apart).sort_values(key).reset_index(drop=True)
    assert list(a["scores_sha256"]) == list(b["scores_sha256"]) and a["scores_sha256"].ne("").all()
    np.testing.assert_array_equal(a[SAME].to_numpy(float), b[SAME].to_numpy(float))
    assert list(a[key].itertuples(index=False)) == list(b[key].itertuples(index=False))

    # The report pools them: one label, three replicates, mean ± std over them.
    pooled = _run("report", "--results", together / "rows.jsonl", "--replicates", "--metric", "auroc")
    assert pooled.exit_code == 0, pooled.output
    assert "tiny: 3 replicates pooled as seeds" in pooled.output and "(n=3)" in pooled.output
    msp = a[(a.detector == "msp") & (a.out_dataset == a.out_dataset.iloc[0])]["auroc"]
    assert f"{100 * msp.mean():.1f} ± {100 * msp.std(ddof=1):.1f} (n=3)" in pooled.output


def test_replicates_are_refused_when_they_would_mislead(replicates, tmp_path):
    files, arch = replicates
    two = ["--checkpoint", files[0], "--checkpoint", files[1], *arch]
    assert "--label" in _one_line_error("run", *two, *QUIET)
    assert "drop --seeds" in _one_line_error("run", *two, "--label", "tiny", "--seeds", "0,1", *QUIET)
    twice = ["--checkpoint", files[0], "--checkpoint", files[0], *arch, "--label", "tiny"]
    assert "given twice" in _one_line_error("run", *twice, *QUIET)
    copy = tmp_path / "copy.pt"
    shutil.copy(files[0], copy)
    same = ["--checkpoint", files[0], "--checkpoint", copy, *arch, "--label", "tiny"]
    assert "hold the same weights" in _one_line_error("run", *same, *QUIET)
    # The API takes a sequence too, and refuses the same way.
    with pytest.raises(UserInputError, match="--label"):
        oodbench.run_benchmark(checkpoint=files, arch=arch[1], detectors=["msp"], limit=30, plots="none")


def test_a_suite_file_refuses_in_and_download(tmp_path, replicates):
    files, arch = replicates
    suite_file = tmp_path / "mine.toml"
    given = ["--suite", suite_file, "--checkpoint", files[0], *arch]
    message = _one_line_error("run", "--in", "cifar10", *given, *QUIET)
    assert "--in cifar10" in message and "--suite" in message and "give one" in message
    message = _one_line_error("run", "--download", *given, *QUIET)
    assert "--download" in message and "your own files" in message
    with pytest.raises(UserInputError, match="two suites"):
        oodbench.run_benchmark("cifar10", suite_file=suite_file, checkpoint=files[0], arch=arch[1])
