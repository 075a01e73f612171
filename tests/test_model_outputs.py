"""Users' models whose outputs are not one logits tensor, fixed-batch exports, uint8 sets and
channel mismatches (issues 16 and 21.3)."""

from __future__ import annotations

import dataclasses
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import oodbench
from oodbench.cli import cli
from oodbench.detectors.base import Detector
from oodbench.errors import UserInputError
from oodbench.models.loading import load_model
from oodbench.results import load_rows, load_scores

LIMIT = 50
FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn


    class TwoHeads(nn.Module):
        # Returns (logits, 2 * logits): two tensors of shape (N, classes), so oodbench cannot guess.
        def __init__(self, num_classes=10):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten())
            self.fc = nn.Linear(4 * 13 * 13, num_classes)

        def forward(self, x):
            logits = self.fc(self.body(x))
            return logits, 2 * logits


    def make_net(num_classes=10):
        return TwoHeads(num_classes)


    def make_rgb_net(num_classes=10):
        # For 3x28x28 images: the wrong channel count for the mnist suite.
        layers = [nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(676, num_classes)]
        return nn.Sequential(*layers)
    """
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 13 * 13, 16), nn.ReLU(),
        nn.Linear(16, 10),
    ).eval()  # fmt: skip


def _scores(results) -> dict[tuple[str, str], np.ndarray]:
    rows = load_rows(results)
    return {
        (r.detector, r.out_dataset): load_scores(results / r.scores_file)["scores_out"]
        for r in rows.itertuples()
    } | {(r.detector, "in"): load_scores(results / r.scores_file)["scores_in"] for r in rows.itertuples()}


def _assert_same_scores(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=str(key))


# ------------------------------------------------------------------------- fixed-batch exports

DETECTORS = ["msp", "energy", "odin"]
PARAMS = {"odin": {"temperature": 1000, "epsilon": 0.002}}  # the input gradient runs through the padding


def test_export_with_a_fixed_batch_is_run_in_padded_batches(tmp_path):
    net = _net()
    program = torch.export.export(net, (torch.rand(4, 1, 28, 28),))  # batch size fixed at 4
    torch.export.save(program, str(tmp_path / "fixed.pt2"))
    loaded = load_model(tmp_path / "fixed.pt2")
    assert loaded.module.fixed_batch == 4
    x = torch.rand(10, 1, 28, 28)  # 4 + 4 + 2 padded to 4
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), net(x))
    common = dict(detectors=DETECTORS, params=PARAMS, limit=LIMIT, batch_size=64)
    oodbench.evaluate(tmp_path / "fixed.pt2", results_dir=tmp_path / "exported", **common)
    oodbench.evaluate(net, results_dir=tmp_path / "eager", **common)
    _assert_same_scores(_scores(tmp_path / "exported"), _scores(tmp_path / "eager"))


def test_cli_runs_a_fixed_batch_export(tmp_path):
    torch.export.save(torch.export.export(_net(), (torch.rand(3, 1, 28, 28),)), str(tmp_path / "f.pt2"))
    args = ["run", "--checkpoint", str(tmp_path / "f.pt2"), "-d", "msp", "--limit", "20", "--plots", "none",
            "--quiet", "--results-dir", str(tmp_path / "runs")]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert set(load_rows(tmp_path / "runs")["n_in"]) == {20}


# ----------------------------------------------------------------- tuple / dict / dataclass outputs


class TupleOut(nn.Module):
    """(logits, features): one (N, 10) tensor beside a (N, 16) one -> the logits are unambiguous."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        feats = self.net[:5](x)
        return self.net[5](feats), feats


class DictOut(TupleOut):
    def forward(self, x):
        logits, feats = super().forward(x)
        return {"scaled": logits / 2, "logits": logits, "features": feats}


@dataclasses.dataclass
class Output:
    loss: torch.Tensor | None
    logits: torch.Tensor


class DataclassOut(TupleOut):
    def forward(self, x):
        return Output(loss=None, logits=super().forward(x)[0])


