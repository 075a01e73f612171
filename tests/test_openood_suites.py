"""The four OpenOOD v1.5 suite files on a fabricated miniature data root (tests/openood_tree.py):
every split's size and labels, the groups, the preprocessing (against torchvision's transforms on
the same files), the missing-data message, list pins; and side by side with pytorch-ood 0.4.0's
CIFAR10_OpenOOD / CIFAR100_OpenOOD on the same tree (the same images per set)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from oodbench.data.suite_file import builtin_suite_files, load_suite_file, parse_suite
from oodbench.errors import DataNotFoundError, UserInputError
from tests.openood_tree import LISTS, make_openood_tree

SUITES = {
    "openood-cifar10": "cifar10",
    "openood-cifar100": "cifar100",
    "openood-imagenet200": "imagenet200",
    "openood-imagenet1k": "imagenet",
}
GROUPS = {
    "openood-cifar10": {"near": ["cifar100", "tin"], "far": ["mnist", "svhn", "texture", "places365"]},
    "openood-cifar100": {"near": ["cifar10", "tin"], "far": ["mnist", "svhn", "texture", "places365"]},
    "openood-imagenet200": {"near": ["ssb_hard", "ninco"], "far": ["inaturalist", "textures", "openimage_o"]},
    "openood-imagenet1k": {"near": ["ssb_hard", "ninco"], "far": ["inaturalist", "textures", "openimage_o"]},
}
NORMALIZE = {
    "openood-cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "openood-cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "openood-imagenet200": "imagenet",
    "openood-imagenet1k": "imagenet",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("openood")
    return root, make_openood_tree(root)


def expected_list(bench: str, role: str) -> str:
    """The list file a suite role should read, by OpenOOD's naming (independent of the TOML)."""
    tag = {"imagenet": "imagenet"}.get(bench, bench)
    fixed = {"train": f"train_{tag}.txt", "val": f"val_{tag}.txt", "test": f"test_{tag}.txt"}
    if role in fixed:
        return fixed[role]
    if role.startswith("validation_ood:"):
        return "val_tin.txt" if bench.startswith("cifar") else "val_openimage_o.txt"
    if role.startswith("imagenet_"):  # csID
        return f"test_{tag}_{role.removeprefix('imagenet_')}.txt"
    return f"test_{role}.txt"


