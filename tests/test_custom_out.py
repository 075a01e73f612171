"""`--out` sets: distinct names, --limit, empty sets refused before any training."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from test_data_formats import write_image_folder
from torch import nn

import oodbench
import oodbench.training
from oodbench.cli import cli
from oodbench.data import load_custom_outs
from oodbench.errors import UserInputError


def _folders(tmp_path):
    write_image_folder(tmp_path / "a" / "imgs", 5, size=(28, 28))
    write_image_folder(tmp_path / "b" / "imgs", 7, size=(28, 28))
    return tmp_path / "a" / "imgs", tmp_path / "b" / "imgs"


def test_two_folders_with_one_last_component_are_refused_unless_named(tmp_path):
    a, b = _folders(tmp_path)
    with pytest.raises(UserInputError, match="both named 'folder:imgs'; name them apart") as info:
        load_custom_outs([f"folder:{a}", f"folder:{b}"], shape=(1, 28, 28))
    assert "\n" not in str(info.value)
    sets = load_custom_outs([f"first=folder:{a}", f"second=folder:{b}"], shape=(1, 28, 28))
    assert {name: len(s) for name, s in sets.items()} == {"first": 5, "second": 7}
    assert sets["first"].name == "first"


def test_a_name_of_a_suite_set_is_refused_and_limit_caps(tmp_path):
    a, _ = _folders(tmp_path)
    with pytest.raises(UserInputError, match="named 'gaussian' like one of the suite's OOD sets"):
        load_custom_outs([f"gaussian=folder:{a}"], shape=(1, 28, 28), taken=("gaussian",))
    capped = load_custom_outs([f"folder:{a}"], shape=(1, 28, 28), limit=3)["folder:imgs"]
    assert len(capped) == 3


def test_evaluate_names_and_caps_extra_out_sets(tmp_path):
    a, b = _folders(tmp_path)
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    frame = oodbench.evaluate(
        net, detectors=["msp"], limit=4, extra_out=[f"mine=folder:{a}", f"folder:{b}"]
    )
    counts = dict(zip(frame["out_dataset"], frame["n_out"], strict=True))
    assert counts["mine"] == 4 and counts["folder:imgs"] == 4 and counts["animal_mnist"] == 4
    with pytest.raises(UserInputError, match="both named 'folder:imgs'"):
        oodbench.evaluate(net, detectors=["msp"], limit=4, extra_out=[f"folder:{a}", f"folder:{b}"])


@pytest.mark.parametrize("problem", ["empty", "collision"])
def test_run_refuses_bad_out_sets_before_any_training(tmp_path, monkeypatch, problem):
    monkeypatch.setattr(
        oodbench.training, "ensure_model", lambda *a, **k: pytest.fail("trained first"), raising=False
    )
    np.savez(tmp_path / "none.npz", x=np.zeros((0, 28, 28), np.uint8))
    a, b = _folders(tmp_path)
    outs = [f"npz:{tmp_path / 'none.npz'}"] if problem == "empty" else [f"folder:{a}", f"folder:{b}"]
    args = ["run", "-m", "joint", "-d", "msp", "--limit", "5", "--quiet", "--plots", "none"]
    result = CliRunner().invoke(cli, [*args, *(x for o in outs for x in ("--out", o))])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert ("holds no images" if problem == "empty" else "both named 'folder:imgs'") in lines[0]
