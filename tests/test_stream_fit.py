"""Fitting from streams: a suite file's fit splits (train, ID validation, validation OOD) are read
batch by batch, never whole, and fitting on them gives the scores of fitting on the same images
held in memory (Mahalanobis to 1e-10, the others exactly: the same images arrive in the same
batches, so every float32 forward pass and float64 reduction runs on identical inputs in the same
order). Plug-in detectors that do not declare `accepts_streams` still get tensors.
"""

from __future__ import annotations

import copy
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

import oodbench
from oodbench.data.convert import as_float
from oodbench.data.spec import LabeledImages
from oodbench.data.streamed import StreamedSet, load_suite_file_data
from oodbench.detectors.base import Detector, labelled_batches
from oodbench.detectors.mahalanobis import Mahalanobis
from oodbench.detectors.odin import ODIN
from oodbench.models.loading import wrap_module
from oodbench.results import load_rows
from tests.test_suite_cli import FACTORY, make_user_data

try:  # pytorch-ood is an optional extra: its tests are skipped, the others run
    from oodbench.detectors.pytorch_ood_adapter import PytorchOOD
except ImportError:
    PytorchOOD = None
needs_pytorch_ood = pytest.mark.skipif(
    PytorchOOD is None, reason='pytorch-ood is not installed (pip install -e ".[pytorch-ood]")'
)

BATCH = 8  # 30 training images (36 minus the holdout of 6): 4 batches, the last one partial


def _net(root: Path):
    namespace: dict = {}
    exec(FACTORY, namespace)
    torch.manual_seed(0)
    net = namespace["make_net"]().eval()
    torch.save(net.state_dict(), root / "tiny.pt")
    return net


@pytest.fixture()
def shapes(tmp_path):
    """(suite file, its SuiteData with streamed fit splits, the wrapped model)."""
    suite = make_user_data(tmp_path)
    net = _net(tmp_path)
    return suite, load_suite_file_data(suite, workers=0), wrap_module(net).module


def read_items(labelled: LabeledImages) -> LabeledImages:
    """The reference: each item of the stream's source decoded on its own (`source[i]`) and
    stacked, no loader and no batches; labels from the items."""
    source = labelled.x.source
    items = [source[i] for i in range(len(source))]
    y = torch.tensor([item.label for item in items])
    x = torch.stack([item.image for item in items])
    return LabeledImages(x, y if bool((y >= 0).any()) else None, labelled.name, labelled.split)


def fit_both(detector: Detector, data, model):
    """The detector fitted on the streamed splits and, separately, on the same images in memory;
    both score the ID test images (in memory)."""
    streamed = copy.deepcopy(detector).fit(
        model, train=data.train, val_in=data.val_in.x, val_out=data.val_ood.x, batch_size=BATCH
    )
    memory = copy.deepcopy(detector).fit(
        model,
        train=read_items(data.train),
        val_in=read_items(data.val_in).x,
        val_out=read_items(data.val_ood).x,
        batch_size=BATCH,
    )
    test = read_items(data.test_in).x
    return (
        streamed,
        memory,
        streamed.score(model, test, batch_size=BATCH),
        memory.score(model, test, batch_size=BATCH),
    )


def test_fit_splits_are_labelled_streams(shapes):
    _, data, _ = shapes
    for split in (data.train, data.val_in, data.val_ood):
        assert isinstance(split.x, StreamedSet)
    reference = read_items(data.train)
    assert torch.equal(data.train.y, reference.y)  # labels from the file list, nothing decoded
    assert data.val_ood.y is None and len(data.train) == 30 and len(data.val_in) == 6
    pairs = list(labelled_batches(data.train, BATCH))
    assert [len(x) for x, _ in pairs] == [8, 8, 8, 6]
    assert all(x.dtype == torch.float32 and y.dtype == torch.int64 for x, y in pairs)
    assert torch.equal(torch.cat([x for x, _ in pairs]), as_float(reference.x))
    assert torch.equal(torch.cat([y for _, y in pairs]), reference.y)


