"""`oodbench list datasets` and `oodbench list suites`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io
from click.testing import CliRunner

from oodbench.cli import cli
from oodbench.data import DATASETS, SUITES


def _row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.split()[:1] == [name])


def test_list_datasets_shows_every_set_and_where_it_looks():
    result = CliRunner().invoke(cli, ["list", "datasets"])
    assert result.exit_code == 0, result.output
    root = os.environ["OODBENCH_DATA"]
    assert f"Data root: {root} (from $OODBENCH_DATA)" in result.output
    for name in DATASETS.names():
        assert _row(result.output, name)
    assert "missing" in _row(result.output, "svhn") and str(Path(root) / "svhn") in _row(
        result.output, "svhn"
    )
    assert "embedded" in _row(result.output, "mnist_5k") and "1x28x28" in _row(result.output, "mnist_5k")
    assert "generated" in _row(result.output, "gaussian")
    assert "100" in _row(result.output, "cifar100").split()[2]


def test_list_datasets_sees_files_under_data_dir(tmp_path):
    folder = tmp_path / "elsewhere" / "svhn"
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": np.zeros((32, 32, 3, 1), np.uint8), "y": [[1]]})
    result = CliRunner().invoke(cli, ["list", "datasets", "--data-dir", str(tmp_path / "elsewhere")])
    assert result.exit_code == 0, result.output
    assert "(from --data-dir)" in result.output
    assert "present" in _row(result.output, "svhn") and "missing" in _row(result.output, "cifar10")


def test_list_datasets_details_show_source_and_licence():
    result = CliRunner().invoke(cli, ["list", "datasets", "--details"])
    assert result.exit_code == 0
    assert "CC BY-SA 3.0" in result.output and "Imagenet_resize.tar.gz" in result.output


def test_list_suites_shows_in_out_seen_and_validation():
    result = CliRunner().invoke(cli, ["list", "suites"])
    assert result.exit_code == 0, result.output
    for name in SUITES.names():
        assert any(line.startswith(name) for line in result.output.splitlines()), name
    assert "mnist (default)" in result.output
    assert "OOD test:    animal_mnist, skimage_crops, sklearn_digits, gaussian, uniform" in result.output
    assert "seen OOD:    sklearn_photos train split" in result.output
    assert "validation:  svhn train hold-out (1000" in result.output
    assert "recipe:      lee2018-cifar100" in result.output
