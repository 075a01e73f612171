"""`--out folder:` / `--out npz:` sets stream (oodbench.data.custom.load_custom_outs): --limit picks
before any file is opened, unreadable files are counted (or refused with --strict), rows record
where the set came from, and the pixels equal torchvision's transforms on the same files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from test_data_formats import write_image_folder
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from oodbench.cli import cli
from oodbench.data import load_custom_out, load_custom_outs
from oodbench.data.convert import as_float
from oodbench.data.sources import BadFilesWarning, make_loader
from oodbench.data.streamed import StreamedSet
from oodbench.errors import UserInputError

FACTORY = textwrap.dedent(
    """
    from torch import nn


    def make_net(num_classes=10):
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))
    """
)


def _model(tmp_path: Path) -> list[str]:
    """CLI arguments of a tiny external model of the embedded suite (1x28x28, 10 classes)."""
    (tmp_path / "netdef.py").write_text(FACTORY)
    namespace: dict = {}
    exec(FACTORY, namespace)
    torch.manual_seed(0)
    torch.save(namespace["make_net"]().state_dict(), tmp_path / "weights.pt")
    return [
        "run", "--checkpoint", str(tmp_path / "weights.pt"), "--arch", f"{tmp_path / 'netdef.py'}:make_net",
        "-d", "msp", "--plots", "none", "--quiet", "--workers", "0",
        "--results-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip


def _rows(tmp_path: Path) -> list[dict]:
    lines = (tmp_path / "runs" / "rows.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _uint8(streamed: StreamedSet) -> torch.Tensor:
    """Every image of a streamed set as the uint8 its loader yields (in process)."""
    return torch.cat([b.x for b in make_loader(streamed.source, 4, 0)])


def test_limit_opens_only_the_chosen_files_and_rows_say_where_the_set_came_from(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    write_image_folder(folder, 20, size=(40, 30))  # 30x40 (H x W) RGB: resized to 1x28x28
    opened: list[str] = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        if str(fp).startswith(str(folder)):
            opened.append(Path(fp).name)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    result = CliRunner().invoke(
        cli, [*_model(tmp_path), "--limit", "5", "--out", f"mine=folder:{folder}"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    chosen = np.sort(np.random.RandomState(0).permutation(20)[:5])  # `cap`'s rule, seed 0
    assert sorted(set(opened)) == [f"{i:05d}.png" for i in chosen]  # the other 15 never opened
    rows = {row["out_dataset"]: row for row in _rows(tmp_path)}
    mine = rows["mine"]
    assert (mine["n_out"], mine["n_skipped"], mine["eval_limit"]) == (5, 0, 5)
    assert mine["out_source"] == f"folder:{folder.resolve()} (native HxW 30x40 RGB)"
    assert all(row["out_source"] == "" for name, row in rows.items() if name != "mine")
    # The fingerprint is the chosen files' listing (names, sizes, mtimes) and the transform.
    again = load_custom_outs([f"mine=folder:{folder}"], shape=(1, 28, 28), limit=5)["mine"]
    assert mine["out_fingerprint"] == again.x.fingerprint()


def test_fingerprint_covers_the_file_list(tmp_path):
    folder = tmp_path / "imgs"
    write_image_folder(folder, 4, size=(28, 28))

    def fingerprint() -> str:
        return load_custom_outs([f"folder:{folder}"], shape=(1, 28, 28))["folder:imgs"].x.fingerprint()

    first = fingerprint()
    assert fingerprint() == first  # nothing changed: the same set (cached scores are reused)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "extra.png")
    added = fingerprint()
    assert added != first
    (folder / "extra.png").unlink()
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(folder / "00000.png")  # replaced in place
    assert fingerprint() not in (first, added)
    other = load_custom_outs([f"folder:{folder}"], shape=(3, 28, 28))["folder:imgs"].x.fingerprint()
    assert other != fingerprint()  # another transform: another set


@pytest.fixture
def with_bad_files(tmp_path) -> Path:
    folder = tmp_path / "bad"
    write_image_folder(folder, 6, size=(28, 28))
    (folder / "text.jpg").write_text("not an image")  # header unreadable
    good = (folder / "00000.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])  # header fine, body cut
    return folder


def test_unreadable_files_are_skipped_and_counted_in_the_row(tmp_path, with_bad_files):
    with pytest.warns(BadFilesWarning, match="skipped 2 unreadable image.*text.jpg, truncated.png"):
        result = CliRunner().invoke(cli, [*_model(tmp_path), "--out", f"bad=folder:{with_bad_files}"])
    assert result.exit_code == 0, result.output
    row = next(row for row in _rows(tmp_path) if row["out_dataset"] == "bad")
    assert (row["n_out"], row["n_skipped"]) == (6, 2)
    assert "(native HxW 28x28 RGB)" in row["out_source"]  # text.jpg has no size to report


def test_strict_refuses_unreadable_files_before_scoring(tmp_path, with_bad_files):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "rows.jsonl").write_text("")
    result = CliRunner().invoke(cli, [*_model(tmp_path), "--strict", "--out", f"bad=folder:{with_bad_files}"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "text.jpg" in lines[0] and "Traceback" not in result.output
    assert (tmp_path / "runs" / "rows.jsonl").read_text() == ""  # nothing scored, nothing written
    # A body that fails only when decoded is refused during the pass, also in one line.
    (with_bad_files / "text.jpg").unlink()
    result = CliRunner().invoke(cli, [*_model(tmp_path), "--strict", "--out", f"bad=folder:{with_bad_files}"])
    assert result.exit_code == 2 and "truncated.png" in result.output and "Traceback" not in result.output
    assert (tmp_path / "runs" / "rows.jsonl").read_text() == ""


def test_a_folder_of_only_unreadable_files_is_refused(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_text("no")
    with pytest.raises(UserInputError, match="None of the 1 image"):
        load_custom_outs([f"folder:{tmp_path / 'junk'}"], shape=(1, 28, 28))


# --------------------------------------------------------------------------------------- pixels
def _mixed_folder(root: Path) -> list[Path]:
    """Files of several modes and sizes whose centred square windows have even margins (oodbench
    rounds an odd margin down, torchvision's center_crop rounds it to even: a 1-pixel shift)."""
    rng = np.random.RandomState(7)
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "a_rgb.png": Image.fromarray(rng.randint(0, 256, (40, 40, 3), dtype=np.uint8)),
        "b_grey_wide.png": Image.fromarray(rng.randint(0, 256, (20, 60), dtype=np.uint8)),
        "c_alpha_small.png": Image.fromarray(rng.randint(0, 256, (10, 10, 4), dtype=np.uint8), "RGBA"),
        "d_palette.png": Image.fromarray(rng.randint(0, 256, (24, 30, 3), dtype=np.uint8)).quantize(16),
        "e_photo_tall.jpg": Image.fromarray(rng.randint(0, 256, (64, 48, 3), dtype=np.uint8)),
        "f_exact.png": Image.fromarray(rng.randint(0, 256, (32, 32, 3), dtype=np.uint8)),
    }
    for name, image in files.items():
        image.save(root / name)
    return [root / name for name in sorted(files)]


