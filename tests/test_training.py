"""Training: the KL term, the three methods, the joint step order of Lee et al. 2018, recipes,
checkpoints (bit-identical resume, atomic writes, refusals), ensure_model and `oodbench train`.

Most tests use SuiteData-like namespaces built from tiny synthetic tensors, so they do not
depend on oodbench.data; the embedded-suite checks at the end use the real embedded data.
"""

import math
import os
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import oodbench.training.joint as joint_module
import oodbench.training.loop as loop_module
import oodbench.training.recipes as recipes_module
from oodbench.data.convert import as_float
from oodbench.errors import DataNotFoundError, UserInputError
from oodbench.models import create_classifier, create_discriminator, create_generator
from oodbench.provenance import sha256_file
from oodbench.registry import Registry
from oodbench.training import (
    RECIPES,
    Recipe,
    c_step,
    checkpoint_path,
    confidence_loss,
    d_step,
    ensure_model,
    g_step,
    joint_confidence_step,
    kl_uniform_to_softmax,
    load_classifier,
    read_checkpoint,
    resolve_config,
    train,
)

# --- tiny synthetic suites -------------------------------------------------------------------

TOY_RECIPE = Recipe(
    name="toy",
    description="2-D blobs, MLPs",
    arch="mlp",
    epochs=4,
    batch_size=16,
    lr=1e-2,
    beta=1.0,
    gen_arch="mlp",
    disc_arch="mlp",
    nz=2,
)
IMAGE_RECIPE = Recipe(
    name="toy-images",
    description="28x28 synthetic, tiny_cnn + small DCGAN",
    arch="tiny_cnn",
    epochs=2,
    batch_size=16,
    lr=1e-3,
    beta=1.0,
    gen_arch="dcgan_small",
    disc_arch="dcgan_small",
    nz=8,
)


def images(x, y=None, name="set"):
    return SimpleNamespace(x=x, y=y, name=name)


def toy_suite(n: int = 96, seed: int = 0):
    """Two separable 2-D blobs (classes 0, 1) and a seen OOD blob far from both."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=gen) * 0.5 + torch.stack([4.0 * y - 2.0, torch.zeros(n)], dim=1)
    ood = torch.randn(n, 2, generator=gen) * 0.5 + torch.tensor([0.0, 4.0])
    spec = SimpleNamespace(name="toy", image_shape=(2,), num_classes=2)
    return SimpleNamespace(
        spec=spec,
        suite=SimpleNamespace(name="toy", seen_ood="toy_ood"),
        train=images(x, y, "toy"),
        seen_ood=images(ood, None, "toy_ood"),
    )


def image_suite(n: int = 48, seed: int = 0, name: str = "toy_digits"):
    """1x28x28 images: class 0 dark, class 1 bright; seen OOD: vertical stripes."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = (torch.rand(n, 1, 28, 28, generator=gen) * 0.3 + 0.6 * y.view(-1, 1, 1, 1)).clamp(0, 1)
    ood = torch.zeros(n, 1, 28, 28)
    ood[:, :, :, ::2] = 1.0
    spec = SimpleNamespace(name=name, image_shape=(1, 28, 28), num_classes=2)
    return SimpleNamespace(
        spec=spec,
        suite=SimpleNamespace(name=name, seen_ood="stripes"),
        train=images(x, y, name),
        seen_ood=images(ood, None, "stripes"),
    )


def state_tensors(path):
    """Every tensor of a checkpoint's model and optimiser states, flattened to name -> tensor."""
    state = read_checkpoint(path)
    flat = {}

    def walk(prefix, value):
        if isinstance(value, torch.Tensor):
            flat[prefix] = value
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}", item)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(f"{prefix}.{i}", item)

    walk("models", state["models"])
    walk("optimizers", state["optimizers"])
    return flat


# --- the KL term -----------------------------------------------------------------------------


