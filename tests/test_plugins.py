"""Detectors from outside oodbench: file and module specs, the decorator, entry points, --param
for them, instances in evaluate(), the README's plug-in through the CLI and the API, and a clear
line when pytorch-ood is missing."""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import oodbench
from oodbench.cli import cli
from oodbench.cli.options import parse_params as _parse_params
from oodbench.data import load_suite
from oodbench.detectors import DETECTORS, create_detector, plugins
from oodbench.detectors.base import Detector
from oodbench.detectors.odin import ODIN
from oodbench.errors import UserInputError
from oodbench.results import load_rows
from oodbench.training import train

README = Path(__file__).resolve().parents[1] / "README.md"
LIMIT = 40

PLUGIN = textwrap.dedent(
    '''
    import numpy as np

    from oodbench.detectors.base import Detector


    class NegEntropy(Detector):
        """Minus the softmax entropy; `scale` multiplies it (to test --param)."""

        uses = "logits"

        def __init__(self, *, scale: float = 1.0):
            self.scale = scale

        def params(self):
            return {"scale": self.scale}

        def score_outputs(self, outputs):
            p = outputs.logits.double().softmax(1)
            return self.scale * (p * p.clamp_min(1e-300).log()).sum(1).numpy()
    '''
)


def readme_plugin() -> str:
    """The first Python block of README.md's "Adding a detector" section, as written."""
    section = README.read_text(encoding="utf-8").split("## Adding a detector", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small_cnn trained 1 epoch on 300 embedded images (as in tests/test_runner.py)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "ce.pt"
    train("cross_entropy", load_suite("mnist", limit=300), "embedded", seed=0, device="cpu",
          checkpoint=path, progress=False, epochs=1)
    return path


@pytest.fixture
def plugin_file(tmp_path):
    path = tmp_path / "neg_entropy.py"
    path.write_text(PLUGIN)
    return path


def _run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _one_line_error(args) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message and "Traceback" not in message, message
    return message


# --- specs and --param ------------------------------------------------------------------------


def test_file_spec_loads_the_class_once_and_names_it(plugin_file):
    spec = f"{plugin_file}:NegEntropy"
    first, second = create_detector(spec, scale=2.0), create_detector(spec)
    assert type(first) is type(second) and first.name == "NegEntropy" and first.scale == 2.0
    # Editing the file gives a new module, so the score cache key changes with the code.
    module = type(first).__module__
    plugin_file.write_text(PLUGIN + "\n# edited\n")
    assert type(create_detector(spec)).__module__ != module


def test_module_spec(monkeypatch, plugin_file):
    monkeypatch.syspath_prepend(str(plugin_file.parent))
    detector = create_detector("neg_entropy:NegEntropy", scale=3)
    assert detector.scale == 3 and isinstance(detector, Detector)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope_missing.py:X", "does not exist"),
        ("no_such_module_xyz:X", "Cannot import 'no_such_module_xyz'"),
        ("json:JSONDecoder", "no Detector subclass 'JSONDecoder'"),
        ("mahalanobsi", "Did you mean: mahalanobis?"),
    ],
)
def test_bad_specs_are_one_line(spec, message):
    with pytest.raises(UserInputError, match=re.escape(message)):
        create_detector(spec)


def test_param_is_split_at_the_last_dot_before_equals():
    parsed = _parse_params(
        (
            "odin.temperature=1000",
            "pytorch-ood:ViM.d=64",
            "my/dir.v2/det.py:MyDet.k=5",
            "pkg.mod:Cls.name=a.b=c",
        )
    )
    assert parsed == {
        "odin": {"temperature": 1000},
        "pytorch-ood:ViM": {"d": 64},
        "my/dir.v2/det.py:MyDet": {"k": 5},
        "pkg.mod:Cls": {"name": "a.b=c"},
    }
    for bad in ("odin", "odin=3", "my.file.py:Cls=3", "odin.=1"):
        with pytest.raises(UserInputError, match="--param takes"):
            _parse_params((bad,))
    with pytest.raises(UserInputError, match="Did you mean: odin"):
        _parse_params(("odn.temperature=1",))


