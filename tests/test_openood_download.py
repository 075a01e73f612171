"""`--download` for the OpenOOD suites (oodbench/data/openood_download.py), without the network:
a fake `gdown` module "downloads" small zips built here. Covers reuse of what is already in the
data root (the fake is never called), fetch + unpack into place, a failed download's one-line
message, a broken archive, the missing-extra message, and the suite-file entry point."""

from __future__ import annotations

import io
import sys
import types
import zipfile
from pathlib import Path

import pytest

from oodbench.data import openood_download as od
from oodbench.errors import DataNotFoundError, UserInputError
from tests.openood_tree import make_openood_tree

CIFAR_SETS = ["cifar10", "cifar100", "tin", "mnist", "svhn", "texture", "places365"]


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as handle:
        for name, data in files.items():
            handle.writestr(name, data)
    return buffer.getvalue()


def set_zip(name: str, *, nested: bool = False) -> tuple[bytes, dict[str, bytes]]:
    """A tiny archive of set `name`: its files (relative to the set folder) and the zip bytes."""
    files = {"test/a/0001.png": f"{name}-1".encode(), "test/b/0002.png": f"{name}-2".encode()}
    prefix = f"{name}/" if nested else ""
    return zip_bytes({prefix + k: v for k, v in files.items()}), files


class FakeGdown(types.ModuleType):
    """Stands for gdown: `download(id=, output=, quiet=)` writes the zip registered for the id."""

    def __init__(self, payloads: dict[str, bytes] | None = None, error: Exception | None = None) -> None:
        super().__init__("gdown")
        self.payloads = payloads or {}
        self.error = error
        self.calls: list[str] = []

    def download(self, url=None, output=None, quiet=False, id=None, **_):
        self.calls.append(id)
        if self.error is not None:
            raise self.error
        Path(output).write_bytes(self.payloads[id])
        return output


def install(monkeypatch, fake: FakeGdown) -> FakeGdown:
    monkeypatch.setitem(sys.modules, "gdown", fake)
    return fake


def leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob(".oodbench-openood-*"))


def test_present_data_is_reused_and_gdown_not_called(tmp_path, monkeypatch):
    make_openood_tree(tmp_path, per_list=1, benchmarks=("cifar10",))
    fake = install(monkeypatch, FakeGdown())
    assert od.ensure_openood_data("openood-cifar10", tmp_path, progress=False) == []
    assert fake.calls == []


