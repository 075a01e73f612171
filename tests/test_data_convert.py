"""The shape conversion rule and custom OOD data (folder:PATH, npz:PATH)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.data import load_custom_out, load_dataset, to_shape
from oodbench.data.convert import as_float, crop_box
from oodbench.errors import DataNotFoundError, UserInputError


# ------------------------------------------------------------------------------------------ rule
def test_grey_to_rgb_repeats_the_channel():
    grey = torch.rand(2, 1, 8, 8)
    rgb = to_shape(grey, (3, 8, 8))
    assert rgb.shape == (2, 3, 8, 8)
    assert torch.equal(rgb[:, 0], grey[:, 0]) and torch.equal(rgb[:, 2], grey[:, 0])


def test_rgb_to_grey_uses_bt601_luma():
    rgb = torch.zeros(3, 3, 4, 4)
    for c in range(3):
        rgb[c, c] = 1.0  # pure red, green, blue
    grey = to_shape(rgb, (1, 4, 4))
    assert grey[:, 0, 0, 0].tolist() == pytest.approx([0.299, 0.587, 0.114])


def test_same_aspect_is_resized_with_antialiasing():
    x = torch.zeros(1, 1, 64, 64)
    x[..., 1::2] = 1.0  # one-pixel stripes: antialiasing averages them instead of picking one
    small = to_shape(x, (1, 32, 32))
    assert small.shape == (1, 1, 32, 32)
    assert small.mean().item() == pytest.approx(0.5, abs=0.02)
    assert small.std().item() < 0.05


def test_other_aspect_is_centre_cropped_then_resized():
    wide = torch.zeros(1, 1, 32, 96)
    wide[..., 32:64] = 1.0  # only the centre square is white
    assert torch.allclose(to_shape(wide, (1, 16, 16)), torch.ones(1, 1, 16, 16))
    assert crop_box(100, 50, 32, 32) == (25, 0, 50, 50)
    assert crop_box(50, 100, 32, 32) == (0, 25, 50, 50)


def test_upscaling_keeps_range_and_matching_shape_is_untouched():
    x = torch.rand(2, 3, 8, 8)
    assert to_shape(x, (3, 8, 8)) is x
    big = to_shape(x, (3, 32, 32))
    assert big.shape == (2, 3, 32, 32) and 0 <= big.min() and big.max() <= 1


@pytest.mark.parametrize("channels", [2, 4])
def test_unconvertible_channels_are_user_errors(channels):
    with pytest.raises(UserInputError, match=f"has {channels} channel.*grayscale \\(1\\) <-> RGB \\(3\\)"):
        to_shape(torch.rand(1, channels, 8, 8), (3, 8, 8))


def test_load_dataset_converts_to_a_requested_shape():
    x = load_dataset("mnist_5k", "test", shape=(3, 32, 32), n=5).x
    assert x.shape == (5, 3, 32, 32) and torch.equal(x[:, 0], x[:, 1])


# ------------------------------------------------------------------------------------ custom npz
def _save_npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


@pytest.mark.parametrize(
    "layout",
    ["nhw", "nhwc", "nchw"],
)
def test_npz_layouts_in_uint8(tmp_path, layout):
    images = np.random.RandomState(0).randint(0, 256, (4, 28, 28)).astype(np.uint8)
    stored = {"nhw": images, "nhwc": images[..., None], "nchw": images[:, None]}[layout]
    out = load_custom_out(_save_npz(tmp_path / "mine.npz", x=stored), shape=(1, 28, 28))
    assert out.name == "npz:mine" and out.y is None
    assert out.x.dtype == torch.uint8  # kept as stored: batches are converted when used
    assert torch.equal(as_float(out.x[0 : len(out)])[:, 0], torch.from_numpy(images).float() / 255)


def test_npz_float_rgb_converted_to_grey(tmp_path):
    images = np.full((3, 3, 56, 56), 0.5, np.float32)  # NCHW, float in [0, 1]
    out = load_custom_out(_save_npz(tmp_path / "f.npz", images=images), shape=(1, 28, 28))
    assert out.x.shape == (3, 1, 28, 28) and torch.allclose(out.x, torch.full_like(out.x, 0.5))


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.full((2, 8, 8), 3.0)}, "must lie in \\[0, 1\\]"),
        ({"pixels": np.zeros((2, 8, 8), np.uint8)}, "no array named 'x' or 'images'"),
        ({"x": np.zeros((2, 8, 8, 2), np.uint8)}, "expected \\(N, H, W\\)"),
        ({"x": np.zeros((2, 8, 8), np.int64)}, "store them as uint8"),
        ({"x": np.zeros((2, 3, 8, 3), np.uint8)}, "Cannot tell the channel axis"),
    ],
)
def test_bad_npz_contents_are_one_line_errors(tmp_path, arrays, message):
    with pytest.raises(UserInputError, match=message) as info:
        load_custom_out(_save_npz(tmp_path / "bad.npz", **arrays), shape=(1, 8, 8))
    assert "\n" not in str(info.value)


def test_corrupt_or_missing_npz(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(UserInputError, match="not a readable .npz"):
        load_custom_out(f"npz:{tmp_path / 'junk.npz'}", shape=(1, 8, 8))
    with pytest.raises(DataNotFoundError, match="not found"):
        load_custom_out(f"npz:{tmp_path / 'absent.npz'}", shape=(1, 8, 8))


# --------------------------------------------------------------------------------- custom folders
def test_image_folder_layout_with_mixed_sizes_and_modes(tmp_path):
    root = tmp_path / "my_ood"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    Image.fromarray(np.full((40, 40, 3), 255, np.uint8)).save(root / "cats" / "a.png")
    Image.fromarray(np.full((20, 60), 0, np.uint8)).save(root / "dogs" / "b.jpg")
    Image.fromarray(np.full((10, 10, 4), 128, np.uint8), "RGBA").save(root / "dogs" / "c.png")
    (root / "notes.txt").write_text("ignored")
    out = load_custom_out(f"folder:{root}", shape=(3, 32, 32))
    assert out.name == "folder:my_ood" and out.x.shape == (3, 3, 32, 32)
    assert out.x[0].min().item() == pytest.approx(1.0) and out.x[1].max().item() < 0.05
    assert out.x[2].mean().item() == pytest.approx(128 / 255, abs=1e-3)  # alpha dropped


def test_flat_folder_and_empty_folder(tmp_path):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "x.png")
    assert load_custom_out(f"folder:{tmp_path}", shape=(1, 28, 28)).x.shape == (1, 1, 28, 28)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="has no images"):
        load_custom_out(f"folder:{tmp_path / 'empty'}", shape=(1, 28, 28))


@pytest.mark.parametrize("spec", ["mydata", "zip:/tmp/x", "folder:"])
def test_bad_custom_spec(spec):
    with pytest.raises(UserInputError, match="'folder:PATH' or 'npz:PATH'"):
        load_custom_out(spec, shape=(1, 28, 28))
