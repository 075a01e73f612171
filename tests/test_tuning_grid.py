"""Suite grids ([tuning] of a suite file): tuned on validation only, the choice equals a brute-force
search, degenerate picks flagged in rows and reports, --param wins, TOML errors in one line."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import oodbench.data.sources.loader as loader_module
from oodbench import metrics
from oodbench.data.spec import LabeledImages
from oodbench.data.streamed import load_suite_file_data
from oodbench.data.suite_file import BUILTIN_DIR, load_suite_file, parse_suite
from oodbench.detectors.base import Detector
from oodbench.detectors.grid import ALL_EQUAL, GridResult, grid_points, tune
from oodbench.detectors.mahalanobis import Mahalanobis
from oodbench.detectors.odin import ODIN, odin_scores_for_epsilons
from oodbench.detectors.suite_grids import check_grids, with_suite_grid
from oodbench.errors import UserInputError
from oodbench.report.tuning import tuning_warnings
from oodbench.results import ResultRow, rows_to_frame
from oodbench.runner import DetectorRequest
from oodbench.runner.evaluation import evaluate
from oodbench.runner.model import ModelUnderTest
from tests.openood_tree import make_openood_tree

try:  # pytorch-ood is an optional extra: its tests are skipped, the others run
    from oodbench.detectors.pytorch_ood_adapter import PytorchOOD
except ImportError:
    PytorchOOD = None
needs_pytorch_ood = pytest.mark.skipif(
    PytorchOOD is None, reason='pytorch-ood is not installed (pip install -e ".[pytorch-ood]")'
)

SMALL_GRIDS = """
[tuning.odin]
temperature = [1, 10]
epsilon = [0.0, 0.002]

[tuning."pytorch-ood:KNN"]
k = [1, 2, 5]

[tuning."pytorch-ood:ReAct"]
percentile = [0.85, 0.9, 0.95, 0.99]
"""


class Net(nn.Module):
    """A random 3x32x32 classifier with `features`/`head`: 16 features, 10 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        conv = nn.Conv2d(3, 16, 5, stride=4)
        self.body = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory) -> tuple[Path, Path]:
    """openood-cifar10.toml with small grids, over the miniature OpenOOD tree."""
    root = tmp_path_factory.mktemp("openood")
    make_openood_tree(root, per_list=12, benchmarks=("cifar10",))
    text = (BUILTIN_DIR / "openood-cifar10.toml").read_text(encoding="utf-8")
    text = text[: text.index("# Hyperparameters searched")] + SMALL_GRIDS
    path = root / "small-grids.toml"
    path.write_text(text, encoding="utf-8")
    return path, root


