"""`-d pytorch-ood:NAME`: the adapter gives exactly pytorch-ood's own scores, negated; its table,
its parameters and its one-line refusals."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytorch_ood = pytest.importorskip(
    "pytorch_ood", reason="pytorch-ood is not installed (pip install pytorch-ood): adapter tests skipped"
)

import pytorch_ood.detector as ood  # noqa: E402

from oodbench.detectors import create_detector  # noqa: E402
from oodbench.detectors.pytorch_ood_adapter import detector_classes, uses_of  # noqa: E402
from oodbench.detectors.pytorch_ood_table import PYTORCH_OOD_DETECTORS  # noqa: E402
from oodbench.errors import UserInputError  # noqa: E402
from oodbench.models.evalmodel import EvalModel  # noqa: E402


class TinyNet(nn.Module):
    """A random conv + MLP net on 1x8x8 images: features (N, 12), head Linear(12, 4) with bias."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 12), nn.ReLU()
        )
        self.head = nn.Linear(12, 4)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = TinyNet().eval()
    x_train = torch.rand(96, 1, 8, 8)
    y_train = torch.arange(96) % 4
    x = torch.cat([torch.rand(30, 1, 8, 8), 0.2 * torch.rand(30, 1, 8, 8)])
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32)
    return net, SimpleNamespace(x=x_train, y=y_train), x, loader


def _references(net, loader):
    """pytorch-ood's own objects, used as its documentation shows, fitted on the same data."""
    return {
        "MaxSoftmax": ({}, ood.MaxSoftmax(net)),
        "EnergyBased": ({}, ood.EnergyBased(net)),
        "Entropy": ({}, ood.Entropy(net)),
        "Mahalanobis": ({}, ood.Mahalanobis(net.features).fit(loader)),
        "ViM": ({"d": 6}, ood.ViM(net.features, d=6, w=net.head.weight, b=net.head.bias).fit(loader)),
        "KNN": ({"k": 5}, ood.KNN(net.features, k=5).fit(loader)),
    }


@pytest.mark.parametrize("name", ["MaxSoftmax", "EnergyBased", "Mahalanobis", "ViM", "KNN", "Entropy"])
def test_adapter_scores_are_pytorch_ood_scores_negated(name, setup):
    net, train, x, loader = setup
    params, reference = _references(net, loader)[name]
    with torch.no_grad():
        expected = -reference.predict(x).double().numpy()
    detector = create_detector(f"pytorch-ood:{name}", **params).fit(net, train=train)
    np.testing.assert_allclose(detector.score(net, x), expected, rtol=1e-5, atol=1e-6)
    # The same through an EvalModel (how the runner sees every model) and in runner-sized batches.
    wrapped = EvalModel(net)
    detector = create_detector(f"pytorch-ood:{name}", **params).fit(wrapped, train=train)
    np.testing.assert_allclose(detector.score(wrapped, x, batch_size=7), expected, rtol=1e-5, atol=1e-6)
    assert detector.name == f"pytorch-ood:{name}" and detector.params() == params


def test_the_listing_table_matches_installed_pytorch_ood():
    classes = detector_classes()
    assert set(PYTORCH_OOD_DETECTORS) == set(classes)
    for name, cls in classes.items():
        assert PYTORCH_OOD_DETECTORS[name][0] == uses_of(cls), name


def test_parameters_and_refusals_are_one_line(setup):
    net, train, _, _ = setup
    with pytest.raises(UserInputError, match=r"needs d: give them with --param pytorch-ood:ViM\.d=VALUE"):
        create_detector("pytorch-ood:ViM").validate()
    with pytest.raises(UserInputError, match="has no parameter nope"):
        create_detector("pytorch-ood:MaxSoftmax", nope=1).validate()
    with pytest.raises(UserInputError, match="Bad parameters for pytorch-ood:KNN"):
        create_detector("pytorch-ood:KNN", nope=1).fit(net, train=train)  # KNN takes **kwargs
    with pytest.raises(UserInputError, match="oodbench supplies w"):
        create_detector("pytorch-ood:ViM", d=2, w=[1.0]).validate()
    with pytest.raises(UserInputError, match="Did you mean: ViM"):
        create_detector("pytorch-ood:Vim")
    # A model without nn.Linear, and a feature layer the last Linear does not read, are refused.
    conv_only = nn.Sequential(nn.Conv2d(1, 4, 8), nn.Flatten())
    with pytest.raises(UserInputError, match="has no nn.Linear"):
        create_detector("pytorch-ood:ViM", d=2).fit(EvalModel(conv_only, features="0"), train=train)
    with pytest.raises(UserInputError, match="does not"):
        create_detector("pytorch-ood:ViM", d=2).fit(EvalModel(net, features="body.3"), train=train)


def test_scoring_unfitted_says_to_fit(setup):
    net, _, x, _ = setup
    with pytest.raises(ValueError, match="must be fitted first"):
        create_detector("pytorch-ood:MaxSoftmax").score(net, x)
