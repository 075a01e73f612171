"""Channel adaptation (issue 17, "Bad files"): a 3-channel model gets grayscale suites as RGB
(the channel repeated), a 1-channel model gets RGB suites as grey (ITU-R 601-2 luma, as PIL's
convert("L")); read from the model or set with --channels, recorded in each row, in the score
cache key."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import oodbench
from oodbench.cli import cli
from oodbench.errors import UserInputError
from oodbench.models.evalmodel import EvalModel
from oodbench.models.loading import adapt_channels, first_conv_channels, load_model, wrap_module
from oodbench.models.preprocess import Preprocess
from oodbench.results import load_rows, load_scores

LIMIT = 30  # images per evaluated set: enough for a row, fast on 2 cores
QUIET = ["--limit", str(LIMIT), "--fit-limit", str(LIMIT), "--plots", "none", "--quiet"]
GREY_TO_RGB = "1->3 (repeated; from the model's first conv)"


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _one_line_error(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    message = result.output.strip()
    assert result.exit_code == 2 and "\n" not in message and "Traceback" not in message, result.output
    return message


class Repeat(nn.Module):
    """The reference grey -> RGB: written out, not oodbench's conversion."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x, x], dim=1)


class Luma(nn.Module):
    """The reference RGB -> grey: ITU-R 601-2, L = R*299/1000 + G*587/1000 + B*114/1000."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114


def _tiny_net(in_channels: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        nn.Linear(64, 10),
    ).eval()  # fmt: skip


# ------------------------------------------------------------------------------ the conversions


def test_rgb_to_grey_equals_pil_convert_l_and_grey_to_rgb_repeats():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    rgb[0, :8] = [
        [0, 0, 0],
        [255, 255, 255],
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [1, 2, 3],
        [128] * 3,
        [7, 250, 9],
    ]
    pil_grey = np.asarray(Image.fromarray(rgb, "RGB").convert("L"), dtype=np.float64)
    pre = Preprocess()
    pre.set_channels(3, 1, "--channels")
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].double() / 255
    ours = pre(x)[0, 0].numpy() * 255
    # PIL rounds to uint8 with fixed-point weights (19595, 38470, 7471) / 65536: at most half a
    # grey level apart, and equal once rounded except where the exact value is near x.5.
    assert np.abs(ours - pil_grey).max() <= 0.5 + 0.01
    assert np.mean(np.round(ours) == pil_grey) > 0.99
    np.testing.assert_allclose(ours, rgb @ np.array([0.299, 0.587, 0.114]), atol=1e-9)
    assert pre.describe()["channels"] == "3->1"
    assert pre.channels_note == "3->1 (ITU-R 601-2 luma; --channels)"

    grey = rgb[..., 0]
    pil_rgb = np.asarray(Image.fromarray(grey, "L").convert("RGB"))
    pre.set_channels(1, 3, "--channels")
    ours_rgb = pre(torch.from_numpy(grey)[None, None].float() / 255)[0].permute(1, 2, 0).numpy() * 255
    np.testing.assert_array_equal(np.round(ours_rgb).astype(np.uint8), pil_rgb)
    with pytest.raises(UserInputError, match="converts 1-channel images to 3, but these have 3"):
        pre(torch.zeros(1, 3, 4, 4))
    with pytest.raises(UserInputError, match="only grayscale"):
        pre.set_channels(4, 3, "--channels")


def test_detection_first_conv_torchscript_and_a_trial_pass(tmp_path):
    net = _tiny_net(3)
    assert first_conv_channels(net) == 3 and first_conv_channels(nn.Linear(2, 2)) is None
    torch.jit.save(torch.jit.trace(net, torch.rand(2, 3, 28, 28)), str(tmp_path / "ts.pt"))
    program = torch.export.export(
        net, (torch.rand(2, 3, 28, 28),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, str(tmp_path / "ex.pt2"))
    notes = {}
    for name in ("ts.pt", "ex.pt2"):
        loaded = load_model(tmp_path / name)
        notes[name] = adapt_channels(loaded, in_shape=(1, 28, 28))
    assert notes == {"ts.pt": GREY_TO_RGB, "ex.pt2": "1->3 (repeated; from a trial pass)"}
    # A model that takes the suite's channels is left alone, whatever it could also take.
    same = wrap_module(_tiny_net(1))
    assert adapt_channels(same, in_shape=(1, 28, 28)) == "" and same.module.preprocess.channels is None


# ------------------------------------------------------------------------- through the CLI / API


def test_torchvision_resnet18_on_the_mnist_suite_through_the_cli(tmp_path):
    """The issue's case: a torchvision resnet18 (3 channels) on the 1x28x28 mnist suite."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    torch.save(net.state_dict(), tmp_path / "r18.pt")
    results = tmp_path / "runs"
    common = ["--checkpoint", str(tmp_path / "r18.pt"), "--arch", "torchvision:resnet18", "-d", "msp"]
    result = _run("run", *common, *QUIET, "--results-dir", str(results))
    assert result.exit_code == 0, result.output
    rows = load_rows(results)
    assert len(rows) == 5 and set(rows["input_channels"]) == {GREY_TO_RGB}
    # Against a reference written out: the same network behind an explicit repeat of the channel.
    reference = oodbench.evaluate(
        nn.Sequential(Repeat(), net), detectors=["msp"], limit=LIMIT, fit_limit=LIMIT, channels=1,
        results_dir=tmp_path / "ref",
    )  # fmt: skip
    assert set(reference["input_channels"]) == {""}
    ref_rows = load_rows(tmp_path / "ref")
    for ours, ref in zip(rows.itertuples(), ref_rows.itertuples(), strict=True):
        a, b = load_scores(results / ours.scores_file), load_scores(tmp_path / "ref" / ref.scores_file)
        for name in ("scores_in", "scores_out"):
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6)
    # --channels 3 says the same as the detection: the same scores, the option recorded.
    result = _run("run", *common, "--channels", "3", *QUIET, "--results-dir", str(tmp_path / "opt"))
    assert result.exit_code == 0, result.output
    forced = load_rows(tmp_path / "opt")
    assert set(forced["input_channels"]) == {"1->3 (repeated; --channels)"}
    assert list(forced["scores_sha256"]) == list(rows["scores_sha256"])
    # --channels 1 says the model takes the suite's images as they are: its trial pass fails and
    # the message names the fix.
    message = _one_line_error("run", *common, "--channels", "1", *QUIET, "--results-dir", str(tmp_path / "x"))
    assert "takes 3-channel images" in message and "have 1" in message and "--channels 3" in message