def test_kl_matches_a_hand_computation():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
    expected = []
    for row in logits.tolist():
        z = sum(math.exp(v) for v in row)
        p = [math.exp(v) / z for v in row]
        expected.append(sum((1 / 3) * math.log((1 / 3) / pk) for pk in p))
    value = kl_uniform_to_softmax(logits).item()
    assert value == pytest.approx(sum(expected) / 2, rel=1e-6)
    # The public code's form: K * kl_div(log p, U) with mean reduction over all N*K elements.
    uniform = torch.full_like(logits, 1 / 3)
    public = 3 * F.kl_div(F.log_softmax(logits, dim=1), uniform, reduction="sum") / logits.numel()
    assert value == pytest.approx(public.item(), rel=1e-6)


def test_kl_is_zero_for_a_uniform_prediction_and_positive_otherwise():
    assert kl_uniform_to_softmax(torch.full((4, 10), 3.7)).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_uniform_to_softmax(torch.tensor([[5.0, 0.0]])).item() > 0.1


def test_confidence_loss_is_cross_entropy_plus_beta_kl():
    torch.manual_seed(0)
    logits_in, logits_out = torch.randn(5, 4), torch.randn(7, 4)
    labels = torch.tensor([0, 1, 2, 3, 0])
    expected = F.cross_entropy(logits_in, labels) + 0.3 * kl_uniform_to_softmax(logits_out)
    assert confidence_loss(logits_in, labels, logits_out, beta=0.3).item() == pytest.approx(expected.item())


# --- each method learns -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["cross_entropy", "confidence", "joint"])
def test_each_method_loss_falls(method, tmp_path):
    path = train(
        method, toy_suite(), TOY_RECIPE, seed=0, device="cpu", checkpoint=tmp_path / "m.pt", progress=False
    )
    history = read_checkpoint(path)["history"]
    assert len(history) == TOY_RECIPE.epochs
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["acc"] == 1.0
    if method == "confidence":  # the seen OOD blob is pushed towards the uniform prediction
        assert history[-1]["kl"] < 0.5 * history[0]["kl"]


def test_confidence_model_is_uncertain_on_seen_ood_where_cross_entropy_is_not(tmp_path):
    data = toy_suite()
    msp = {}
    for method in ("cross_entropy", "confidence"):
        path = train(
            method,
            data,
            TOY_RECIPE,
            seed=0,
            device="cpu",
            checkpoint=tmp_path / f"{method}.pt",
            progress=False,
            epochs=6,
        )
        model, _ = load_classifier(path)
        with torch.no_grad():
            msp[method] = torch.softmax(model(as_float(data.seen_ood.x)), 1).max(1).values.mean().item()
    assert msp["confidence"] < 0.6 < msp["cross_entropy"]


# --- the joint step: each part moves only its own network, in the order of docs/methods.md, sec. 3


def joint_parts(seed: int = 0):
    torch.manual_seed(seed)
    classifier = create_classifier("tiny_cnn", in_shape=(1, 28, 28), num_classes=2)
    generator = create_generator("dcgan_small", out_shape=(1, 28, 28), nz=8)
    discriminator = create_discriminator("dcgan_small", in_shape=(1, 28, 28))
    parts = {
        "classifier": classifier,
        "generator": generator,
        "discriminator": discriminator,
        "opt_c": torch.optim.Adam(classifier.parameters(), lr=1e-3),
        "opt_g": torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999)),
        "opt_d": torch.optim.Adam(discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999)),
    }
    data = image_suite(16)
    return parts, data.train.x, data.train.y


def snapshot(parts):
    return {
        name: [p.detach().clone() for p in parts[name].parameters()]
        for name in ("classifier", "generator", "discriminator")
    }


def changed(before, parts):
    return {
        name: not all(torch.equal(a, b) for a, b in zip(before[name], parts[name].parameters(), strict=True))
        for name in before
    }


def test_d_step_changes_only_the_discriminator():
    parts, x, _ = joint_parts()
    fake = parts["generator"](torch.randn(len(x), 8))
    before = snapshot(parts)
    d_step(x, fake, discriminator=parts["discriminator"], opt_d=parts["opt_d"])
    assert changed(before, parts) == {"classifier": False, "generator": False, "discriminator": True}


