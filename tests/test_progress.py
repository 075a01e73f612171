"""Progress bars (tqdm on stderr) while large image folders are read and large sets are scored:
shown when asked for (the CLI asks unless --quiet), only from PROGRESS_BAR_MIN_IMAGES images on.
The threshold is lowered here so that tiny sets count as large."""

from __future__ import annotations

import textwrap

import pytest
import torch
from click.testing import CliRunner
from test_data_formats import write_image_folder
from torch import nn

from oodbench import progress
from oodbench.cli import cli
from oodbench.data import load_custom_outs
from oodbench.runner import shared_forward_pass as collect_outputs


@pytest.fixture
def low_threshold(monkeypatch):
    monkeypatch.setattr(progress, "PROGRESS_BAR_MIN_IMAGES", 4)


def test_reading_a_folder_shows_a_bar_only_when_asked(tmp_path, capsys, low_threshold):
    write_image_folder(tmp_path / "imgs", 6, size=(28, 28))
    spec = [f"mine=folder:{tmp_path / 'imgs'}"]
    sets = load_custom_outs(spec, shape=(1, 28, 28), progress=True)
    assert len(sets["mine"]) == 6
    bar = capsys.readouterr().err
    assert "reading imgs" in bar
    load_custom_outs(spec, shape=(1, 28, 28), progress=False)
    assert capsys.readouterr().err == ""


def test_small_sets_get_no_bar(tmp_path, capsys):
    write_image_folder(tmp_path / "imgs", 6, size=(28, 28))
    load_custom_outs([f"folder:{tmp_path / 'imgs'}"], shape=(1, 28, 28), progress=True)
    assert capsys.readouterr().err == ""  # 6 images < the default threshold (10,000)


def test_scoring_shows_a_bar_per_batch_only_with_a_label(capsys, low_threshold):
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    x = torch.rand(9, 1, 28, 28)
    logits, _ = collect_outputs(net, x, device="cpu", batch_size=4, progress_label="scoring mine")
    assert logits.shape == (9, 10)
    bar = capsys.readouterr().err
    assert "scoring mine" in bar and "/3" in bar  # 9 images in batches of 4
    collect_outputs(net, x, device="cpu", batch_size=4)
    assert capsys.readouterr().err == ""


FACTORY = textwrap.dedent(
    """
    from torch import nn


    def make_net(num_classes=10):
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))
    """
)


def test_cli_run_shows_bars_unless_quiet(tmp_path, low_threshold):
    (tmp_path / "netdef.py").write_text(FACTORY)
    namespace: dict = {}
    exec(FACTORY, namespace)
    torch.save(namespace["make_net"]().state_dict(), tmp_path / "weights.pt")
    write_image_folder(tmp_path / "imgs", 6, size=(28, 28))
    args = [
        "run", "--checkpoint", str(tmp_path / "weights.pt"), "--arch", f"{tmp_path / 'netdef.py'}:make_net",
        "-d", "msp", "--limit", "6", "--plots", "none", "--out", f"mine=folder:{tmp_path / 'imgs'}",
        "--results-dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    loud = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert loud.exit_code == 0, loud.output
    assert "reading imgs" in loud.stderr and "scoring out:mine" in loud.stderr
    quiet = CliRunner().invoke(cli, [*args, "--quiet"], catch_exceptions=False)
    assert quiet.exit_code == 0, quiet.output
    assert "reading" not in quiet.stderr and "scoring" not in quiet.stderr
