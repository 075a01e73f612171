"""Streamed Mahalanobis equals the in-memory version it replaced (to 1e-10), on realistic features.

The reference below is the in-memory code of oodbench 0.2.0 (whole-split feature matrix, one
(N, C, D) tensor of differences), kept here as the oracle.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from oodbench.detectors.mahalanobis import (
    Mahalanobis,
    QuadraticForm,
    TiedGaussianStats,
    min_distance,
)


def reference_stats(f: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = f.double()
    classes = torch.unique(y)
    means = torch.stack([f[y == c].mean(dim=0) for c in classes])
    centred = f - means[torch.searchsorted(classes, y)]
    return means, centred.T @ centred / len(f)


def reference_distance(features: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    diff = features[:, None, :] - means[None, :, :]
    return torch.einsum("ncd,de,nce->nc", diff, precision, diff).min(dim=1).values


def relu_features(
    n: int, classes: int, dim: int, *, seed: int, dead: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate-layer-like features: ReLU of class prototypes plus correlated noise, a large
    positive offset (features far from the origin stress the expanded form) and `dead` units
    that never fire (a rank-deficient covariance, as in real networks)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    prototypes = 2.0 * torch.randn(classes, dim, generator=g)
    mixing = torch.randn(dim, dim, generator=g) / dim**0.5
    pre = prototypes[y] + torch.randn(n, dim, generator=g) @ mixing + 3.0
    f = torch.relu(pre).float()  # a network's features are float32
    f[:, :dead] = 0.0
    return f, y


@pytest.mark.parametrize(("batch", "block"), [(1, 1), (7, 1), (1, 1024), (64, 1), (10_000, 1024)])
def test_streamed_statistics_equal_the_in_memory_ones(batch, block):
    f, y = relu_features(3000, 20, 64, seed=1, dead=5)
    stats = TiedGaussianStats(block=block)
    for start in range(0, len(f), batch):
        stats.update(f[start : start + batch], y[start : start + batch])
    means, cov = reference_stats(f, y)
    assert stats.n == len(f)
    torch.testing.assert_close(stats.means(), means, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stats.covariance(), cov, rtol=1e-11, atol=1e-12)


def test_labels_that_skip_values_and_arrive_out_of_order_give_sorted_means():
    f, y = relu_features(500, 4, 8, seed=2)
    y = torch.tensor([7, 3, 11, 5])[y]  # labels 3, 5, 7, 11 in random order of first appearance
    stats = TiedGaussianStats()
    for start in range(0, len(f), 33):
        stats.update(f[start : start + 33], y[start : start + 33])
    means, _ = reference_stats(f, y)
    torch.testing.assert_close(stats.means(), means, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("classes", "dim", "dead"), [(10, 32, 0), (100, 256, 20), (300, 128, 0)])
def test_expanded_form_scores_equal_the_direct_form(classes, dim, dead):
    f, y = relu_features(4000, classes, dim, seed=3, dead=dead)
    means, cov = reference_stats(f, y)
    precision = torch.linalg.pinv(cov, hermitian=True)
    # Test features from the same distribution plus far-away ones (OOD-like, large distances).
    test, _ = relu_features(400, classes, dim, seed=4, dead=dead)
    test = torch.cat([test, 5.0 * test[:100]]).double()
    expected = reference_distance(test, means, precision)
    got = QuadraticForm(means, precision)(test)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-10, atol=0)


@pytest.mark.parametrize("budget", [1, 600 * 16 * 7, 1 << 24])
def test_chunked_direct_form_equals_the_unchunked_one(monkeypatch, budget):
    import oodbench.detectors.mahalanobis as module

    f, y = relu_features(600, 50, 16, seed=5)
    means, cov = reference_stats(f, y)
    precision = torch.linalg.pinv(cov, hermitian=True).float()
    monkeypatch.setattr(module, "DIFF_ELEMENTS", budget)  # 50 chunks of 1 class, 8 of 7, one
    expected = reference_distance(f, means.float(), precision)
    torch.testing.assert_close(min_distance(f, means.float(), precision), expected, rtol=1e-6, atol=0)


class ReluNet(nn.Module):
    """A small trained-looking classifier: features = relu(conv) pooled, then linear."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 48, 3, padding=1)
        self.fc = nn.Linear(48, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f)


