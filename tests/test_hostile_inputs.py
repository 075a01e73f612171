"""Hostile or careless input at oodbench's edges: plug-ins that step out of their lane, user code
that raises, out-of-range values, oversized or malformed files. Every refusal is one line (exit 2
through the CLI) and comes before anything is written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from oodbench.cli import cli
from oodbench.detectors import DETECTORS, create_detector, plugins
from oodbench.detectors.base import ForwardOutputs
from oodbench.errors import UserCodeError, UserInputError
from oodbench.models.external import load_model

LIMIT = 20


@pytest.fixture(autouse=True)
def _fresh_plugin_names(monkeypatch):
    """Each test is its own session: plug-ins loaded by earlier tests do not hold their names."""
    monkeypatch.setattr(plugins, "_CLAIMED", {})


def _plugin(tmp_path: Path, body: str, name: str = "plug.py") -> Path:
    path = tmp_path / name
    path.write_text(
        "import numpy as np\nfrom oodbench.detectors.base import Detector\n\n\n" + textwrap.dedent(body)
    )
    return path


def _cli(args: list[str]):
    return CliRunner().invoke(cli, args)


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    return lines[0]


# --- item 2: plug-ins stay in their lane -------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../../../x", "a/b", "..", "", "x y", "/abs", "a\\b", "c:\\x"])
def test_plugin_name_that_is_not_a_safe_name_is_refused(tmp_path, bad):
    path = _plugin(tmp_path, f"class Evil(Detector):\n    name = {bad!r}\n")
    with pytest.raises(UserInputError, match="is not allowed"):
        create_detector(f"{path}:Evil")


def test_register_detector_with_a_path_name_is_refused():
    with pytest.raises(UserInputError, match="is not allowed"):
        plugins.register_detector("../escape")


def test_plugin_named_like_a_builtin_is_refused_naming_both(tmp_path):
    path = _plugin(tmp_path, "class Fake(Detector):\n    name = 'msp'\n")
    with pytest.raises(UserInputError) as info:
        create_detector(f"{path}:Fake")
    message = str(info.value)
    assert "'msp'" in message and "built-in" in message and "oodbench.detectors.msp" in message
    assert str(path.resolve()) in message and "\n" not in message


def test_two_plugins_with_one_name_are_refused_naming_both(tmp_path):
    first = _plugin(tmp_path, "class A(Detector):\n    name = 'mine'\n", "a.py")
    second = _plugin(tmp_path, "class B(Detector):\n    name = 'mine'\n", "b.py")
    create_detector(f"{first}:A")
    create_detector(f"{first}:A")  # the same plug-in again is fine
    with pytest.raises(UserInputError) as info:
        create_detector(f"{second}:B")
    assert "a.py:A" in str(info.value) and "b.py:B" in str(info.value)


def test_register_detector_shadowing_a_builtin_names_both():
    with pytest.raises(UserInputError, match="built-in detector oodbench.detectors.energy"):

        @plugins.register_detector("energy")
        class Shadow:  # noqa: F841 - never registered
            pass

    assert DETECTORS.get("energy").source == "built-in"


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("class X(Detector):\n    def broken(self)\n        pass\n", "SyntaxError"),
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("import no_such_dependency_xyz\n", "ModuleNotFoundError"),
    ],
)
def test_plugin_import_errors_are_one_line_naming_the_file(tmp_path, body, what):
    path = _plugin(tmp_path, body)
    with pytest.raises(UserCodeError) as info:
        create_detector(f"{path}:X")
    message = str(info.value)
    assert "\n" not in message and str(path) in message and what in message and "importing" in message


def test_plugin_constructor_error_is_one_line(tmp_path):
    path = _plugin(
        tmp_path,
        "class X(Detector):\n    def __init__(self, *, k=1):\n        self.k = 1 / 0\n",
    )
    with pytest.raises(UserCodeError) as info:
        create_detector(f"{path}:X")
    assert "__init__()" in str(info.value) and "ZeroDivisionError" in str(info.value)
    with pytest.raises(UserInputError, match="Bad parameters"):
        create_detector(f"{path}:X", nope=3)  # a wrong keyword is still named as such


BAD_SCORE = """
class Bad(Detector):
    uses = "logits"

    def fit(self, model, **kwargs):
        if getattr(self, "fail_fit", False):
            raise KeyError("missing statistic")
        return self

    def score_outputs(self, outputs):
        return {}["no such key"]