def test_g_step_changes_only_the_generator_and_restores_requires_grad():
    parts, x, _ = joint_parts()
    fake = parts["generator"](torch.randn(len(x), 8))
    before = snapshot(parts)
    stats = g_step(
        fake,
        classifier=parts["classifier"],
        discriminator=parts["discriminator"],
        opt_g=parts["opt_g"],
        beta=1.0,
    )
    assert changed(before, parts) == {"classifier": False, "generator": True, "discriminator": False}
    assert stats["g_kl"] > 0
    assert all(p.requires_grad for name in ("classifier", "discriminator") for p in parts[name].parameters())


def test_c_step_changes_only_the_classifier():
    parts, x, y = joint_parts()
    before = snapshot(parts)
    stats = c_step(
        x,
        y,
        classifier=parts["classifier"],
        generator=parts["generator"],
        opt_c=parts["opt_c"],
        beta=1.0,
        nz=8,
    )
    assert changed(before, parts) == {"classifier": True, "generator": False, "discriminator": False}
    assert stats["kl"] >= 0 and 0 <= stats["acc"] <= 1


def test_joint_step_calls_d_then_g_then_c_with_the_same_fake_batch(monkeypatch):
    parts, x, y = joint_parts()
    calls = []
    for name in ("d_step", "g_step", "c_step"):
        original = getattr(joint_module, name)

        def recording(*args, _name=name, _original=original, **kwargs):
            calls.append((_name, args, kwargs))
            return _original(*args, **kwargs)

        monkeypatch.setattr(joint_module, name, recording)
    stats = joint_confidence_step(x, y, beta=0.5, nz=8, **parts)
    assert [name for name, _, _ in calls] == ["d_step", "g_step", "c_step"]
    fake_d, fake_g = calls[0][1][1], calls[1][1][0]
    assert fake_d is fake_g  # the G step reuses the very batch G(z1) the D step saw
    assert fake_g.grad_fn is not None  # ... still attached to G's graph
    assert calls[1][2]["beta"] == calls[2][2]["beta"] == 0.5
    assert set(stats) == {"d_loss", "d_real", "d_fake", "g_loss", "g_kl", "loss", "kl", "acc"}


def test_joint_step_event_order_and_fresh_noise_after_the_g_update():
    """Forward calls and optimiser steps, in order, as docs/methods.md section 3 prescribes."""
    parts, x, y = joint_parts()
    events, g_inputs, g_outputs, c_inputs = [], [], [], []

    def on_g(module, args, out):
        events.append("G")
        g_inputs.append(args[0])
        g_outputs.append(out)

    def on_c(module, args, out):
        events.append("C")
        c_inputs.append(args[0])

    parts["generator"].register_forward_hook(on_g)
    parts["discriminator"].register_forward_hook(lambda module, args, out: events.append("D") and None)
    parts["classifier"].register_forward_hook(on_c)
    for name in ("opt_d", "opt_g", "opt_c"):
        parts[name].register_step_post_hook(lambda opt, a, k, _n=name: events.append(_n) and None)
    joint_confidence_step(x, y, beta=1.0, nz=8, **parts)
    assert events == [
        "G",  # z1 -> fake
        "D",
        "D",
        "opt_d",  # 1. D on real and on fake.detach()
        "D",
        "C",
        "opt_g",  # 2. G: D(fake) and the classifier's KL on the SAME fake
        "C",
        "G",
        "C",
        "opt_c",  # 3. classifier: NLL on real + KL on G(z2), z2 drawn after opt_g
    ]
    assert c_inputs[0] is g_outputs[0]  # the G step's KL is on G(z1)
    assert c_inputs[2] is g_outputs[1]  # the classifier's KL is on G(z2)
    assert not torch.equal(g_inputs[0], g_inputs[1])  # z2 is fresh noise