def test_tuple_dict_and_dataclass_outputs(tmp_path):
    common = dict(detectors=["msp", "energy", "mahalanobis"], limit=LIMIT)
    oodbench.evaluate(_net(), results_dir=tmp_path / "plain", **common)
    reference = _scores(tmp_path / "plain")
    oodbench.evaluate(TupleOut(_net()), results_dir=tmp_path / "tuple", **common)
    _assert_same_scores(_scores(tmp_path / "tuple"), reference)
    oodbench.evaluate(DataclassOut(_net()), results_dir=tmp_path / "dataclass", **common)
    _assert_same_scores(_scores(tmp_path / "dataclass"), reference)
    # Two (N, 10) tensors: refused, naming the elements and the option; named, accepted.
    with pytest.raises(UserInputError, match=r"scaled: float32 3x10, logits: float32 3x10.*--logits-key"):
        oodbench.evaluate(DictOut(_net()), **common)
    oodbench.evaluate(DictOut(_net()), logits="logits", results_dir=tmp_path / "dict", **common)
    _assert_same_scores(_scores(tmp_path / "dict"), reference)
    with pytest.raises(UserInputError, match="--logits-key nope names no tensor"):
        oodbench.evaluate(DictOut(_net()), logits="nope", **common)


def test_cli_logits_key_by_index(tmp_path):
    (tmp_path / "netdef.py").write_text(FACTORY)
    namespace: dict = {}
    exec(FACTORY, namespace)
    torch.manual_seed(0)
    torch.save(namespace["make_net"]().state_dict(), tmp_path / "two.pt")
    args = ["run", "--checkpoint", str(tmp_path / "two.pt"), "--arch", f"{tmp_path / 'netdef.py'}:make_net",
            "-d", "msp", "--limit", "20", "--plots", "none", "--quiet"]  # fmt: skip
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 2 and "--logits-key" in refused.output, refused.output
    assert "\n" not in refused.output.strip()
    by_index = args + ["--logits-key", "1", "--results-dir", str(tmp_path / "a")]
    assert CliRunner().invoke(cli, by_index).exit_code == 0
    first = args + ["--logits-key", "0", "--results-dir", str(tmp_path / "b")]
    assert CliRunner().invoke(cli, first).exit_code == 0
    # Different elements, different scores: the score cache tells them apart.
    auroc = [load_rows(tmp_path / d)["auroc"].to_numpy() for d in ("a", "b")]
    assert not np.allclose(auroc[0], auroc[1])


# ----------------------------------------------------------------------- uint8 sets, channels


class InputGradient(Detector):
    """A plug-in scoring by the input gradient, as a user would write it: records what it got."""

    name = "input_gradient"
    uses = "input"
    seen: list = []

    def fit(self, model, *, val_in=None, val_out=None, **_):
        InputGradient.seen.append(("fit", val_in.dtype, float(val_in.max())))
        return self

    def score(self, model, x, *, device="cpu", batch_size=256):
        InputGradient.seen.append(("score", x.dtype, float(x.max())))
        x = x.to(device).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).max(1).values.sum(), x)
        return -grad.flatten(1).norm(dim=1).double().cpu().numpy()


def test_input_gradient_detectors_get_float_images_from_uint8_sets():
    InputGradient.seen.clear()
    frame = oodbench.evaluate(_net(), detectors=[InputGradient()], limit=LIMIT, batch_size=16)
    assert len(frame) == 5
    # The embedded MNIST sets are stored as uint8; the detector sees float32 in [0, 1].
    assert {dtype for _, dtype, _ in InputGradient.seen} == {torch.float32}
    assert max(top for _, _, top in InputGradient.seen) <= 1.0
    assert {kind for kind, _, _ in InputGradient.seen} == {"fit", "score"}


def test_a_channel_mismatch_names_what_fixes_it(tmp_path):
    (tmp_path / "netdef.py").write_text(FACTORY)
    namespace: dict = {}
    exec(FACTORY, namespace)
    net = namespace["make_rgb_net"]()
    torch.save(net.state_dict(), tmp_path / "rgb.pt")
    factory = f"{tmp_path / 'netdef.py'}:make_rgb_net"
    # Read from the model's first conv, the 1-channel suite is given to it as RGB (tests/test_channels.py);
    # told with --channels 1 that it takes the images as they are, its trial pass names the fix.
    args = ["run", "--checkpoint", str(tmp_path / "rgb.pt"), "--arch", factory, "--channels", "1"]
    result = CliRunner().invoke(cli, args)
    message = result.output.strip()
    assert result.exit_code == 2 and "\n" not in message, message
    assert "takes 3-channel images" in message and "have 1" in message and "--channels 3" in message
    assert "resize the inputs" not in message  # --resize cannot change the channel count