def test_mahalanobis_fitted_on_a_stream_equals_in_memory(shapes):
    _, data, model = shapes
    # epsilon=None: the statistics from train AND the epsilon tuned on the validation streams.
    streamed, memory, a, b = fit_both(Mahalanobis(epsilon=None, epsilons=(0.0, 0.002, 0.01)), data, model)
    assert streamed.epsilon_ == memory.epsilon_
    torch.testing.assert_close(streamed.means_, memory.means_, rtol=0, atol=1e-10)
    torch.testing.assert_close(streamed.precision_, memory.precision_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    assert np.ptp(a) > 0  # scores that differ between images: the comparison can fail


def test_odin_tuned_on_streams_equals_in_memory(shapes):
    _, data, model = shapes
    odin = ODIN(temperatures=(1.0, 10.0, 1000.0), epsilons=(0.0, 0.002, 0.004))
    streamed, memory, a, b = fit_both(odin, data, model)
    # Exact: the same validation images in the same batches of BATCH give identical floats.
    np.testing.assert_array_equal(streamed.grid_fpr_, memory.grid_fpr_)
    assert (streamed.temperature_, streamed.epsilon_) == (memory.temperature_, memory.epsilon_)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["KNN", "ViM"])
@needs_pytorch_ood
def test_pytorch_ood_fitted_on_a_stream_equals_in_memory(shapes, name):
    _, data, model = shapes
    params = {"k": 3} if name == "KNN" else {"d": 4}
    _, _, a, b = fit_both(PytorchOOD(name, **params), data, model)
    # Exact: features collected batch by batch from the same images are the same float32 rows.
    np.testing.assert_array_equal(a, b)
    assert np.ptp(a) > 0


@needs_pytorch_ood
def test_pytorch_ood_fit_gets_a_dataloader_of_x_y_batches(shapes, monkeypatch):
    """A pytorch-ood detector that runs the model itself (MahalanobisODIN) is fitted with a
    torch DataLoader of (float32 x, int64 y) batches, and streamed equals in memory."""
    import pytorch_ood.detector as ood

    _, data, model = shapes
    seen: list = []
    fit = ood.MahalanobisODIN.fit

    def spy(self, loader):
        seen.append((loader, [(x.dtype, tuple(x.shape), y.dtype) for x, y in loader]))
        return fit(self, loader)

    monkeypatch.setattr(ood.MahalanobisODIN, "fit", spy)
    _, _, a, b = fit_both(PytorchOOD("MahalanobisODIN", eps=0.001), data, model)
    loader, batches = seen[0]
    assert isinstance(loader, torch.utils.data.DataLoader)
    assert [shape[0] for _, shape, _ in batches] == [8, 8, 8, 6]
    assert {(x, y) for x, _, y in batches} == {(torch.float32, torch.int64)}
    np.testing.assert_array_equal(a, b)


class TensorsOnly(Detector):
    """A plug-in written for tensors: it does not declare `accepts_streams`."""

    name = "tensors-only"
    needs_fit = True

    def fit(self, model, *, train=None, val_in=None, val_out=None, device="cpu", batch_size=256):
        self.seen_ = (train, val_in, val_out)
        return self

    def score_outputs(self, outputs):
        return outputs.logits.max(dim=1).values.double().numpy()


class OwnMahalanobis(Mahalanobis):
    """A plug-in overriding a built-in's fit: the built-in's promise is not inherited."""

    def fit(self, model, *, train=None, val_in=None, val_out=None, device="cpu", batch_size=256):
        self.train_type_ = type(train.x)
        return super().fit(model, train=train, val_in=val_in, val_out=val_out, device=device)


class StreamingPlugin(TensorsOnly):
    accepts_streams = True

    def fit(self, model, *, train=None, val_in=None, val_out=None, device="cpu", batch_size=256):
        self.seen_ = (train, val_in, val_out)
        return self


def test_a_plugin_that_does_not_accept_streams_gets_tensors(shapes):
    _, data, model = shapes
    plugin = TensorsOnly().fit(model, train=data.train, val_in=data.val_in.x, val_out=data.val_ood.x)
    train, val_in, val_out = plugin.seen_
    reference = read_items(data.train)
    assert isinstance(train, LabeledImages) and train.x.dtype == torch.uint8
    assert torch.equal(train.x, reference.x) and torch.equal(train.y, reference.y)
    assert (train.name, train.split) == (data.train.name, data.train.split)
    # Validation sets as float [0, 1] tensors, as for in-memory suites.
    assert torch.equal(val_in, as_float(read_items(data.val_in).x))
    assert torch.equal(val_out, as_float(read_items(data.val_ood).x))

    own = OwnMahalanobis().fit(model, train=data.train)
    assert own.train_type_ is torch.Tensor

    streaming = StreamingPlugin().fit(model, train=data.train, val_in=data.val_in.x, val_out=data.val_ood.x)
    assert all(isinstance(s, StreamedSet) for s in (streaming.seen_[0].x, *streaming.seen_[1:]))


