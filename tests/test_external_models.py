"""Users' own models, through the CLI and the Python API: every checkpoint format, the
preprocessing wrapper, features by layer, and one clear line for every bad file."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import oodbench
from oodbench.cli import cli
from oodbench.errors import UserInputError
from oodbench.models.evalmodel import EvalModel
from oodbench.models.loading import load_model
from oodbench.models.preprocess import Preprocess, parse_normalize
from oodbench.results import load_rows

FACTORY = textwrap.dedent(
    """
    from torch import nn


    def make_net(num_classes=10):
        # A tiny CNN for 1x28x28 inputs; "body.3" is its hidden fully connected layer.
        return nn.Sequential(
            nn.Sequential(
                nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 13 * 13, 16)
            ),
            nn.ReLU(),
            nn.Linear(16, num_classes),
        )
    """
)

LIMIT = 60  # images per split: enough for the metrics, fast on 2 cores


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """The same random weights as a factory + state_dict, .safetensors, TorchScript and torch.export."""
    folder = tmp_path_factory.mktemp("user_model")
    (folder / "netdef.py").write_text(FACTORY)
    namespace: dict = {}
    exec(FACTORY, namespace)
    torch.manual_seed(0)
    net = namespace["make_net"]().eval()
    torch.save(net.state_dict(), folder / "weights.pt")
    from safetensors.torch import save_file

    save_file(net.state_dict(), str(folder / "weights.safetensors"))
    torch.jit.save(torch.jit.trace(net, torch.rand(2, 1, 28, 28)), str(folder / "scripted.pt"))
    batch = {0: torch.export.Dim("batch")}
    program = torch.export.export(net, (torch.rand(2, 1, 28, 28),), dynamic_shapes=(batch,))
    torch.export.save(program, str(folder / "exported.pt2"))
    return folder, net


def _run(args, **kwargs):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kwargs)


def test_every_format_gives_the_same_scores_through_the_api(user_files, tmp_path):
    folder, net = user_files
    factory = f"{folder / 'netdef.py'}:make_net"
    frames = {
        "module": oodbench.evaluate(net, detectors=["msp", "energy"], limit=LIMIT, label="mine"),
        "state_dict": oodbench.evaluate(
            folder / "weights.pt", arch=factory, detectors=["msp", "energy"], limit=LIMIT
        ),
        "safetensors": oodbench.evaluate(
            folder / "weights.safetensors", arch=factory, detectors=["msp", "energy"], limit=LIMIT
        ),
        "torchscript": oodbench.evaluate(folder / "scripted.pt", detectors=["msp", "energy"], limit=LIMIT),
        "torch.export": oodbench.evaluate(folder / "exported.pt2", detectors=["msp", "energy"], limit=LIMIT),
    }
    reference = frames["module"]
    assert len(reference) == 2 * 5  # two detectors x the five OOD sets of the mnist suite
    assert set(reference["model_source"]) == {"external"}
    for name, frame in frames.items():
        assert list(frame.columns) == list(reference.columns), name
        np.testing.assert_allclose(frame["auroc"], reference["auroc"], atol=1e-6, err_msg=name)
    # Files are hashed and labelled by their stem; the module by its weights and the given label.
    assert frames["state_dict"]["model_label"].iloc[0] == "weights"
    assert frames["torchscript"]["model_label"].iloc[0] == "scripted"
    assert reference["model_label"].iloc[0] == "mine"
    assert (
        frames["state_dict"]["checkpoint_sha256"].iloc[0]
        != frames["safetensors"]["checkpoint_sha256"].iloc[0]
    )


def test_evaluate_writes_files_only_with_results_dir(user_files, tmp_path, monkeypatch):
    folder, net = user_files
    monkeypatch.chdir(tmp_path)
    oodbench.evaluate(net, detectors=["msp"], limit=LIMIT)
    assert not any(tmp_path.rglob("*.jsonl")) and not any(tmp_path.rglob("*.npz"))
    assert not (Path(tmp_path) / "cache").exists()  # no score cache unless cache_dir is given
    frame = oodbench.evaluate(net, detectors=["msp"], limit=LIMIT, results_dir=tmp_path / "out")
    rows = load_rows(tmp_path / "out")
    assert len(rows) == len(frame) == 5
    assert all((tmp_path / "out" / f).is_file() for f in rows["scores_file"])


def test_cli_factory_state_dict_and_torchscript_and_export(user_files, tmp_path):
    folder, _ = user_files
    factory = f"{folder / 'netdef.py'}:make_net"
    results = tmp_path / "runs"
    common = ["-d", "msp", "--limit", str(LIMIT), "--plots", "none", "--quiet", "--results-dir", str(results)]
    for extra in (
        ["--checkpoint", str(folder / "weights.pt"), "--arch", factory],
        ["--checkpoint", str(folder / "weights.safetensors"), "--arch", factory, "--label", "st"],
        ["--checkpoint", str(folder / "scripted.pt")],
        ["--checkpoint", str(folder / "exported.pt2")],
    ):
        result = _run(["run", *extra, *common])
        assert result.exit_code == 0, result.output
    rows = load_rows(results)
    assert sorted(set(rows["model_label"])) == ["exported", "scripted", "st", "weights"]
    assert set(rows["model_source"]) == {"external"}
    # Four different files -> four hashes; the report never merges them into one cell.
    assert rows.groupby("model_label")["checkpoint_sha256"].nunique().eq(1).all()
    assert rows["checkpoint_sha256"].nunique() == 4
    np.testing.assert_allclose(
        rows[rows.model_label == "weights"]["auroc"].to_numpy(),
        rows[rows.model_label == "exported"]["auroc"].to_numpy(),
        atol=1e-6,
    )


def test_mahalanobis_on_a_named_layer(user_files):
    folder, net = user_files
    by_layer = oodbench.evaluate(net, detectors=["mahalanobis"], features="0.3", limit=LIMIT)
    default = oodbench.evaluate(net, detectors=["mahalanobis"], limit=LIMIT)
    assert json.loads(by_layer["detector_params"].iloc[0])["layer"] == "layer 0.3"
    assert json.loads(default["detector_params"].iloc[0])["layer"] == "input of 2"  # last nn.Linear
    assert not np.allclose(by_layer["auroc"], default["auroc"])  # a different feature space
    result = _run(
        [
            "run",
            "--checkpoint",
            str(folder / "weights.pt"),
            "--arch",
            f"{folder / 'netdef.py'}:make_net",
            "--features",
            "0.3",
            "-d",
            "mahalanobis",
            "--limit",
            str(LIMIT),
            "--plots",
            "none",
            "--quiet",
        ]
    )
    assert result.exit_code == 0, result.output


def test_feature_of_a_layer_is_pooled_and_flattened():
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    x = torch.rand(5, 1, 4, 4)
    feats, logits = EvalModel(net, features="0").features_and_logits(x)
    assert torch.allclose(feats, net[0](x).mean(dim=(2, 3)))
    assert torch.allclose(logits, net(x))
    feats, _ = EvalModel(net).features_and_logits(x)  # default: the input of the last Linear
    assert feats.shape == (5, 48)
    with pytest.raises(UserInputError, match="no layer 'nope'"):
        EvalModel(net, features="nope")


def test_features_are_computed_only_when_a_feature_detector_runs(user_files, monkeypatch):
    _, net = user_files
    calls = []
    original = EvalModel.features_and_logits
    monkeypatch.setattr(
        EvalModel, "features_and_logits", lambda self, x: calls.append(1) or original(self, x)
    )
    oodbench.evaluate(net, detectors=["msp", "energy", "max_logit"], limit=LIMIT)
    assert calls == []
    oodbench.evaluate(net, detectors=["msp", "mahalanobis"], limit=LIMIT)
    assert calls


def test_normalize_and_resize_run_inside_the_model():
    mean, std = parse_normalize("0.5/0.25")
    pre = Preprocess(mean=mean, std=std, resize=8)
    x = torch.rand(2, 1, 4, 4)
    out = pre(x)
    assert out.shape == (2, 1, 8, 8)
    assert torch.allclose(
        out, (torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear") - 0.5) / 0.25
    )
    assert parse_normalize("imagenet")[0] == (0.485, 0.456, 0.406)
    for bad in ("nope", "0.5,0.5/0.25", "0.5/0"):
        with pytest.raises(UserInputError, match="--normalize takes"):
            parse_normalize(bad)


def test_odin_step_is_in_pixel_units_like_pytorch_ood_with_norm_std():
    """oodbench's ODIN on [0, 1] images through a normalising wrapper equals pytorch-ood's ODIN on
    normalised images with norm_std (its eps is in pixel units too)."""
    pytorch_ood = pytest.importorskip("pytorch_ood.detector")
    from oodbench.detectors.odin import ODIN

    torch.manual_seed(0)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    wrapped = EvalModel(net, preprocess=Preprocess(mean=mean, std=std))
    x = torch.rand(16, 3, 8, 8)
    ours = ODIN(temperature=10, epsilon=0.002).score(wrapped, x)
    normalised = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    theirs = -pytorch_ood.ODIN(net, temperature=10, eps=0.002, norm_std=list(std)).predict(normalised)
    np.testing.assert_allclose(ours, theirs.double().numpy(), rtol=1e-5, atol=1e-6)
    # The old behaviour (sign divided by std on pixel inputs) is refused, not silently wrong.
    with pytest.raises(UserInputError, match="--normalize"):
        ODIN(temperature=10, epsilon=0.002, input_std=std).validate()


def test_torchvision_resnet18_on_a_3x32x32_suite(tmp_path, monkeypatch):
    """torchvision:resnet18 (random weights) on a tiny SVHN suite written in the real formats."""
    import torchvision
    from test_data_formats import tiny_svhn_suite

    tiny_svhn_suite(monkeypatch)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    torch.save(net.state_dict(), tmp_path / "resnet18.pt")

    frame = oodbench.evaluate(
        tmp_path / "resnet18.pt",
        suite="tiny-svhn",
        arch="torchvision:resnet18",
        preprocess="svhn",
        detectors=["msp", "mahalanobis"],
    )
    assert len(frame) == 2 * 4 and set(frame["model_arch"]) == {"torchvision:resnet18"}
    assert (
        json.loads(frame[frame.detector == "mahalanobis"]["detector_params"].iloc[0])["layer"]
        == "input of fc"
    )
    result = _run(
        [
            "run",
            "--in",
            "tiny-svhn",
            "--checkpoint",
            str(tmp_path / "resnet18.pt"),
            "--arch",
            "torchvision:resnet18",
            "--normalize",
            "svhn",
            "--resize",
            "40",
            "-d",
            "msp",
            "--plots",
            "none",
            "--quiet",
        ]
    )
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------------- bad files, one line


def _one_line_error(args) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert "Traceback" not in message and "weights_only=False" not in message
    return message


def test_bad_files_get_one_line_naming_the_fix(user_files, tmp_path):
    folder, net = user_files
    factory = f"{folder / 'netdef.py'}:make_net"
    torch.save(net, tmp_path / "whole.pt")  # a pickled whole module
    assert "never unpickles code" in _one_line_error(["run", "--checkpoint", str(tmp_path / "whole.pt")])
    message = _one_line_error(["run", "--checkpoint", str(folder / "weights.pt")])
    assert "--arch" in message and "state_dict" in message
    # Class count: weights with 7 classes on the 10-class mnist suite.
    namespace: dict = {}
    exec(FACTORY, namespace)
    torch.save(namespace["make_net"](num_classes=7).state_dict(), tmp_path / "seven.pt")
    message = _one_line_error(["run", "--checkpoint", str(tmp_path / "seven.pt"), "--arch", factory])
    assert "7 classes" in message and "10" in message
    # Input shape: the factory's conv expects 1 channel; a 3-channel normalisation is refused, and
    # a model for other input sizes fails its trial pass with a hint.
    message = _one_line_error(
        ["run", "--checkpoint", str(folder / "weights.pt"), "--arch", factory, "--resize", "40"]
    )
    assert "cannot take this suite's 1x28x28 images" in message and "--resize" in message
    # Missing / unexpected keys.
    state = net.state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["2.bias"]
    torch.save(state, tmp_path / "keys.pt")
    message = _one_line_error(["run", "--checkpoint", str(tmp_path / "keys.pt"), "--arch", factory])
    assert "missing keys 2.bias" in message and "unexpected keys extra.weight" in message
    # Garbage, a missing file, a bad architecture name, and --arch on a self-contained file.
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    assert "not a checkpoint oodbench can read" in _one_line_error(
        ["run", "--checkpoint", str(tmp_path / "garbage.pt")]
    )
    assert "does not exist" in _one_line_error(["run", "--checkpoint", str(tmp_path / "nope.pt")])
    assert "Did you mean" in _one_line_error(
        ["run", "--checkpoint", str(folder / "weights.pt"), "--arch", "vgg31"]
    )
    assert "drop --arch" in _one_line_error(
        ["run", "--checkpoint", str(folder / "scripted.pt"), "--arch", factory]
    )
    assert "--seeds" in _one_line_error(
        ["run", "--checkpoint", str(folder / "scripted.pt"), "--seeds", "0,1"]
    )


def test_api_refuses_non_models():
    with pytest.raises(UserInputError, match="nn.Module"):
        oodbench.evaluate(42, limit=LIMIT)
    with pytest.raises(UserInputError, match="preprocess"):
        oodbench.evaluate(nn.Linear(2, 2), preprocess=3, limit=LIMIT)


def test_load_model_reads_the_class_count_from_the_weights(user_files):
    folder, _ = user_files
    loaded = load_model(folder / "weights.pt", f"{folder / 'netdef.py'}:make_net")
    assert loaded.format == "state_dict" and loaded.source == "external"
    assert loaded.module(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_timm_architecture_uses_forward_features(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    net = timm.create_model("resnet10t", pretrained=False, num_classes=10, in_chans=1)
    torch.save(net.state_dict(), tmp_path / "r10t.pt")
    frame = oodbench.evaluate(
        tmp_path / "r10t.pt", arch="timm:resnet10t", detectors=["mahalanobis"], limit=LIMIT
    )
    assert json.loads(frame["detector_params"].iloc[0])["layer"] == "forward_features"
    # The features are timm's pooled pre-logits: the head's input.
    wrapped = EvalModel(net.eval())
    x = torch.rand(3, 1, 28, 28)
    feats, logits = wrapped.features_and_logits(x)
    assert torch.allclose(logits, net(x), atol=1e-5)
    assert torch.allclose(net.get_classifier()(feats), logits, atol=1e-5)
