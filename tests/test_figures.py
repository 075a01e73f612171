"""The paper's figures: the 2-D toy (numbers, not pictures) and the MNIST samples/histograms plumbing.

The toy runs once per module at a tiny size; the claims of the figures are checked as numbers:
close OOD training lowers the confidence just outside the data more than far OOD training; the
KL-trained generators' samples get lower confidence than the plain GAN's while lying nearer the
data than uniform noise; the same seed gives identical arrays; the CLI writes the PNGs.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from oodbench.cli import cli
from oodbench.data import load_suite
from oodbench.errors import UserInputError
from oodbench.figures import samples as samples_module
from oodbench.figures import toy
from oodbench.models import create_classifier, create_generator
from oodbench.training import checkpoint_path, load_classifier, save_checkpoint, train
from oodbench.training.recipes import resolve_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TINY = toy.ToyConfig(
    n_per_class=200,
    n_ood=400,
    n_eval=400,
    confidence_steps=200,
    gan_warmup_steps=200,
    gan_steps=200,
    grid_size=20,
)


@pytest.fixture(scope="module")
def tiny_toy():
    confidence = toy.run_confidence_toy(TINY, seed=0)
    gan = toy.run_gan_toy(TINY, seed=0, fixed_classifier=confidence.close_model)
    return confidence, gan


# --- toy: the claims of the figures, as numbers -----------------------------------------------


def test_close_ood_training_is_less_confident_just_outside_the_data_than_far(tiny_toy):
    m = tiny_toy[0].metrics
    assert m["close_msp_near"] < m["far_msp_near"] - 0.1
    # ... without giving up the in-distribution: both classify and stay confident there.
    for name in ("far", "close"):
        assert m[f"{name}_accuracy_in"] > 0.97
        assert m[f"{name}_msp_in"] > 0.9
    # Far training does what it was trained for: it is uncertain far away.
    assert m["far_msp_far"] < m["close_msp_far"]


@pytest.mark.parametrize("kind", ["fixed", "joint"])
def test_kl_generator_samples_are_less_confident_than_plain_gan_samples_but_near_the_data(tiny_toy, kind):
    """The KL term moves samples to where the classifier is unsure, the GAN term keeps them close.

    `kind` = fixed: KL term against the fixed close-OOD classifier (a given classifier);
    joint: generator and classifier trained together (Sec. 2.3). Confidence is that of the
    classifier the generator was trained against, on both sample sets.
    """
    m = tiny_toy[1].metrics
    assert m[f"msp_{kind}_{kind}"] < m[f"msp_{kind}_plain"] - 0.05
    assert m[f"nn_distance_{kind}"] < m["nn_distance_noise_window"]
    # Max-softmax of 2 classes lies in [0.5, 1].
    assert 0.5 <= m[f"msp_{kind}_{kind}"] <= 1.0


@pytest.mark.slow
def test_default_size_toy_gan_figure_claims():
    """At the committed size (~30 s): the plain GAN is on the data, the fixed-classifier KL GAN
    on a ring near it and less confident, the joint GAN's samples less confident too."""
    confidence = toy.run_confidence_toy(seed=0)
    m = toy.run_gan_toy(seed=0, fixed_classifier=confidence.close_model).metrics
    assert m["nn_distance_plain"] < 2 * m["nn_distance_in_test"]
    assert m["nn_distance_in_test"] < m["nn_distance_fixed"] < m["nn_distance_noise_window"] / 2
    assert m["msp_fixed_fixed"] < m["msp_fixed_plain"] - 0.1
    assert m["msp_joint_joint"] < m["msp_joint_plain"] - 0.1


def test_same_seed_gives_identical_arrays_and_another_seed_does_not():
    config = replace(TINY, confidence_steps=20, gan_warmup_steps=15, gan_steps=15, grid_size=8)
    a = toy.run_confidence_toy(config, seed=3)
    b = toy.run_confidence_toy(config, seed=3)
    c = toy.run_confidence_toy(config, seed=4)
    np.testing.assert_array_equal(a.close_landscape.confidence, b.close_landscape.confidence)
    np.testing.assert_array_equal(a.close, b.close)
    assert a.metrics == b.metrics
    assert not np.array_equal(a.x, c.x)
    g1 = toy.run_gan_toy(config, seed=3, fixed_classifier=a.close_model)
    g2 = toy.run_gan_toy(config, seed=3, fixed_classifier=b.close_model)
    for name in ("plain_samples", "fixed_samples", "joint_samples", "noise"):
        np.testing.assert_array_equal(getattr(g1, name), getattr(g2, name))
    np.testing.assert_array_equal(g1.joint_landscape.confidence, g2.joint_landscape.confidence)


def test_training_leaves_the_callers_thread_count_alone():
    before = torch.get_num_threads()
    toy.run_confidence_toy(replace(TINY, confidence_steps=2, grid_size=4), seed=0)
    assert torch.get_num_threads() == before


