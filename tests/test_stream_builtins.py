"""Built-in suites' evaluated sets go through the loader interface (`load_suite(stream=True)`,
what `oodbench run` uses): the same batches, fingerprints and bit-identical scores as the
in-memory arrays."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oodbench.data import load_suite
from oodbench.data.sources import make_loader
from oodbench.data.streamed import StreamedSet
from oodbench.detectors.base import iter_batches
from oodbench.runner import DetectorRequest, ModelUnderTest, evaluate, fingerprint

LIMIT = 60


@pytest.fixture(scope="module")
def suites():
    return load_suite("mnist", limit=LIMIT, fit_limit=100), load_suite(
        "mnist", limit=LIMIT, fit_limit=100, stream=True
    )


def _evaluated(data):
    return [data.test_in, *data.test_out.values()]


def test_streamed_sets_yield_the_arrays_batches_and_keep_their_fingerprints(suites):
    plain, streamed = suites
    assert all(isinstance(s.x, StreamedSet) for s in _evaluated(streamed))
    assert streamed.train is not None and isinstance(streamed.train.x, torch.Tensor)  # fit data as before
    for a, b in zip(_evaluated(plain), _evaluated(streamed), strict=True):
        assert (a.name, len(a), b.x.workers) == (b.name, len(b), 0)
        assert torch.equal(a.y, b.y) if a.y is not None else b.y is None
        assert fingerprint(b.x) == fingerprint(a.x)  # rows and cached scores keep their identity
        for batch_size in (7, 256):
            assert torch.equal(
                torch.cat(list(iter_batches(b.x, batch_size))), torch.cat(list(iter_batches(a.x, batch_size)))
            )
        travelled = next(iter(make_loader(b.x.source, 16, 0))).x
        assert travelled.dtype == a.x.dtype  # uint8 sets travel as uint8 (noise is generated float)
    assert any(a.x.dtype == torch.uint8 for a in _evaluated(plain))


def test_a_converted_or_partial_source_is_named_by_its_source(suites):
    _, streamed = suites
    x = streamed.test_in.x
    assert fingerprint(StreamedSet(x.source.subset(range(10)))) == x.source.subset(range(10)).fingerprint()
    assert fingerprint(StreamedSet(x.source.subset(range(10)))) != fingerprint(x)


def test_scores_are_bit_identical_to_the_in_memory_sets(suites, tmp_path):
    plain, streamed = suites
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.ReLU(), nn.Linear(16, 10))
    model_ut = ModelUnderTest("external", net, "0" * 64, "mlp", "")
    # ODIN (input gradients: a second pass over each set) with fixed values: no tuning grid.
    odin = DetectorRequest("odin", {"temperature": 1000.0, "epsilon": 0.0014})
    requests = [*(DetectorRequest(name) for name in ("msp", "energy", "mahalanobis")), odin]
    rows = {}
    for label, data in (("plain", plain), ("streamed", streamed)):
        rows[label] = evaluate(
            model_ut, requests, data, seed=0, device="cpu", results_dir=tmp_path / label, use_cache=False,
            batch_size=32,
        )  # fmt: skip
    assert len(rows["plain"]) == 4 * len(plain.test_out)
    for a, b in zip(rows["plain"], rows["streamed"], strict=True):
        assert (a.detector, a.out_dataset, a.n_in, a.n_out) == (b.detector, b.out_dataset, b.n_in, b.n_out)
        assert (a.in_fingerprint, a.out_fingerprint) == (b.in_fingerprint, b.out_fingerprint)
        assert a.scores_sha256 == b.scores_sha256  # the digest of both score arrays: bit-identical
        assert (a.auroc, a.tnr_at_tpr95, a.classification_accuracy) == (
            b.auroc, b.tnr_at_tpr95, b.classification_accuracy,
        )  # fmt: skip
