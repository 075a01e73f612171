"""The real-data workflow: files found where users keep them, archives already at hand, file checks."""

from __future__ import annotations

import hashlib
import tarfile

import numpy as np
import pytest
import torch
import torchvision.datasets
from click.testing import CliRunner
from test_data_formats import data_root, write_cifar10, write_odin, write_svhn

from oodbench.cli import cli
from oodbench.data import DATASETS, image_folders, load_dataset
from oodbench.data import download as dl
from oodbench.errors import UserInputError


def _no_network(monkeypatch):
    monkeypatch.setattr(dl, "_download_url", lambda *a: pytest.fail("downloaded again"))


def _tar(source_root, member, archive):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source_root / member, arcname=member)
    return hashlib.md5(archive.read_bytes()).hexdigest()


def test_svhn_found_in_torchvision_layout_directly_in_the_root():
    images, labels = write_svhn(data_root(), "test", 6)  # <root>/test_32x32.mat, as SVHN(root) stores it
    write_svhn(data_root(), "train", 6)
    assert DATASETS.get("svhn").present()
    loaded = load_dataset("svhn", "test")
    assert torch.equal(loaded.x, torch.from_numpy(images)) and loaded.y.tolist() == labels.tolist()


def test_list_datasets_checks_files_not_folders(tmp_path):
    root = tmp_path / "d"
    (root / "LSUN").mkdir(parents=True)  # an empty ODIN folder
    (root / "cifar-10-batches-py").mkdir()  # an empty CIFAR folder
    write_odin(root, "iSUN", n=2)
    output = CliRunner().invoke(cli, ["list", "datasets", "--data-dir", str(root)]).output
    rows = {line.split()[0]: line for line in output.splitlines() if line.strip()}
    assert "missing" in rows["lsun_crop"] and "missing" in rows["cifar10"]
    assert "present" in rows["isun"]


@pytest.mark.parametrize("inside", [False, True], ids=["in-root", "in-its-folder"])
def test_download_unpacks_an_odin_archive_already_there(monkeypatch, tmp_path, inside):
    write_odin(tmp_path / "upstream", "Imagenet_resize", n=3)
    folder = data_root() / "Imagenet_resize"
    archive = (folder if inside else data_root()) / "Imagenet_resize.tar.gz"
    archive.parent.mkdir(parents=True)
    md5 = _tar(tmp_path / "upstream", "Imagenet_resize", archive)
    entry = image_folders._ODIN["tinyimagenet_resize"]
    monkeypatch.setitem(image_folders._ODIN, "tinyimagenet_resize", (*entry[:4], md5, entry[5]))
    _no_network(monkeypatch)
    assert load_dataset("tinyimagenet_resize", "test", download=True).x.shape == (3, 3, 32, 32)
    assert archive.is_file()  # the user's file is left alone


def test_download_unpacks_a_cifar_archive_already_in_the_root(monkeypatch, tmp_path):
    write_cifar10(tmp_path / "upstream", n=3)
    data_root().mkdir(parents=True)
    md5 = _tar(tmp_path / "upstream", "cifar-10-batches-py", data_root() / "cifar-10-python.tar.gz")
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "tgz_md5", md5)
    _no_network(monkeypatch)
    assert load_dataset("cifar10", "train", download=True).x.shape == (15, 3, 32, 32)
    assert DATASETS.get("cifar10").present()


def test_an_archive_with_a_wrong_checksum_is_a_one_line_error(monkeypatch):
    data_root().mkdir(parents=True)
    (data_root() / "cifar-10-python.tar.gz").write_bytes(b"half an archive")
    _no_network(monkeypatch)
    with pytest.raises(UserInputError) as info:
        load_dataset("cifar10", "test", download=True)
    message = str(info.value)
    assert "\n" not in message and "cifar-10-python.tar.gz has MD5" in message
    assert "c58f30108f718f92721af3b95e74349a" in message  # the published one, from torchvision
    assert not (data_root() / "cifar-10-batches-py").exists()


def test_download_into_an_empty_odin_folder_fills_it(monkeypatch, tmp_path):
    write_odin(tmp_path / "upstream", "LSUN", n=2)
    archive = tmp_path / "LSUN.tar.gz"
    _tar(tmp_path / "upstream", "LSUN", archive)
    (data_root() / "LSUN").mkdir(parents=True)
    monkeypatch.setattr(
        dl, "_download_url", lambda url, folder, name, md5: (folder / name).write_bytes(archive.read_bytes())
    )
    assert len(load_dataset("lsun_crop", "test", download=True)) == 2
    assert np.asarray(load_dataset("lsun_crop", "test").x).dtype == np.uint8


def test_train_needs_no_test_or_tuning_sets(monkeypatch):
    """`oodbench train --in <paper suite>` with only the in-dist and seen OOD files (no iSUN)."""
    from test_data_formats import write_cifar10

    from oodbench.data import SUITES, Suite
    from oodbench.training import read_checkpoint

    root = data_root()
    write_svhn(root, "train", 30)  # torchvision's layout, directly in the root
    write_svhn(root, "test", 4)
    write_cifar10(root, n=4)
    real = SUITES.get("svhn")
    tiny = Suite(**{**real.__dict__, "name": "tiny-svhn", "val_in_size": 10})
    monkeypatch.setitem(SUITES._items, "tiny-svhn", tiny)
    args = ["train", "-m", "confidence", "--in", "tiny-svhn", "--epochs", "1", "--train-limit", "12"]
    result = CliRunner().invoke(cli, [*args, "--batch-size", "6", "--quiet"])
    assert result.exit_code == 0, result.output
    path = result.output.split("Checkpoint: ")[1].split()[0]
    state = read_checkpoint(path)
    assert state["data"] == {"train": "svhn", "n_train": 12, "n_seen_ood": 12}
    assert state["config"]["overrides"] == {"batch_size": 6, "epochs": 1, "train_limit": 12}


def test_file_checks_ask_only_for_the_splits_that_are_read():
    """odin-cifar10 reads SVHN's train split only (seen OOD); training reads no test split."""
    from test_data_formats import write_cifar_batch

    from oodbench.data import SUITES
    from oodbench.data.suites import check_files
    from oodbench.errors import DataNotFoundError

    root = data_root()
    for i in range(1, 6):
        write_cifar_batch(root / "cifar-10-batches-py" / f"data_batch_{i}", 4)  # no test_batch
    write_svhn(root, "train", 4)  # no test_32x32.mat
    check_files(SUITES.get("cifar10"), training_only=True)  # CIFAR-10 train + SVHN train: all there
    with pytest.raises(DataNotFoundError) as info:
        check_files(SUITES.get("odin-cifar10"))
    message = str(info.value)
    assert "cifar10: test_batch in cifar-10-batches-py/;" in message  # the test split, nothing else
    assert "svhn" not in message and "data_batch" not in message
    with pytest.raises(DataNotFoundError, match="svhn: test_32x32.mat"):
        check_files(SUITES.get("cifar10"))  # its test OOD sets include SVHN's test split
