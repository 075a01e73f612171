"""In/out suites: which OOD sets each in-distribution set is tested on, and what tuning may use.

    suite          in-dist    OOD test sets                                  seen OOD        validation OOD
    mnist          mnist_5k   animal_mnist, skimage_crops, sklearn_digits,   sklearn_photos  skimage_textures
                              gaussian, uniform
    svhn           svhn       cifar10, tinyimagenet_resize, lsun_resize,     cifar10 train   isun
                              gaussian
    cifar10        cifar10    svhn, tinyimagenet_resize, lsun_resize,        svhn train      isun
                              gaussian
    odin-cifar10   cifar10    tinyimagenet_crop/_resize, lsun_crop/_resize,  svhn train      isun
                              gaussian, uniform
    odin-cifar100  cifar100   (as odin-cifar10)                              svhn train      isun

Validation is disjoint from test: the validation OOD set is never a test set (so the ODIN suites
do not test on iSUN), and the in-distribution validation images are never test images. Paper
suites hold 1000 images out of the in-dist train split (stratified, fixed seed) for validation
and train on the rest, so their in-dist test sets stay the full official ones (SVHN 26,032,
CIFAR 10,000) that published numbers use. The mnist suite uses mnist_5k's own val split (500).
As in Lee et al. (2018), a seen OOD set may also be tested, but only its test split: the svhn
suite trains the confidence loss on CIFAR-10 train and tests on CIFAR-10 test.

Noise test sets get min(in-dist test size, 10,000) images, seed 0 (the same for every model).

The suites are declared in TOML files, oodbench/suites/<name>.toml (format: oodbench.data.suite_file),
registered here at import; `SUITE_FILES[name].sha256` is each file's digest.
"""

from __future__ import annotations

import dataclasses
import os

from oodbench import paths
from oodbench.data.noise import DEFAULT_SIZE as NOISE_SIZE
from oodbench.data.spec import (
    DATASETS,
    KIND_GENERATED,
    SUITES,
    DatasetSpec,
    LabeledImages,
    Suite,
    SuiteData,
    cap,
    load_dataset,
    stratified_holdout,
)
from oodbench.data.suite_file import BUILTIN_DIR, SuiteFile, builtin_suite_files, load_suite_file
from oodbench.errors import DataNotFoundError, UserInputError
from oodbench.names import BUILTIN_SUITES

DEFAULT_SUITE = "mnist"


def seen_split(spec: DatasetSpec) -> str:
    """The split of a seen OOD set used for training: "train" if it has one."""
    return "train" if "train" in spec.splits else spec.splits[0]


def val_split(spec: DatasetSpec) -> str:
    """The split of a validation OOD set: "val" if it has one, else "test"."""
    return "val" if "val" in spec.splits else "test"


def add_suite(suite: Suite) -> Suite:
    """Register a suite after checking that validation and test data cannot overlap."""
    names = (suite.in_dataset, *suite.out_datasets, suite.seen_ood, suite.val_ood)
    missing = [n for n in names if n not in DATASETS]
    if missing:
        raise ValueError(f"suite {suite.name!r} names unregistered data sets: {missing}")
    if suite.val_ood in suite.out_datasets and val_split(DATASETS.get(suite.val_ood)) == "test":
        raise ValueError(f"suite {suite.name!r}: validation OOD set {suite.val_ood!r} is also a test set")
    if suite.seen_ood in suite.out_datasets and seen_split(DATASETS.get(suite.seen_ood)) == "test":
        raise ValueError(
            f"suite {suite.name!r}: seen OOD set {suite.seen_ood!r} would be trained on its test split"
        )
    if suite.val_in_from not in ("train", "val"):
        raise ValueError(f"suite {suite.name!r}: val_in_from must be 'train' or 'val'")
    return SUITES.add(suite.name, suite)


# The built-in suites are the TOML files in oodbench/suites/ (package data), read here in this
# order; tests/test_suite_file.py holds a frozen copy of the Python definitions they replaced and
# checks each file against it. SUITE_FILES keeps each parsed file (its sha256 for result rows).
SUITE_FILES: dict[str, SuiteFile] = {}


