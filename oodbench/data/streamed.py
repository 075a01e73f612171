"""A user's suite file (oodbench.data.suite_file) as the `SuiteData` a run evaluates.

    data = load_suite_file_data("my.toml", limit=1000, fit_limit=5000, workers=4)
    data.test_in.x      # a StreamedSet: nothing decoded until the runner reads its batches

Evaluated sets (the ID test set and every OOD test set) stay streaming sources: the runner
reads them through `make_loader` batches (uint8 -> float32 with `as_float`), and `--limit`
picks the images with `select` BEFORE anything is read. Fit splits (train, the ID validation
split, the validation OOD set) stream too, after `fit_limit` has picked them: their
`LabeledImages.x` is a StreamedSet whose `labelled_batches` yields (float32 x, int64 y) batch by
batch; `y` is the list's labels, known without decoding. Detectors that fit read them batch by
batch (`accepts_streams`, oodbench.detectors.base); a plug-in that does not declare it gets the
split read into memory (`StreamedSet.in_memory`). Unreadable images of a set are left out and
counted (an evaluated set's row has `n_skipped`); with `strict`, every file is checked
(`precheck`) before anything is scored and unreadable ones are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from oodbench.data.convert import as_float
from oodbench.data.spec import DatasetSpec, LabeledImages, Suite, SuiteData, stratified_holdout
from oodbench.errors import UserInputError

if TYPE_CHECKING:
    from oodbench.data.sources.base import ImageSource
    from oodbench.data.sources.loader import Batch


def is_suite_file(name: str | Path) -> bool:
    """Whether a suite given by name is a suite file: a path ending in .toml, or the name of a
    packaged suite file that is not a registered suite (the openood-* suites)."""
    from oodbench.data.suite_file import builtin_suite_files
    from oodbench.names import BUILTIN_SUITES

    text = str(name)
    return text.lower().endswith(".toml") or (text in builtin_suite_files() and text not in BUILTIN_SUITES)


class StreamedSet:
    """A set read in batches from its source; stands where `LabeledImages.x` would.

    Evaluated sets use `batches` (float32 images); fit splits also `labelled_batches` (images
    with their labels, which travel in each batch so a skipped image takes its label with it).
    `kept` holds the source positions of the last complete pass (unreadable images are left
    out): the runner narrows the set to them so later passes (input-gradient detectors) score
    the same images the shared forward pass did. `fit_split` names a fit split: a complete pass
    that reads no image at all is refused in one line (nothing to fit or tune on).
    """

    def __init__(
        self,
        source: ImageSource,
        *,
        workers: int | None = None,
        strict: bool = False,
        fit_split: str = "",
    ) -> None:
        self.source = source
        self.workers = workers
        self.strict = strict
        self.fit_split = fit_split
        self.kept: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.source)

    def fingerprint(self) -> str:
        """The source's fingerprint (files, sizes, mtimes, labels and preprocessing)."""
        return self.source.fingerprint()

    @property
    def labels(self) -> torch.Tensor | None:
        """int64 (len(self),) labels of every listed item, from the source's list (nothing is
        decoded); None when no item has a class label. Unreadable items are still in it: pair
        images with labels through `labelled_batches`."""
        if not self.source.labelled:
            return None
        return torch.from_numpy(np.asarray(self.source.labels, dtype=np.int64).copy())

    def _read(self, batch_size: int, workers: int | None, *, pin_memory: bool = False) -> Iterator[Batch]:
        """The loader's uint8 batches in source order; records `kept` after a complete pass."""
        from oodbench.data.sources.loader import make_loader

        kept = []
        for batch in make_loader(self.source, batch_size, workers, pin_memory, strict=self.strict):
            kept.append(batch.index.numpy())
            yield batch
        self.kept = np.concatenate(kept) if kept else np.empty(0, dtype=np.int64)
        if self.fit_split and not len(self.kept):
            raise UserInputError(
                f"{self.fit_split}: no readable images in {self.source.name}; check the suite file's path."
            )

    def batches(self, batch_size: int, device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
        """float32 batches in [0, 1], in source order; records `kept` after a complete pass. With
        `device`, each uint8 batch moves there before it becomes float; to a GPU from pinned
        memory (the loader pins it), asynchronously."""
        to_gpu = device is not None and torch.device(device).type == "cuda"
        for batch in self._read(batch_size, self.workers, pin_memory=to_gpu):
            x = batch.x if device is None else batch.x.to(device, non_blocking=to_gpu)
            yield as_float(x)

    def labelled_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(float32 images in [0, 1], int64 labels) batches of `batch_size` in source order, the
        same images `batches` gives (-1 = no label); records `kept` after a complete pass."""
        for batch in self._read(batch_size, self.workers):
            yield as_float(batch.x), batch.y.long()

    def head(self, n: int) -> torch.Tensor:
        """float32 images of the readable items among the first `n` (a shape or head check):
        decodes at most `n` images, in this process."""
        first = StreamedSet(self.source.subset(np.arange(min(n, len(self)))), strict=self.strict)
        for batch in first._read(max(n, 1), 0):
            return as_float(batch.x)
        return torch.empty(0)

    def in_memory(self, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(x, y) of the whole set read into memory (x as decoded: uint8 for image files; y None
        when unlabelled): for plug-in detectors that take tensors (see oodbench.detectors.base)."""
        xs, ys = [], []
        for batch in self._read(batch_size, self.workers):
            xs.append(batch.x)
            ys.append(batch.y)
        if not xs:
            return torch.empty(0), None
        y = torch.cat(ys)
        return torch.cat(xs), y if bool((y >= 0).any()) else None

    def narrowed_to(self, index: np.ndarray) -> StreamedSet:
        """The set over source positions `index` (nothing is read)."""
        return StreamedSet(
            self.source.subset(index), workers=self.workers, strict=self.strict, fit_split=self.fit_split
        )

    def narrowed(self) -> StreamedSet:
        """This set without the images the last pass could not read (itself when none)."""
        if self.kept is None or len(self.kept) == len(self):
            return self
        narrowed = self.narrowed_to(self.kept)
        narrowed.kept = np.arange(len(self.kept))
        return narrowed


def load_suite_file_data(
    path: str | Path,
    *,
    data_dir: str | Path | None = None,
    data_root: str | Path | None = None,
    limit: int | None = None,
    fit_limit: int | None = None,
    workers: int | None = None,
    strict: bool = False,
    accept_changed_lists: bool = False,
    full_spectrum: bool = False,
) -> SuiteData:
    """Every set of the suite file at `path` (or a packaged suite's name), streaming (nothing
    is read here).

    `limit` picks the evaluated images (a fixed shuffle, seed 0, as `--limit` on built-in
    suites) and `fit_limit` the fit splits (train stratified), both before anything is read.
    `strict`: `precheck` every source first and refuse unreadable images. The result's
    `suite_sha256` is the file's digest and `lists` every image list's digest (`verify_lists`;
    a list differing from its pin is refused unless `accept_changed_lists`). `{data_root}` is
    `data_root`, else the data folder (`data_dir`, else $OODBENCH_DATA, else the default).
    `full_spectrum`: the [[covariate_shift]] sets are loaded too (`covariate_shift`, streamed
    and capped by `limit` like the ID test set); refused for a suite without them.
    """
    from oodbench import paths
    from oodbench.data.sources.base import select
    from oodbench.data.sources.loader import precheck
    from oodbench.data.suite_file import load_suite_file, resolve_suite_file

    for option, value in (("limit", limit), ("fit_limit", fit_limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserInputError(f"The {option!r} parameter must be an integer >= 1. Got {value!r} instead.")
    root = data_root if data_root is not None else paths.data_dir(data_dir)
    sf = load_suite_file(resolve_suite_file(path), data_root=root)
    if full_spectrum and not sf.covariate_shift:
        raise UserInputError(
            f"Suite {sf.name} has no [[covariate_shift]] sets; drop --full-spectrum "
            "(it adds them to the ID side)."
        )
    lists = sf.verify_lists(accept_changed=accept_changed_lists)
    if sf.preprocess.shape is None:
        raise UserInputError(f"{sf.path}: [preprocess] needs size = [H, W] to evaluate a model; add it.")
    pre = sf.preprocess
    where = None if data_dir is None else str(data_dir)
    train = sf.train.build(pre, data_dir=where, name="train")
    if isinstance(sf.val, int):  # held out of train: stratified, seed 0, removed from training
        if sf.val >= len(train):
            raise UserInputError(
                f"{sf.path}: val holdout = {sf.val} but train has {len(train)} images; hold out fewer."
            )
        rest, held = stratified_holdout(torch.from_numpy(train.labels), sf.val, seed=0)
        train, val_in = train.subset(rest), train.subset(held)
    else:
        val_in = sf.val.build(pre, data_dir=where, name="val")
    val_ood = sf.validation_ood.source.build(pre, data_dir=where, name=sf.validation_ood.name)
    test_in = select(sf.test.build(pre, data_dir=where, name="test"), limit, stratified=False)
    outs = {
        entry.name: select(entry.source.build(pre, data_dir=where, name=entry.name), limit, stratified=False)
        for entry in sf.ood
    }
    shifted = {
        entry.name: select(entry.source.build(pre, data_dir=where, name=entry.name), limit, stratified=False)
        for entry in (sf.covariate_shift if full_spectrum else ())
    }
    fit = {
        "train": select(train, fit_limit),
        "val": select(val_in, fit_limit),
        "val_ood": select(val_ood, fit_limit, stratified=False),
    }
    if strict:  # every file's header before anything is scored (or trained on)
        for source in (*fit.values(), test_in, *outs.values(), *shifted.values()):
            precheck(source)

    def stream(source: ImageSource) -> StreamedSet:
        return StreamedSet(source, workers=workers, strict=strict)

    def read(key: str, name: str, split: str) -> LabeledImages:
        # A fit split streams too: its labels come from the list, its images batch by batch.
        labelled = StreamedSet(fit[key], workers=workers, strict=strict, fit_split=f"{name} {split}")
        return LabeledImages(labelled, labelled.labels, name, split)  # type: ignore[arg-type]

    suite = Suite(
        name=sf.name,
        in_dataset=sf.name,
        out_datasets=tuple(outs),
        seen_ood="",
        val_ood=sf.validation_ood.name,
        recipe=sf.recipe or "",
        description=sf.description,
        val_in_from="train" if isinstance(sf.val, int) else "val",
        val_in_size=sf.val if isinstance(sf.val, int) else len(val_in),
        val_ood_size=len(fit["val_ood"]),
    )
    spec = DatasetSpec(
        name=sf.name,
        image_shape=pre.shape,
        num_classes=sf.classes,
        mean=None,
        std=None,
        source=f"suite file {sf.path}",
        licence="the user's",
        splits=("train", "val", "test"),
        loader=_no_loader,
        files_hint=f"the paths in {sf.path}",
    )
    test_y = torch.from_numpy(test_in.labels.copy())
    return SuiteData(
        suite=suite,
        spec=spec,
        train=read("train", sf.name, "train"),
        val_in=read("val", sf.name, "val"),
        test_in=LabeledImages(stream(test_in), test_y, sf.name, "test"),  # type: ignore[arg-type]
        seen_ood=None,  # type: ignore[arg-type]  # suite files evaluate given models only
        val_ood=read("val_ood", sf.validation_ood.name, "val"),
        test_out={n: LabeledImages(stream(s), None, n, "test") for n, s in outs.items()},  # type: ignore[arg-type]
        suite_sha256=sf.sha256,
        lists=lists,
        covariate_shift={
            n: LabeledImages(stream(s), torch.from_numpy(s.labels.copy()), n, "test")  # type: ignore[arg-type]
            for n, s in shifted.items()
        },
        tuning_grids={name: dict(grid) for name, grid in sf.tuning.items()},
    )


def suite_file_normalize(path: str | Path) -> str | None:
    """The [preprocess] normalize of a suite file as a --normalize value (None for "none"):
    the model is wrapped with it unless the user gives another."""
    from oodbench.data.suite_file import load_suite_file, resolve_suite_file

    normalize = load_suite_file(resolve_suite_file(path), check_data=False).normalize
    if isinstance(normalize, str):
        return None if normalize == "none" else normalize
    mean, std = normalize
    return ",".join(map(repr, mean)) + "/" + ",".join(map(repr, std))


def _no_loader(spec, request):  # a suite file's sets are read through their sources
    raise UserInputError(f"{spec.name} is a suite file's data; load it with load_suite_file_data.")