def _torchvision(path: Path, channels: int, size: int) -> torch.Tensor:
    """The reference: PIL mode conversion (torchvision's Grayscale for 1 channel), then
    torchvision's center_crop to the largest square and bilinear antialiased resize, in float."""
    image = Image.open(path).convert("RGB")
    if channels == 1:
        image = TF.to_grayscale(image)
    x = TF.pil_to_tensor(image).float() / 255
    side = min(x.shape[1:])
    x = TF.center_crop(x, [side, side])
    if side != size:
        x = TF.resize(x, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def test_pixels_equal_torchvision_transforms_on_the_same_files(tmp_path):
    files = _mixed_folder(tmp_path / "mixed")
    rgb = load_custom_outs([f"folder:{tmp_path / 'mixed'}"], shape=(3, 32, 32))["folder:mixed"].x
    expected = torch.stack([_torchvision(p, 3, 32) for p in files])
    assert torch.equal(_uint8(rgb), expected)
    grey = load_custom_outs([f"folder:{tmp_path / 'mixed'}"], shape=(1, 28, 28))["folder:mixed"].x
    expected = torch.stack([_torchvision(p, 1, 28) for p in files]).int()
    # Luma: oodbench's BT.601 in float, rounded; PIL's (Grayscale) in fixed point: at most 1 apart.
    assert (_uint8(grey).int() - expected).abs().max() <= 1


def test_streamed_pixels_differ_from_the_in_memory_reader_only_by_uint8_rounding(tmp_path):
    _mixed_folder(tmp_path / "mixed")
    spec = f"folder:{tmp_path / 'mixed'}"
    for shape in ((3, 32, 32), (1, 28, 28)):
        streamed = torch.cat(list(load_custom_outs([spec], shape=shape)["folder:mixed"].x.batches(4)))
        in_memory = as_float(load_custom_out(spec, shape=shape).x)
        # The luma is rounded to uint8 before resizing on the streamed path: 1/255 more for grey.
        bound = (0.5 if shape[0] == 3 else 1.5) / 255 + 1e-6
        assert (streamed - in_memory).abs().max() <= bound
    exact = load_custom_outs([spec], shape=(3, 32, 32))["folder:mixed"].x.batches(6)
    assert torch.equal(next(exact)[-1], load_custom_out(spec, shape=(3, 32, 32)).x[-1])  # f_exact: as stored


# ------------------------------------------------------------------------------------------ npz
@pytest.mark.parametrize("stored", ["nhw_uint8", "nchw_uint8_other_size", "float_rgb", "compressed"])
def test_npz_sets_stream_the_values_of_the_in_memory_reader(tmp_path, stored):
    rng = np.random.RandomState(3)
    arrays = {
        "nhw_uint8": rng.randint(0, 256, (9, 28, 28)).astype(np.uint8),
        "nchw_uint8_other_size": rng.randint(0, 256, (9, 1, 32, 32)).astype(np.uint8),
        "float_rgb": rng.rand(9, 3, 28, 28).astype(np.float32),
        "compressed": rng.randint(0, 256, (9, 28, 28, 3)).astype(np.uint8),
    }
    path = tmp_path / "mine.npz"
    (np.savez_compressed if stored == "compressed" else np.savez)(path, x=arrays[stored])
    out = load_custom_outs([f"npz:{path}"], shape=(1, 28, 28), limit=5, workers=0)["npz:mine"]
    assert isinstance(out.x, StreamedSet) and len(out) == 5 and out.y is None
    streamed = torch.cat(list(out.x.batches(2)))
    index = np.sort(np.random.RandomState(0).permutation(9)[:5])
    whole = as_float(load_custom_out(f"npz:{path}", shape=(1, 28, 28)).x[torch.from_numpy(index)])
    if stored in ("nhw_uint8", "float_rgb"):  # no resize: the same floats
        assert torch.equal(streamed, whole)
    else:  # resized or converted per image, rounded to uint8
        assert (streamed - whole).abs().max() <= 1.5 / 255 + 1e-6
    native = {"nhw_uint8": "1x28x28 uint8", "nchw_uint8_other_size": "1x32x32 uint8"}
    native |= {"float_rgb": "3x28x28 float32", "compressed": "3x28x28 uint8"}
    assert out.x.source.origin == f"npz:{path.resolve()} (native CxHxW {native[stored]})"