def test_joint_step_works_on_2d_mlps():
    torch.manual_seed(0)
    classifier = create_classifier("mlp", in_shape=(2,), num_classes=2)
    generator = create_generator("mlp", out_shape=(2,), nz=2)
    discriminator = create_discriminator("mlp", in_shape=(2,))
    data = toy_suite(32)
    stats = joint_confidence_step(
        data.train.x,
        data.train.y,
        classifier=classifier,
        generator=generator,
        discriminator=discriminator,
        opt_c=torch.optim.Adam(classifier.parameters()),
        opt_g=torch.optim.Adam(generator.parameters()),
        opt_d=torch.optim.Adam(discriminator.parameters()),
        beta=1.0,
        nz=2,
    )
    assert all(math.isfinite(v) for v in stats.values())


# --- recipes and configs -----------------------------------------------------------------------


def test_lee2018_recipes_are_the_public_recipe():
    svhn, cifar = RECIPES.get("lee2018-svhn"), RECIPES.get("lee2018-cifar10")
    for recipe in (svhn, cifar):
        assert (recipe.arch, recipe.gen_arch, recipe.disc_arch, recipe.nz) == ("vgg13", "dcgan", "dcgan", 100)
        assert (recipe.lr, recipe.epochs, recipe.lr_milestones, recipe.lr_gamma) == (2e-4, 100, (60,), 0.1)
        assert recipe.gan_adam_betas == (0.5, 0.999) and recipe.weight_decay == 0.0
        assert recipe.seed == 1 and recipe.gan_warmup_epochs == 0
    assert (svhn.beta, svhn.batch_size) == (1.0, 128)
    assert (cifar.beta, cifar.batch_size) == (0.1, 64)


def test_config_records_overrides_and_refuses_ones_without_effect():
    recipe = RECIPES.get("lee2018-cifar10")
    kwargs = {"dataset": "cifar10", "in_shape": (3, 32, 32), "num_classes": 10, "seed": 1}
    config = resolve_config("joint", recipe, overrides={"epochs": 5, "beta": 0.5}, **kwargs)
    assert (config["epochs"], config["beta"], config["batch_size"]) == (5, 0.5, 64)
    assert config["overrides"] == {"beta": 0.5, "epochs": 5}
    assert "beta" not in resolve_config("cross_entropy", recipe, **kwargs)
    with pytest.raises(UserInputError, match="--beta has no effect"):
        resolve_config("cross_entropy", recipe, overrides={"beta": 1.0}, **kwargs)
    with pytest.raises(UserInputError, match="smaller than epochs"):
        resolve_config("joint", recipe, overrides={"epochs": 2, "gan_warmup_epochs": 2}, **kwargs)
    with pytest.raises(UserInputError, match="'lr' parameter must be a float > 0. Got -1"):
        resolve_config("joint", recipe, overrides={"lr": -1}, **kwargs)
    with pytest.raises(UserInputError, match="Did you mean: joint"):
        resolve_config("jiont", recipe, **kwargs)


def test_checkpoint_path_is_keyed_by_method_recipe_data_seed_and_overrides(tmp_path):
    base = checkpoint_path("joint", "embedded", "mnist_5k", 1, cache_dir=tmp_path)
    assert base == tmp_path / "checkpoints" / "mnist_5k" / "joint-embedded-seed1.pt"
    other = checkpoint_path("joint", "embedded", "mnist_5k", 1, cache_dir=tmp_path, overrides={"epochs": 3})
    assert other != base and other.name == "joint-embedded-seed1-epochs3.pt"


def test_learning_rate_drops_tenfold_after_the_milestone_epoch(tmp_path):
    recipe = replace(TOY_RECIPE, epochs=3, lr_milestones=(2,))
    path = train(
        "joint", toy_suite(32), recipe, seed=0, device="cpu", checkpoint=tmp_path / "m.pt", progress=False
    )
    state = read_checkpoint(path)
    assert [h["lr"] for h in state["history"]] == pytest.approx([1e-2, 1e-2, 1e-3])
    for opt_state in state["optimizers"].values():  # all three networks
        assert opt_state["param_groups"][0]["lr"] == pytest.approx(1e-3)


