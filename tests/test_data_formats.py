"""Readers of the papers' data sets, on tiny files written here in the exact published formats."""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from oodbench.data import DATASETS, SUITES, Suite, load_dataset, load_suite
from oodbench.data import download as dl
from oodbench.data.convert import as_float
from oodbench.errors import DataNotFoundError, UserInputError

RNG = np.random.RandomState(0)


def data_root() -> Path:
    return Path(os.environ["OODBENCH_DATA"])  # a tmp folder, set by conftest


# --------------------------------------------------------------------------------- fixture writers
def write_svhn(folder: Path, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A .mat in SVHN's layout: X uint8 (32, 32, 3, N), y (N, 1) with 10 for the digit 0."""
    images = RNG.randint(0, 256, (n, 3, 32, 32)).astype(np.uint8)
    labels = np.arange(n) % 10
    folder.mkdir(parents=True, exist_ok=True)
    stored = np.where(labels == 0, 10, labels).reshape(n, 1).astype(np.uint8)
    scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": stored})
    return images, labels


def write_cifar_batch(path: Path, n: int, label_key: str = "labels", bytes_keys: bool = False):
    images = RNG.randint(0, 256, (n, 3, 32, 32)).astype(np.uint8)
    labels = [int(v) for v in RNG.randint(0, 10, n)]
    batch = {"batch_label": "testing batch", "data": images.reshape(n, -1), label_key: labels}
    if bytes_keys:  # as Python 2 wrote the original files
        batch = {k.encode(): v for k, v in batch.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=2)
    return images, np.array(labels)


def write_cifar10(root: Path, n: int = 4) -> None:
    folder = root / "cifar-10-batches-py"
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", n)
    write_cifar_batch(folder / "test_batch", n)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


def write_image_folder(folder: Path, n: int, size=(32, 32), suffix=".png") -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    images = RNG.randint(0, 256, (n, size[1], size[0], 3)).astype(np.uint8)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:05d}{suffix}")
    return images


def write_odin(root: Path, folder: str, n: int = 6) -> np.ndarray:
    # The archives nest a second folder (e.g. Imagenet_resize/Imagenet_resize/*.jpg).
    return write_image_folder(root / folder / folder, n)


# ------------------------------------------------------------------------------------------- SVHN
def test_svhn_mat_layout_and_label_10_is_zero():
    images, labels = write_svhn(data_root() / "svhn", "test", 12)
    loaded = load_dataset("svhn", "test")
    assert loaded.x.shape == (12, 3, 32, 32) and loaded.x.dtype == torch.uint8  # kept as stored
    assert torch.equal(as_float(loaded.x), torch.from_numpy(images).float() / 255)
    assert loaded.y.tolist() == labels.tolist()
    assert 0 in loaded.y.tolist() and loaded.y.max().item() == 9


def test_missing_svhn_file_is_one_line_naming_file_folder_and_source():
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("svhn", "test")
    message = str(info.value)
    assert "\n" not in message
    assert "test_32x32.mat" in message and str(data_root() / "svhn") in message
    assert "http://ufldl.stanford.edu/housenumbers/" in message and "--download" in message
    # Nothing was created while failing.
    assert not (data_root() / "svhn").exists()


def test_corrupt_svhn_file_is_a_one_line_user_error():
    folder = data_root() / "svhn"
    folder.mkdir(parents=True)
    (folder / "test_32x32.mat").write_bytes(b"this is not a MATLAB file" * 10)
    with pytest.raises(UserInputError) as info:
        load_dataset("svhn", "test")
    assert not isinstance(info.value, DataNotFoundError)
    assert "\n" not in str(info.value) and "test_32x32.mat" in str(info.value)


def test_svhn_file_with_wrong_shape_is_rejected():
    folder = data_root() / "svhn"
    folder.mkdir(parents=True)
    scipy.io.savemat(
        folder / "test_32x32.mat", {"X": np.zeros((28, 28, 1, 2), np.uint8), "y": np.ones((2, 1))}
    )
    with pytest.raises(UserInputError, match="32x32x3xN"):
        load_dataset("svhn", "test")


# ------------------------------------------------------------------------------------------ CIFAR
@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar10_batches_in_row_major_rgb_planes(bytes_keys):
    folder = data_root() / "cifar-10-batches-py"
    images, labels = write_cifar_batch(folder / "test_batch", 5, bytes_keys=bytes_keys)
    loaded = load_dataset("cifar10", "test")
    assert torch.equal(as_float(loaded.x), torch.from_numpy(images).float() / 255)
    assert loaded.y.tolist() == labels.tolist()


def test_cifar10_train_concatenates_five_batches():
    write_cifar10(data_root(), n=3)
    assert len(load_dataset("cifar10", "train")) == 15
    assert DATASETS.get("cifar10").present()


def test_cifar100_uses_fine_labels():
    folder = data_root() / "cifar-100-python"
    _, labels = write_cifar_batch(folder / "test", 4, label_key="fine_labels")
    assert load_dataset("cifar100", "test").y.tolist() == labels.tolist()


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_reader_refuses_pickles_that_would_run_code(capsys):
    folder = data_root() / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({"data": _Evil(), "labels": []}, handle, protocol=2)
    with pytest.raises(UserInputError, match="not a valid CIFAR python batch"):
        load_dataset("cifar10", "test")
    assert "pwned" not in capsys.readouterr().out