"""


def test_plugin_fit_and_score_errors_are_one_line_naming_file_method_and_line(tmp_path):
    path = _plugin(tmp_path, BAD_SCORE)
    detector = create_detector(f"{path}:Bad")
    with pytest.raises(UserCodeError) as info:
        detector.score_outputs(ForwardOutputs(logits=torch.zeros(2, 3)))
    message = str(info.value)
    assert "score_outputs()" in message and str(path) in message and "KeyError" in message
    assert "(line 15)" in message and "\n" not in message
    assert isinstance(info.value.__cause__, KeyError)  # kept for -v
    detector.fail_fit = True
    with pytest.raises(UserCodeError, match=r"fit\(\).*missing statistic"):
        detector.fit(nn.Identity())


def test_plugin_guard_keeps_the_class_and_user_input_errors(tmp_path):
    path = _plugin(
        tmp_path,
        "from oodbench.errors import UserInputError\n\n\n"
        "class Picky(Detector):\n    def validate(self):\n        raise UserInputError('k must be > 0')\n",
    )
    detector = create_detector(f"{path}:Picky")
    assert type(detector).__name__ == "Picky" and type(detector).__module__.startswith("oodbench_plugin_")
    with pytest.raises(UserInputError, match="^k must be > 0$"):
        detector.validate()


FACTORY = """
from torch import nn


def build(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))


def broken(num_classes=10):
    raise RuntimeError("factory exploded")
"""


@pytest.fixture()
def tiny_model(tmp_path):
    (tmp_path / "netdef.py").write_text(FACTORY)
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    torch.save(net.state_dict(), tmp_path / "w.pt")
    return tmp_path / "w.pt", f"{tmp_path / 'netdef.py'}:build"


def test_plugin_score_error_through_the_cli_is_one_line_and_traceback_under_v(tmp_path, tiny_model):
    weights, arch = tiny_model
    path = _plugin(tmp_path, BAD_SCORE)
    args = [
        "run",
        "--checkpoint",
        str(weights),
        "--arch",
        arch,
        "-d",
        f"{path}:Bad",
        "--limit",
        str(LIMIT),
        "--quiet",
    ]
    args += ["--results-dir", str(tmp_path / "res")]
    line = _one_line(_cli(args))
    assert "score_outputs()" in line and "KeyError" in line and str(path) in line
    verbose = _cli(["-v", *args])
    assert verbose.exit_code == 2 and "Traceback (most recent call last)" in verbose.output
    assert f'File "{path}", line 15, in score_outputs' in verbose.output
    assert not (tmp_path / "res" / "rows.jsonl").exists()


def test_arch_factory_errors_are_one_line(tmp_path, tiny_model):
    weights, arch = tiny_model
    broken = arch.replace(":build", ":broken")
    with pytest.raises(UserCodeError, match=r"broken\(\).*RuntimeError: factory exploded"):
        load_model(weights, arch=broken)
    (tmp_path / "syntax.py").write_text("def build(:\n")
    with pytest.raises(UserCodeError, match="SyntaxError"):
        load_model(weights, arch=f"{tmp_path / 'syntax.py'}:build")


# --- item 1 (the parts that are not payloads) ----------------------------------------------------------


@pytest.mark.parametrize("arch", [":", ":build", "netdef.py:", "a..b:f", "x:1f"])
def test_malformed_arch_is_one_line(tiny_model, arch):
    weights, _ = tiny_model
    with pytest.raises(UserInputError, match="is not a factory"):
        load_model(weights, arch=arch)


def test_extra_key_in_state_dict_is_named_not_blamed_on_a_shape(tmp_path, tiny_model):
    weights, arch = tiny_model
    state = torch.load(weights, weights_only=True)
    state["extra.weight"] = torch.zeros(5, 5)  # the last 2-D weight: misleads the class-count guess
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(UserInputError) as info:
        load_model(tmp_path / "extra.pt", arch=arch)
    assert "unexpected keys extra.weight" in str(info.value) and "shape" not in str(info.value)
