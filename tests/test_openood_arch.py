"""OpenOOD's architectures: state_dict keys and shapes as the released checkpoints lay them out."""

from __future__ import annotations

import torch
from torchvision.models import resnet18

from oodbench.models.openood_arch import ARCHITECTURES, resnet18_32x32, resnet18_224x224

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{k}": (() if k == "num_batches_tracked" else (c,)) for k in BN}


def expected_32x32(num_classes: int) -> dict[str, tuple[int, ...]]:
    """The checkpoint layout of OpenOOD's ResNet18_32x32, written from its description."""
    keys: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 3, 3), **bn("bn1", 64)}
    in_c = 64
    for n, c in enumerate((64, 128, 256, 512), start=1):
        for b in (0, 1):
            p = f"layer{n}.{b}"
            keys[f"{p}.conv1.weight"] = (c, in_c if b == 0 else c, 3, 3)
            keys.update(bn(f"{p}.bn1", c))
            keys[f"{p}.conv2.weight"] = (c, c, 3, 3)
            keys.update(bn(f"{p}.bn2", c))
            if b == 0 and n > 1:
                keys[f"{p}.shortcut.0.weight"] = (c, in_c, 1, 1)
                keys.update(bn(f"{p}.shortcut.1", c))
        in_c = c
    keys["fc.weight"] = (num_classes, 512)
    keys["fc.bias"] = (num_classes,)
    return keys


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_resnet18_32x32_keys_and_shapes() -> None:
    for classes in (10, 100):
        got = shapes(resnet18_32x32(classes))
        want = expected_32x32(classes)
        assert list(got) == list(want)  # same names, same order
        assert got == want
    assert "layer1.0.shortcut.0.weight" not in shapes(resnet18_32x32(10))  # stride 1, 64 -> 64


def test_resnet18_32x32_forward_and_features() -> None:
    torch.manual_seed(0)
    model = resnet18_32x32(10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, feats = model(x), model.features(x)
    assert logits.shape == (2, 10) and feats.shape == (2, 512)
    assert torch.allclose(model.fc(feats), logits)
    # A state_dict in the checkpoint layout loads strictly (what a released best.ckpt holds).
    other = resnet18_32x32(10)
    other.load_state_dict({k: v.clone() for k, v in model.state_dict().items()}, strict=True)


def test_resnet18_224x224_has_torchvision_keys() -> None:
    model = resnet18_224x224(200)
    assert shapes(model) == shapes(resnet18(weights=None, num_classes=200))
    torch.manual_seed(0)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.fc(model.features(x)), model(x))
        reference = resnet18(weights=None, num_classes=200).eval()
        reference.load_state_dict(model.state_dict())
        assert torch.allclose(reference(x), model(x), atol=1e-6)
    assert set(ARCHITECTURES) == {"resnet18_32x32", "resnet18_224x224"}


def test_torch_free_names_list_every_openood_architecture():
    from oodbench.models.openood_arch import ARCHITECTURES
    from oodbench.names import OPENOOD_ARCHITECTURES

    assert tuple(ARCHITECTURES) == OPENOOD_ARCHITECTURES
