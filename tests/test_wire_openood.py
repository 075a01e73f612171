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
