"""Suite files (oodbench/data/suite_file.py): built-ins equal the Python suites, one-message errors
with lines, file sources, sha256, suite_init."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oodbench.data.spec import DATASETS, Suite
from oodbench.data.suite_file import builtin_suite_files, load_suite_file, parse_suite, suite_init
from oodbench.data.suites import seen_split, val_split
from oodbench.errors import UserInputError

_ODIN_OUT = ("tinyimagenet_crop", "tinyimagenet_resize", "lsun_crop", "lsun_resize", "gaussian", "uniform")
# Frozen copy of the definitions in oodbench/data/suites.py at 3c00971 (before suite files).
FROZEN = {
    "mnist": Suite(
        name="mnist",
        in_dataset="mnist_5k",
        out_datasets=("animal_mnist", "skimage_crops", "sklearn_digits", "gaussian", "uniform"),
        seen_ood="sklearn_photos",
        val_ood="skimage_textures",
        recipe="embedded",
        description="Embedded, offline: MNIST 5k vs animal silhouettes, photo crops, 8x8 digits, noise",
        val_in_from="val",
        val_in_size=500,
        val_ood_size=500,
    ),
    "svhn": Suite(
        name="svhn",
        in_dataset="svhn",
        out_datasets=("cifar10", "tinyimagenet_resize", "lsun_resize", "gaussian"),
        seen_ood="cifar10",
        val_ood="isun",
        recipe="lee2018-svhn",
        description="Lee et al. 2018, SVHN in-distribution (confidence loss sees CIFAR-10 train)",
    ),
    "cifar10": Suite(
        name="cifar10",
        in_dataset="cifar10",
        out_datasets=("svhn", "tinyimagenet_resize", "lsun_resize", "gaussian"),
        seen_ood="svhn",
        val_ood="isun",
        recipe="lee2018-cifar10",
        description="Lee et al. 2018, CIFAR-10 in-distribution (confidence loss sees SVHN train)",
    ),
    "odin-cifar10": Suite(
        name="odin-cifar10",
        in_dataset="cifar10",
        out_datasets=_ODIN_OUT,
        seen_ood="svhn",
        val_ood="isun",
        recipe="lee2018-cifar10",
        description="ODIN's CIFAR-10 benchmark (TinyImageNet, LSUN crop/resize, noise); iSUN tunes only",
    ),
    "odin-cifar100": Suite(
        name="odin-cifar100",
        in_dataset="cifar100",
        out_datasets=_ODIN_OUT,
        seen_ood="svhn",
        val_ood="isun",
        recipe="lee2018-cifar100",
        description="ODIN's CIFAR-100 benchmark (TinyImageNet, LSUN crop/resize, noise); iSUN tunes only",
    ),
}


# Streaming-only suite files read from an OpenOOD data root (tests/test_openood_suites.py); they
# are not registered Suites.
OPENOOD = ("openood-cifar10", "openood-cifar100", "openood-imagenet200", "openood-imagenet1k")


def test_every_builtin_file_is_exactly_the_builtin_suite():
    from oodbench.data import SUITES

    files = {n: p for n, p in builtin_suite_files().items() if n not in OPENOOD}
    assert sorted(files) == sorted(FROZEN) == SUITES.names()
    for name, path in files.items():
        parsed = load_suite_file(path)
        assert parsed.to_suite() == FROZEN[name] == SUITES.get(name), name
        spec = DATASETS.get(parsed.train.value)
        # Everything the Python suite leaves to rules is written out, and agrees with the rules.
        assert parsed.classes == spec.num_classes
        assert (parsed.preprocess.channels, *parsed.preprocess.size) == spec.image_shape
        assert parsed.seen_ood.split == seen_split(DATASETS.get(parsed.seen_ood.value))
        assert parsed.validation_ood.source.split == val_split(
            DATASETS.get(parsed.validation_ood.source.value)
        )
        assert parsed.train.split == "train" and parsed.test.split == "test"
        assert all(o.source.split == "test" and o.name == o.source.value for o in parsed.ood)
        assert parsed.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


GOOD = """format = 1
name = "toy"
description = "toy"

[in_distribution]
classes = 10
train = { dataset = "mnist_5k", split = "train" }
val = { holdout = 100 }
test = { dataset = "mnist_5k", split = "test" }

[preprocess]
channels = 1
size = [28, 28]

[[ood]]
name = "noise"
group = "far"
dataset = "gaussian"