@needs_pytorch_ood
def test_tuning_reads_no_test_set_and_rows_record_the_search(suite_file, monkeypatch, tmp_path: Path):
    path, root = suite_file
    reads: list[tuple[str, str]] = []  # (source name, phase) of every read of a source
    phase = ["load"]
    real_loader = loader_module.make_loader

    def recording_loader(source, *args, **kwargs):
        reads.append((source.name, phase[0]))
        return real_loader(source, *args, **kwargs)

    monkeypatch.setattr(loader_module, "make_loader", recording_loader)
    data = load_suite_file_data(path, data_root=root)
    fitted, depth = [], [0]

    def watched(cls):
        real_fit = cls.fit

        def fit(self, model, *, train=None, val_in=None, val_out=None, **kwargs):
            # The fit gets the training split and the two validation sets, nothing else.
            assert train is data.train
            assert val_in is data.val_in.x or torch.equal(val_in, data.val_in.x.in_memory().float() / 255)
            assert len(val_out) == len(data.val_ood) and len(val_in) == len(data.val_in)
            depth[0] += 1  # a grid search fits one detector per point inside the outer fit
            phase[0] = "fit"
            try:
                return real_fit(self, model, train=train, val_in=val_in, val_out=val_out, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    phase[0] = "score"
                    fitted.append(self.name)

        monkeypatch.setattr(cls, "fit", fit)

    watched(ODIN)
    watched(PytorchOOD)
    model_ut = ModelUnderTest("external", Net().eval(), "ab" * 32, "tiny", "none", label="tiny")
    detectors = [DetectorRequest("odin"), PytorchOOD("KNN"), PytorchOOD("ReAct"), DetectorRequest("msp")]
    rows = evaluate(model_ut, detectors, data, seed=0, device="cpu", results_dir=None, use_cache=False)

    assert fitted == ["odin", "pytorch-ood:KNN", "pytorch-ood:ReAct"]  # a watched fit really ran
    # While fitting and tuning, only the fit splits (streamed batch by batch) are read.
    fit_splits = {data.train.x.source.name, data.val_in.x.source.name, data.val_ood.x.source.name}
    tests = {"test", *data.test_out}
    assert not fit_splits & tests
    read_while_fitting = {name for name, when in reads if when == "fit"}
    assert read_while_fitting and read_while_fitting <= fit_splits
    assert tests <= {name for name, when in reads if when == "score"}  # test sets read afterwards
    assert not tests & {name for name, when in reads if when == "load"}  # not while loading either
    frame = rows_to_frame(rows)
    by = {d: frame[frame["detector"] == d].iloc[0] for d in frame["detector"].unique()}
    for name, grid in (("odin", {"temperature": [1, 10]}), ("pytorch-ood:KNN", {"k": [1, 2, 5]})):
        row = by[name]
        sets = "openood-cifar10 val (12) + tin_val (12)"
        assert row["tuning"].startswith(f"grid on validation: {sets}; AUROC: ")
        assert row["tuning"].count("(chosen)") == 1
        params = json.loads(row["detector_params"])
        for key, values in grid.items():
            assert params[key] in values
        assert isinstance(row["tuning_flags"], list)
    assert by["msp"]["tuning"] == "none" and by["msp"]["tuning_flags"] == []


def _val_auroc(detector, model, val_in, val_out) -> float:
    return metrics.compute(detector.score(model, val_in), detector.score(model, val_out))["auroc"]


def _images(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 32, 32, generator=g) * 0.8 + shift).clamp(0, 1)


@pytest.fixture(scope="module")
def small_data():
    train = LabeledImages(_images(40, 1), torch.arange(40) % 10, "train", "train")
    return train, _images(16, 2), _images(16, 3, shift=0.15)


@pytest.mark.parametrize(
    ("detector", "grid"),
    [
        ("KNN", {"k": [1, 3, 7, 15]}),
        ("ReAct", {"percentile": [0.5, 0.7, 0.9, 0.99]}),
        ("ViM", {"d": [2, 5, 9]}),
    ],
)
@needs_pytorch_ood
def test_grid_choice_equals_a_brute_force_search(small_data, detector: str, grid):
    train, val_in, val_out = small_data
    model = Net().eval()
    tuned = with_suite_grid(PytorchOOD(detector), {f"pytorch-ood:{detector}": grid})
    tuned.fit(model, train=train, val_in=val_in, val_out=val_out)
    (name,) = grid
    by_hand = []
    for value in grid[name]:
        single = PytorchOOD(detector, **{name: value}).fit(model, train=train, val_in=val_in, val_out=val_out)
        by_hand.append(_val_auroc(single, model, val_in, val_out))
    best = next(i for i, a in enumerate(by_hand) if a == max(by_hand))  # ties: the first
    assert list(tuned.grid_result_.aurocs) == by_hand
    assert tuned.params()[name] == grid[name][best]
    assert tuned.tuned_on_validation()
    # The tuned detector scores as the brute force's best one.
    best_single = PytorchOOD(detector, **{name: grid[name][best]}).fit(model, train=train)
    assert np.array_equal(tuned.score(model, val_out), best_single.score(model, val_out))


@needs_pytorch_ood
def test_a_grid_reads_the_fit_and_validation_sets_once_not_once_per_point(small_data):
    train, val_in, val_out = small_data
    model = Net().eval()
    seen = [0]  # images through the model
    model.body.register_forward_pre_hook(lambda module, args: seen.__setitem__(0, seen[0] + len(args[0])))

    def images_read(values: list[int]) -> int:
        seen[0] = 0
        tuned = with_suite_grid(PytorchOOD("KNN"), {"pytorch-ood:KNN": {"k": values}})
        tuned.fit(model, train=train, val_in=val_in, val_out=val_out)
        return seen[0]

    one, five = images_read([3]), images_read([1, 3, 5, 7, 9])
    whole = len(train.x) + len(val_in) + len(val_out)
    assert one >= whole  # the search read every set
    assert five - one < len(val_in)  # 4 more points: only their small per-point checks, no pass