def test_cli_runs_a_file_plugin_with_param(checkpoint, plugin_file, tmp_path):
    spec = f"{plugin_file}:NegEntropy"
    results = tmp_path / "out"
    common = ["run", "--checkpoint", str(checkpoint), "--limit", str(LIMIT), "--quiet", "--plots", "none"]
    result = _run(
        [*common, "-d", spec, "-d", "msp", "--param", f"{spec}.scale=2", "--results-dir", str(results)]
    )
    assert result.exit_code == 0, result.output
    rows = load_rows(results / "rows.jsonl")
    assert set(rows["detector"]) == {"NegEntropy", "msp"} and len(rows) == 2 * 5
    plugin_rows = rows[rows["detector"] == "NegEntropy"]
    assert {json.loads(p)["scale"] for p in plugin_rows["detector_params"]} == {2}
    # A --param for a detector not being run, and a bad parameter name, are one line each.
    assert "not being run" in _one_line_error([*common, "-d", "msp", "--param", f"{spec}.scale=2"])
    assert "Bad parameters" in _one_line_error([*common, "-d", spec, "--param", f"{spec}.nope=2"])


# --- instances, the decorator, entry points ---------------------------------------------------


def test_evaluate_takes_instances_names_and_specs(checkpoint, plugin_file):
    spec = f"{plugin_file}:NegEntropy"
    plugin_cls = type(create_detector(spec))
    frame = oodbench.evaluate(
        checkpoint,
        detectors=[ODIN(temperature=1000, epsilon=0.0), "msp", plugin_cls(scale=0.5), spec],
        params={spec: {"scale": 4.0}},
        limit=LIMIT,
    )
    assert sorted(set(frame["detector"])) == ["NegEntropy", "msp", "odin"] and len(frame) == 4 * 5
    scales = sorted(json.loads(p)["scale"] for p in frame[frame.detector == "NegEntropy"]["detector_params"])
    assert scales == [0.5] * 5 + [4.0] * 5
    # A positive scale does not change the ranking, so both plug-in rows have the same AUROC.
    by_scale = frame[frame.detector == "NegEntropy"].groupby("detector_params")["auroc"].apply(list)
    assert by_scale.iloc[0] == pytest.approx(by_scale.iloc[1])
    odin = frame[frame.detector == "odin"]
    assert {json.loads(p)["temperature"] for p in odin["detector_params"]} == {1000}


def test_register_detector_decorator(monkeypatch, checkpoint):
    monkeypatch.setattr(DETECTORS, "_items", dict(DETECTORS._items))

    @oodbench.register_detector("neg_max_logit_test")
    class Flipped(Detector):
        uses = "logits"
        paper = "test"

        def score_outputs(self, outputs):
            return outputs.logits.double().max(1).values.numpy()

    entry = DETECTORS.get("neg_max_logit_test")
    assert (entry.source, entry.uses, entry.paper) == ("plug-in", "logits", "test")
    assert Flipped.name == "neg_max_logit_test"
    assert isinstance(create_detector("neg_max_logit_test"), Flipped)
    listing = _run(["list", "detectors"]).output
    assert re.search(r"neg_max_logit_test\s+plug-in\s+uses logits\s+test", listing)
    frame = oodbench.evaluate(checkpoint, detectors=["neg_max_logit_test"], limit=LIMIT)
    assert set(frame["detector"]) == {"neg_max_logit_test"}
    # The default detectors stay the built-in ones.
    from oodbench.api import detector_requests

    assert [r.name for r in detector_requests(None)] == [
        n for n, e in DETECTORS.items() if e.source == "built-in"
    ]
    with pytest.raises(ValueError, match="already registered"):
        oodbench.register_detector("msp")(type("Other", (Detector,), {}))