def test_fixed_classifier_does_not_move_during_gan_training():
    config = replace(TINY, gan_warmup_steps=3, gan_steps=3)
    x, y = toy.make_in_distribution(50, np.random.default_rng(0))
    classifier = toy.ToyClassifier(config.hidden)
    state = toy.with_fixed_classifier(toy.new_gan_state(config, seed=0), classifier)
    before = [p.detach().clone() for p in state.classifier.parameters()]
    generator_before = [p.detach().clone() for p in state.generator.parameters()]
    toy.run_gan_steps(state, x, y, config, beta=config.gan_beta, steps=3, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, state.classifier.parameters(), strict=True))
    assert not all(
        torch.equal(a, b) for a, b in zip(generator_before, state.generator.parameters(), strict=True)
    )


def test_ood_sets_are_where_they_are_said_to_be():
    rng = np.random.default_rng(0)
    far, close, near = toy.far_ood(500, rng), toy.close_ood(500, rng), toy.near_ring(500, rng)
    assert far.shape == close.shape == near.shape == (500, 2)
    radius = np.linalg.norm(far, axis=1)
    assert radius.min() >= toy.FAR_RADII[0] - 1e-9 and radius.max() <= toy.FAR_RADII[1] + 1e-9
    for points, (lo, hi) in ((close, toy.CLOSE_RADII), (near, toy.NEAR_RADII)):
        nearest = np.linalg.norm(points[:, None] - toy.CENTERS[None], axis=2).min(axis=1)
        assert nearest.min() >= lo * toy.STD - 1e-9 and nearest.max() <= hi * toy.STD + 1e-9


def test_bad_toy_sizes_are_refused_with_the_parameter_name():
    with pytest.raises(UserInputError, match="'gan_steps'"):
        toy.run_gan_toy(replace(TINY, gan_steps=0))
    with pytest.raises(UserInputError, match="'gan_beta'"):
        toy.run_gan_toy(replace(TINY, gan_beta=-1.0))


