"""Streaming sources (oodbench.data.sources) on tiny generated files in every format they read."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.data.sources import (
    BadFilesWarning,
    ClassFolderSource,
    ImageFolderSource,
    ImageListSource,
    NpzSource,
    Preprocess,
    TensorSource,
    make_loader,
    precheck,
    select,
)
from oodbench.errors import UserInputError

RGB3 = Preprocess(channels=3)


def _rgb(rng: np.random.RandomState, h: int, w: int) -> np.ndarray:
    return rng.randint(0, 256, (h, w, 3), dtype=np.uint8)


def write_modes(folder: Path, rng: np.random.RandomState) -> dict[str, Path]:
    """One 10x12 image per mode: RGB PNG, JPEG, 16-bit grey PNG, palette, RGBA, L."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    paths["rgb"] = folder / "rgb.png"
    Image.fromarray(_rgb(rng, 10, 12)).save(paths["rgb"])
    paths["jpeg"] = folder / "photo.jpg"
    Image.fromarray(_rgb(rng, 10, 12)).save(paths["jpeg"], quality=90)
    paths["i16"] = folder / "deep.png"
    Image.fromarray(rng.randint(0, 65536, (10, 12)).astype(np.uint16)).save(paths["i16"])
    paths["p"] = folder / "palette.png"
    Image.fromarray(_rgb(rng, 10, 12)).quantize(16).save(paths["p"])
    paths["rgba"] = folder / "alpha.png"
    Image.fromarray(rng.randint(0, 256, (10, 12, 4), dtype=np.uint8)).save(paths["rgba"])
    paths["l"] = folder / "grey.png"
    Image.fromarray(rng.randint(0, 256, (10, 12), dtype=np.uint8)).save(paths["l"])
    return paths


@pytest.fixture(scope="module")
def modes(tmp_path_factory) -> dict[str, Path]:
    return write_modes(tmp_path_factory.mktemp("modes"), np.random.RandomState(0))


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    """root/<class>/...: 3 classes (one nested folder), 24x20 PNGs and JPEGs, 6/4/10 images."""
    root = tmp_path_factory.mktemp("classes")
    rng = np.random.RandomState(1)
    for name, count in (("cat", 6), ("ant", 4), ("dog", 10)):
        for i in range(count):
            sub = root / name / ("nested" if name == "dog" and i % 2 else "")
            sub.mkdir(parents=True, exist_ok=True)
            suffix = ".jpg" if i % 3 == 0 else ".png"
            Image.fromarray(_rgb(rng, 24, 20)).save(sub / f"img{i:02d}{suffix}")
    return root


def torchvision_pixels(path: Path, *transforms) -> torch.Tensor:
    """torchvision's ImageFolder loader (PIL convert RGB) then the given transforms, as uint8 CHW."""
    from torchvision.datasets.folder import pil_loader
    from torchvision.transforms import v2

    return v2.Compose([*transforms, v2.PILToTensor()])(pil_loader(str(path)))


def items(source) -> list[torch.Tensor]:
    return [source[i].image for i in range(len(source))]


# ---------------------------------------------------------------------------------- conversion
@pytest.mark.parametrize("mode", ["rgb", "jpeg", "p", "rgba", "l"])
def test_mode_conversion_to_rgb_equals_torchvision(modes, mode):
    source = ImageFolderSource(modes[mode].parent, RGB3)
    item = source[source.rel.index(modes[mode].name)]
    assert item.image.dtype == torch.uint8 and item.label == -1
    assert torch.equal(item.image, torchvision_pixels(modes[mode]))


def test_16_bit_images_keep_their_high_bits_in_every_channel(modes):
    stored = np.asarray(Image.open(modes["i16"])).astype(np.uint16)
    source = ImageFolderSource(modes["i16"].parent, RGB3)
    image = source[source.rel.index("deep.png")].image
    expected = torch.from_numpy((stored >> 8).astype(np.uint8))
    assert torch.equal(image, expected.expand(3, -1, -1))
    grey = ImageFolderSource(modes["i16"].parent, Preprocess(channels=1))[source.rel.index("deep.png")]
    assert torch.equal(grey.image[0], expected)


def test_float_and_32_bit_images_follow_the_read_image_rule(tmp_path):
    from oodbench.data.image_folders import read_image

    Image.fromarray(np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)).save(tmp_path / "f.tif")
    Image.fromarray(np.arange(48, dtype=np.int32).reshape(6, 8) * 1000).save(tmp_path / "i.tif")
    source = ImageFolderSource(tmp_path, Preprocess(channels=1))
    for i, rel in enumerate(source.rel):
        assert torch.equal(source[i].image, torch.from_numpy(read_image(tmp_path / rel).copy()))


