"""`--limit` caps the evaluated test sets only; `--fit-limit` caps what detectors are fitted and
tuned on (issue 16.4)."""

from __future__ import annotations

import textwrap

import pytest
import torch
from click.testing import CliRunner

import oodbench
from oodbench.cli import cli
from oodbench.data import load_suite
from oodbench.detectors.mahalanobis import Mahalanobis
from oodbench.detectors.odin import ODIN
from oodbench.errors import UserInputError
from oodbench.results import load_rows

FACTORY = textwrap.dedent(
    """
    from torch import nn


    def make_net(num_classes=10):
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 13 * 13, 16), nn.ReLU(),
            nn.Linear(16, num_classes),
        )
    """
)
N_TRAIN, N_VAL_IN, N_VAL_OOD, N_TEST = 3500, 500, 500, 1000  # the embedded mnist suite


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fit_limit_model")
    (folder / "netdef.py").write_text(FACTORY)
    namespace: dict = {}
    exec(FACTORY, namespace)
    torch.manual_seed(0)
    torch.save(namespace["make_net"]().state_dict(), folder / "weights.pt")
    return folder / "weights.pt", f"{folder / 'netdef.py'}:make_net"


@pytest.fixture
def seen(monkeypatch):
    """Record how many images Mahalanobis is fitted on and ODIN is tuned on."""
    sizes: dict[str, tuple[int, ...]] = {}
    maha_fit, odin_fit = Mahalanobis.fit, ODIN.fit

    def maha_spy(self, model, *, train=None, **kwargs):
        sizes["mahalanobis"] = (len(train.x),)
        return maha_fit(self, model, train=train, **kwargs)

    def odin_spy(self, model, *, val_in=None, val_out=None, **kwargs):
        sizes["odin"] = (len(val_in), len(val_out))
        return odin_fit(self, model, val_in=val_in, val_out=val_out, **kwargs)

    monkeypatch.setattr(Mahalanobis, "fit", maha_spy)
    monkeypatch.setattr(ODIN, "fit", odin_spy)
    return sizes


def test_limit_caps_only_the_test_sets_and_fit_limit_the_fit_splits():
    data = load_suite("mnist", limit=40)
    assert len(data.test_in) == 40 and all(len(s) == 40 for s in data.test_out.values())
    assert (len(data.train), len(data.val_in), len(data.val_ood)) == (N_TRAIN, N_VAL_IN, N_VAL_OOD)
    capped, again = load_suite("mnist", fit_limit=30), load_suite("mnist", fit_limit=30)
    assert (len(capped.train), len(capped.val_in), len(capped.val_ood)) == (30, 30, 30)
    assert len(capped.test_in) == N_TEST
    # Stratified and seeded: every class keeps its share, the same subset every time.
    assert torch.bincount(capped.train.y, minlength=10).min() >= 2
    for part in ("train", "val_in", "val_ood"):
        assert torch.equal(getattr(capped, part).x, getattr(again, part).x)
    with pytest.raises(UserInputError, match="'fit_limit' parameter must be an integer >= 1"):
        load_suite("mnist", fit_limit=0)


def _run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_cli_limit_fits_on_the_full_splits_and_fit_limit_caps_them(weights, seen, tmp_path):
    path, factory = weights
    common = ["run", "--checkpoint", str(path), "--arch", factory, "-d", "mahalanobis", "-d", "odin",
              "--param", "odin.temperature=1000", "--limit", "50", "--plots", "none", "--quiet"]  # fmt: skip
    result = _run([*common, "--results-dir", str(tmp_path / "full")])
    assert result.exit_code == 0, result.output
    assert seen == {"mahalanobis": (N_TRAIN,), "odin": (N_VAL_IN, N_VAL_OOD)}
    rows = load_rows(tmp_path / "full")
    assert set(rows["n_in"]) == {50} and set(rows["n_out"]) == {50}
    assert set(rows["eval_limit"]) == {50} and rows["fit_limit"].isna().all()

    seen.clear()
    result = _run([*common, "--fit-limit", "120", "--results-dir", str(tmp_path / "capped")])
    assert result.exit_code == 0, result.output
    assert seen == {"mahalanobis": (120,), "odin": (120, 120)}
    rows = load_rows(tmp_path / "capped")
    assert set(rows["fit_limit"]) == {120} and set(rows["n_in"]) == {50}
    assert any("(120)" in t for t in rows["tuning"])  # ODIN's tuning says what it saw


def test_api_evaluate_takes_limit_and_fit_limit(weights, seen):
    path, factory = weights
    frame = oodbench.evaluate(path, arch=factory, detectors=["mahalanobis"], limit=50)
    assert seen["mahalanobis"] == (N_TRAIN,) and set(frame["n_in"]) == {50}
    frame = oodbench.evaluate(path, arch=factory, detectors=["mahalanobis"], limit=50, fit_limit=200)
    assert seen["mahalanobis"] == (200,) and set(frame["fit_limit"]) == {200}


def test_seeds_are_refused_with_a_checkpoint_even_one(weights):
    path, factory = weights
    args = ["run", "--checkpoint", str(path), "--arch", factory, "-d", "msp", "--limit", "20",
            "--plots", "none", "--quiet", "--seeds", "3"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    message = result.output.strip()
    assert result.exit_code == 2 and "\n" not in message and "drop --seeds" in message, message