def test_odin_and_mahalanobis_suite_grids_pick_the_highest_auroc_by_hand(small_data):
    _, val_in, val_out = small_data
    model = Net().eval()
    temperatures, epsilons = (1.0, 10.0, 1000.0), (0.0, 0.001, 0.004)
    odin = with_suite_grid(ODIN(), {"odin": {"temperature": temperatures, "epsilon": epsilons}})
    odin.fit(model, val_in=val_in, val_out=val_out)
    by_hand = {}
    for t in temperatures:
        s_in = odin_scores_for_epsilons(model, val_in, t, epsilons)
        s_out = odin_scores_for_epsilons(model, val_out, t, epsilons)
        for j, eps in enumerate(epsilons):
            by_hand[(t, eps)] = metrics.compute(s_in[j], s_out[j])["auroc"]
    best = max(by_hand, key=lambda k: (by_hand[k], -list(by_hand).index(k)))
    assert (odin.temperature_, odin.epsilon_) == best
    assert list(odin.grid_result_.aurocs) == list(by_hand.values())


def test_mahalanobis_tuning_scores_every_epsilon_in_one_pass_as_score_does(small_data):
    train, val_in, val_out = small_data
    model = Net().eval()
    epsilons = (0.0, 0.001, 0.004)
    tuned = with_suite_grid(Mahalanobis(epsilon=None), {"mahalanobis": {"epsilon": epsilons}})
    read = [0]  # images through the model's features
    model.body.register_forward_pre_hook(lambda module, args: read.__setitem__(0, read[0] + len(args[0])))
    tuned.fit(model, train=train, val_in=val_in, val_out=val_out)
    read_by_fit = read[0]
    by_hand, one_pass = (
        [],
        tuned._scores_for_epsilons(model, val_in, list(epsilons), device="cpu", batch_size=256),
    )
    for k, eps in enumerate(epsilons):
        single = copy.copy(tuned)
        single.epsilon_ = eps
        assert np.array_equal(single.score(model, val_in), one_pass[k])  # float for float
        by_hand.append(metrics.compute(single.score(model, val_in), single.score(model, val_out))["auroc"])
    assert list(tuned.grid_result_.aurocs) == by_hand
    assert tuned.epsilon_ == epsilons[by_hand.index(max(by_hand))]
    # train once; each validation set: the unperturbed pass, ONE gradient pass shared by the two
    # eps > 0 and one perturbed pass each (4 passes; one `score` per epsilon took 5).
    assert read_by_fit == len(train.x) + 4 * (len(val_in) + len(val_out))


@needs_pytorch_ood
def test_a_param_fixed_by_the_user_is_not_tuned(small_data):
    grids = {"odin": {"temperature": (1, 10), "epsilon": (0.0, 0.002)}, "pytorch-ood:KNN": {"k": (1, 3)}}
    knn = PytorchOOD("KNN", k=2)
    assert with_suite_grid(knn, grids) is knn  # k given: nothing left to tune
    assert not knn.tuned_on_validation()
    odin = with_suite_grid(ODIN(temperature=10.0), grids, given={"temperature"})
    assert odin.temperature == 10.0 and odin.epsilons == (0.0, 0.002) and odin.criterion == "auroc"
    _, val_in, val_out = small_data
    odin.fit(Net().eval(), val_in=val_in, val_out=val_out)
    assert odin.temperature_ == 10.0
    assert odin.grid_result_.grid == {"temperature": (10.0,), "epsilon": (0.0, 0.002)}
    untouched = ODIN()
    assert with_suite_grid(untouched, grids).temperatures == (1, 10) and untouched.criterion == "fpr95"


class _Constant(Detector):
    """Scores every image the same whatever its parameter: a grid that cannot choose."""

    name = "constant"
    uses = "input"

    def __init__(self, *, level: float = 0.0) -> None:
        self.level = level

    def score(self, model, x, *, device="cpu", batch_size=256) -> np.ndarray:
        return np.zeros(len(x))