def test_rgb_to_grey_is_the_convert_rule_rounded(modes):
    from oodbench.data.convert import convert_channels, uint8_to_float

    source = ImageFolderSource(modes["rgb"].parent, Preprocess(channels=1))
    grey = source[source.rel.index("rgb.png")].image
    rgb = np.asarray(Image.open(modes["rgb"])).transpose(2, 0, 1)[None]
    expected = convert_channels(uint8_to_float(rgb), 1)[0].mul(255).round().to(torch.uint8)
    assert torch.equal(grey, expected)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_resize_and_centre_crop_equal_torchvision_transforms(classes, interpolation):
    from torchvision.transforms import InterpolationMode, v2

    pre = Preprocess(channels=3, size=(14, 14), resize=16, crop=(14, 14), interpolation=interpolation)
    source = ClassFolderSource(classes, pre)
    mode = InterpolationMode(interpolation)
    for i in (0, 5, len(source) - 1):  # PNG and JPEG, nested and flat
        expected = torchvision_pixels(
            source.path(i), v2.Resize(16, interpolation=mode, antialias=True), v2.CenterCrop(14)
        )
        assert tuple(expected.shape) == (3, 14, 14)
        assert torch.equal(source[i].image, expected)


def test_without_resize_images_follow_the_convert_rule(classes):
    from oodbench.data.convert import to_shape, uint8_to_float

    pre = Preprocess(channels=3, size=(8, 8))
    source = ClassFolderSource(classes, pre)
    raw = np.asarray(Image.open(source.path(0)).convert("RGB")).transpose(2, 0, 1)[None]
    expected = to_shape(uint8_to_float(raw), (3, 8, 8))[0].mul(255).round().to(torch.uint8)
    assert torch.equal(source[0].image, expected)


# ------------------------------------------------------------------------------------ sources
def test_class_folders_match_torchvision_image_folder(classes):
    from torchvision.datasets import ImageFolder

    source = ClassFolderSource(classes, RGB3)
    reference = ImageFolder(str(classes))
    assert source.classes == reference.classes == ["ant", "cat", "dog"]
    ours = sorted(zip((str(source.path(i)) for i in range(len(source))), source.labels.tolist(), strict=True))
    assert ours == sorted(reference.samples)
    assert np.bincount(source.labels).tolist() == [4, 6, 10]


