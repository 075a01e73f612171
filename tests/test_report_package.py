"""The published numbers ship inside the wheel (package data of oodbench.report)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_the_published_csv(tmp_path):
    # Build from a copy so that setuptools' build/ and egg-info never land in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "oodbench", source / "oodbench", ignore=shutil.ignore_patterns("__pycache__"))
    # --no-build-isolation: use this environment's setuptools, so the test needs no network.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), "-q", "--disable-pip-version-check"],
        check=True, cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("oodbench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "oodbench/report/published_results.csv" in names
        assert "oodbench/report/openood_leaderboard.csv" in names  # the OpenOOD leaderboard
        assert "oodbench/report/templates/report.html.j2" in names  # the HTML report page
        # Without the suite files an installed oodbench would have no suites.
        suites = {f"oodbench/suites/{p.name}" for p in (REPO / "oodbench" / "suites").glob("*.toml")}
        assert len(suites) == 9 and suites <= names
        shipped = archive.read("oodbench/report/published_results.csv")
    assert shipped == (REPO / "oodbench" / "report" / "published_results.csv").read_bytes()
    assert "oodbench/report/compare.py" in names
