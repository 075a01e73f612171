"""`oodbench --help`, `oodbench list ...` and usage errors answer without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from oodbench.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="oodbench")
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("torch", "pandas", "scipy", "matplotlib") if m in sys.modules)
print("EXIT", code, "HEAVY", ",".join(heavy) or "-", file=sys.stderr)
"""


def _probe(*args: str) -> tuple[int, str, str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    last = result.stderr.strip().splitlines()[-1].split()
    return int(last[1]), last[3], result.stdout + result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["train", "--help"],
        ["suite", "init", "--help"],
        ["list", "detectors"],
        ["list", "suites"],
        ["list", "datasets"],
        ["list", "recipes"],
        ["list", "models"],
    ],
)
def test_help_and_lists_do_not_import_torch(args):
    code, heavy, output = _probe(*args)
    assert code == 0, output
    assert "torch" not in heavy.split(","), output


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--in", "svnh"], "Did you mean: svhn?"),
        (["run", "-d", "mahalanobsi"], "Did you mean: mahalanobis?"),
        (["run", "--seeds", "1,,2"], "--seeds takes"),
        (["run", "--param", "odin"], "--param takes"),
        (["run", "--param", "my.file.py:Cls=3"], "--param takes"),
        (["run", "-d", "msp", "--param", "mahalanobsi.epsilon=0"], "Did you mean: mahalanobis?"),
        (["train", "--method", "jiont"], "Did you mean: joint?"),
    ],
)
def test_usage_errors_are_one_line_without_torch(args, message):
    code, heavy, output = _probe(*args)
    assert code == 2, output
    assert "torch" not in heavy.split(","), output
    assert message in output and "Traceback" not in output


def test_every_detector_entry_matches_its_class():
    from oodbench.detectors import DETECTORS

    for name, entry in DETECTORS.items():
        cls = entry.load()
        assert cls.name == name and cls.uses == entry.uses, name