def _register_builtin_suites() -> None:
    files = builtin_suite_files()
    missing = [name for name in BUILTIN_SUITES if name not in files]
    if missing:
        raise UserInputError(
            f"Built-in suite files missing from {BUILTIN_DIR}: {', '.join(missing)}; reinstall oodbench."
        )
    for name in BUILTIN_SUITES:
        parsed = load_suite_file(files[name])
        SUITE_FILES[name] = parsed
        add_suite(parsed.to_suite())


_register_builtin_suites()


def load_suite(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    limit: int | None = None,
    fit_limit: int | None = None,
    training_only: bool = False,
    progress: bool = False,
    stream: bool = False,
) -> SuiteData:
    """Load every split a suite needs, converted to the in-distribution shape.

    `limit` caps the EVALUATED sets only (test_in and every OOD test set) at the first `limit`
    images of a fixed shuffle (seed 0), for quick runs. `fit_limit` caps the sets detectors are
    fitted and tuned on (train: a stratified subset; val_in and val_ood: a fixed shuffle; seed 0,
    the same subset for every model); by default they are used whole, so a quick `limit` does not
    weaken Mahalanobis, ODIN or pytorch-ood's fitted detectors. The seen OOD set is only read by
    training, which has its own cap (`limit_training`). Missing files fail before anything large
    is read, all in one message. `training_only` loads just what training reads (the in-dist
    train split and the seen OOD set): test and validation OOD sets are neither checked nor read
    (test_in, val_ood are None, test_out is empty; val_in is None unless it is held out of
    train). `progress`: bars on stderr while large image folders are read. `stream`: the
    evaluated sets' `x` are `StreamedSet`s over their in-memory arrays (`as_streamed`), read
    through the same loader interface as a suite file's sets; the runner asks for it.
    """
    suite = SUITES.get(name)
    for option, value in (("limit", limit), ("fit_limit", fit_limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserInputError(f"The {option!r} parameter must be an integer >= 1. Got {value!r} instead.")
    spec = DATASETS.get(suite.in_dataset)
    shape = spec.image_shape

    def load(dataset: str, split: str, n: int | None = None, *, at_most: int | None = None) -> LabeledImages:
        images = load_dataset(
            dataset, split, data_dir=data_dir, download=download, shape=shape, n=n, progress=progress
        )
        return cap(images, at_most)

    if not download:
        check_files(suite, data_dir, training_only=training_only)
    val_in = None
    if suite.val_in_from == "val":
        train = load(suite.in_dataset, "train")
        if not training_only:
            val_in = load(suite.in_dataset, "val", at_most=fit_limit)
    else:
        full = load_dataset(
            suite.in_dataset, "train", data_dir=data_dir, download=download, shape=shape, progress=progress
        )
        kept, held_out = stratified_holdout(full.y, suite.val_in_size, seed=0)
        train, val_in = full.subset(kept), cap(full.subset(held_out), fit_limit)
        del full
        val_in.split = "val"
    if fit_limit is not None and not training_only:
        train = stratified_cap(train, fit_limit)
    seen = load(suite.seen_ood, seen_split(DATASETS.get(suite.seen_ood)))
    if training_only:
        return SuiteData(suite, spec, train, val_in, None, seen, None, {})
    test_in = load(suite.in_dataset, "test", at_most=limit)
    val_ood = cap(load(suite.val_ood, val_split(DATASETS.get(suite.val_ood))), suite.val_ood_size)
    val_ood = cap(val_ood, fit_limit)
    noise_n = min(len(test_in), NOISE_SIZE)
    test_out = {}
    for out in suite.out_datasets:
        generated = DATASETS.get(out).kind == KIND_GENERATED
        test_out[out] = load(out, "test", n=noise_n if generated else None, at_most=limit)
    if stream:
        test_in = as_streamed(test_in)
        test_out = {name: as_streamed(images) for name, images in test_out.items()}
    return SuiteData(suite, spec, train, val_in, test_in, seen, val_ood, test_out)


def as_streamed(images: LabeledImages) -> LabeledImages:
    """`images` with x a `StreamedSet` over a `TensorSource` of the array as it is (its own shape:
    no conversion), read in this process (workers=0: the array is already in memory). Batches are
    the same tensors as slices of x (uint8 stays uint8 until `as_float`), so scores are equal;
    `oodbench.runner.forward.fingerprint` names the set by the array's content, as before."""
    from oodbench.data.sources import Preprocess, TensorSource
    from oodbench.data.streamed import StreamedSet

    x = images.x
    pre = Preprocess(channels=int(x.shape[1]), size=(int(x.shape[2]), int(x.shape[3])))
    source = TensorSource(x, images.y, pre=pre, name=images.name)
    return LabeledImages(StreamedSet(source, workers=0), images.y, images.name, images.split)  # type: ignore[arg-type]


def limit_training(data: SuiteData, n: int, seed: int = 0) -> SuiteData:
    """`data` with at most `n` training images and at most `n` seen OOD images (`--train-limit`).

    The training images are a stratified subset (per-class counts in proportion, drawn by
    `stratified_holdout` with a fixed seed, so every training seed sees the same subset); the
    seen OOD images are the first n of a fixed shuffle (`cap`). Sets of n images or fewer are
    kept whole.
    """
    return dataclasses.replace(
        data, train=stratified_cap(data.train, n, seed=seed), seen_ood=cap(data.seen_ood, n, seed=seed)
    )


def stratified_cap(images: LabeledImages, n: int, seed: int = 0) -> LabeledImages:
    """At most `n` images, per-class counts in proportion (`stratified_holdout`, fixed seed), so
    every class keeps its share; unlabelled sets: the first n of a fixed shuffle (`cap`)."""
    if len(images) <= n:
        return images
    if images.y is None:
        return cap(images, n, seed=seed)
    _, chosen = stratified_holdout(images.y, n, seed=seed)
    return images.subset(chosen)


def suite_splits(suite: Suite, *, training_only: bool = False) -> dict[str, list[str]]:
    """Every data set a suite reads (in order of use) with the splits it reads of it, as
    `load_suite` does; training alone reads the in-distribution training data and the seen OOD
    set."""
    in_splits = ["train", "val"] if suite.val_in_from == "val" else ["train"]
    reads = [(suite.in_dataset, s) for s in in_splits]
    reads.append((suite.seen_ood, seen_split(DATASETS.get(suite.seen_ood))))
    if not training_only:
        reads.append((suite.in_dataset, "test"))
        reads.append((suite.val_ood, val_split(DATASETS.get(suite.val_ood))))
        reads += [(out, "test") for out in suite.out_datasets]
    splits: dict[str, list[str]] = {}
    for name, split in reads:
        if split not in splits.setdefault(name, []):
            splits[name].append(split)
    return splits


def check_files(suite: Suite, data_dir=None, *, training_only: bool = False) -> None:
    """Raise one DataNotFoundError naming every missing file the suite reads, before reading any."""
    root = paths.data_dir(data_dir)
    parts = []
    for name, splits in suite_splits(suite, training_only=training_only).items():
        spec = DATASETS.get(name)
        missing = spec.missing_files(data_dir, splits)
        if missing:
            # Folders relative to the data root, named once at the start ("." = the root itself).
            where = " or ".join(f"{f.relative_to(root).as_posix()}/" for f in spec.folders(data_dir))
            parts.append(f"{name}: {', '.join(missing)} in {where}")
    if parts:
        used = "training with suite" if training_only else "suite"
        raise DataNotFoundError(
            f"Missing data for {used} {suite.name}, looked under the data root {root}: "
            + "; ".join(parts)
            + ". Add --download to get them, or put them there by hand (where each comes from: "
            "`oodbench list datasets --details`), or set --data-dir / OODBENCH_DATA."
        )