def test_a_one_channel_model_on_a_three_channel_suite(monkeypatch):
    from test_data_formats import tiny_svhn_suite

    tiny_svhn_suite(monkeypatch)
    net = _tiny_net(1)
    frame = oodbench.evaluate(net, suite="tiny-svhn", detectors=["msp", "energy"])
    assert set(frame["input_channels"]) == {"3->1 (ITU-R 601-2 luma; from the model's first conv)"}
    reference = oodbench.evaluate(
        nn.Sequential(Luma(), net), suite="tiny-svhn", detectors=["msp", "energy"], channels=3
    )
    assert set(reference["input_channels"]) == {""}
    np.testing.assert_allclose(frame["auroc"], reference["auroc"], atol=1e-9)
    np.testing.assert_allclose(frame["classification_accuracy"], reference["classification_accuracy"])


FACTORY = textwrap.dedent(
    """
    from torch import nn


    class Misleading(nn.Module):
        # Its first registered conv (an unused side branch) takes 3 channels; its body takes 1.
        def __init__(self, num_classes=10):
            super().__init__()
            self.side = nn.Conv2d(3, 2, 1)
            self.body = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten())
            self.fc = nn.Linear(4 * 13 * 13, num_classes)

        def forward(self, x):
            return self.fc(self.body(x))


    def make_net(num_classes=10):
        return Misleading(num_classes)


    def make_sized(num_classes=10, in_shape=None):
        # Built for the input shape it is given (as timm: and oodbench's architectures are).
        return nn.Sequential(nn.Conv2d(in_shape[0], 4, 3, stride=2), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 13 * 13, num_classes))
    """
)