def torchvision_pipeline(suite: str, native: bool) -> T.Compose:
    """OpenOOD's test transform without ToTensor's scaling / Normalize: uint8 to compare."""
    if native:
        return T.Compose([T.PILToTensor()])
    if suite.startswith("openood-cifar"):
        steps = [T.Resize(32, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(32)]
    else:
        steps = [T.Resize(256, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(224)]
    return T.Compose([*steps, T.PILToTensor()])


@pytest.mark.parametrize("suite_name", sorted(SUITES))
def test_suite_file_reads_the_tree(tree, suite_name: str) -> None:
    root, lines = tree
    bench = SUITES[suite_name]
    suite = load_suite_file(builtin_suite_files()[suite_name], data_root=root)
    assert suite.name == suite_name and suite.needs_data_root
    assert suite.groups() == GROUPS[suite_name]
    assert suite.normalize == NORMALIZE[suite_name]
    assert suite.list_pins() == {}  # no official digests known: nothing pinned
    roles = suite.named_sources()
    expected_roles = {"train", "val", "test", *(n for g in GROUPS[suite_name].values() for n in g)}
    expected_roles.add("validation_ood:" + ("tin_val" if bench.startswith("cifar") else "openimage_o_val"))
    if not bench.startswith("cifar"):
        expected_roles |= {"imagenet_v2", "imagenet_c", "imagenet_r"}
    assert set(roles) == expected_roles
    digests = suite.verify_lists()
    images_root = {f: r for f, r, *_ in LISTS[bench]}
    for role, spec in roles.items():
        listname = expected_list(bench, role)
        assert spec.path() == (root / "benchmark_imglist" / bench / listname).resolve(), role
        assert spec.root_path() == (root / images_root[listname]).resolve(), role
        assert spec.native == (role == "imagenet_c")
        source = spec.build(suite.preprocess, name=role)
        want = lines[bench][listname]
        assert len(source) == len(want), role
        assert [int(v) for v in source.labels] == [lab for _, lab in want], role
        assert digests[role]["sha256"] == spec.list_sha256() and not digests[role]["accepted"]
        pipeline = torchvision_pipeline(suite_name, spec.native)
        for i, (rel, _) in enumerate(want):
            item = source[i]
            assert item.error == "", item.error
            with Image.open(spec.root_path() / rel) as image:
                reference = pipeline(image.convert("RGB"))
            assert item.image.dtype == torch.uint8
            assert torch.equal(item.image, reference), (role, rel)
    shape = (3, 32, 32) if bench.startswith("cifar") else (3, 224, 224)
    assert suite.preprocess.shape == shape


def test_suite_files_parse_without_a_data_root() -> None:
    for name in SUITES:
        suite = load_suite_file(builtin_suite_files()[name])
        assert suite.data_root is None and suite.needs_data_root
        with pytest.raises(UserInputError, match="data root"):
            suite.test.path()


def test_missing_data_is_one_line_naming_everything(tmp_path: Path) -> None:
    make_openood_tree(tmp_path, benchmarks=("cifar10",))
    (tmp_path / "benchmark_imglist" / "cifar10" / "test_mnist.txt").unlink()
    (tmp_path / "benchmark_imglist" / "cifar10" / "val_tin.txt").unlink()
    shutil.rmtree(tmp_path / "images_classic")
    with pytest.raises(DataNotFoundError) as info:
        load_suite_file(builtin_suite_files()["openood-cifar10"], data_root=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert f"under data root {tmp_path.resolve()}" in message
    for missing in ("cifar10/test_mnist.txt", "cifar10/val_tin.txt", "images_classic"):
        assert missing in message
    assert "test_svhn.txt" not in message  # only what is missing
    assert "scripts/download/download.py" in message and "oodbench[openood]" in message
    assert "3 list(s)/folder(s) missing" in message


def test_list_pins(tmp_path: Path) -> None:
    make_openood_tree(tmp_path, benchmarks=("cifar10",))
    text = builtin_suite_files()["openood-cifar10"].read_text()
    digest = load_suite_file(builtin_suite_files()["openood-cifar10"], data_root=tmp_path).test.list_sha256()
    test_line = 'test = { list = "{data_root}/benchmark_imglist/cifar10/test_cifar10.txt", '
    assert test_line in text

    def with_pin(pin: str):
        return parse_suite(text.replace(test_line, test_line + f'sha256 = "{pin}", '), data_root=tmp_path)

    assert with_pin(digest).list_pins() == {"test": digest}
    assert with_pin(digest).verify_lists()["test"] == {"sha256": digest, "pinned": digest, "accepted": False}
    wrong = "0" * 64
    with pytest.raises(UserInputError) as info:
        with_pin(wrong).verify_lists()
    assert "\n" not in str(info.value) and "test_cifar10.txt" in str(info.value) and wrong in str(info.value)
    accepted = with_pin(wrong).verify_lists(accept_changed=True)["test"]
    assert accepted == {"sha256": digest, "pinned": wrong, "accepted": True}
    with pytest.raises(UserInputError, match="64 lowercase hex"):
        with_pin("abc")


@pytest.mark.parametrize("suite_name", ["openood-cifar10", "openood-cifar100"])
def test_same_images_as_pytorch_ood(tree, tmp_path: Path, suite_name: str) -> None:
    """pytorch-ood 0.4.0's benchmark class on the same tree, its lists from torch.hub's dir."""
    benchmark_module = pytest.importorskip("pytorch_ood.benchmark.img.openood")
    root, _ = tree
    hub = tmp_path / "hub"
    shutil.copytree(root / "benchmark_imglist", hub / "openood_benchmark_imglist" / "benchmark_imglist")
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        cls = {"openood-cifar10": "CIFAR10_OpenOOD", "openood-cifar100": "CIFAR100_OpenOOD"}[suite_name]
        pipeline = torchvision_pipeline(suite_name, native=False)
        theirs = getattr(benchmark_module, cls)(
            root=str(root / "images_classic"), transform=pipeline, download=False
        )
    finally:
        torch.hub.set_dir(old)
    suite = load_suite_file(builtin_suite_files()[suite_name], data_root=root)
    ours = suite.named_sources()
    their_names = {"CIFAR100": "cifar100", "CIFAR10": "cifar10", "TinyImageNet": "tin", "MNIST": "mnist",
                   "SVHN": "svhn", "Textures": "texture", "Places365": "places365"}  # fmt: skip
    pairs = {
        "train": theirs.train_in,
        "val": theirs.val_in,
        "test": theirs.test_in,
        "validation_ood:tin_val": theirs.val_ood,
    }
    for name, dataset in zip(theirs.ood_names, theirs.test_oods, strict=True):
        pairs[their_names[name]] = dataset
    assert set(pairs) == set(ours)
    near = [their_names[n] for n in theirs._near_ood]
    far = [their_names[n] for n in theirs._far_ood]
    assert suite.groups() == {"near": near, "far": far}
    for role, dataset in pairs.items():
        source = ours[role].build(suite.preprocess, name=role)
        assert [Path(f) for f in dataset.files] == [source.path(i) for i in range(len(source))], role
        assert list(dataset.labels) == [int(v) for v in source.labels], role
        for i in range(len(source)):
            image, label = dataset[i]
            assert torch.equal(image, source[i].image), (role, i)
            assert label == int(source.labels[i])


@pytest.mark.parametrize("suite_name", ["openood-imagenet200", "openood-imagenet1k"])
def test_same_images_as_pytorch_ood_imagenet(tree, tmp_path: Path, suite_name: str) -> None:
    """pytorch-ood 0.4.0's ImageNet200_OpenOOD / ImageNet_OpenOOD resolve every list against ONE
    root, Textures included, whereas OpenOOD keeps Textures in images_classic/: on a copy of the
    tree with images_largescale/texture linked to images_classic/texture both read the same
    images. (pytorch-ood has no csID sets; those are checked in test_suite_file_reads_the_tree.)"""
    benchmark_module = pytest.importorskip("pytorch_ood.benchmark.img.openood")
    source_root, _ = tree
    root = tmp_path / "data"
    shutil.copytree(source_root, root, symlinks=True)
    (root / "images_largescale" / "texture").symlink_to(root / "images_classic" / "texture")
    hub = tmp_path / "hub"
    shutil.copytree(root / "benchmark_imglist", hub / "openood_benchmark_imglist" / "benchmark_imglist")
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        cls = {"openood-imagenet200": "ImageNet200_OpenOOD", "openood-imagenet1k": "ImageNet_OpenOOD"}[
            suite_name
        ]
        pipeline = torchvision_pipeline(suite_name, native=False)
        theirs = getattr(benchmark_module, cls)(
            root=str(root / "images_largescale"), transform=pipeline, download=False
        )
    finally:
        torch.hub.set_dir(old)
    suite = load_suite_file(builtin_suite_files()[suite_name], data_root=root)
    ours = suite.named_sources()
    their_names = {"SSBHard": "ssb_hard", "NINCO": "ninco", "iNaturalist": "inaturalist",
                   "Textures": "textures", "OpenImagesO": "openimage_o"}  # fmt: skip
    pairs = {"train": theirs.train_in, "val": theirs.val_in, "test": theirs.test_in}
    pairs["validation_ood:openimage_o_val"] = theirs.val_ood
    for name, dataset in zip(theirs.ood_names, theirs.test_oods, strict=True):
        pairs[their_names[name]] = dataset
    assert set(ours) - set(pairs) == {"imagenet_v2", "imagenet_c", "imagenet_r"}
    assert suite.groups() == {
        "near": [their_names[n] for n in theirs._near_ood],
        "far": [their_names[n] for n in theirs._far_ood],
    }
    for role, dataset in pairs.items():
        source = ours[role].build(suite.preprocess, name=role)
        assert [Path(f).resolve() for f in dataset.files] == [source.path(i) for i in range(len(source))], (
            role
        )
        assert list(dataset.labels) == [int(v) for v in source.labels], role
        for i in range(len(source)):
            image, label = dataset[i]
            assert torch.equal(image, source[i].image), (role, i)
            assert label == int(source.labels[i])
