"""A fabricated miniature OpenOOD v1.5 data root, in OpenOOD's exact layout (no real images).

    ROOT/benchmark_imglist/<benchmark>/<list>.txt    "<relative path> <label>" per line, -1 for OOD
    ROOT/images_classic/<set>/...                    cifar10, cifar100, tin, mnist, svhn, texture, places365
    ROOT/images_largescale/<set>/...                 imagenet_1k, ssb_hard, ninco, inaturalist,
                                                     openimage_o, imagenet_v2, imagenet_c, imagenet_r

A few random images per list, in the formats the real sets use: CIFAR / SVHN PNG 32x32, MNIST
grayscale PNG 28x28, TinyImageNet JPEG 64x64, Textures / Places365 JPEG of other sizes, ImageNet
sets JPEG of assorted sizes above 224, ImageNet-C JPEG 224x224. Written from OpenOOD's
published layout (its README, docs/methods.md); list names as in the suite files and pytorch-ood
0.4.0. `LISTS` says, per benchmark, every list file: (file name, image root, set folder,
labels, image kind); `make_openood_tree(root)` writes them and returns {benchmark: {file: [(path,
label), ...]}}.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# kind -> (mode, sizes (W, H) cycled, extension, PIL format)
KINDS: dict[str, tuple[str, list[tuple[int, int]], str, str]] = {
    "cifar": ("RGB", [(32, 32)], "png", "PNG"),
    "mnist": ("L", [(28, 28)], "png", "PNG"),
    "tin": ("RGB", [(64, 64)], "JPEG", "JPEG"),
    "texture": ("RGB", [(45, 37), (60, 80)], "jpg", "JPEG"),
    "places": ("RGB", [(48, 40)], "jpg", "JPEG"),
    "large": ("RGB", [(300, 260), (250, 333)], "JPEG", "JPEG"),
    "imagenet_c": ("RGB", [(224, 224)], "JPEG", "JPEG"),
}
ID = "id"  # labels: classes cycled
OOD = "ood"  # labels: -1


def _cifar(bench: str, other: str, classes: int) -> list[tuple[str, str, str, str, int, str]]:
    c = "images_classic"
    return [
        (f"train_{bench}.txt", c, f"{bench}/train", ID, classes, "cifar"),
        (f"val_{bench}.txt", c, f"{bench}/test", ID, classes, "cifar"),
        (f"test_{bench}.txt", c, f"{bench}/test", ID, classes, "cifar"),
        ("val_tin.txt", c, "tin/val", OOD, 0, "tin"),
        (f"test_{other}.txt", c, f"{other}/test", OOD, 0, "cifar"),
        ("test_tin.txt", c, "tin/test", OOD, 0, "tin"),
        ("test_mnist.txt", c, "mnist/test", OOD, 0, "mnist"),
        ("test_svhn.txt", c, "svhn/test", OOD, 0, "cifar"),
        ("test_texture.txt", c, "texture/images", OOD, 0, "texture"),
        ("test_places365.txt", c, "places365/test", OOD, 0, "places"),
    ]


def _imagenet(tag: str, classes: int) -> list[tuple[str, str, str, str, int, str]]:
    g = "images_largescale"
    return [
        (f"train_{tag}.txt", g, "imagenet_1k/train", ID, classes, "large"),
        (f"val_{tag}.txt", g, "imagenet_1k/val", ID, classes, "large"),
        (f"test_{tag}.txt", g, "imagenet_1k/val", ID, classes, "large"),
        ("val_openimage_o.txt", g, "openimage_o/images", OOD, 0, "large"),
        ("test_ssb_hard.txt", g, "ssb_hard", OOD, 0, "large"),
        ("test_ninco.txt", g, "ninco/NINCO_OOD_classes", OOD, 0, "large"),
        ("test_inaturalist.txt", g, "inaturalist/images", OOD, 0, "large"),
        ("test_textures.txt", "images_classic", "texture/images", OOD, 0, "texture"),
        ("test_openimage_o.txt", g, "openimage_o/images", OOD, 0, "large"),
        (f"test_{tag}_v2.txt", g, "imagenet_v2", ID, classes, "large"),
        (f"test_{tag}_c.txt", g, "imagenet_c/blur", ID, classes, "imagenet_c"),
        (f"test_{tag}_r.txt", g, "imagenet_r", ID, classes, "large"),
    ]


# benchmark folder -> lists: (file, image root, set folder, labels, classes, kind)
LISTS: dict[str, list[tuple[str, str, str, str, int, str]]] = {
    "cifar10": _cifar("cifar10", "cifar100", 10),
    "cifar100": _cifar("cifar100", "cifar10", 100),
    "imagenet200": _imagenet("imagenet200", 200),
    "imagenet": _imagenet("imagenet", 1000),
}


def make_openood_tree(
    root: Path, *, per_list: int = 3, benchmarks: tuple[str, ...] = tuple(LISTS), seed: int = 0
) -> dict[str, dict[str, list[tuple[str, int]]]]:
    """Write the miniature tree under `root`; return the lines of every list as (path, label)."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, list[tuple[str, int]]]] = {}
    for bench in benchmarks:
        lists: dict[str, list[tuple[str, int]]] = {}
        folder = root / "benchmark_imglist" / bench
        folder.mkdir(parents=True, exist_ok=True)
        for file, images, setdir, labels, classes, kind in LISTS[bench]:
            mode, sizes, ext, fmt = KINDS[kind]
            lines = []
            stem = file.removesuffix(".txt")
            for i in range(per_list):
                label = (i * 7) % classes if labels == ID else -1
                rel = f"{setdir}/{stem}_{i:04d}.{ext}"
                path = root / images / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                w, h = sizes[i % len(sizes)]
                channels = 1 if mode == "L" else 3
                shape = (h, w) if channels == 1 else (h, w, 3)
                # Smooth random images (upsampled noise): JPEG and resizing act as on photos.
                small = rng.integers(
                    0, 256, size=(max(h // 4, 1), max(w // 4, 1), *shape[2:]), dtype=np.uint8
                )
                image = Image.fromarray(small).resize((w, h), Image.BILINEAR)
                assert image.mode == mode
                image.save(path, format=fmt)
                lines.append((rel, label))
            (folder / file).write_text("".join(f"{p} {lab}\n" for p, lab in lines), encoding="utf-8")
            lists[file] = lines
        out[bench] = lists
    return out


def random_resnet18_32x32(classes: int = 10, seed: int = 0):
    """OpenOOD's ResNet18_32x32 with random weights (seed) AND random BatchNorm statistics and
    affine terms: with the defaults (mean 0, var 1, no shift) the network is nearly positively
    homogeneous and blind to a wrong normalisation scale, so a comparison could not see one."""
    import torch

    from oodbench.models.openood_arch import resnet18_32x32

    torch.manual_seed(seed)
    model = resnet18_32x32(classes).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
    return model
