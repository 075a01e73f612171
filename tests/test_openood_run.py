"""OpenOOD v1.5 suites run end to end on the miniature data root (tests/openood_tree.py):
`--suite NAME` of a packaged suite file, the data root, list digests in every row, pins,
`--full-spectrum`, `evaluate(convention=...)`, `oodbench list suites` and the README's commands.

Tiny models (a pooled linear layer) keep every run to seconds; the README's ImageNet-1K line
(torchvision ResNet-50) is behind `slow`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import oodbench
from oodbench import metrics
from oodbench.cli import cli
from oodbench.data.suite_file import builtin_suite_files, load_suite_file
from oodbench.errors import UserInputError
from oodbench.report.openood import against_openood
from oodbench.results import load_rows
from tests.openood_tree import make_openood_tree

CLASSES = {
    "openood-cifar10": 10,
    "openood-cifar100": 100,
    "openood-imagenet200": 200,
    "openood-imagenet1k": 1000,
}
FACTORY = """from torch import nn


def build(num_classes=10):
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, num_classes))
"""
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PER_LIST = 3  # images per list in the miniature tree


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("openood") / "data"
    make_openood_tree(folder, per_list=PER_LIST)
    return folder


def tiny(classes: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, classes)).eval()


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_net.py"
    path.write_text(FACTORY)
    return path


def tiny_checkpoint(folder: Path, suite: str) -> Path:
    path = folder / f"{suite}.pt"
    torch.save(tiny(CLASSES[suite]).state_dict(), path)
    return path


def invoke(*args: str):
    return CliRunner().invoke(cli, [*map(str, args), "--quiet", "--plots", "none", "--workers", "0"])


def list_digest(suite_name: str, root: Path, role: str) -> str:
    """sha256 of the bytes of the list file a suite role names (hashlib, not oodbench)."""
    source = load_suite_file(builtin_suite_files()[suite_name], data_root=root).named_sources()[role]
    return hashlib.sha256(source.path().read_bytes()).hexdigest()


@pytest.mark.parametrize("suite_name", sorted(CLASSES))
def test_every_openood_suite_runs_by_name_and_rows_record_their_lists(
    root: Path, tmp_path: Path, factory: Path, suite_name: str
) -> None:
    checkpoint = tiny_checkpoint(tmp_path, suite_name)
    result = invoke("run", "--suite", suite_name, "--data-dir", root, "--checkpoint", checkpoint,
                    "--arch", f"{factory}:build", "-d", "msp", "--results-dir", tmp_path / "res")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = load_rows(tmp_path / "res")
    suite = load_suite_file(builtin_suite_files()[suite_name], data_root=root)
    assert list(rows["out_dataset"]) == [entry.name for entry in suite.ood]
    assert set(rows["suite"]) == {suite_name} and set(rows["in_dataset"]) == {suite_name}
    assert set(rows["n_in"]) == {PER_LIST} and set(rows["n_out"]) == {PER_LIST}
    assert not rows["full_spectrum"].any() and set(rows["csid_accuracy"]) == {"{}"}
    tuning = ["train", "val", "test", f"validation_ood:{suite.validation_ood.name}"]
    for _, row in rows.iterrows():
        expected = {role: list_digest(suite_name, root, role) for role in [*tuning, row["out_dataset"]]}
        assert json.loads(row["list_sha256"]) == expected  # ID test, this OOD set, the tuning lists
        assert json.loads(row["list_changed_accepted"]) == []


def test_data_root_is_data_dir_else_oodbench_data_and_missing_data_is_one_line(
    root: Path, tmp_path: Path, factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = tiny_checkpoint(tmp_path, "openood-cifar10")
    common = ("--checkpoint", checkpoint, "--arch", f"{factory}:build", "-d", "msp")
    monkeypatch.setenv("OODBENCH_DATA", str(root))  # no --data-dir: $OODBENCH_DATA is the data root
    assert invoke("run", "--suite", "openood-cifar10", *common).exit_code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("OODBENCH_DATA", str(empty))
    assert invoke("run", "--suite", "openood-cifar10", "--data-dir", root, *common).exit_code == 0  # wins
    missing = invoke("run", "--suite", "openood-cifar10", *common)
    assert missing.exit_code == 2 and len(missing.output.strip().splitlines()) == 1, missing.output
    assert f"missing under data root {empty.resolve()}" in missing.output
    assert "benchmark_imglist/cifar10/test_cifar10.txt" in missing.output
    assert "scripts/download/download.py" in missing.output  # how to get it
    unknown = invoke("run", "--suite", "openood-cifar11", *common)
    assert unknown.exit_code == 2 and "no packaged suite has that name" in unknown.output


def pinned_copy(folder: Path, digest: str) -> Path:
    """openood-cifar10.toml with its ID test list pinned to `digest`."""
    text = builtin_suite_files()["openood-cifar10"].read_text()
    line = (
        'test = { list = "{data_root}/benchmark_imglist/cifar10/test_cifar10.txt", '
        'root = "{data_root}/images_classic" }'
    )
    assert text.count(line) == 1
    path = folder / "openood-cifar10.toml"
    path.write_text(text.replace(line, line[:-2] + f', sha256 = "{digest}" }}'))
    return path


def test_pinned_lists_refuse_a_changed_list_unless_accepted_and_the_report_checks_them(
    root: Path, tmp_path: Path, factory: Path
) -> None:
    checkpoint = tiny_checkpoint(tmp_path, "openood-cifar10")
    wrong = pinned_copy(tmp_path, "0" * 64)
    refused = invoke("run", "--suite", wrong, "--data-dir", root, "--checkpoint", checkpoint, "--arch",
                     f"{factory}:build", "--results-dir", tmp_path / "refused")  # fmt: skip
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1, refused.output
    assert "differ from the pinned sha256: test" in refused.output
    assert "--accept-changed-lists" in refused.output
    assert not (tmp_path / "refused" / "rows.jsonl").exists()
    common = dict(data_dir=root, detectors=["msp"], workers=0, convention="openood", cache_dir=tmp_path / "c")
    with pytest.raises(UserInputError, match="differ from the pinned sha256: test"):
        oodbench.evaluate(tiny(10), suite=str(wrong), **common)
    rows = oodbench.evaluate(tiny(10), suite=str(wrong), accept_changed_lists=True, **common)
    assert set(rows["list_changed_accepted"]) == {'["test"]'}  # recorded in every row
    # The report: a changed list is named; no pin at all is "no official list digest pinned".
    changed = against_openood(rows, suites={"openood-cifar10": load_suite_file(wrong, data_root=root)})
    assert changed["why_not"].str.contains("image lists differ from the pinned ones: test").all()
    rows = oodbench.evaluate(tiny(10), suite="openood-cifar10", results_dir=tmp_path / "plain", **common)
    assert set(rows["list_changed_accepted"]) == {"[]"}
    unpinned = against_openood(rows)
    assert unpinned["why_not"].str.contains("no official list digest pinned").all()
    assert not unpinned["comparable"].any()
    # Every list the rows read pinned with its digest: no list reason is left (others remain).
    every = {}
    for text in rows["list_sha256"]:
        every.update(json.loads(text))
    verified = against_openood(rows, pins={"openood-cifar10": every})
    assert not verified["why_not"].str.contains("image-list").any(), verified["why_not"].tolist()
    one_wrong = against_openood(rows, pins={"openood-cifar10": {**every, "svhn": "1" * 64}})
    assert one_wrong["why_not"].str.contains("image lists differ from the pinned ones: svhn").all()
    report = CliRunner().invoke(cli, ["report", "--results", str(tmp_path / "plain"), "--against", "openood"])
    assert report.exit_code == 0, report.output
    assert "no official list digest pinned" in report.output and "none is invented" in report.output


def by_hand(model: nn.Module, images: object) -> tuple[np.ndarray, np.ndarray]:
    """(MSP, predicted class) of a streamed set: ImageNet normalisation, softmax, max."""
    x = torch.cat(list(images.batches(64)))
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        probs = torch.softmax(model((x - mean) / std).double(), dim=1)
    return probs.max(1).values.numpy(), probs.argmax(1).numpy()


def test_full_spectrum_puts_the_csid_sets_on_the_id_side(root: Path, tmp_path: Path) -> None:
    model = tiny(200)
    common = dict(suite="openood-imagenet200", data_dir=root, detectors=["msp"], workers=0)
    frame = oodbench.evaluate(model, **common, full_spectrum=True, results_dir=tmp_path / "fs")
    plain = oodbench.evaluate(model, **common, results_dir=tmp_path / "plain")
    data = oodbench.load_suite("openood-imagenet200", data_dir=root, full_spectrum=True, workers=0)
    csid = ["imagenet_v2", "imagenet_c", "imagenet_r"]
    assert list(data.covariate_shift) == csid
    assert set(frame["n_in"]) == {PER_LIST + sum(len(s) for s in data.covariate_shift.values())} == {12}
    assert frame["full_spectrum"].all() and set(frame["in_dataset"]) == {"openood-imagenet200+csid"}
    assert set(plain["n_in"]) == {PER_LIST} and not plain["full_spectrum"].any()
    assert not set(frame["in_fingerprint"]) & set(plain["in_fingerprint"])  # another ID side
    # The ID side by hand: the ID test set, then each csID set, in the suite file's order.
    scores, predicted = by_hand(model, data.test_in.x)
    accuracy = {"in": float(np.mean(predicted == data.test_in.y.numpy()))}
    id_side = [scores]
    for name, images in data.covariate_shift.items():
        scores, predicted = by_hand(model, images.x)
        id_side.append(scores)
        accuracy[name] = float(np.mean(predicted == images.y.numpy()))
    for (_, row), (_, base) in zip(frame.iterrows(), plain.iterrows(), strict=True):
        with np.load(tmp_path / "fs" / row["scores_file"]) as stored:
            s_in, s_out = stored["scores_in"], stored["scores_out"]
        with np.load(tmp_path / "plain" / base["scores_file"]) as stored:
            assert np.array_equal(stored["scores_in"], s_in[:PER_LIST])  # the ID test's own scores
            assert np.array_equal(stored["scores_out"], s_out)  # OOD sets unchanged
        assert np.allclose(s_in, np.concatenate(id_side), atol=1e-6)
        assert len(s_in) == 12 and len(s_out) == PER_LIST
        expected = metrics.compute(s_in, s_out)
        for name in metrics.METRIC_NAMES:
            assert row[name] == pytest.approx(expected[name], abs=1e-12), name
        assert row["auroc"] == pytest.approx(
            metrics.compute(np.concatenate(id_side), s_out)["auroc"], abs=1e-6
        )
        assert row["classification_accuracy"] == pytest.approx(accuracy["in"])
        assert json.loads(row["csid_accuracy"]) == pytest.approx({n: accuracy[n] for n in csid})
        assert set(json.loads(row["list_sha256"])) >= set(csid)  # the csID lists were read too


def test_full_spectrum_is_refused_without_covariate_shift_sets(
    root: Path, tmp_path: Path, factory: Path
) -> None:
    with pytest.raises(UserInputError, match="no \\[\\[covariate_shift\\]\\] sets"):
        oodbench.evaluate(tiny(10), suite="openood-cifar10", data_dir=root, full_spectrum=True, workers=0)
    with pytest.raises(UserInputError, match="full_spectrum needs a suite file"):
        oodbench.load_suite("mnist", full_spectrum=True)
    checkpoint = tiny_checkpoint(tmp_path, "openood-cifar10")
    result = invoke("run", "--suite", "openood-cifar10", "--data-dir", root, "--checkpoint", checkpoint,
                    "--arch", f"{factory}:build", "--full-spectrum")  # fmt: skip
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "drop --full-spectrum" in result.output
    builtin = CliRunner().invoke(cli, ["run", "--in", "mnist", "--full-spectrum", "--quiet"])
    assert builtin.exit_code == 2 and "--full-spectrum needs a suite file" in builtin.output


def test_evaluate_takes_a_metric_convention(root: Path, tmp_path: Path) -> None:
    model = tiny(10)
    common = dict(suite="openood-cifar10", data_dir=root, detectors=["msp"], workers=0,
                  cache_dir=tmp_path / "cache")  # fmt: skip
    by = {}
    for name, kwargs in {"openood": {"convention": "openood"}, "legacy": {"convention": "legacy"},
                         "legacy=True": {"legacy": True}, "exact": {}}.items():  # fmt: skip
        by[name] = oodbench.evaluate(model, **common, results_dir=tmp_path / name, **kwargs)
    assert set(by["openood"]["metrics_convention"]) == {"openood"}
    assert (
        set(by["legacy"]["metrics_convention"]) == set(by["legacy=True"]["metrics_convention"]) == {"legacy"}
    )
    assert set(by["exact"]["metrics_convention"]) == {"exact"}
    for name, convention in (("openood", "openood"), ("legacy", "legacy"), ("exact", "exact")):
        for _, row in by[name].iterrows():
            with np.load(tmp_path / name / row["scores_file"]) as stored:
                expected = metrics.compute(stored["scores_in"], stored["scores_out"], convention=convention)
            assert all(row[m] == pytest.approx(expected[m], abs=1e-12) for m in metrics.METRIC_NAMES)
    assert by["legacy"]["auroc"].tolist() == by["legacy=True"]["auroc"].tolist()
    with pytest.raises(UserInputError, match="contradicts"):
        oodbench.evaluate(model, **common, legacy=True, convention="openood")
    with pytest.raises(UserInputError, match="Unknown metric convention"):
        oodbench.evaluate(model, **common, convention="openood-v1")


def test_list_suites_shows_the_openood_suites_and_their_data_root(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["list", "suites", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in CLASSES:
        assert f"\n{name}  - OpenOOD v1.5" in result.output
        assert f"oodbench run --suite {name} --checkpoint FILE" in result.output
    assert result.output.count("needs OpenOOD's data root") == 4
    assert result.output.count(f"now {tmp_path}") == 4
    assert result.output.count("(--full-spectrum adds them to the ID side)") == 2  # ImageNet-200 / -1K
    assert "OOD near:    ssb_hard, ninco" in result.output


# ------------------------------------------------------------------------------------ README
def readme_commands() -> list[str]:
    """The `oodbench run` and `oodbench report` lines of the README's OpenOOD section."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("## Today's benchmark: OpenOOD v1.5", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("oodbench ")]