def test_gan_warmup_epochs_train_with_beta_zero(tmp_path):
    recipe = replace(TOY_RECIPE, epochs=3, gan_warmup_epochs=1)
    path = train(
        "joint", toy_suite(32), recipe, seed=0, device="cpu", checkpoint=tmp_path / "m.pt", progress=False
    )
    history = read_checkpoint(path)["history"]
    assert [h["beta"] for h in history] == [0.0, 1.0, 1.0]
    assert history[0]["kl"] == 0.0 and history[1]["kl"] > 0.0


def test_gpu_only_options_are_refused_on_cpu(tmp_path):
    with pytest.raises(UserInputError, match="--bf16 needs a CUDA device"):
        train(
            "cross_entropy",
            toy_suite(),
            TOY_RECIPE,
            seed=0,
            device="cpu",
            checkpoint=tmp_path / "m.pt",
            progress=False,
            bf16=True,
        )
    assert not (tmp_path / "m.pt").exists()


# --- checkpoints -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["confidence", "joint"])
def test_resume_ends_bit_identical_to_an_uninterrupted_run(method, tmp_path, monkeypatch):
    data = image_suite(40)
    straight = train(
        method, data, IMAGE_RECIPE, seed=3, device="cpu", checkpoint=tmp_path / "straight.pt", progress=False
    )

    # An interrupted run: killed right after the epoch-1 checkpoint was written.
    class Killed(Exception):
        pass

    original_save = loop_module.save_checkpoint

    def save_then_die(path, state):
        original_save(path, state)
        raise Killed

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train(
            method,
            data,
            IMAGE_RECIPE,
            seed=3,
            device="cpu",
            checkpoint=tmp_path / "resumed.pt",
            progress=False,
        )
    monkeypatch.setattr(loop_module, "save_checkpoint", original_save)
    assert read_checkpoint(tmp_path / "resumed.pt")["epoch"] == 1
    torch.manual_seed(12345)  # disturb the global RNG: the resumed run must restore it
    resumed = train(
        method,
        data,
        IMAGE_RECIPE,
        seed=3,
        device="cpu",
        checkpoint=tmp_path / "resumed.pt",
        resume=True,
        progress=False,
    )

    a, b = state_tensors(straight), state_tensors(resumed)
    assert a.keys() == b.keys() and len(a) > 10
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert read_checkpoint(straight)["history"] == read_checkpoint(resumed)["history"]
    # No timestamps in checkpoints: the same run gives the same file, hence the same recorded hash.
    assert sha256_file(straight) == sha256_file(resumed)


def test_resume_with_another_config_is_refused(tmp_path):
    path = train(
        "cross_entropy",
        toy_suite(),
        TOY_RECIPE,
        seed=0,
        device="cpu",
        checkpoint=tmp_path / "m.pt",
        progress=False,
        epochs=1,
    )
    with pytest.raises(UserInputError, match=r"another config \(batch_size: 16 -> 32"):
        train(
            "cross_entropy",
            toy_suite(),
            TOY_RECIPE,
            seed=0,
            device="cpu",
            checkpoint=path,
            resume=True,
            progress=False,
            epochs=1,
            batch_size=32,
        )


def test_a_run_killed_while_writing_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    train(
        "cross_entropy",
        toy_suite(),
        TOY_RECIPE,
        seed=0,
        device="cpu",
        checkpoint=path,
        progress=False,
        epochs=1,
    )
    good = path.read_bytes()

    def die(fd):
        raise KeyboardInterrupt  # the process is stopped in the middle of writing the next checkpoint

    monkeypatch.setattr(os, "fsync", die)
    with pytest.raises(KeyboardInterrupt):
        train(
            "cross_entropy",
            toy_suite(),
            TOY_RECIPE,
            seed=0,
            device="cpu",
            checkpoint=path,
            progress=False,
            epochs=2,
        )
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp files left behind