def test_missing_cifar_batch_names_it():
    (data_root() / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(
        DataNotFoundError, match="test_batch not found in .*cifar-10-batches-py.*cifar-10-python.tar.gz"
    ):
        load_dataset("cifar10", "test")


# ------------------------------------------------------------------------------------------ MNIST
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_mnist_idx_plain_or_gzipped(suffix):
    folder = data_root() / "MNIST" / "raw"
    images = RNG.randint(0, 256, (7, 28, 28)).astype(np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels)
    loaded = load_dataset("mnist", "test")
    assert loaded.x.shape == (7, 1, 28, 28)
    assert torch.equal(as_float(loaded.x)[:, 0], torch.from_numpy(images).float() / 255)
    assert loaded.y.tolist() == list(range(7))


def test_truncated_mnist_gz_is_a_user_error():
    folder = data_root() / "MNIST" / "raw"
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(3, dtype=np.uint8))
    full = gzip.compress(
        bytes([0, 0, 8, 3]) + (3).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(3 * 784)
    )
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(full[: len(full) // 2])
    with pytest.raises(UserInputError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", "test")


# ------------------------------------------------------------------------------------ ODIN folders
def test_odin_folder_reads_nested_images_sorted():
    images = write_odin(data_root(), "Imagenet_resize", n=5)
    loaded = load_dataset("tinyimagenet_resize", "test")
    assert loaded.y is None and loaded.x.shape == (5, 3, 32, 32)
    assert torch.equal(as_float(loaded.x), torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)


def test_odin_folder_jpeg_and_grey_images_become_rgb():
    folder = data_root() / "iSUN" / "iSUN_patches"
    write_image_folder(folder, 3, suffix=".jpeg")
    Image.fromarray(np.full((32, 32), 77, np.uint8)).save(folder / "grey.png")
    loaded = load_dataset("isun", "test")
    assert loaded.x.shape == (4, 3, 32, 32)
    grey = loaded.x[3]  # sorted: 00000..00002.jpeg, grey.png
    assert torch.allclose(grey, torch.full_like(grey, 77 / 255))


def test_missing_odin_folder_names_archive_and_folder():
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("lsun_resize", "test")
    message = str(info.value)
    assert "\n" not in message and "LSUN_resize.tar.gz" in message and str(data_root()) in message


def test_empty_odin_folder_is_a_user_error():
    (data_root() / "LSUN" / "test").mkdir(parents=True)
    with pytest.raises(UserInputError, match="has no images"):
        load_dataset("lsun_crop", "test")


def test_corrupt_image_names_the_file():
    folder = data_root() / "Imagenet" / "test"
    write_image_folder(folder, 2)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserInputError, match="broken.jpg could not be read"):
        load_dataset("tinyimagenet_crop", "test")


# ------------------------------------------------------------------------------- names and splits
def test_unknown_dataset_suggests_a_close_name():
    with pytest.raises(UserInputError, match="Unknown dataset 'cifar01'. Did you mean: cifar10"):
        load_dataset("cifar01", "test")


def test_unknown_split_lists_the_available_ones():
    with pytest.raises(UserInputError, match="no split 'val'. Available: train, test"):
        load_dataset("svhn", "val")


# ---------------------------------------------------------------------------------------- download
def test_download_failure_leaves_no_partial_file(monkeypatch):
    def failing_download(url, folder, filename, md5):
        (Path(folder) / filename).write_bytes(b"half a file")
        raise RuntimeError("File not found or corrupted.")

    monkeypatch.setattr(dl, "_download_url", failing_download)
    with pytest.raises(DataNotFoundError, match="Could not download test_32x32.mat"):
        load_dataset("svhn", "test", download=True)
    assert list((data_root() / "svhn").iterdir()) == []


def test_download_moves_a_checked_file_into_place(monkeypatch, tmp_path):
    images, _ = write_svhn(tmp_path / "upstream", "test", 4)
    calls = []

    def fake_download(url, folder, filename, md5):
        calls.append((url, md5))
        (Path(folder) / filename).write_bytes((tmp_path / "upstream" / filename).read_bytes())

    monkeypatch.setattr(dl, "_download_url", fake_download)
    loaded = load_dataset("svhn", "test", download=True)
    assert torch.equal(as_float(loaded.x), torch.from_numpy(images).float() / 255)
    assert calls == [
        ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3")
    ]
    assert sorted(p.name for p in (data_root() / "svhn").iterdir()) == ["test_32x32.mat"]


def test_download_of_odin_archive_is_unpacked_then_renamed(monkeypatch, tmp_path):
    write_odin(tmp_path / "upstream", "Imagenet_resize", n=3)
    archive = tmp_path / "Imagenet_resize.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "upstream" / "Imagenet_resize", arcname="Imagenet_resize")

    def fake_download(url, folder, filename, md5):
        assert filename == "Imagenet_resize.tar.gz" and md5 == "0f9ff11d45babf2eff5fe12281d1ac31"
        (Path(folder) / filename).write_bytes(archive.read_bytes())

    monkeypatch.setattr(dl, "_download_url", fake_download)
    assert load_dataset("tinyimagenet_resize", "test", download=True).x.shape == (3, 3, 32, 32)
    # Only the unpacked folder remains: no archive, no staging folder.
    assert sorted(p.name for p in data_root().iterdir()) == ["Imagenet_resize"]


def test_nothing_downloads_unless_asked(monkeypatch):
    monkeypatch.setattr(dl, "_download_url", lambda *a: pytest.fail("downloaded without download=True"))
    with pytest.raises(DataNotFoundError):
        load_dataset("cifar10", "test")


# ------------------------------------------------------------------------ a paper suite on fixtures
def test_paper_suite_layout_on_tiny_fixtures(monkeypatch):
    root = data_root()
    write_svhn(root / "svhn", "train", 40)
    write_svhn(root / "svhn", "test", 12)
    write_cifar10(root, n=4)
    for folder in ("Imagenet_resize", "LSUN_resize", "iSUN"):
        write_odin(root, folder, n=5)
    real = SUITES.get("svhn")
    tiny = Suite(**{**real.__dict__, "name": "tiny-svhn", "val_in_size": 10, "val_ood_size": 3})
    monkeypatch.setitem(SUITES._items, "tiny-svhn", tiny)

    data = load_suite("tiny-svhn")
    assert (len(data.train), len(data.val_in), len(data.test_in)) == (30, 10, 12)
    assert np.bincount(data.val_in.y.numpy()).tolist() == [1] * 10  # stratified hold-out
    # The hold-out is removed from training: no train image equals a validation image.
    assert not (data.train.x[:, None] == data.val_in.x[None]).flatten(2).all(-1).any()
    assert len(data.seen_ood) == 20 and data.seen_ood.split == "train"  # cifar10 train
    assert data.test_out["cifar10"].split == "test" and len(data.test_out["cifar10"]) == 4
    assert len(data.val_ood) == 3 and "isun" not in data.test_out
    assert len(data.test_out["gaussian"]) == 12  # min(in-dist test size, 10,000)
    assert data.tuning == "validation split: svhn val (10) + isun (3)"


def test_missing_suite_files_are_all_named_in_one_line_before_loading_the_rest(monkeypatch):
    write_svhn(data_root() / "svhn", "train", 12)
    (data_root() / "LSUN_resize").mkdir()  # an empty folder is not the data set
    monkeypatch.setattr(
        "oodbench.data.torchvision_formats.read_svhn_mat", lambda path: pytest.fail("read a file")
    )
    with pytest.raises(DataNotFoundError) as info:
        load_suite("svhn")
    message = str(info.value)
    assert "\n" not in message and str(data_root()) in message and "--download" in message
    assert "svhn: test_32x32.mat in svhn/ or ./;" in message  # train_32x32.mat is there
    batches = ", ".join([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"])
    assert f"cifar10: {batches} in cifar-10-batches-py/;" in message
    odin = (("tinyimagenet_resize", "Imagenet_resize"), ("lsun_resize", "LSUN_resize"), ("isun", "iSUN"))
    for name, folder in odin:
        assert f"{name}: images of {folder}.tar.gz in {folder}/" in message
    assert "gaussian" not in message


def test_training_only_needs_only_the_in_dist_and_seen_ood_files(monkeypatch):
    root = data_root()
    write_svhn(root / "svhn", "train", 40)
    write_svhn(root / "svhn", "test", 4)  # no ODIN sets, no iSUN
    write_cifar10(root, n=4)
    real = SUITES.get("svhn")
    tiny = Suite(**{**real.__dict__, "name": "tiny-svhn", "val_in_size": 10})
    monkeypatch.setitem(SUITES._items, "tiny-svhn", tiny)
    data = load_suite("tiny-svhn", training_only=True)
    assert (len(data.train), len(data.val_in), len(data.seen_ood)) == (30, 10, 20)
    assert data.test_in is None and data.val_ood is None and data.test_out == {}
    with pytest.raises(DataNotFoundError, match=r"training with suite tiny-svhn.*svhn: train_32x32.mat"):
        (root / "svhn" / "train_32x32.mat").unlink()
        load_suite("tiny-svhn", training_only=True)


def tiny_svhn_suite(monkeypatch) -> None:
    """Register suite "tiny-svhn": Lee et al.'s SVHN suite on tiny files written in the real
    formats (SVHN .mat, CIFAR-10 batches, ODIN's folders) under the test's data root."""
    from oodbench.data import SUITES, Suite

    root = data_root()
    write_svhn(root / "svhn", "train", 40)
    write_svhn(root / "svhn", "test", 12)
    write_cifar10(root, n=4)
    for folder in ("Imagenet_resize", "LSUN_resize", "iSUN"):
        write_odin(root, folder, n=5)
    real = SUITES.get("svhn")
    monkeypatch.setitem(
        SUITES._items, "tiny-svhn", Suite(**{**real.__dict__, "name": "tiny-svhn", "val_in_size": 10})
    )
