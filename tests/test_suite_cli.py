"""A user's own data through a suite file: `oodbench run --suite`, `oodbench.evaluate(model,
suite="my.toml")`, `--limit` before reading, skipped and refused unreadable files, one-line
suite-file errors, and `oodbench suite init`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import oodbench
from oodbench.cli import cli
from oodbench.data.spec import LabeledImages
from oodbench.data.suite_file import suite_file_sha256
from oodbench.results import load_rows

FACTORY = textwrap.dedent(
    """
    from torch import nn


    def make_net(num_classes=3):
        # A tiny CNN for 1x28x28 inputs with three classes.
        return nn.Sequential(
            nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 13 * 13, 16)),
            nn.ReLU(),
            nn.Linear(16, num_classes),
        )
    """
)

SUITE = textwrap.dedent(
    """
    format = 1
    name = "shapes"
    description = "Three classes of generated images vs. noise"

    [in_distribution]
    classes = 3
    train = { classes = "data/train" }
    val = { holdout = 6 }
    test = { classes = "data/test" }

    [preprocess]
    channels = 1
    size = [28, 28]
    normalize = "none"

    [[ood]]
    name = "blobs"
    group = "far"
    folder = "data/ood"

    [validation_ood]
    name = "speckle"
    folder = "data/val_ood"
    """
)

DETECTORS = ["-d", "msp", "-d", "energy", "-d", "mahalanobis"]


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode="L").save(path)


def make_user_data(root: Path) -> Path:
    """Class sub-folders of 28x28 grey PNGs (3 classes: bright in thirds of the image), an OOD
    folder and a validation OOD folder of noise; returns the suite file."""
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 12), ("test", 6)):
        for label, name in enumerate(("top", "middle", "bottom")):
            for i in range(per_class):
                image = rng.integers(0, 60, (28, 28), dtype=np.uint8)
                image[label * 9 : label * 9 + 10] += 150
                _write_png(root / "data" / split / name / f"{i:02d}.png", image)
    for folder, n in (("ood", 10), ("val_ood", 8)):
        for i in range(n):
            _write_png(
                root / "data" / folder / f"{i:02d}.png", rng.integers(0, 256, (28, 28), dtype=np.uint8)
            )
    (root / "netdef.py").write_text(FACTORY)
    (root / "my.toml").write_text(SUITE)
    return root / "my.toml"


@pytest.fixture()
def user(tmp_path):
    """(suite file, weights file, factory spec, the net) in a fresh folder."""
    suite = make_user_data(tmp_path)
    namespace: dict = {}
    exec(FACTORY, namespace)
    torch.manual_seed(0)
    net = namespace["make_net"]().eval()
    torch.save(net.state_dict(), tmp_path / "tiny.pt")
    return suite, tmp_path / "tiny.pt", f"{tmp_path / 'netdef.py'}:make_net", net


def _run(args: list[str]):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _cli_run(user, results: Path, *extra: str):
    suite, weights, factory, _ = user
    args = ["run", "--suite", str(suite), "--checkpoint", str(weights), "--arch", factory, *DETECTORS]
    args += ["--workers", "0", "--plots", "none", "--quiet", "--results-dir", str(results), *extra]
    return _run(args)


def test_cli_run_on_a_suite_file_records_the_file_and_fingerprints(user, tmp_path):
    result = _cli_run(user, tmp_path / "runs")
    assert result.exit_code == 0, result.output
    rows = load_rows(tmp_path / "runs")
    assert sorted(rows["detector"]) == ["energy", "mahalanobis", "msp"]
    assert set(rows["suite"]) == {"shapes"} and set(rows["out_dataset"]) == {"blobs"}
    assert set(rows["suite_sha256"]) == {suite_file_sha256(user[0])}
    assert set(rows["n_in"]) == {18} and set(rows["n_out"]) == {10} and set(rows["n_skipped"]) == {0}
    data = oodbench.load_suite(str(user[0]), workers=0)
    assert set(rows["in_fingerprint"]) == {data.test_in.x.source.fingerprint()}
    assert set(rows["out_fingerprint"]) == {data.test_out["blobs"].x.source.fingerprint()}


def _read_folder(folder: Path) -> torch.Tensor:
    """The images of a folder as an in-memory uint8 tensor, in sorted order (PIL, no oodbench)."""
    files = sorted(p for p in folder.rglob("*.png"))
    return torch.stack([torch.from_numpy(np.array(Image.open(p)))[None] for p in files])


def test_streamed_scores_equal_in_memory_scores(user, tmp_path):
    """Differential: the same images streamed from their files and held in memory score alike."""
    from oodbench.models.loading import wrap_module
    from oodbench.runner import evaluate as run_evaluate
    from oodbench.runner.model import DetectorRequest, ModelUnderTest

    suite, weights, factory, net = user
    frame = oodbench.evaluate(
        net,
        suite=str(suite),
        detectors=["msp", "energy", "mahalanobis"],
        workers=0,
        results_dir=tmp_path / "a",
    )
    assert set(frame["suite_sha256"]) == {suite_file_sha256(suite)}
    data = oodbench.load_suite(str(suite), workers=0)
    memory_in = _read_folder(tmp_path / "data" / "test")  # bottom/, middle/, top/: sorted, as the source
    data.test_in = LabeledImages(memory_in, data.test_in.y, data.test_in.name, "test")
    data.test_out = {"blobs": LabeledImages(_read_folder(tmp_path / "data" / "ood"), None, "blobs", "test")}
    model_ut = ModelUnderTest.from_loaded(wrap_module(net))
    requests = [DetectorRequest(name) for name in ("msp", "energy", "mahalanobis")]
    rows = run_evaluate(
        model_ut, requests, data, seed=0, device="cpu", results_dir=tmp_path / "b", use_cache=False
    )
    streamed = load_rows(tmp_path / "a").set_index("detector")
    for row in rows:
        a = np.load(tmp_path / "a" / streamed.loc[row.detector, "scores_file"])
        b = np.load(tmp_path / "b" / row.scores_file)
        np.testing.assert_array_equal(a["scores_in"], b["scores_in"])
        np.testing.assert_array_equal(a["scores_out"], b["scores_out"])
        assert row.auroc == streamed.loc[row.detector, "auroc"]


def _one_line_error(args: list[str]) -> str:
    result = _run(args)
    assert result.exit_code != 0, result.output
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert "Traceback" not in message
    return message


def test_limit_selects_before_reading(user, tmp_path, monkeypatch):
    """--limit 5 decodes 5 test images and 5 OOD images, not 18 and 10 (fit splits are read whole)."""
    from oodbench.data.sources import files

    opened: list[Path] = []
    decode = files.decode

    def counting(path, pre):
        opened.append(Path(path))
        return decode(path, pre)

    monkeypatch.setattr(files, "decode", counting)  # --workers 0: decoded in this process
    result = _cli_run(user, tmp_path / "runs", "--limit", "5")
    assert result.exit_code == 0, result.output
    under = {name: {p for p in opened if (tmp_path / "data" / name) in p.parents} for name in ("test", "ood")}
    assert len(under["test"]) == 5 and len(under["ood"]) == 5
    rows = load_rows(tmp_path / "runs")
    assert set(rows["n_in"]) == {5} and set(rows["n_out"]) == {5} and set(rows["eval_limit"]) == {5}


def test_a_corrupt_file_is_skipped_and_counted_or_refused_with_strict(user, tmp_path):
    (tmp_path / "data" / "ood" / "03.png").write_bytes(b"not a png at all")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\): 03.png"):
        result = _cli_run(user, tmp_path / "runs")
    assert result.exit_code == 0, result.output
    rows = load_rows(tmp_path / "runs")
    assert set(rows["n_out"]) == {9} and set(rows["n_skipped"]) == {1} and set(rows["n_in"]) == {18}
    suite, weights, factory, _ = user
    strict = ["run", "--suite", str(suite), "--checkpoint", str(weights), "--arch", factory, "-d", "msp"]
    strict += ["--workers", "0", "--strict", "--quiet", "--results-dir", str(tmp_path / "strict")]
    message = _one_line_error(strict)
    # precheck's message: every file was checked before anything was scored, and nothing written.
    assert "1 unreadable image(s) under" in message and "03.png" in message
    assert not (tmp_path / "strict" / "rows.jsonl").exists()


def test_suite_file_errors_are_one_line_with_file_and_line(user, tmp_path):
    suite, weights, factory, _ = user
    suite.write_text(SUITE.replace("channels = 1", "chanels = 1"))
    message = _one_line_error(["run", "--suite", str(suite), "--checkpoint", str(weights), "--arch", factory])
    assert str(suite) in message and "unknown key 'preprocess.chanels'" in message
    assert "line 13:" in message  # the line of `chanels` in SUITE (which starts with a blank line)
    message = _one_line_error(["run", "--suite", str(suite)])
    assert "--checkpoint" in message


def test_suite_init_writes_a_file_that_loads_and_runs(user, tmp_path, monkeypatch):
    from oodbench.data.suite_file import load_suite_file

    monkeypatch.chdir(tmp_path)
    result = _run(["suite", "init", "data/train", "--test", "data/test", "--name", "mine", "--channels", "1",
                   "--output", "made.toml"])  # fmt: skip
    assert result.exit_code == 0, result.output
    made = load_suite_file(tmp_path / "made.toml")
    assert (made.name, made.classes, made.preprocess.shape) == ("mine", 3, (1, 28, 28))
    assert made.train.path() == (tmp_path / "data" / "train").resolve()
    again = ["suite", "init", "data/train", "--test", "data/test", "-o", "made.toml"]
    assert "exists" in _one_line_error(again)
    _, weights, factory, _ = user
    args = ["run", "--suite", "made.toml", "--checkpoint", str(weights), "--arch", factory, "-d", "msp"]
    result = _run([*args, "--workers", "0", "--plots", "none", "--quiet", "--results-dir", "runs"])
    assert result.exit_code == 0, result.output
    assert set(load_rows(tmp_path / "runs")["out_dataset"]) == {"gaussian"}


def test_the_suite_files_normalisation_wraps_the_model(user, tmp_path):
    suite, _, _, net = user
    normalised = tmp_path / "normalised.toml"
    normalised.write_text(SUITE.replace('normalize = "none"', "normalize = { mean = [0.5], std = [0.25] }"))
    by_file = oodbench.evaluate(net, suite=str(normalised), detectors=["energy"], workers=0)
    given = oodbench.evaluate(net, suite=str(suite), detectors=["energy"], workers=0, preprocess="0.5/0.25")
    plain = oodbench.evaluate(net, suite=str(suite), detectors=["energy"], workers=0)
    assert by_file["auroc"].tolist() == given["auroc"].tolist() != plain["auroc"].tolist()


def test_decoding_workers_change_speed_not_scores(user, tmp_path):
    suite, _, _, net = user
    detectors = ["msp", "mahalanobis"]
    by_two = oodbench.evaluate(
        net, suite=str(suite), detectors=detectors, workers=2, results_dir=tmp_path / "w2"
    )
    in_process = oodbench.evaluate(
        net, suite=str(suite), detectors=detectors, workers=0, results_dir=tmp_path / "w0"
    )
    assert by_two["auroc"].tolist() == in_process["auroc"].tolist()
    files = [load_rows(tmp_path / name)["scores_file"] for name in ("w2", "w0")]
    for a, b in zip(*files, strict=True):
        first, second = np.load(tmp_path / "w2" / a), np.load(tmp_path / "w0" / b)
        np.testing.assert_array_equal(first["scores_in"], second["scores_in"])
        np.testing.assert_array_equal(first["scores_out"], second["scores_out"])


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sharded_worker(rank: int, world: int, port: int, folder: str) -> None:
    """One rank of a 2-process gloo group: the API and `oodbench run --suite`, each sharded."""
    import os

    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    root = Path(folder)
    namespace: dict = {}
    exec(FACTORY, namespace)
    net = namespace["make_net"]()
    net.load_state_dict(torch.load(root / "tiny.pt", weights_only=True))
    suite = str(root / "my.toml")
    oodbench.evaluate(net, suite=suite, detectors=["msp", "energy", "mahalanobis"], workers=0,
                      batch_size=4, results_dir=root / "api_sharded")  # fmt: skip
    user = (root / "my.toml", root / "tiny.pt", f"{root / 'netdef.py'}:make_net", net)
    result = _cli_run(user, root / "cli_sharded", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    dist.destroy_process_group()


def test_torchrun_ranks_score_shards_and_rank_0_writes_the_single_process_rows(user, tmp_path):
    import torch.multiprocessing as mp

    suite, _, _, net = user
    (tmp_path / "data" / "ood" / "03.png").write_bytes(b"not a png at all")  # skipped on one rank
    mp.spawn(_sharded_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    with pytest.warns(UserWarning, match="skipped 1"):
        oodbench.evaluate(net, suite=str(suite), detectors=["msp", "energy", "mahalanobis"], workers=0,
                          batch_size=4, results_dir=tmp_path / "api_single")  # fmt: skip
        assert _cli_run(user, tmp_path / "cli_single", "--batch-size", "4").exit_code == 0
    identity = ["detector", "out_dataset", "auroc", "tnr_at_tpr95", "n_in", "n_out", "n_skipped",
                "in_fingerprint", "out_fingerprint", "classification_accuracy", "scores_sha256",
                "suite_sha256"]  # fmt: skip
    for kind in ("api", "cli"):
        single, sharded = (load_rows(tmp_path / f"{kind}_{how}") for how in ("single", "sharded"))
        assert len(single) == len(sharded) == 3  # rank 1 wrote nothing
        # scores_sha256: the digest of both score arrays, bit for bit, in image order.
        assert sharded[identity].to_dict("records") == single[identity].to_dict("records")
        assert set(sharded["n_skipped"]) == {1}