def reference_scores(model, train, x, batch_size: int) -> np.ndarray:
    """The 0.2.0 path: collect_outputs (float32 features of batches of `batch_size`) then stats."""
    from oodbench.detectors.base import collect_outputs

    f_train = collect_outputs(model, train.x, batch_size=batch_size, with_features=True).features
    means, cov = reference_stats(f_train, train.y)
    precision = torch.linalg.pinv(cov, hermitian=True)
    f = collect_outputs(model, x, batch_size=16, with_features=True).features.double()
    return (-reference_distance(f, means, precision)).numpy()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(6)
    y = torch.randint(0, 5, (300,), generator=g)
    x = (torch.rand(300, 3, 8, 8, generator=g) * 0.5 + y[:, None, None, None] / 10).clamp(0, 1)
    x_u8 = (x * 255).round().to(torch.uint8)
    test = torch.rand(50, 3, 8, 8, generator=g)
    return ReluNet(), SimpleNamespace(x=x_u8, y=y), test


@pytest.mark.parametrize("batch_size", [1, 37, 256, 1000])
def test_detector_fit_and_scores_equal_the_in_memory_version(images, batch_size):
    model, train, test = images
    detector = Mahalanobis().fit(model, train=train, batch_size=batch_size)
    np.testing.assert_allclose(
        detector.score(model, test, batch_size=16),
        reference_scores(model, train, test, batch_size),
        rtol=1e-10,
        atol=0,
    )


def test_preprocessed_scores_equal_the_in_memory_version(images):
    model, train, test = images
    detector = Mahalanobis(epsilon=0.002).fit(model, train=train, batch_size=64)
    f_train = model.features(train.x.float() / 255).detach().float()
    means, cov = reference_stats(f_train, train.y)
    precision = torch.linalg.pinv(cov, hermitian=True)
    batch = test.clone().requires_grad_(True)
    distance = reference_distance(model.features(batch), means.float(), precision.float())
    (grad,) = torch.autograd.grad(distance.sum(), batch)
    with torch.no_grad():
        feats = model.features(test - 0.002 * grad.sign()).double()
    expected = (-reference_distance(feats, means, precision)).numpy()
    np.testing.assert_allclose(detector.score(model, test, batch_size=50), expected, rtol=1e-10, atol=0)


def test_scoring_does_not_change_the_detector(images):
    model, train, test = images
    detector = Mahalanobis().fit(model, train=train)
    before = dict(vars(detector))
    detector.score(model, test)
    assert vars(detector).keys() == before.keys() and detector.form_ is before["form_"]


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=399), max_size=12), block=st.sampled_from([1, 50, 1024])
)
def test_any_batching_gives_the_in_memory_statistics(cuts, block):
    f, y = relu_features(400, 6, 12, seed=7, dead=2)
    bounds = [0, *sorted(set(cuts)), len(f)]
    stats = TiedGaussianStats(block=block)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        stats.update(f[start:stop], y[start:stop])
    means, cov = reference_stats(f, y)
    torch.testing.assert_close(stats.means(), means, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stats.covariance(), cov, rtol=1e-11, atol=1e-12)


def test_fit_from_a_streaming_loader_equals_fit_from_the_tensor(images):
    from oodbench.data.sources import Preprocess, TensorSource, make_loader

    model, train, test = images
    source = TensorSource(train.x, train.y, pre=Preprocess(channels=3, size=(8, 8)), name="train")
    streamed = Mahalanobis().fit(model, train=make_loader(source, batch_size=64, workers=0))
    direct = Mahalanobis().fit(model, train=train, batch_size=64)
    assert torch.equal(streamed.means_, direct.means_) and torch.equal(streamed.precision_, direct.precision_)
    unlabelled = TensorSource(train.x, None, pre=Preprocess(channels=3, size=(8, 8)), name="ood")
    with pytest.raises(ValueError, match="label -1"):
        Mahalanobis().fit(model, train=make_loader(unlabelled, batch_size=64, workers=0))