def test_cli_toy_writes_the_pngs_and_metrics(tmp_path):
    out = tmp_path / "figs"
    result = CliRunner().invoke(
        cli,
        [
            "figures",
            "toy",
            "--seed",
            "1",
            "--output-dir",
            str(out),
            "--confidence-steps",
            "5",
            "--gan-warmup-steps",
            "5",
            "--gan-steps",
            "5",
            "--grid-size",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("toy_confidence_loss.png", "toy_gan.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
        assert f"Wrote {out / name}" in result.output
    summary = json.loads((out / "toy_metrics.json").read_text())
    assert summary["seed"] == 1 and summary["config"]["gan_steps"] == 5
    assert 0.5 <= summary["metrics"]["confidence_close_msp_near"] <= 1.0
    assert sorted(p.name for p in out.iterdir()) == [
        "toy_confidence_loss.png",
        "toy_gan.png",
        "toy_metrics.json",
    ]


def test_cli_toy_bad_size_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["figures", "toy", "--gan-steps", "0", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--gan-steps" in result.output
    assert not list(tmp_path.iterdir())


# --- samples: max-softmax, the figures' plumbing ----------------------------------------------


def test_max_softmax_is_float64_and_separates_logits_that_float32_rounds_to_one():
    model = torch.nn.Identity()
    logits = torch.tensor([[20.0, 0.0], [30.0, 0.0], [0.0, 0.0]])
    scores = samples_module.max_softmax(model, logits)
    assert scores.dtype == np.float64
    assert torch.softmax(logits, dim=1).max(dim=1).values[:2].eq(1.0).all()  # float32 ties at 1.0
    assert scores[0] < scores[1] < 1.0
    assert scores[2] == pytest.approx(0.5)
    toy_scores = toy.max_softmax(torch.nn.Identity(), logits)
    np.testing.assert_array_equal(toy_scores, scores)


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """The four models `figures samples` needs, trained for a step or two on 64 embedded images."""
    folder = tmp_path_factory.mktemp("figure-ckpts")
    data = load_suite("mnist", limit=64)  # one batch of the embedded recipe per epoch
    runs = {
        "cross_entropy": ("cross_entropy", {"epochs": 1}),
        "confidence": ("confidence", {"epochs": 1}),
        "joint": ("joint", {"epochs": 2}),
        "plain_gan": ("joint", {"epochs": 2, "beta": 0.0}),
    }
    paths = {}
    for name, (method, overrides) in runs.items():
        paths[name] = train(
            method,
            data,
            "embedded",
            seed=0,
            device="cpu",
            checkpoint=folder / f"{name}.pt",
            progress=False,
            **overrides,
        )
    return paths


def test_cli_samples_writes_both_figures_and_metrics(tiny_checkpoints, tmp_path, monkeypatch):
    calls = []

    def fake_ensure_model(method, suite_name, **kwargs):
        calls.append((method, suite_name, kwargs["seed"]))
        return tiny_checkpoints[method]

    monkeypatch.setattr(samples_module, "ensure_model", fake_ensure_model)
    monkeypatch.setattr(samples_module, "ensure_plain_gan", lambda suite, **kw: tiny_checkpoints["plain_gan"])
    out = tmp_path / "figs"
    result = CliRunner().invoke(
        cli,
        [
            "figures",
            "samples",
            "--in",
            "mnist",
            "--seed",
            "0",
            "--output-dir",
            str(out),
            "--limit",
            "40",
            "--n-eval",
            "50",
            "--quiet",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert calls == [("cross_entropy", "mnist", 0), ("confidence", "mnist", 0), ("joint", "mnist", 0)]
    for name in ("mnist_gan_samples.png", "mnist_max_softmax_hist.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
    summary = json.loads((out / "mnist_samples_metrics.json").read_text())
    metrics = summary["metrics"]
    data = load_suite("mnist", limit=40)  # what --limit 40 evaluates
    for method in samples_module.METHODS:
        assert 0.1 <= metrics[f"msp_{method}_in"] <= 1.0  # K = 10: max-softmax in [1/10, 1]
        model = load_classifier(tiny_checkpoints[method], expect_shape=(1, 28, 28))[0]
        s_in = samples_module.max_softmax(model, data.test_in.x)
        for out_name, out_set in data.test_out.items():
            # AUROC of that method's max-softmax, by its definition over all (ID, OOD) pairs:
            # P(s_in > s_out) + 0.5 P(s_in = s_out), not through oodbench.metrics.
            s_out = samples_module.max_softmax(model, out_set.x)
            pairs = s_in[:, None] - s_out[None, :]
            expected = float((pairs > 0).mean() + 0.5 * (pairs == 0).mean())
            assert metrics[f"auroc_{method}_{out_name}"] == pytest.approx(expected, abs=1e-12)
    assert metrics["nn_distance_test_in"] < metrics["nn_distance_uniform_noise"]
    assert "plain_gan: mean max-softmax" in result.output


def test_plain_gan_is_the_joint_method_with_beta_zero_and_is_cached(tmp_path, monkeypatch):
    calls = []

    def fake_train(method, data, recipe, *, seed, device, checkpoint, progress, resume, **overrides):
        calls.append((method, recipe.name, seed, overrides))
        spec = data.spec
        config = resolve_config(
            method,
            recipe,
            dataset=spec.name,
            in_shape=tuple(spec.image_shape),
            num_classes=spec.num_classes,
            seed=seed,
            overrides=overrides,
        )
        save_checkpoint(
            checkpoint,
            {"config": config, "epoch": config["epochs"], "complete": True, "history": [], "models": {}},
        )
        return checkpoint

    import oodbench.data
    import oodbench.training.loop as loop_module

    monkeypatch.setattr(loop_module, "train", fake_train)
    monkeypatch.setattr(oodbench.data, "load_suite", lambda name, **kw: load_suite(name, limit=8))
    first = samples_module.ensure_plain_gan("mnist", seed=3, cache_dir=tmp_path, progress=False)
    again = samples_module.ensure_plain_gan("mnist", seed=3, cache_dir=tmp_path, progress=False)
    assert calls == [("joint", "embedded", 3, {"beta": 0.0})]  # trained once, then reused
    assert (
        first
        == again
        == checkpoint_path("joint", "embedded", "mnist_5k", 3, cache_dir=tmp_path, overrides={"beta": 0.0})
    )
    # Never the joint model's own file.
    assert first != checkpoint_path("joint", "embedded", "mnist_5k", 3, cache_dir=tmp_path)


def test_sample_grids_use_the_same_z_and_are_reproducible(tiny_checkpoints):
    generator, nz = samples_module.load_generator(tiny_checkpoints["joint"])
    a = samples_module.sample_images(generator, 6, nz, seed=5)
    b = samples_module.sample_images(generator, 6, nz, seed=5)
    c = samples_module.sample_images(generator, 6, nz, seed=6)
    assert a.shape == (6, 1, 28, 28) and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_load_generator_refuses_a_checkpoint_without_generator(tiny_checkpoints):
    with pytest.raises(UserInputError, match="no generator"):
        samples_module.load_generator(tiny_checkpoints["cross_entropy"])


def test_sample_figure_data_needs_all_three_classifiers():
    data = load_suite("mnist", limit=10)
    model = create_classifier("tiny_cnn", in_shape=(1, 28, 28), num_classes=10)
    generator = create_generator("dcgan_small", out_shape=(1, 28, 28), nz=4)
    with pytest.raises(UserInputError, match="joint"):
        samples_module.compute_sample_figure_data(
            data, {"cross_entropy": model, "confidence": model}, generator, generator, 4, n_grid=2, n_eval=2
        )


@pytest.mark.slow
def test_embedded_joint_gan_samples_are_less_confident_than_plain_gan_samples(tmp_path):
    """The real embedded models (trained here, minutes on 2 cores): the paper's claim on MNIST."""
    out = samples_module.make_sample_figures(tmp_path, suite="mnist", seed=0, device="cpu", limit=500)
    m = out["metrics"]
    assert m["msp_cross_entropy_joint_gan"] < m["msp_cross_entropy_plain_gan"]
    assert m["msp_joint_joint_gan"] < m["msp_joint_plain_gan"]
    assert m["nn_distance_joint_gan"] < m["nn_distance_uniform_noise"]