def test_present_zips_are_unpacked_not_fetched(tmp_path, monkeypatch):
    make_openood_tree(tmp_path, per_list=1, benchmarks=("cifar10",))
    classic = tmp_path / "images_classic"
    # svhn as a zip beside its folder's place; tin where OpenOOD's script leaves it (in its folder).
    for name in ("svhn", "tin"):
        for path in sorted((classic / name).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (classic / name).rmdir()
    svhn_zip, svhn_files = set_zip("svhn")
    tin_zip, tin_files = set_zip("tin", nested=True)
    (classic / "svhn.zip").write_bytes(svhn_zip)
    (classic / "tin").mkdir()
    (classic / "tin" / "tin.zip").write_bytes(tin_zip)
    lists = tmp_path / "benchmark_imglist"
    test_list = (lists / "cifar10" / "test_cifar10.txt").read_bytes()
    for path in (lists / "cifar10").iterdir():
        path.unlink()
    (lists / "cifar10").rmdir()
    lists.rmdir()
    (tmp_path / "benchmark_imglist.zip").write_bytes(
        zip_bytes({"benchmark_imglist/cifar10/test_cifar10.txt": test_list})
    )
    fake = install(monkeypatch, FakeGdown())

    assert od.ensure_openood_data("openood-cifar10", tmp_path, progress=False) == []
    assert fake.calls == []
    for name, files in (("svhn", svhn_files), ("tin", tin_files)):
        for rel, data in files.items():
            assert (classic / name / rel).read_bytes() == data
    assert (classic / "svhn.zip").is_file()  # the user's archive stays where it was
    assert (classic / "tin" / "tin.zip").is_file()
    assert (lists / "cifar10" / "test_cifar10.txt").read_bytes() == test_list
    assert leftovers(tmp_path) == []


def test_missing_archives_are_fetched_and_unpacked(tmp_path, monkeypatch):
    make_openood_tree(tmp_path, per_list=1, benchmarks=("cifar100",))  # lists of another benchmark
    kept = (tmp_path / "benchmark_imglist" / "cifar100" / "test_cifar100.txt").read_bytes()
    payloads, expected = {}, {}
    for name in CIFAR_SETS:
        payloads[od.DRIVE_IDS[name]], expected[name] = set_zip(name, nested=name == "mnist")
    lists = {"test_cifar10.txt": b"cifar10/test/a/0001.png 0\n"}
    payloads[od.DRIVE_IDS["benchmark_imglist"]] = zip_bytes(
        {
            "benchmark_imglist/cifar10/test_cifar10.txt": lists["test_cifar10.txt"],
            "benchmark_imglist/cifar100/test_cifar100.txt": b"must not replace the user's file\n",
        }
    )
    for name in CIFAR_SETS:  # the tree's own image folders go: these sets are fetched
        folder = tmp_path / "images_classic" / name
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
    fake = install(monkeypatch, FakeGdown(payloads))

    fetched = od.ensure_openood_data("openood-cifar10", tmp_path, progress=False)

    assert fetched == ["benchmark_imglist", *CIFAR_SETS]
    assert fake.calls == [od.DRIVE_IDS[n] for n in fetched]
    for name, files in expected.items():
        for rel, data in files.items():
            assert (tmp_path / "images_classic" / name / rel).read_bytes() == data
        assert not (tmp_path / "images_classic" / name / name).exists()  # nested folder unwrapped
    got = (tmp_path / "benchmark_imglist" / "cifar10" / "test_cifar10.txt").read_bytes()
    assert got == lists["test_cifar10.txt"]
    assert (tmp_path / "benchmark_imglist" / "cifar100" / "test_cifar100.txt").read_bytes() == kept
    assert leftovers(tmp_path) == []
    # A second call finds everything in place.
    assert od.ensure_openood_data("openood-cifar10", tmp_path, progress=False) == []
    assert len(fake.calls) == len(fetched)


def test_failed_download_is_one_line_naming_archive_id_url_and_place(tmp_path, monkeypatch):
    make_openood_tree(tmp_path, per_list=1, benchmarks=("cifar10",))
    folder = tmp_path / "images_classic" / "places365"
    for path in sorted(folder.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    folder.rmdir()
    drive_error = RuntimeError("Too many users have viewed or downloaded this file\nrecently")
    install(monkeypatch, FakeGdown(error=drive_error))

    with pytest.raises(DataNotFoundError) as caught:
        od.ensure_openood_data("openood-cifar10", tmp_path, progress=False)

    message = str(caught.value)
    drive_id = od.DRIVE_IDS["places365"]
    assert "\n" not in message
    assert "places365" in message and drive_id in message
    assert f"https://drive.google.com/uc?id={drive_id}" in message
    assert str(tmp_path / "images_classic") in message and "Too many users" in message
    assert not folder.exists() and leftovers(tmp_path) == []


def test_a_download_that_is_not_a_zip_is_refused(tmp_path, monkeypatch):
    make_openood_tree(tmp_path, per_list=1, benchmarks=("cifar10",))
    folder = tmp_path / "images_classic" / "texture"
    for path in sorted(folder.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    folder.rmdir()
    html = b"<html>Google Drive - Virus scan warning</html>"  # what Drive sends instead of a file
    install(monkeypatch, FakeGdown({od.DRIVE_IDS["texture"]: html}))

    with pytest.raises(DataNotFoundError, match=r"texture archive .* not a readable zip") as caught:
        od.ensure_openood_data("openood-cifar10", tmp_path, progress=False)
    assert "\n" not in str(caught.value) and od.DRIVE_IDS["texture"] in str(caught.value)
    assert not folder.exists() and leftovers(tmp_path) == []


def test_missing_gdown_names_the_extra_only_when_something_must_be_fetched(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gdown", None)  # `import gdown` raises ImportError
    make_openood_tree(tmp_path, per_list=1, benchmarks=("cifar10",))
    assert od.ensure_openood_data("openood-cifar10", tmp_path, progress=False) == []
    with pytest.raises(UserInputError) as caught:
        od.ensure_openood_data("openood-cifar10", tmp_path / "empty", progress=False)
    assert str(caught.value).endswith("pip install 'oodbench[openood]'")
    assert "\n" not in str(caught.value)


def test_imagenet_images_are_never_fetched_and_that_is_said(tmp_path, monkeypatch, capsys):
    payloads = {od.DRIVE_IDS["benchmark_imglist"]: zip_bytes({"benchmark_imglist/imagenet200/x.txt": b""})}
    for name in od.SUITE_ARCHIVES["openood-imagenet200"][1]:
        payloads[od.DRIVE_IDS[name]] = set_zip(name)[0]
    fake = install(monkeypatch, FakeGdown(payloads))
    fetched = od.ensure_openood_data("openood-imagenet200", tmp_path, progress=False)
    assert "imagenet_1k" not in fetched and len(fake.calls) == len(fetched) == 9
    assert not (tmp_path / "images_largescale" / "imagenet_1k").exists()
    assert (tmp_path / "images_classic" / "texture" / "test" / "a" / "0001.png").is_file()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ILSVRC2012" in err[0] and "imagenet_1k" in err[0]


def test_suite_names_and_suite_files(tmp_path, monkeypatch):
    from oodbench.data.suite_file import builtin_suite_files

    assert [n for n in builtin_suite_files() if od.is_downloadable_suite(n)] == sorted(od.SUITE_ARCHIVES)
    assert not od.is_downloadable_suite("cifar10")
    assert od.downloadable_suite_of(builtin_suite_files()["openood-cifar100"]) == "openood-cifar100"
    mine = tmp_path / "openood-cifar10.toml"  # same stem, but the user's own file
    mine.write_text(builtin_suite_files()["openood-cifar10"].read_text())
    assert od.downloadable_suite_of(mine) is None
    with pytest.raises(UserInputError, match="your own suite file"):
        od.download_for_suite_file(mine, tmp_path, progress=False)
    with pytest.raises(UserInputError, match="OpenOOD suites only"):
        od.ensure_openood_data("cifar10", tmp_path, progress=False)
    make_openood_tree(tmp_path / "root", per_list=1, benchmarks=("cifar10",))
    install(monkeypatch, FakeGdown())
    assert od.download_for_suite_file("openood-cifar10", tmp_path / "root", progress=False) == []
