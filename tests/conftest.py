"""Test-wide settings: few threads (CI has 2 cores), no network, results in tmp dirs."""

import matplotlib
import pytest
import torch

from oodbench.detectors import plugins

matplotlib.use("Agg")
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _isolated_oodbench_dirs(tmp_path, monkeypatch):
    """Keep every test's caches, data and results out of the user's real folders."""
    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OODBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("OODBENCH_RESULTS", str(tmp_path / "results"))


@pytest.fixture(autouse=True)
def _fresh_plugin_names(monkeypatch):
    """Each test is its own session: plug-ins loaded by earlier tests do not hold their names
    (oodbench.detectors.plugins refuses two classes of one name within a process)."""
    monkeypatch.setattr(plugins, "_CLAIMED", {})