def readme_checkpoint(folder: Path, arch: str, suite: str) -> Path:
    """Random weights of the README line's architecture, saved where the test points it."""
    from oodbench.models.arch import build_arch

    torch.manual_seed(0)
    net = build_arch(arch, num_classes=CLASSES[suite], in_shape=None)
    path = folder / f"{suite}-{arch.replace(':', '_')}.pt"
    torch.save(net.state_dict(), path)
    return path


def run_readme_line(line: str, root: Path, folder: Path) -> None:
    args = shlex.split(line)
    assert args[:2] == ["oodbench", "run"]
    suite, arch = args[args.index("--suite") + 1], args[args.index("--arch") + 1]
    args[args.index("--data-dir") + 1] = str(root)
    args[args.index("--checkpoint") + 1] = str(readme_checkpoint(folder, arch, suite))
    result = invoke(*args[1:])
    assert result.exit_code == 0, (line, result.output)


def test_readme_openood_commands_run_on_the_miniature_tree(root: Path, tmp_path: Path) -> None:
    """The CIFAR-10 and the full-spectrum ImageNet-200 lines, then the report line; every line is
    checked for its suite (the others run in the slow test below)."""
    commands = readme_commands()
    runs = [c for c in commands if c.startswith("oodbench run")]
    (report,) = [c for c in commands if c.startswith("oodbench report")]
    assert [shlex.split(c)[shlex.split(c).index("--suite") + 1] for c in runs] == [
        "openood-cifar10", "openood-cifar100", "openood-imagenet200", "openood-imagenet1k",
        "openood-imagenet200",
    ]  # fmt: skip
    assert "--full-spectrum" in runs[-1] and "--against openood --groups" in report
    for line in (runs[0], runs[-1]):
        run_readme_line(line, root, tmp_path)
    rows = load_rows(tmp_path / "results")  # $OODBENCH_RESULTS (tests/conftest.py)
    assert set(rows["suite"]) == {"openood-cifar10", "openood-imagenet200"}
    assert rows["full_spectrum"].sum() == 2 * 5  # msp and energy on ImageNet-200's five OOD sets
    result = CliRunner().invoke(cli, shlex.split(report)[1:])
    assert result.exit_code == 0, result.output
    assert "88.03" in result.output  # the leaderboard's CIFAR-10 MSP near AUROC beside ours
    assert "openood-imagenet200 (full spectrum)" in result.output
    assert "no official list digest pinned" in result.output
    assert "| near" in result.output or "near |" in result.output


@pytest.mark.slow
def test_readme_openood_commands_all_run(root: Path, tmp_path: Path) -> None:
    runs = [c for c in readme_commands() if c.startswith("oodbench run")]
    for line in runs:
        run_readme_line(line, root, tmp_path)
    rows = load_rows(tmp_path / "results")
    assert set(rows["suite"]) == {
        f"openood-{b}" for b in ("cifar10", "cifar100", "imagenet200", "imagenet1k")
    }
    big = rows[rows["suite"] == "openood-imagenet1k"]
    assert set(big["model_arch"]) == {"torchvision:resnet50"} and set(big["n_in"]) == {PER_LIST}