@needs_pytorch_ood
def test_every_builtin_that_fits_declares_it_reads_streams():
    from oodbench.detectors import DETECTORS

    classes = [entry.load() for _, entry in DETECTORS.items() if entry.source == "built-in"] + [PytorchOOD]
    fitting = [cls for cls in classes if "fit" in cls.__dict__]
    assert {cls.__name__ for cls in fitting} >= {"Mahalanobis", "ODIN", "PytorchOOD"}
    assert all(cls.__dict__.get("accepts_streams") is True for cls in fitting)
    assert Detector.accepts_streams is False


@needs_pytorch_ood
def test_a_run_never_holds_a_fit_split_whole(shapes, tmp_path, monkeypatch):
    """Through the runner: Mahalanobis (epsilon tuned), ODIN (tuned) and pytorch-ood's KNN fit and
    score with at most one batch of decoded images alive at any time, and nothing is read whole."""
    from oodbench.data.sources import files

    suite, _, _ = shapes
    decode = files.decode
    alive, peak, opened = [0], [0], []

    def release() -> None:
        alive[0] -= 1

    def counting(path, pre):
        image = decode(path, pre)
        opened.append(Path(path))
        alive[0] += 1
        peak[0] = max(peak[0], alive[0])
        weakref.finalize(image, release)  # CPython frees an image when its last reference goes
        return image

    def refuse(self, batch_size=256):
        raise AssertionError("a fit split was read whole")

    monkeypatch.setattr(files, "decode", counting)  # workers=0: decoded in this process
    monkeypatch.setattr(StreamedSet, "in_memory", refuse)
    frame = oodbench.evaluate(
        _net(tmp_path),
        suite=str(suite),
        detectors=["mahalanobis", "odin", "pytorch-ood:KNN"],
        params={
            "mahalanobis": {"epsilon": None, "epsilons": [0.0, 0.002]},
            "odin": {"temperatures": [1.0, 1000.0], "epsilons": [0.0, 0.002]},
            "pytorch-ood:KNN": {"k": 3},
        },
        batch_size=4,
        workers=0,
        results_dir=tmp_path / "runs",
    )
    assert len(frame) == 3 and set(frame["tuning"]) != {"none"}
    assert peak[0] == 4, f"{peak[0]} decoded images alive at once (batch size 4)"
    train_files = {p for p in opened if (tmp_path / "data" / "train") in p.parents}
    assert len(train_files) == 36  # train (30) and its holdout (6) were all read, in batches


def test_fit_limit_selects_before_reading_and_is_recorded(shapes, tmp_path, monkeypatch):
    from oodbench.data.sources import files

    suite, _, _ = shapes
    decode = files.decode
    opened: list[Path] = []

    def counting(path, pre):
        opened.append(Path(path))
        return decode(path, pre)

    monkeypatch.setattr(files, "decode", counting)
    oodbench.evaluate(
        _net(tmp_path),
        suite=str(suite),
        detectors=["mahalanobis"],
        fit_limit=3,
        workers=0,
        results_dir=tmp_path / "runs",
    )
    # 3 of the 30 training images, one of each class; nothing is tuned, so neither the holdout
    # (also under data/train) nor the validation OOD set is read at all. Test sets are read whole.
    train_files = {p for p in opened if (tmp_path / "data" / "train") in p.parents}
    assert len(train_files) == 3 and len({p.parent.name for p in train_files}) == 3
    assert not [p for p in opened if (tmp_path / "data" / "val_ood") in p.parents]
    assert set(load_rows(tmp_path / "runs")["fit_limit"]) == {3}


def test_labelled_batches_of_images_read_from_their_file(tmp_path):
    """Built-in suites may hold images on disk (oodbench.data.ondisk): sliced like a tensor."""
    from oodbench.data.ondisk import open_npz_member

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (10, 1, 4, 4), dtype=np.uint8), np.arange(10) % 3
    np.savez(tmp_path / "set.npz", x=x, y=y)
    on_disk = open_npz_member(tmp_path / "set.npz", "x")
    assert on_disk is not None and not isinstance(on_disk, torch.Tensor)
    got = list(labelled_batches(LabeledImages(on_disk, torch.from_numpy(y), "set"), 4))
    want = list(labelled_batches(LabeledImages(torch.from_numpy(x), torch.from_numpy(y), "set"), 4))
    assert [len(b) for b, _ in got] == [4, 4, 2]
    for (a, ya), (b, yb) in zip(got, want, strict=True):
        assert torch.equal(a, b) and torch.equal(ya, yb)