def test_load_classifier_returns_the_trained_model_and_its_provenance(tmp_path):
    data = image_suite(32)
    path = train(
        "cross_entropy",
        data,
        IMAGE_RECIPE,
        seed=0,
        device="cpu",
        checkpoint=tmp_path / "m.pt",
        progress=False,
        epochs=1,
    )
    model, meta = load_classifier(path, expect_dataset="toy_digits", expect_shape=(1, 28, 28))
    assert not model.training
    assert meta["sha256"] == sha256_file(path)
    assert meta["complete"] and meta["epoch"] == 1
    assert meta["config"]["arch"] == "tiny_cnn" and meta["config"]["overrides"] == {"epochs": 1}
    assert model(data.train.x[:3]).shape == (3, 2)


def test_load_classifier_refuses_other_data_and_non_checkpoints(tmp_path):
    path = train(
        "cross_entropy",
        image_suite(16),
        IMAGE_RECIPE,
        seed=0,
        device="cpu",
        checkpoint=tmp_path / "m.pt",
        progress=False,
        epochs=1,
    )
    message = f"checkpoint {path} was trained on toy_digits (1x28x28); this run needs cifar10 (3x32x32)"
    with pytest.raises(UserInputError) as error:
        load_classifier(path, expect_dataset="cifar10", expect_shape=(3, 32, 32))
    assert str(error.value) == message
    with pytest.raises(UserInputError, match=r"needs toy_digits \(3x32x32\)"):
        load_classifier(path, expect_shape=(3, 32, 32))

    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(UserInputError, match="is not an oodbench checkpoint") as error:
        load_classifier(text)
    assert "\n" not in str(error.value)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(UserInputError, match="no 'oodbench-checkpoint' marker"):
        load_classifier(plain)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_classifier(tmp_path / "missing.pt")


# --- ensure_model ------------------------------------------------------------------------


def test_ensure_model_trains_once_then_reuses_and_retrains_on_config_change(tmp_path, monkeypatch):
    import oodbench.data as data_module

    data = image_suite(32, name="toy_digits")
    suites, datasets = Registry("suite"), Registry("dataset")
    suites.add(
        "toy", SimpleNamespace(name="toy", in_dataset="toy_digits", seen_ood="stripes", recipe="toy-images")
    )
    datasets.add("toy_digits", data.spec)
    recipes = Registry("training recipe")
    recipes.add("toy-images", replace(IMAGE_RECIPE, epochs=1))
    loads = []
    monkeypatch.setattr(data_module, "SUITES", suites)
    monkeypatch.setattr(data_module, "DATASETS", datasets)
    monkeypatch.setattr(data_module, "load_suite", lambda name, **kw: loads.append(name) or data)
    monkeypatch.setattr(loop_module, "RECIPES", recipes)
    monkeypatch.setattr(recipes_module, "RECIPES", recipes)  # ensure_model plans with recipes.plan_training

    path = ensure_model("cross_entropy", "toy", seed=0, device="cpu", cache_dir=tmp_path, progress=False)
    assert path == checkpoint_path("cross_entropy", "toy-images", "toy_digits", 0, cache_dir=tmp_path)
    first = sha256_file(path)
    assert (
        ensure_model("cross_entropy", "toy", seed=0, device="cpu", cache_dir=tmp_path, progress=False) == path
    )
    assert loads == ["toy"]  # the second call neither loaded data nor trained

    recipes._items["toy-images"] = replace(IMAGE_RECIPE, epochs=1, lr=5e-4)  # the recipe changed
    ensure_model("cross_entropy", "toy", seed=0, device="cpu", cache_dir=tmp_path, progress=False)
    assert loads == ["toy", "toy"] and sha256_file(path) != first
    assert read_checkpoint(path)["config"]["lr"] == 5e-4


# --- `oodbench train` ---------------------------------------------------------------------