def test_entry_points_are_listed_without_import_and_loaded_when_used(
    monkeypatch, plugin_file, checkpoint, tmp_path
):
    monkeypatch.syspath_prepend(str(plugin_file.parent))
    point = importlib.metadata.EntryPoint("negent", "neg_entropy:NegEntropy", plugins.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points

    def fake(**kwargs):
        return [point] if kwargs.get("group") == plugins.ENTRY_POINT_GROUP else real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    monkeypatch.delitem(sys.modules, "neg_entropy", raising=False)
    listing = _run(["list", "detectors"]).output
    assert re.search(r"negent\s+plug-in\s+uses \?\s+entry point neg_entropy:NegEntropy", listing)
    assert "neg_entropy" not in sys.modules  # listed, not imported
    results = tmp_path / "out"
    result = _run(
        ["run", "--checkpoint", str(checkpoint), "-d", "negent", "--param", "negent.scale=2",
         "--limit", str(LIMIT), "--quiet", "--plots", "none", "--results-dir", str(results)]
    )
    assert result.exit_code == 0, result.output
    assert set(load_rows(results / "rows.jsonl")["detector"]) == {"NegEntropy"}
    assert "Did you mean: negent?" in _one_line_error(["run", "-d", "negnet"])


def test_an_entry_point_cannot_shadow_a_builtin(monkeypatch, plugin_file):
    point = importlib.metadata.EntryPoint("msp", "neg_entropy:NegEntropy", plugins.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points

    def fake(**kwargs):
        return [point] if kwargs.get("group") == plugins.ENTRY_POINT_GROUP else real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    message = _one_line_error(["run", "-d", "msp"])
    assert "entry point 'msp' (neg_entropy:NegEntropy" in message and "built-in detector" in message
    assert re.search(r"msp\s+plug-in\s+uses \?\s+entry point neg_entropy:NegEntropy: REFUSED",
                     _run(["list", "detectors"]).output)


# --- the README's plug-in ---------------------------------------------------------------------


def test_readme_plugin_runs_from_the_cli_and_the_api(checkpoint, tmp_path, monkeypatch):
    code = readme_plugin()
    assert 15 <= len(code.strip().splitlines()) <= 30
    path = tmp_path / "my_detector.py"
    path.write_text(code)
    monkeypatch.chdir(tmp_path)
    spec = "my_detector.py:CosineToMeans"
    result = _run(
        ["run", "--checkpoint", str(checkpoint), "-d", spec, "-d", "msp", "--limit", str(LIMIT),
         "--quiet", "--plots", "none", "--results-dir", "out"]
    )
    assert result.exit_code == 0, result.output
    rows = load_rows(tmp_path / "out" / "rows.jsonl")
    assert set(rows["detector"]) == {"cosine_means", "msp"}
    frame = oodbench.evaluate(checkpoint, detectors=[spec], limit=LIMIT)
    cli_rows = rows[rows.detector == "cosine_means"].sort_values("out_dataset")
    np.testing.assert_allclose(frame.sort_values("out_dataset")["auroc"], cli_rows["auroc"])
    assert frame["auroc"].mean() > 0.5  # it detects something on the embedded suite


# --- pytorch-ood missing ----------------------------------------------------------------------


def test_missing_pytorch_ood_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_ood", None)  # "import pytorch_ood" now fails
    monkeypatch.delitem(sys.modules, "oodbench.detectors.pytorch_ood_adapter", raising=False)
    with pytest.raises(UserInputError, match=r"needs pytorch-ood: pip install -e \"\.\[pytorch-ood\]\""):
        create_detector("pytorch-ood:ViM")
    message = _one_line_error(["run", "-d", "pytorch-ood:ViM", "--limit", "10"])
    assert "pip install" in message
    monkeypatch.setattr(plugins, "pytorch_ood_installed", lambda: False)
    listing = _run(["list", "detectors"]).output
    assert "pytorch-ood:" not in listing.split("pytorch-ood's detectors")[0]
    assert "not installed" in listing



def test_cli_runs_pytorch_ood_detectors_with_params(checkpoint, tmp_path):
    pytest.importorskip("pytorch_ood")
    results = tmp_path / "out"
    result = _run(
        ["run", "--checkpoint", str(checkpoint), "-d", "pytorch-ood:ViM", "--param", "pytorch-ood:ViM.d=16",
         "-d", "pytorch-ood:EnergyBased", "-d", "energy", "--limit", str(LIMIT), "--quiet", "--plots", "none",
         "--results-dir", str(results)]
    )
    assert result.exit_code == 0, result.output
    rows = load_rows(results / "rows.jsonl")
    assert set(rows["detector"]) == {"pytorch-ood:ViM", "pytorch-ood:EnergyBased", "energy"}
    assert {json.loads(p)["d"] for p in rows[rows.detector == "pytorch-ood:ViM"]["detector_params"]} == {16}
    # pytorch-ood's energy, negated, is oodbench's energy: the same AUROC on every OOD set.
    ours = rows[rows.detector == "energy"].sort_values("out_dataset")["auroc"].to_numpy()
    theirs = rows[rows.detector == "pytorch-ood:EnergyBased"].sort_values("out_dataset")["auroc"].to_numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    assert "--param pytorch-ood:ViM.d=VALUE" in _one_line_error(
        ["run", "--checkpoint", str(checkpoint), "-d", "pytorch-ood:ViM", "--limit", "10"]
    )
