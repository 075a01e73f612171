"""The README's "Evaluate your own model" examples, run exactly as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from oodbench.cli import cli
from oodbench.results import load_rows

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Evaluate your own model", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:python)?\n(.*?)```", section, flags=re.S)


@pytest.fixture
def user_project(tmp_path, monkeypatch):
    """my_net.py from the README and weights saved as the README says, in the working folder."""
    factory, command, example = _section_blocks()
    (tmp_path / "my_net.py").write_text(factory)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {}
    exec(factory, namespace)
    torch.manual_seed(0)
    torch.save(namespace["build"]().state_dict(), tmp_path / "my_net.pt")
    return tmp_path, command.strip(), example


def test_readme_cli_line_runs(user_project):
    folder, command, _ = user_project
    args = shlex.split(command)
    assert args[0] == "oodbench"
    result = CliRunner().invoke(cli, [*args[1:], "--quiet", "--plots", "none"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = load_rows(folder / "results")  # $OODBENCH_RESULTS points into the test's tmp folder
    assert set(rows["model_label"]) == {"my-net"} and set(rows["detector"]) == {
        "msp",
        "energy",
        "mahalanobis",
    }
    assert rows["auroc"].between(0, 1).all() and len(rows) == 3 * 5


def test_readme_python_example_runs(user_project):
    folder, _, example = user_project
    result = subprocess.run(
        [sys.executable, "-c", "import torch; torch.set_num_threads(2)\n" + example],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tnr_at_tpr95" in result.stdout and "mahalanobis" in result.stdout and "odin" in result.stdout
    assert not list(folder.glob("*.jsonl"))  # evaluate() writes nothing without results_dir


def _own_data_blocks() -> tuple[list[str], str]:
    """The "Your own data" section's two commands and its suite file."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    plain = re.findall(r"```\n(.*?)```", section, flags=re.S)
    (toml,) = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    commands = [line for line in plain[-1].splitlines() if line.strip()]
    return commands, toml


def test_readme_own_data_commands_run(user_project):
    from PIL import Image

    folder, _, _ = user_project
    commands, toml = _own_data_blocks()
    assert len(commands) == 2
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 8)):
        for label, name in enumerate(("circle", "square", "triangle")):
            (folder / "shapes" / split / name).mkdir(parents=True)
            for i in range(n):
                image = rng.integers(0, 80, (28, 28), dtype=np.uint8)
                image[label * 9 : label * 9 + 10] += 150
                Image.fromarray(image).save(folder / "shapes" / split / name / f"{i}.png")
    (folder / "outliers").mkdir()
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / "outliers" / f"{i}.png")
    namespace: dict = {}
    exec((folder / "my_net.py").read_text(), namespace)
    torch.manual_seed(0)
    torch.save(namespace["build"](num_classes=3).state_dict(), folder / "shapes_net.pt")
    init, run = (shlex.split(command) for command in commands)
    result = CliRunner().invoke(cli, init[1:], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (folder / "shapes.toml").is_file()
    (folder / "shapes.toml").write_text(toml)  # the README's edited file
    result = CliRunner().invoke(cli, [*run[1:], "--quiet", "--plots", "none"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = load_rows(folder / "results")
    assert set(rows["suite"]) == {"shapes"} and set(rows["out_dataset"]) == {"outliers", "gaussian"}
    assert set(rows["detector"]) == {"msp", "energy", "mahalanobis"} and set(rows["n_in"]) == {24}
    assert rows["suite_sha256"].str.len().eq(64).all()