def test_cli_train_prints_config_and_checkpoint_and_refuses_bad_input(tmp_path):
    from oodbench.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--method", "jiont"])
    assert result.exit_code == 2
    assert "Did you mean: joint?" in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(cli, ["train", "-m", "cross_entropy", "--beta", "1"])
    assert result.exit_code == 2 and "--beta has no effect" in result.output
    result = runner.invoke(cli, ["train", "-m", "cross_entropy", "--bf16", "--device", "cpu"])
    assert result.exit_code == 2 and "--bf16 needs a CUDA device" in result.output

    args = [
        "train",
        "-m",
        "cross_entropy",
        "--in",
        "mnist",
        "--epochs",
        "1",
        "--batch-size",
        "500",
        "--seed",
        "0",
        "--cache-dir",
        str(tmp_path),
        "--quiet",
    ]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    expected = checkpoint_path(
        "cross_entropy",
        "embedded",
        "mnist_5k",
        0,
        cache_dir=tmp_path,
        overrides={"epochs": 1, "batch_size": 500},
    )
    assert f"Checkpoint: {expected}" in result.output
    for line in ("arch ", "batch_size ", "lr ", "epochs ", "overrides "):
        assert any(out.startswith(line) for out in result.output.splitlines()), line
    assert read_checkpoint(expected)["config"]["overrides"] == {"batch_size": 500, "epochs": 1}
    result = runner.invoke(cli, [*args, "--resume"])  # already complete: nothing left to do
    assert result.exit_code == 0 and read_checkpoint(expected)["epoch"] == 1


def test_cli_lists_recipes_and_models():
    from oodbench.cli import cli

    result = CliRunner().invoke(cli, ["list", "recipes"])
    assert result.exit_code == 0
    svhn = result.output.split("lee2018-svhn:")[1].splitlines()[1]
    assert "arch vgg13" in svhn and "batch 128" in svhn and "x0.1 after epochs [60]" in svhn
    result = CliRunner().invoke(cli, ["list", "models"])
    assert "classifiers: mlp, small_cnn, tiny_cnn, vgg13" in result.output


# --- the embedded suite ----------------------------------------------------------------------


def seen_ood_msp(path, data):
    from oodbench.data.convert import as_float

    model, _ = load_classifier(path)
    with torch.no_grad():
        return torch.softmax(model(as_float(data.seen_ood.x)).double(), 1).max(1).values.mean().item()


def test_embedded_subset_confidence_model_is_uncertain_on_seen_ood(tmp_path):
    """Fast variant: 3 epochs on 1000 embedded MNIST images and 1000 seen OOD photo crops."""
    from oodbench.data import load_suite

    data = load_suite("mnist", limit=1000)
    msp = {}
    for method in ("cross_entropy", "confidence"):
        path = train(
            method,
            data,
            "embedded",
            seed=0,
            device="cpu",
            checkpoint=tmp_path / f"{method}.pt",
            progress=False,
            epochs=3,
        )
        msp[method] = seen_ood_msp(path, data)
    assert msp["confidence"] < msp["cross_entropy"] - 0.25


@pytest.mark.slow
def test_embedded_recipe_all_three_methods(tmp_path):
    """The full embedded recipe (what `oodbench run` trains): ~1 min on 2 cores."""
    from oodbench.data import load_suite

    data = load_suite("mnist")
    msp, accuracy = {}, {}
    for method in ("cross_entropy", "confidence", "joint"):
        path = ensure_model(method, "mnist", seed=0, device="cpu", cache_dir=tmp_path, progress=False)
        msp[method] = seen_ood_msp(path, data)
        model, _ = load_classifier(path, expect_dataset="mnist_5k", expect_shape=(1, 28, 28))
        with torch.no_grad():
            accuracy[method] = (
                (model(as_float(data.test_in.x)).argmax(1) == data.test_in.y).float().mean().item()
            )
    assert msp["confidence"] < msp["cross_entropy"] - 0.3
    assert msp["joint"] < msp["cross_entropy"]
    assert min(accuracy.values()) > 0.9


def test_every_suite_names_a_registered_recipe():
    from oodbench.data import SUITES
    from oodbench.training import RECIPES

    assert [name for name, suite in SUITES.items() if suite.recipe not in RECIPES] == []