def test_flat_folder_reads_only_its_own_files(classes, tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "top.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "sub" / "deep.png")
    (tmp_path / ".hidden.png").write_bytes(b"")
    assert ImageFolderSource(tmp_path, RGB3, recursive=False).rel == ["top.png"]
    assert ImageFolderSource(tmp_path, RGB3).rel == ["sub/deep.png", "top.png"]
    assert len(ImageFolderSource(classes, RGB3)) == 20


def test_image_list_in_openood_format(classes, tmp_path):
    source = ClassFolderSource(classes, RGB3)
    lines = ["# OpenOOD benchmark_imglist style", ""]
    lines += [f"{source.rel[i]} {source.labels[i]}" for i in range(0, 20, 2)]
    lines.append(f"{source.rel[1]} -1")  # an OOD image: no label
    listed = tmp_path / "test_cifar.txt"
    listed.write_text("\n".join(lines) + "\n")
    imglist = ImageListSource(listed, classes, RGB3)
    assert imglist.rel == [source.rel[i] for i in range(0, 20, 2)] + [source.rel[1]]
    assert imglist.labels.tolist() == [*source.labels[0:20:2].tolist(), -1]
    assert torch.equal(imglist[0].image, source[0].image)


def test_image_list_errors_name_every_bad_line_in_one_message(classes, tmp_path):
    listed = tmp_path / "bad.txt"
    listed.write_text("ant/img00.jpg 0\n../escape.png 1\nant/img01.png -3\nnotes.txt 2\n/abs/x.png 0\n")
    with pytest.raises(UserInputError) as caught:
        ImageListSource(listed, classes, RGB3)
    message = str(caught.value)
    assert "\n" not in message and "4 bad line(s)" in message
    for number in ("line 2", "line 3", "line 4", "line 5"):
        assert number in message
    assert "line 1:" not in message


def test_tensor_and_npz_sources_give_the_same_items(tmp_path):
    rng = np.random.RandomState(2)
    x = rng.randint(0, 256, (7, 1, 6, 6), dtype=np.uint8)
    y = np.arange(7) % 3
    np.savez(tmp_path / "set.npz", x=x[:, 0], y=y)  # stored (N, H, W): a channel axis is added
    tensor = TensorSource(torch.from_numpy(x), torch.from_numpy(y), pre=Preprocess(channels=1), name="set")
    npz = NpzSource(tmp_path / "set.npz", Preprocess(channels=1))
    for i in range(7):
        assert torch.equal(tensor[i].image, npz[i].image) and tensor[i].label == npz[i].label == y[i]
    assert tensor.fingerprint() == npz.fingerprint()  # same bytes, labels and preprocessing
    grown = TensorSource(torch.from_numpy(x), None, pre=Preprocess(channels=3, size=(12, 12)), name="set")
    assert tuple(grown[0].image.shape) == (3, 12, 12) and grown[0].image.dtype == torch.uint8


def test_embedded_set_through_the_same_interface():
    from oodbench.data import load_dataset

    images = load_dataset("mnist_5k", "test")
    source = TensorSource.from_labeled(images, Preprocess(channels=1, size=(28, 28)))
    batch = next(iter(make_loader(source, batch_size=100, workers=0)))
    assert torch.equal(batch.x, images.x[:100]) and torch.equal(batch.y, images.y[:100])


def test_float_sets_stay_float():
    x = torch.rand(4, 3, 5, 5)
    source = TensorSource(x, pre=Preprocess(channels=3, size=(5, 5)), name="noise")
    assert torch.equal(source[2].image, x[2])


# ------------------------------------------------------------------------------------- select
def test_select_opens_only_the_chosen_files(classes, monkeypatch):
    opened: list[str] = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        opened.append(Path(fp).relative_to(classes).as_posix())
        return real_open(fp, *args, **kwargs)

    source = ClassFolderSource(classes, RGB3)
    monkeypatch.setattr(Image, "open", counting_open)
    chosen = select(source, 10, seed=3)
    assert opened == []  # choosing reads nothing
    batches = list(make_loader(chosen, batch_size=4, workers=0))
    assert sorted(opened) == sorted(chosen.rel) and len(opened) == 10
    assert sum(len(b.x) for b in batches) == 10


def test_select_is_stratified_seeded_and_keeps_file_order(classes):
    from oodbench.data.spec import stratified_holdout

    source = ClassFolderSource(classes, RGB3)
    chosen = select(source, 10, seed=0)
    assert np.bincount(chosen.labels).tolist() == [2, 3, 5]  # 4/6/10 of 20 -> halves
    _, expected = stratified_holdout(torch.from_numpy(source.labels), 10, seed=0)
    assert chosen.rel == [source.rel[i] for i in expected]
    assert select(source, 10, seed=0).rel == chosen.rel and select(source, 10, seed=1).rel != chosen.rel
    plain = select(source, 10, seed=0, stratified=False)
    assert plain.rel == [source.rel[i] for i in np.sort(np.random.RandomState(0).permutation(20)[:10])]
    assert select(source, 50) is source
    with pytest.raises(UserInputError, match="integer >= 1"):
        select(source, 0)


def test_select_on_tensors_equals_the_in_memory_cap():
    from oodbench.data import load_dataset
    from oodbench.data.spec import cap

    images = load_dataset("animal_mnist", "test")
    source = TensorSource.from_labeled(images, Preprocess(channels=1, size=(28, 28)))
    picked = next(iter(make_loader(select(source, 50, seed=0), batch_size=64, workers=0)))
    assert torch.equal(picked.x, cap(images, 50).x)


# ------------------------------------------------------------------------------------ loaders
def test_two_workers_give_the_same_batches_as_none(classes):
    pre = Preprocess(channels=3, size=(16, 16), resize=16, crop=(16, 16))
    source = ClassFolderSource(classes, pre)
    serial = list(make_loader(source, batch_size=6, workers=0))
    parallel = list(make_loader(source, batch_size=6, workers=2))
    assert len(serial) == len(parallel) == 4
    for a, b in zip(serial, parallel, strict=True):
        assert a.x.dtype == torch.uint8 and tuple(a.x.shape[1:]) == (3, 16, 16)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.index, b.index)


def test_no_more_workers_than_batches_and_the_same_batches(classes):
    pre = Preprocess(channels=3, size=(16, 16), resize=16, crop=(16, 16))
    source = ClassFolderSource(classes, pre)
    one_batch = make_loader(source, batch_size=len(source), workers=2)
    assert one_batch.workers == 1  # a second worker would have no batch to decode
    assert make_loader(source, batch_size=12, workers=8).workers == 2  # 24 images, 2 batches
    (serial,) = list(make_loader(source, batch_size=len(source), workers=0))
    (parallel,) = list(one_batch)
    assert torch.equal(serial.x, parallel.x) and torch.equal(serial.index, parallel.index)


