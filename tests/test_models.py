"""Architectures: the paper's VGG-13 and DCGAN at 3x32x32 (shapes, layer widths, parameter
counts), their 28x28 grey variants, the small CNNs, and the registries' create_* functions."""

import pytest
import torch
from torch import nn

from oodbench.errors import UserInputError
from oodbench.models import (
    CLASSIFIERS,
    DISCRIMINATORS,
    GENERATORS,
    create_classifier,
    create_discriminator,
    create_generator,
)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_params(c_in: int, c_out: int, k: int, bias: bool) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def test_vgg13_config_b_at_32x32_matches_the_paper():
    model = create_classifier("vgg13", in_shape=(3, 32, 32), num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(512, 512), (512, 512), (512, 10)]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    widths = [3, 64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    expected = sum(conv_params(a, b, 3, True) for a, b in zip(widths[:-1], widths[1:], strict=True))
    expected += 2 * (512 * 512 + 512) + 512 * 10 + 10
    assert n_params(model) == expected == 9_935_434


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_vgg13_logits_are_head_of_features(shape):
    torch.manual_seed(0)
    model = create_classifier("vgg13", in_shape=shape, num_classes=7).eval()
    x = torch.rand(4, *shape)
    features = model.features(x)
    assert features.shape == (4, 512)
    assert torch.allclose(model(x), model.head(features))
    assert model(x).shape == (4, 7)


def test_dcgan_at_32x32_matches_the_paper():
    generator = create_generator("dcgan", out_shape=(3, 32, 32), nz=100)
    tconvs = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in tconvs] == [(100, 512), (512, 256), (256, 128), (128, 3)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in generator.modules()) == 3
    assert isinstance(list(generator.modules())[-1], nn.Sigmoid)
    expected_g = sum(conv_params(a, b, 4, False) for a, b in [(100, 512), (512, 256), (256, 128), (128, 3)])
    expected_g += 2 * (512 + 256 + 128)  # BatchNorm weight + bias
    assert n_params(generator) == expected_g == 3_448_576

    discriminator = create_discriminator("dcgan", in_shape=(3, 32, 32))
    convs = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(3, 128), (128, 256), (256, 512), (512, 1)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in discriminator.modules()) == 2
    assert all(m.negative_slope == 0.2 for m in discriminator.modules() if isinstance(m, nn.LeakyReLU))
    expected_d = sum(conv_params(a, b, 4, False) for a, b in [(3, 128), (128, 256), (256, 512), (512, 1)])
    expected_d += 2 * (256 + 512)
    assert n_params(discriminator) == expected_d == 2_637_312

    torch.manual_seed(0)
    fake = generator(torch.randn(5, 100))
    assert fake.shape == (5, 3, 32, 32)
    assert fake.min() >= 0 and fake.max() <= 1
    prob = discriminator(fake)
    assert prob.shape == (5,)
    assert ((prob > 0) & (prob < 1)).all()


@pytest.mark.parametrize("arch", ["dcgan", "dcgan_small"])
def test_dcgan_28x28_grey_variants(arch):
    generator = create_generator(arch, out_shape=(1, 28, 28), nz=16)
    discriminator = create_discriminator(arch, in_shape=(1, 28, 28))
    fake = generator(torch.randn(3, 16))
    assert fake.shape == (3, 1, 28, 28)
    assert discriminator(fake).shape == (3,)


def test_dcgan_refuses_unsupported_shapes_with_a_fix():
    with pytest.raises(UserInputError, match="28x28 and 32x32"):
        create_generator("dcgan", out_shape=(3, 64, 64))
    with pytest.raises(UserInputError, match="28x28 and 32x32"):
        create_discriminator("dcgan", in_shape=(3, 30, 30))


@pytest.mark.parametrize("arch", CLASSIFIERS.names())
def test_every_registered_classifier_has_features_and_head(arch):
    shape = (2,) if arch == "mlp" else (1, 28, 28)
    torch.manual_seed(0)
    model = create_classifier(arch, in_shape=shape, num_classes=3).eval()
    x = torch.rand(6, *shape)
    features = model.features(x)
    assert features.ndim == 2 and features.shape[0] == 6
    assert torch.allclose(model(x), model.head(features))
    assert model(x).shape == (6, 3)


def test_small_cnns_widths():
    small = create_classifier("small_cnn", in_shape=(1, 28, 28), num_classes=10)
    tiny = create_classifier("tiny_cnn", in_shape=(1, 28, 28), num_classes=10)
    assert [m.out_channels for m in small.modules() if isinstance(m, nn.Conv2d)] == [32, 64]
    assert [m.out_channels for m in tiny.modules() if isinstance(m, nn.Conv2d)] == [16, 32]
    assert small.head.in_features == tiny.head.in_features == 128


@pytest.mark.parametrize("arch", GENERATORS.names())
def test_every_registered_gan_pair_round_trips(arch):
    shape = (2,) if arch == "mlp" else (1, 28, 28)
    generator = create_generator(arch, out_shape=shape, nz=4)
    discriminator = create_discriminator(arch, in_shape=shape)
    assert arch in DISCRIMINATORS
    fake = generator(torch.randn(8, 4))
    assert fake.shape == (8, *shape)
    assert discriminator(fake).shape == (8,)


def test_unknown_arch_suggests_the_close_name():
    with pytest.raises(UserInputError, match="Did you mean: vgg13"):
        create_classifier("vgg31", in_shape=(3, 32, 32), num_classes=10)
    with pytest.raises(UserInputError, match="num_classes"):
        create_classifier("vgg13", in_shape=(3, 32, 32), num_classes=0)