[validation_ood]
name = "textures"
dataset = "skimage_textures"
"""


def test_a_good_file_parses_and_optional_parts_default():
    suite = parse_suite(GOOD)
    assert suite.val == 100 and suite.recipe is None and suite.seen_ood is None
    assert suite.normalize == "none" and suite.preprocess.interpolation == "bilinear"
    assert suite.groups() == {"far": ["noise"]}
    with pytest.raises(UserInputError, match="no \\[training\\]"):
        suite.to_suite()


def test_every_schema_error_is_in_one_message_with_its_line(tmp_path):
    bad = (
        GOOD.replace("classes = 10", "classes = 1")  # line 6
        .replace('split = "train" }', 'split = "trian" }')  # line 7
        .replace("channels = 1", "chanels = 1")  # line 12
        .replace('dataset = "gaussian"', 'dataset = "gausian"')  # line 18
    )
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    with pytest.raises(UserInputError) as caught:
        load_suite_file(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "4 problem(s)" in message
    assert "line 6: in_distribution.classes must be an integer >= 2" in message
    assert "line 7: data set 'mnist_5k' has no split 'trian'" in message
    assert "line 12: unknown key 'preprocess.chanels' (did you mean channels?)" in message
    assert "line 18: Unknown dataset 'gausian'. Did you mean: gaussian?" in message


def test_the_number_of_classes_must_match_the_training_set():
    with pytest.raises(
        UserInputError, match=r"line 6: in_distribution.classes is 7 but the training set has 10"
    ):
        parse_suite(GOOD.replace("classes = 10", "classes = 7"))


def test_validation_set_that_is_also_tested_is_refused_with_its_line():
    bad = GOOD.replace('dataset = "skimage_textures"', 'dataset = "gaussian"')
    with pytest.raises(UserInputError, match=r"line 20: validation_ood is also an OOD test set"):
        parse_suite(bad)


def test_syntax_errors_name_the_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(GOOD.replace("size = [28, 28]", "size = [28, 28"))
    with pytest.raises(UserInputError, match=r"broken\.toml: invalid TOML: .*\(at line 15") as caught:
        load_suite_file(path)
    assert "\n" not in str(caught.value)


def write_classes(root: Path, counts: dict[str, int], size=(12, 10)) -> None:
    rng = np.random.RandomState(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.randint(0, 256, (*size, 3), dtype=np.uint8)).save(root / name / f"{i}.png")


def test_a_suite_of_files_builds_streaming_sources(tmp_path):
    write_classes(tmp_path / "data" / "train", {"a": 4, "b": 4})
    write_classes(tmp_path / "data" / "test", {"a": 2, "b": 2})
    write_classes(tmp_path / "ood", {"x": 3})
    with pytest.raises(UserInputError, match="has 2 classes"):
        parse_suite(
            'format = 1\nname = "x"\ndescription = ""\n[in_distribution]\nclasses = 3\n'
            'train = { classes = "data/train" }\nval = { holdout = 1 }\ntest = { classes = "data/test" }\n'
            '[preprocess]\nsize = [8, 8]\n[[ood]]\nname = "n"\ngroup = "far"\ndataset = "gaussian"\n'
            '[validation_ood]\nname = "u"\ndataset = "uniform"\n',
            path=tmp_path / "x.toml",
        )
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "val.txt").write_text("x/0.png -1\nx/1.png -1\n")
    text = """format = 1
name = "files"
description = "mine"
[in_distribution]
classes = 2
train = { classes = "data/train" }
val = { holdout = 2 }
test = { classes = "data/test" }
[preprocess]
size = [8, 8]
resize = 8
crop = [8, 8]
normalize = { mean = [0.5, 0.5, 0.5], std = [0.25, 0.25, 0.25] }
[[ood]]
name = "mine"
group = "near"
folder = "ood"
limit = 2
[validation_ood]
name = "val"
list = "lists/val.txt"
root = "ood"
"""
    path = tmp_path / "suite.toml"
    path.write_text(text)
    suite = load_suite_file(path)
    assert suite.normalize == ((0.5,) * 3, (0.25,) * 3)
    train = suite.train.build(suite.preprocess)
    assert len(train) == 8 and tuple(train[0].image.shape) == (3, 8, 8)
    assert len(suite.ood[0].source.build(suite.preprocess)) == 2  # limit applied before reading
    assert len(suite.validation_ood.source.build(suite.preprocess)) == 2
    with pytest.raises(UserInputError, match="reads files"):
        suite.to_suite()
    path.write_text(text.replace('folder = "ood"', 'folder = "missing"'))
    with pytest.raises(UserInputError, match=r"line 17: .*missing does not exist"):
        load_suite_file(path)


def test_suite_init_writes_a_valid_starter(tmp_path):
    write_classes(tmp_path / "pets" / "train", {"cat": 5, "dog": 5, "eel": 10})
    write_classes(tmp_path / "pets" / "test", {"cat": 2, "dog": 2, "eel": 2})
    text = suite_init(tmp_path / "pets", relative_to=tmp_path)
    (tmp_path / "pets.toml").write_text(text)
    suite = load_suite_file(tmp_path / "pets.toml")
    assert suite.name == "pets" and suite.classes == 3 and suite.val == 2
    assert suite.train.value == "pets/train" and suite.test.value == "pets/test"
    assert suite.preprocess.size == (12, 10)
    with pytest.raises(UserInputError, match="give the test set too"):
        suite_init(tmp_path / "pets" / "train")
    listed = tmp_path / "test.txt"
    listed.write_text("cat/0.png 0\neel/1.png 2\n")
    text = suite_init(
        tmp_path / "pets" / "train", test=listed, root=tmp_path / "pets" / "test", relative_to=tmp_path
    )
    (tmp_path / "two.toml").write_text(text)
    two = load_suite_file(tmp_path / "two.toml")
    assert two.test.kind == "list" and len(two.test.build(two.preprocess)) == 2