@pytest.fixture
def with_corrupt(tmp_path) -> Path:
    rng = np.random.RandomState(4)
    for i in range(6):
        Image.fromarray(_rgb(rng, 8, 8)).save(tmp_path / f"ok{i}.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    good = (tmp_path / "ok0.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])  # header fine, body cut
    return tmp_path


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_files_are_skipped_counted_and_named_once(with_corrupt, workers):
    source = ImageFolderSource(with_corrupt, RGB3)
    loader = make_loader(source, batch_size=4, workers=workers)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(loader)
    assert sum(len(b.x) for b in batches) == 6
    assert loader.n_skipped == 3 and sorted(loader.skipped) == ["empty.png", "text.jpg", "truncated.png"]
    bad = [w for w in caught if issubclass(w.category, BadFilesWarning)]
    assert len(bad) == 1 and "skipped 3" in str(bad[0].message) and "truncated.png" in str(bad[0].message)
    kept = torch.cat([b.index for b in batches]).tolist()
    assert [source.rel[i] for i in kept] == [f"ok{i}.png" for i in range(6)]


def test_strict_mode_refuses_before_scoring_in_one_line(with_corrupt):
    source = ImageFolderSource(with_corrupt, RGB3)
    with pytest.raises(UserInputError) as caught:
        precheck(source)
    message = str(caught.value)
    assert "\n" not in message and "2 unreadable" in message
    assert "empty.png" in message and "text.jpg" in message
    (with_corrupt / "empty.png").unlink()
    (with_corrupt / "text.jpg").unlink()
    precheck(source.subset(np.array([i for i, r in enumerate(source.rel) if r.startswith("ok")])))
    # A body that fails only when decoded: strict loaders stop with one line too.
    remaining = ImageFolderSource(with_corrupt, RGB3)
    precheck(remaining)  # the truncated PNG's header is fine
    with pytest.raises(UserInputError, match=r"truncated\.png.*strict mode"):
        list(make_loader(remaining, batch_size=4, workers=0, strict=True))


def test_bad_loader_arguments_are_one_line(classes):
    source = ClassFolderSource(classes, RGB3)
    for kwargs, text in (({"batch_size": 0}, "batch size"), ({"workers": -1}, "workers")):
        with pytest.raises(UserInputError, match=text):
            make_loader(source, **kwargs)
    from oodbench.data.sources import Item
    from oodbench.data.sources.loader import collate

    with pytest.raises(UserInputError, match="different sizes"):
        collate([Item(torch.zeros(3, 4, 4, dtype=torch.uint8), 0, 0), Item(torch.zeros(3, 5, 5), 0, 1)])
    with pytest.raises(UserInputError, match="channels must be 1 or 3"):
        Preprocess(channels=2)


# ------------------------------------------------------------------------------- fingerprints
def test_fingerprints_tell_sets_with_one_name_apart(classes, tmp_path):
    import shutil

    copy = tmp_path / classes.name
    shutil.copytree(classes, copy)
    a, b = ClassFolderSource(classes, RGB3), ClassFolderSource(copy, RGB3)
    assert a.name == b.name
    first = b.fingerprint()
    assert b.fingerprint() == first  # stable
    target = copy / b.rel[0]
    os.utime(target, ns=(0, 10**9))  # touched: a new mtime
    assert b.fingerprint() != first
    touched = b.fingerprint()
    Image.fromarray(np.zeros((24, 20, 3), np.uint8)).save(copy / "ant" / "extra.png")
    assert ClassFolderSource(copy, RGB3).fingerprint() != touched
    assert select(a, 10).fingerprint() != a.fingerprint()
    assert ClassFolderSource(classes, Preprocess(channels=1)).fingerprint() != a.fingerprint()
    x = torch.zeros(3, 1, 4, 4, dtype=torch.uint8)
    t1 = TensorSource(x, pre=Preprocess(channels=1), name="t")
    x2 = x.clone()
    x2[1, 0, 2, 2] = 1
    assert t1.fingerprint() != TensorSource(x2, pre=Preprocess(channels=1), name="t").fingerprint()


def test_list_fingerprint_follows_the_list_file(classes, tmp_path):
    listed = tmp_path / "l.txt"
    listed.write_text("ant/img00.jpg 0\ncat/img01.png 1\n")
    first = ImageListSource(listed, classes, RGB3).fingerprint()
    listed.write_text("ant/img00.jpg 0\ncat/img01.png 2\n")
    assert ImageListSource(listed, classes, RGB3).fingerprint() != first
