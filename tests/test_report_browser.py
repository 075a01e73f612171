"""The report page of a real small `oodbench run`, opened in headless Chromium.

Skipped (with the reason) where Chromium, chromedriver or selenium is missing; .ci/run installs
them. OODBENCH_SCREENSHOT=path.png keeps the screenshot (docs/report.png is made that way).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from browser import browser_missing, check_page
from click.testing import CliRunner

from oodbench.cli import cli
from oodbench.metrics import METRIC_NAMES
from oodbench.results import load_rows

MISSING = browser_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no headless browser: {MISSING}")

# Two models, one epoch on 300 images, 100 test images per set, every built-in detector with
# ODIN's and Mahalanobis' hyperparameters fixed (their tuning is what would take minutes here).
SMALL_RUN = [
    "run", "-m", "cross_entropy", "-m", "confidence", "--epochs", "1", "--train-limit", "300",
    "--limit", "100", "--quiet", "-d", "msp", "-d", "energy", "-d", "max_logit", "-d", "random",
    "-d", "odin", "--param", "odin.temperature=1000", "--param", "odin.epsilon=0.001",
    "-d", "mahalanobis", "--param", "mahalanobis.epsilon=0",
]  # fmt: skip


def _check_report(results: Path, screenshot: Path, *, n_models: int) -> None:
    """Every section and table, every image decoded, no console error, no request, a screenshot."""
    page = results / "report.html"
    rows = load_rows(results)
    assert rows["model_source"].nunique() == n_models
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text)  # no external URL anywhere in the file
    check = check_page(page, screenshot)

    assert check.section_ids == ["summary", "tables", "figures", "comparisons", "provenance"]
    # accuracy + one per metric + 2 provenance tables (+ the paired comparison when asked for;
    # no published rows exist for the embedded suite)
    paired = 'id="paired"' in text
    assert check.n_tables == 1 + len(METRIC_NAMES) + 2 + paired
    n_figures = len(rows)  # one small multiple per row (model, detector, pair; one seed)
    assert len(check.images) == n_figures + 1  # + the legend
    assert all(width > 0 for _, width in check.images), [alt for alt, w in check.images if w == 0]
    assert check.console_errors == []
    assert check.resources == []  # the page fetched nothing (data: URIs are no resource entries)
    assert screenshot.stat().st_size > 10_000
    keep = os.environ.get("OODBENCH_SCREENSHOT")
    if keep:
        shutil.copyfile(screenshot, keep)


def test_report_of_a_real_run_loads_offline_in_chromium(tmp_path: Path):
    results = tmp_path / "runs"
    result = CliRunner().invoke(cli, [*SMALL_RUN, "--results-dir", str(results)])
    assert result.exit_code == 0, result.output
    assert f"report: {results / 'report.html'}" in result.output
    assert load_rows(results)["detector"].nunique() == 6
    _check_report(results, tmp_path / "report.png", n_models=2)


STORED = os.environ.get("OODBENCH_REPORT_RESULTS")


@pytest.mark.skipif(not STORED, reason="set OODBENCH_REPORT_RESULTS to a results folder of `oodbench run`")
def test_report_of_a_stored_embedded_run(tmp_path: Path):
    """The page of the full embedded reference run (made once, minutes): docs/report.png is
    OODBENCH_REPORT_RESULTS=<its folder> OODBENCH_SCREENSHOT=docs/report.png pytest -k stored."""
    results = tmp_path / "runs"
    shutil.copytree(STORED, results)
    args = ["report", "--results", str(results), "--format", "html", "--compare", "cross_entropy", "joint"]
    result = CliRunner().invoke(cli, [*args, "--resamples", "200"])
    assert result.exit_code == 0, result.output
    _check_report(results, tmp_path / "report.png", n_models=3)


def test_a_blocked_request_would_show(tmp_path: Path):
    """The checks can fail: a page that asks for an external image logs a CSP error."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        'content="default-src \'none\'"><title>x</title></head><body><section id="s">'
        '<img src="http://192.0.2.1/x.png" alt="external"></section></body></html>',
        encoding="utf-8",
    )
    check = check_page(page)
    assert check.images == [("external", 0)]
    assert any("Content Security Policy" in line for line in check.console_errors)