def test_flags_for_a_constant_grid_and_for_an_edge_pick():
    x = torch.zeros(4, 3, 2, 2)
    _, result = tune(lambda p: _Constant(**p), {"level": [1, 2, 3]}, None, train=None, val_in=x, val_out=x)
    assert result.aurocs == (0.5, 0.5, 0.5) and result.best == 0 and result.flags() == [ALL_EQUAL]
    edge = GridResult(grid={"k": (50, 100, 200), "t": (1, 2)}, aurocs=(0.6, 0.7, 0.8, 0.7, 0.9, 0.7), best=4)
    assert edge.chosen == {"k": 200, "t": 1}
    assert edge.flags() == ["best at the edge of the grid (k=200)"]  # t has 2 values: no interior
    inside = GridResult(grid={"k": (50, 100, 200)}, aurocs=(0.6, 0.9, 0.9), best=1)
    assert inside.flags() == []
    points = grid_points({"a": (1, 2), "b": (3, 4)})  # the last parameter varies fastest
    assert points == [{"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, {"a": 2, "b": 4}]


def test_flags_reach_the_report_warnings_and_the_html_heuristic_only_for_old_rows():
    from oodbench.report.html import _degenerate_picks

    base = dict(
        suite="s", in_dataset="i", out_dataset="o", model_source="external", model_label="m", model_arch="a",
        training_recipe="none", detector="pytorch-ood:KNN", seed=0, tnr_at_tpr95=0.5, auroc=0.9, aupr_in=0.8,
        aupr_out=0.85, detection_accuracy=0.82, fpr95_openood=0.3, n_in=10, n_out=10, device="cpu",
        detector_params={"k": 1000}, tuning="grid on validation: ...",
    )  # fmt: skip
    rows = [
        ResultRow(**base, tuning_flags=["best at the edge of the grid (k=1000)"]),
        ResultRow(**{**base, "out_dataset": "o2"}, tuning_flags=["best at the edge of the grid (k=1000)"]),
        ResultRow(**{**base, "detector": "odin", "detector_params": {"temperature": 1000, "epsilon": 0.0}},
                  tuning_flags=[]),
    ]  # fmt: skip
    frame = rows_to_frame(rows)
    lines = tuning_warnings(frame)
    assert lines == ['m / pytorch-ood:KNN {"k": 1000} (seed 0): best at the edge of the grid (k=1000)']
    html_frame = frame.assign(_model="m", _mkey="m")
    assert _degenerate_picks(html_frame) == lines  # the ODIN row recorded [] : no heuristic guess
    old = html_frame.assign(tuning_flags=[None] * 3)
    assert any("temperature 1000 is at the edge" in line for line in _degenerate_picks(old))
    assert tuning_warnings(pd.DataFrame()) == []


def test_report_command_warns_once_per_flagged_row_group(tmp_path: Path):
    from oodbench.report.make import ReportOptions, make_report
    from oodbench.results import append_rows

    base = dict(
        suite="s", in_dataset="i", model_source="external", model_label="m", model_arch="a",
        training_recipe="none", seed=0, tnr_at_tpr95=0.5, auroc=0.9, aupr_in=0.8, aupr_out=0.85,
        detection_accuracy=0.82, fpr95_openood=0.3, n_in=10, n_out=10, device="cpu", tuning="grid",
        classification_accuracy=0.9,
    )  # fmt: skip
    flagged = dict(detector="odin", detector_params={"temperature": 1.0}, tuning_flags=[ALL_EQUAL])
    rows = [ResultRow(**base, **flagged, out_dataset=o) for o in ("o1", "o2")]
    rows.append(ResultRow(**base, detector="msp", out_dataset="o1", tuning_flags=[]))
    append_rows(tmp_path / "rows.jsonl", rows)
    for options in (ReportOptions(), ReportOptions(fmt="html")):
        notes = make_report(tmp_path / "rows.jsonl", options).notes
        warned = [n for n in notes if n.startswith("warning: degenerate tuning pick")]
        assert warned == [
            f'warning: degenerate tuning pick: m / odin {{"temperature": 1.0}} (seed 0): {ALL_EQUAL}'
        ]


VALID = (BUILTIN_DIR / "openood-cifar10.toml").read_text(encoding="utf-8")


# A second detector table first: a problem must point at its own table's line, not the first one.
KNN_FIRST = '[tuning."pytorch-ood:KNN"]\nk = [50, 100]\n\n'


@pytest.mark.parametrize(
    ("block", "message", "bad_line"),
    [
        (
            "[tuning.odin]\ntemperature = 1000\n",
            r"tuning.odin.temperature must be a non-empty",
            "temperature = 1000",
        ),
        (
            "[tuning.odin]\ntemperature = []\n",
            r"tuning.odin.temperature must be a non-empty",
            "temperature = []",
        ),
        (
            '[tuning."pytorch-ood:ReAct"]\nk = [50, 50]\n',
            r"tuning.pytorch-ood:ReAct.k lists a value twice",
            "k = [50, 50]",
        ),
        ("[tuning]\nodin = 3\n", r"tuning.odin must be a table", "odin = 3"),
        (
            "[tuning.odin]\nepsilon = [0.1, {a = 1}]\n",
            r"tuning.odin.epsilon must be a non-empty",
            "epsilon = [0.1, {a = 1}]",
        ),
        (
            "[tuning]\nodin = { epsilon = [true, nan] }\n",
            r"tuning.odin.epsilon must be a non-empty",
            "odin = { epsilon = [true, nan] }",
        ),
    ],
)
def test_toml_errors_name_the_line(block: str, message: str, bad_line: str):
    head = VALID[: VALID.index("# Hyperparameters searched")]
    text = head + (block if block.startswith("[tuning]") else KNN_FIRST + block)
    with pytest.raises(UserInputError, match=message) as caught:
        parse_suite(text, path=Path("s.toml"))
    line = int(re.search(r"line (\d+)", str(caught.value)).group(1))
    assert text.splitlines()[line - 1] == bad_line
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("grids", "message"),
    [
        ({"odim": {"temperature": [1]}}, r"names 'odim', which is not a detector"),
        ({"msp": {"temperature": [1]}}, r"'msp', which takes no tuned parameters"),
        ({"odin": {"temp": [1]}}, r"odin has no tuned parameter temp; it tunes temperature, epsilon"),
        ({"odin": {"temperature": [1, -1]}}, r"'temperature' parameter of ODIN must be a float > 0"),
        pytest.param(
            {"pytorch-ood:KNNN": {"k": [1]}}, r"pytorch-ood has no detector 'KNNN'", marks=needs_pytorch_ood
        ),
        pytest.param(
            {"pytorch-ood:ReAct": {"kk": [1]}},
            r"has no tunable parameter kk; it takes threshold, percentile",
            marks=needs_pytorch_ood,
        ),
        pytest.param(
            {"pytorch-ood:KNN": {"encoder": [1]}},
            r"has no tunable parameter encoder",
            marks=needs_pytorch_ood,
        ),
        pytest.param(
            {"pytorch-ood:KNN": {"k": [1, 2.5]}},
            r"pytorch-ood:KNN.k must be an integer",
            marks=needs_pytorch_ood,
        ),
    ],
)
def test_unknown_names_and_bad_values_refused_in_one_line(grids, message):
    with pytest.raises(UserInputError, match=message) as caught:
        check_grids(grids)
    assert "\n" not in str(caught.value)


def test_shipped_openood_suites_carry_openoods_grids():
    for name in ("cifar10", "cifar100", "imagenet200", "imagenet1k"):
        tuning = load_suite_file(BUILTIN_DIR / f"openood-{name}.toml").tuning
        assert tuning["odin"] == {"temperature": (1, 10, 100, 1000), "epsilon": (0.0014, 0.0028)}
        assert tuning["pytorch-ood:ReAct"] == {"percentile": (0.85, 0.9, 0.95, 0.99)}
        assert tuning["pytorch-ood:KNN"] == {"k": (50, 100, 200, 500, 1000)}
        assert tuning["pytorch-ood:ViM"] == {"d": (256, 1000)}
        for method in ("ASH", "SCALE"):
            assert tuning[f"pytorch-ood:{method}"] == {"percentile": (0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)}
        check_grids(tuning)


@needs_pytorch_ood
def test_run_start_checks_the_suite_grids_and_lets_a_grid_supply_a_required_parameter():
    from oodbench.api import detector_requests

    with pytest.raises(UserInputError, match="pytorch-ood:ViM needs d"):
        detector_requests(["pytorch-ood:ViM"])
    (vim,) = detector_requests(["pytorch-ood:ViM"], grids={"pytorch-ood:ViM": {"d": (2, 5)}})
    assert vim.kwargs == {} and not hasattr(vim, "grid")  # the runner gives it the grid (a copy)
    with pytest.raises(UserInputError, match="'odim', which is not a detector"):
        detector_requests(["msp"], grids={"odim": {"t": (1,)}})