def test_the_option_overrides_detection(tmp_path):
    (tmp_path / "netdef.py").write_text(FACTORY)
    namespace: dict = {}
    exec(FACTORY, namespace)
    torch.manual_seed(0)
    torch.save(namespace["make_net"]().state_dict(), tmp_path / "w.pt")
    common = ["run", "--checkpoint", str(tmp_path / "w.pt"), "--arch", f"{tmp_path / 'netdef.py'}:make_net"]
    # Detection reads the side branch's 3 channels; the converted images fail the trial pass.
    message = _one_line_error(*common, "-d", "msp", *QUIET)
    assert (
        "takes 1-channel images" in message
        and "converted 1->3 (repeated; from the model's first conv)" in message
    )
    assert "--channels 1" in message
    result = _run(*common, "--channels", "1", "-d", "msp", *QUIET, "--results-dir", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert set(load_rows(tmp_path / "r")["input_channels"]) == {""}
    # Weights of a factory built for the input shape: built for the weights' 3 channels.
    torch.manual_seed(0)
    torch.save(namespace["make_sized"](in_shape=(3, 28, 28)).state_dict(), tmp_path / "rgb.pt")
    loaded = load_model(
        tmp_path / "rgb.pt", arch=f"{tmp_path / 'netdef.py'}:make_sized", in_shape=(1, 28, 28)
    )
    assert first_conv_channels(loaded.module.net) == 3
    assert adapt_channels(loaded, in_shape=(1, 28, 28)) == GREY_TO_RGB
    with pytest.raises(UserInputError, match="--channels takes 1 or 3"):
        load_model(tmp_path / "rgb.pt", arch=f"{tmp_path / 'netdef.py'}:make_sized", channels=2)


class Weighted(nn.Module):
    """Takes any channel count: channel c is weighted by c + 1, so 1 and 3 repeated channels differ."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _tiny_net(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.arange(1, x.shape[1] + 1, dtype=x.dtype).view(1, -1, 1, 1)
        return self.net((x * weights).sum(dim=1, keepdim=True))


def test_the_score_cache_never_reuses_scores_of_another_conversion(tmp_path):
    cache = tmp_path / "cache"
    as_is = oodbench.evaluate(Weighted(), detectors=["msp"], limit=LIMIT, cache_dir=cache)
    repeated = oodbench.evaluate(Weighted(), detectors=["msp"], limit=LIMIT, cache_dir=cache, channels=3)
    again = oodbench.evaluate(Weighted(), detectors=["msp"], limit=LIMIT, cache_dir=cache, channels=3)
    assert set(as_is["input_channels"]) == {""} and set(repeated["input_channels"]) == {
        "1->3 (repeated; --channels)"
    }
    assert not np.allclose(as_is["auroc"], repeated["auroc"])  # a reused entry would give as_is's
    np.testing.assert_array_equal(again["auroc"], repeated["auroc"])
    keys = {p.parent.name for p in cache.rglob("msp-*/*/*.npz")}
    assert len(keys) == 2 and len(list(cache.rglob("classification/*.npz"))) == 2  # one per conversion
    # The key's input-pipeline part: unchanged without a conversion (older entries stay valid).
    plain = EvalModel(nn.Identity()).preprocess.describe()
    assert "channels" not in plain and json.dumps(plain) == json.dumps(
        {"resize": None, "mean": None, "std": None}
    )
