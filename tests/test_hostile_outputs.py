"""Detectors that return bad scores (issue 21 item 3): the runner checks every output BEFORE it
writes anything. NaN, inf, a 2-D array, one score short, None or complex values give one
UserInputError line naming the detector, the model and the data set, and no cache entry or
score file is written."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from oodbench.cli import cli
from oodbench.data import load_suite
from oodbench.data.convert import as_float
from oodbench.detectors.base import Detector, max_softmax
from oodbench.errors import UserInputError
from oodbench.runner import ModelUnderTest, evaluate


class Net(nn.Module):
    """A random 28x28 classifier with `features`/`head` (all oodbench needs)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU())
        self.head = nn.Linear(16, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def setup():
    data = load_suite("mnist", limit=30)
    model_ut = ModelUnderTest("external", Net().eval(), "ab" * 32, "mlp", "none", label="tiny-net")
    return data, model_ut


def _good(outputs) -> np.ndarray:
    return max_softmax(outputs.logits)


BAD = {
    "nan": (lambda o: _good(o) * np.nan, "30 of 30 scores are NaN or infinite"),
    "inf": (lambda o: np.where(np.arange(len(o.logits)) == 0, np.inf, _good(o)), "1 of 30 scores are NaN"),
    "two_d": (lambda o: _good(o)[:, None], r"shape \(30, 1\); they must be 1-D"),
    "one_short": (lambda o: _good(o)[:-1], "29 scores for 30 images"),
    "none": (lambda o: None, "returned None"),
    "complex": (lambda o: _good(o).astype(complex), "dtype complex128; they must be real numbers"),
    "strings": (lambda o: np.array(["a"] * len(o.logits)), "dtype <U1"),
}


def _detector(kind: str, uses: str) -> Detector:
    produce = BAD[kind][0]

    class Hostile(Detector):
        name = f"hostile_{kind}"

        def score_outputs(self, outputs):
            return produce(outputs)

    Hostile.uses = uses
    if uses == "input":  # scored from the model, whole set at once

        def score(self, model, x, *, device="cpu", batch_size=256):
            with torch.no_grad():
                logits = model(as_float(x))
            return produce(type("O", (), {"logits": logits})())

        Hostile.score = score
    return Hostile()


def _written(tmp_path):
    return sorted(p for p in tmp_path.rglob("*.npz"))


@pytest.mark.parametrize("uses", ["logits", "features", "input"])
@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_scores_are_refused_before_anything_is_written(kind, uses, setup, tmp_path):
    data, model_ut = setup
    detector = _detector(kind, uses)
    # A batch of 30: the feature path (scored batch by batch) sees the whole set too.
    with pytest.raises(UserInputError) as info:
        evaluate(model_ut, [detector], data, seed=0, device="cpu", results_dir=tmp_path / "r", batch_size=30)
    message = str(info.value)
    assert "\n" not in message
    assert f"'hostile_{kind}'" in message and "'tiny-net'" in message
    assert "'mnist_5k (ID test)'" in message  # the first set scored is named
    assert _written(tmp_path) == []  # no cache entry, no score file
    assert re.search(BAD[kind][1], message), message


def test_only_the_ood_set_is_bad_and_still_nothing_is_written(setup, tmp_path):
    data, model_ut = setup
    first_out = next(iter(data.test_out))

    class CountingBad(Detector):
        name = "bad_on_ood"

        def score_outputs(self, outputs):
            self.seen_ = getattr(self, "seen_", 0) + 1
            scores = _good(outputs)
            return scores if self.seen_ == 1 else scores * np.nan  # ID fine, first OOD set NaN

    with pytest.raises(UserInputError, match=f"data set '{first_out}'.*NaN"):
        evaluate(model_ut, [CountingBad()], data, seed=0, device="cpu", results_dir=tmp_path / "r")
    assert _written(tmp_path) == []  # the good ID scores were not cached either


def test_integer_scores_are_cast_and_accepted(setup, tmp_path):
    data, model_ut = setup

    class Ranks(Detector):
        name = "ranks"

        def score_outputs(self, outputs):
            return np.argsort(np.argsort(_good(outputs)))  # int64

    rows = evaluate(model_ut, [Ranks()], data, seed=0, device="cpu", results_dir=tmp_path / "r")
    assert len(rows) == len(data.test_out) and all(r.n_in == 30 for r in rows)


def test_cli_plugin_with_nan_scores_is_one_line_exit_2(tmp_path):
    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text(
        "import numpy as np\n"
        "from oodbench.detectors.base import Detector, max_softmax\n\n\n"
        "class NaNScores(Detector):\n"
        "    name = 'nan_scores'\n\n"
        "    def score_outputs(self, outputs):\n"
        "        return max_softmax(outputs.logits) * np.nan\n"
    )
    checkpoint = tmp_path / "net.pt"
    torch.save(Net().state_dict(), checkpoint)
    result = CliRunner().invoke(
        cli,
        [
            "run", "--checkpoint", str(checkpoint), "--arch", f"{__file__}:Net", "-d", f"{plugin}:NaNScores",
            "--limit", "20", "--results-dir", str(tmp_path / "r"), "--quiet", "--plots", "none",
        ],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "'nan_scores'" in lines[0] and "NaN" in lines[0], result.output
    assert _written(tmp_path / "r") == [] and _written(tmp_path / "cache") == []


class DotDotName(Detector):
    """A detector object given through the API with a name that is a path."""

    name = ".."
    uses = "logits"

    def score_outputs(self, outputs) -> np.ndarray:
        return _good(outputs)


class Failing(Detector):
    name = "failing"
    uses = "logits"

    def score_outputs(self, outputs) -> np.ndarray:
        raise ZeroDivisionError("boom")


def test_detector_objects_stay_inside_the_cache_and_fail_in_one_line(setup, tmp_path):
    data, model_ut = setup
    cache = tmp_path / "cache"
    evaluate(model_ut, [DotDotName()], data, seed=0, device="cpu", results_dir=None, cache_dir=cache)
    written = [p.relative_to(cache / "scores").parts for p in tmp_path.rglob("*.npz")]
    # scores/<checkpoint>/<detector folder>/<key>/<data>.npz: the '..' name did not climb out
    # of its model's folder (and "classification" holds the accuracy).
    lengths = sorted(len(parts) for parts in written)
    assert lengths == [3] + [4] * (1 + len(data.test_out))
    assert all(parts[0] == "ab" * 8 and ".." not in parts for parts in written)
    # A failing detector object: one line naming its file, method and exception.
    with pytest.raises(UserInputError, match=r"score_outputs\(\).*ZeroDivisionError: boom") as info:
        evaluate(model_ut, [Failing()], data, seed=0, device="cpu", results_dir=None, cache_dir=cache)
    assert "\n" not in str(info.value) and "test_hostile_outputs:Failing" in str(info.value)


def test_hyperparameters_must_be_finite():
    from oodbench.detectors import create_detector

    for value in (float("inf"), float("nan")):
        with pytest.raises(UserInputError, match="temperature"):
            create_detector("odin", temperature=value).validate()
