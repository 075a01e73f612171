"""Rows files and caches that never lie: unreadable lines refused and repaired, binary files in
one line, temp files of killed writes removed, click usage errors in one line."""

from __future__ import annotations

import os
import time

import pytest
from click.testing import CliRunner
from test_results import make_row

from oodbench.atomic import remove_stale_temp_files
from oodbench.cli import cli
from oodbench.errors import UserInputError
from oodbench.results import append_rows, check_rows_appendable, read_rows


def test_unreadable_line_is_refused_before_a_run_and_repaired_without_loss(tmp_path):
    rows = tmp_path / "rows.jsonl"
    append_rows(rows, [make_row(seed=0)])
    with open(rows, "a", encoding="utf-8") as handle:
        handle.write('{"half a row\n')
    append_rows(rows, [make_row(seed=1)])  # what an older oodbench did after a crash
    with pytest.raises(UserInputError, match=r"rows.jsonl:2 .*--repair"):
        check_rows_appendable(rows)
    with pytest.raises(UserInputError, match=r"rows.jsonl:2: not a JSON result row.*--repair"):
        read_rows(rows)
    # `oodbench run` stops before any work, in one line.
    result = CliRunner().invoke(
        cli, ["run", "--results-dir", str(tmp_path), "-m", "cross_entropy", "--quiet"]
    )
    assert result.exit_code == 2 and "rows.jsonl:2" in result.output and result.output.count("\n") == 1
    result = CliRunner().invoke(cli, ["report", "--repair", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "2 readable row(s) kept; 1 unreadable line(s) moved" in result.output
    assert [r.seed for r in read_rows(rows)] == [0, 1]
    assert (tmp_path / "rows.jsonl.rejected").read_text() == '{"half a row\n'
    check_rows_appendable(rows)  # clean now


def test_binary_rows_file_is_one_line(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(bytes(range(256)) * 4)
    result = CliRunner().invoke(cli, ["report", "--results", str(rows)])
    assert result.exit_code == 2 and "binary data" in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_temp_files_of_killed_writes_are_removed_on_start(tmp_path):
    old = tmp_path / "scores" / ".a.npz.x1y2.tmp"
    old.parent.mkdir()
    old.write_bytes(b"partial")
    past = time.time() - 3600
    os.utime(old, (past, past))
    fresh = tmp_path / ".rows.jsonl.abc.tmp"  # another process may be writing it right now
    fresh.write_text("in progress")
    keep = tmp_path / "rows.jsonl"
    keep.write_text("")
    assert remove_stale_temp_files(tmp_path) == [old]
    assert not old.exists() and fresh.exists() and keep.exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "--nope"], "No such option"),
        (["nosuch"], "No such command 'nosuch'"),
        (["run", "--limit", "0"], "Invalid value for '--limit'"),
        (["report", "--tolerance"], "requires an argument"),
    ],
)
def test_click_usage_errors_are_one_line_with_the_help_command(args, expected):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert expected in result.output and "--help`" in result.output
