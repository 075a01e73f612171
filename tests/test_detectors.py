"""Every registered detector passes the contract; formulas checked on hand-made logits."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from oodbench.detectors import DETECTORS, ForwardOutputs, create_detector
from oodbench.detectors.base import Detector
from oodbench.detectors.contract import check_detector
from oodbench.detectors.mahalanobis import PAPER_EPSILONS
from oodbench.detectors.odin import odin_scores_for_epsilons, tune_odin
from oodbench.detectors.plugins import entry_points, pytorch_ood_installed
from oodbench.errors import UserInputError
from oodbench.metrics import compute


class PrototypeNet(nn.Module):
    """features = relu(W x) with W = class prototypes; logits = 4 * features.

    Inputs near a prototype get one large logit (confident); faint noise gets near-uniform
    softmax: an easy in/out pair with known direction.
    """

    def __init__(self, prototypes: torch.Tensor) -> None:
        super().__init__()
        self.proj = nn.Linear(prototypes.shape[1], prototypes.shape[0], bias=False)
        self.proj.weight.data.copy_(prototypes)
        self.head = nn.Linear(prototypes.shape[0], prototypes.shape[0], bias=False)
        self.head.weight.data.copy_(4 * torch.eye(prototypes.shape[0]))

    def features(self, x):
        return torch.relu(self.proj(x.flatten(1)))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def easy_pair():
    g = torch.Generator().manual_seed(0)
    prototypes = torch.rand(3, 16, generator=g)
    model = PrototypeNet(prototypes)

    def in_dist(n):
        y = torch.randint(0, 3, (n,), generator=g)
        x = prototypes[y] + 0.05 * torch.randn(n, 16, generator=g)
        return x.clamp(0, 1).view(n, 1, 4, 4), y

    x_train, y_train = in_dist(120)
    x_in, _ = in_dist(60)
    val_in, _ = in_dist(40)
    x_out = 0.1 * torch.rand(60, 1, 4, 4, generator=g)
    val_out = 0.1 * torch.rand(40, 1, 4, 4, generator=g)
    train = SimpleNamespace(x=x_train, y=y_train)
    small_grid = dict(temperatures=(1, 10), epsilons=(0.0, 0.002))
    return model, train, x_in, x_out, val_in, val_out, small_grid


class ContractNet(nn.Module):
    """features = relu(W x): 3 prototype units plus 5 weak random ones; logits = 4 f_1..3 + 0.1.

    The prototypes have disjoint supports, so every class is predicted correctly (detectors such
    as SHE fit on correct predictions only); the head has a bias (ViM uses it).
    """

    def __init__(self, prototypes: torch.Tensor, generator: torch.Generator) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 8, bias=False)
        self.proj.weight.data.copy_(torch.cat([prototypes, 0.1 * torch.randn(5, 16, generator=generator)]))
        self.head = nn.Linear(8, 3)
        self.head.weight.data.copy_(torch.cat([4 * torch.eye(3), torch.zeros(3, 5)], dim=1))
        self.head.bias.data.fill_(0.1)

    def features(self, x):
        return torch.relu(self.proj(x.flatten(1)))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def contract_pair():
    g = torch.Generator().manual_seed(0)
    prototypes = torch.zeros(3, 16)
    for c in range(3):
        prototypes[c, 5 * c : 5 * c + 5] = 0.5 + 0.5 * torch.rand(5, generator=g)
    model = ContractNet(prototypes, g)

    def in_dist(n):
        y = torch.arange(n) % 3
        x = prototypes[y] + 0.05 * torch.randn(n, 16, generator=g)
        return x.clamp(0, 1).view(n, 1, 4, 4), y

    x_train, y_train = in_dist(120)
    x_in, _ = in_dist(60)
    val_in, _ = in_dist(40)
    x_out = 0.1 * torch.rand(60, 1, 4, 4, generator=g)
    val_out = 0.1 * torch.rand(40, 1, 4, 4, generator=g)
    train = SimpleNamespace(x=x_train, y=y_train)
    small_grid = dict(temperatures=(1, 10), epsilons=(0.0, 0.002))
    return model, train, x_in, x_out, val_in, val_out, small_grid


def _pytorch_ood_names() -> list[str]:
    # Listed whether or not pytorch-ood is installed: without it each one SKIPS with a reason
    # (the table needs no pytorch-ood), rather than the test list shrinking silently.
    from oodbench.detectors.pytorch_ood_table import PYTORCH_OOD_DETECTORS

    return ["pytorch-ood:" + name for name in sorted(PYTORCH_OOD_DETECTORS)]


# Every detector oodbench can find: registered (built-in and plug-ins), entry points, pytorch-ood.
ALL_DETECTORS = sorted({*DETECTORS.names(), *entry_points(), *_pytorch_ood_names()})
# Hyperparameters they cannot run without, or that keep the test small.
CONTRACT_PARAMS = {
    "pytorch-ood:ViM": {"d": 4},
    "pytorch-ood:DICE": {"p": 0.5},
    "pytorch-ood:KNN": {"k": 3},
    "pytorch-ood:NNGuide": {"k": 3},
    "pytorch-ood:WeightedEBO": {"weights": [1.0, 1.0, 1.0]},
}
# Refused in one line: they need parts of a model that -d cannot name.
REFUSED = {
    "pytorch-ood:Gram",
    "pytorch-ood:MCM",
    "pytorch-ood:MultiMahalanobis",
    "pytorch-ood:NACUE",
    "pytorch-ood:RankFeat",
}
# No direction check: the sanity detector, and detectors whose score does not separate this
# 3-class toy pair (they pass every other part of the contract); see benchmarks/README.md for
# how they do on the embedded suite.
NO_DIRECTION = {
    "random",
    "pytorch-ood:MCD",  # the toy net has no dropout: every score is the same (AUROC 0.5)
    "pytorch-ood:OpenMax",  # Weibull tails fitted on 40 points per class (AUROC 0.8 here)
}


@pytest.mark.parametrize("name", ALL_DETECTORS)
def test_every_detector_passes_the_contract(name, contract_pair):
    if name.startswith("pytorch-ood:") and not pytorch_ood_installed():
        pytest.skip("pytorch-ood is not installed (pip install pytorch-ood): its adapter is not checked")
    model, train, x_in, x_out, val_in, val_out, small_grid = contract_pair
    params = small_grid if name == "odin" else CONTRACT_PARAMS.get(name, {})
    detector = create_detector(name, **params)
    if name in REFUSED:
        with pytest.raises(UserInputError, match="cannot pass|spatial"):
            detector.validate()
        return
    result = check_detector(
        detector,
        model,
        train=train,
        x_in=x_in,
        x_out=x_out,
        val_in=val_in,
        val_out=val_out,
        check_direction=name not in NO_DIRECTION,
    )
    if name == "random":
        assert 0.3 < result["auroc"] < 0.7


def test_contract_catches_a_detector_that_scores_unfitted_or_changes_on_score(easy_pair):
    model, train, x_in, x_out, val_in, val_out, _ = easy_pair
    pair = dict(train=train, x_in=x_in, x_out=x_out, val_in=val_in, val_out=val_out)

    class Forgetful(Detector):
        name = "forgetful"
        needs_fit = True

        def score_outputs(self, outputs):  # scores without being fitted
            return outputs.logits.double().max(1).values.numpy()

    class Counting(Forgetful):
        name = "counting"
        needs_fit = False

        def score_outputs(self, outputs):
            self.calls_ = getattr(self, "calls_", 0) + 1  # state changed by scoring
            return super().score_outputs(outputs)

    class BatchDependent(Detector):
        name = "batch_dependent"
        uses = "features"

        def score_outputs(self, outputs):  # standardised over the batch: not one row at a time
            s = outputs.features.double().max(1).values
            return ((s - s.mean()) / (s.std() + 1e-9)).numpy()

    with pytest.raises(AssertionError, match="needs fitting but scored unfitted"):
        check_detector(Forgetful(), model, **pair)
    with pytest.raises(AssertionError, match="score changed"):
        check_detector(Counting(), model, **pair)
    with pytest.raises(AssertionError, match="depend on the batch"):
        check_detector(BatchDependent(), model, **pair)


def test_contract_catches_a_detector_whose_fit_is_not_deterministic(easy_pair):
    model, train, x_in, x_out, val_in, val_out, _ = easy_pair

    class Drifting(Detector):
        name = "drifting"
        needs_fit = True

        def fit(self, model, **kwargs):
            # An unseeded draw at fit time: a refit (as the runner may do) gives other scores.
            self.offset_ = float(np.random.default_rng().normal())
            return self

        def score_outputs(self, outputs):
            if not hasattr(self, "offset_"):
                raise ValueError("fit it first")
            return outputs.logits.double().max(1).values.numpy() + self.offset_

    with pytest.raises(AssertionError, match="fit is not deterministic"):
        check_detector(Drifting(), model, train=train, x_in=x_in, x_out=x_out, val_in=val_in, val_out=val_out)


def test_mahalanobis_tunes_epsilon_on_validation(easy_pair, monkeypatch):
    model, train, x_in, _, val_in, val_out, _ = easy_pair
    import oodbench.detectors.mahalanobis as mahalanobis_module

    seen = []
    original = mahalanobis_module.metrics.compute
    def counting(a, b, **kwargs):
        seen.append((len(a), len(b)))
        return original(a, b, **kwargs)

    monkeypatch.setattr(mahalanobis_module.metrics, "compute", counting)
    detector = create_detector("mahalanobis", epsilon=None).fit(
        model, train=train, val_in=val_in, val_out=val_out
    )
    # Every grid value was scored on the validation split (40 + 40), never on a test set.
    assert seen == [(len(val_in), len(val_out))] * len(PAPER_EPSILONS)
    assert detector.tuned_on_validation() and detector.epsilon_ in PAPER_EPSILONS
    assert detector.params()["epsilon"] == detector.epsilon_
    # The chosen epsilon has the lowest validation FPR at 95% TPR of the grid (first on ties).
    fprs = []
    for eps in PAPER_EPSILONS:
        fixed = create_detector("mahalanobis", epsilon=eps).fit(model, train=train)
        m = compute(fixed.score(model, val_in), fixed.score(model, val_out))
        fprs.append(1.0 - m["tnr_at_tpr95"])
    assert detector.epsilon_ == PAPER_EPSILONS[int(np.argmin(fprs))]
    np.testing.assert_array_equal(
        detector.score(model, x_in),
        create_detector("mahalanobis", epsilon=detector.epsilon_).fit(model, train=train).score(model, x_in),
    )
    with pytest.raises(ValueError, match="needs val_in and val_out"):
        create_detector("mahalanobis", epsilon=None).fit(model, train=train)


def test_msp_is_float64_max_softmax_without_ties_at_one():
    logits = torch.tensor([[20.0, 0.0, 0.0], [25.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    scores = create_detector("msp").score_outputs(ForwardOutputs(logits=logits))
    assert scores[2] == pytest.approx(1 / 3)
    # float32 softmax gives exactly 1.0 for both; float64 keeps them apart and ordered.
    assert torch.softmax(logits[:2], dim=1).max(dim=1).values.tolist() == [1.0, 1.0]
    assert scores[0] < scores[1] < 1.0


def test_energy_and_max_logit_formulas():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    outputs = ForwardOutputs(logits=logits)
    t = 2.0
    expected = t * math.log(sum(math.exp(v / t) for v in (1.0, 2.0, 3.0)))
    assert create_detector("energy", temperature=t).score_outputs(outputs)[0] == pytest.approx(expected)
    assert create_detector("max_logit").score_outputs(outputs)[0] == 3.0


def test_odin_step_raises_max_softmax_and_eps_zero_is_temperature_scaling(easy_pair):
    model, _, x_in, *_ = easy_pair
    scores = odin_scores_for_epsilons(model, x_in, 10.0, [0.0, 0.004])
    with torch.no_grad():
        plain = torch.softmax(model(x_in).double() / 10.0, dim=1).max(dim=1).values.numpy()
    np.testing.assert_allclose(scores[0], plain, rtol=1e-6)
    assert (scores[1] >= scores[0] - 1e-12).all() and (scores[1] > scores[0]).mean() > 0.9


def test_odin_tuning_one_backward_per_temperature(easy_pair, monkeypatch):
    model, _, _, _, val_in, val_out, _ = easy_pair
    import oodbench.detectors.odin as odin_module

    calls = []
    original = odin_module.gradient_sign
    monkeypatch.setattr(odin_module, "gradient_sign", lambda *a, **k: calls.append(1) or original(*a, **k))
    t, eps, fpr = tune_odin(model, val_in, val_out, (1.0, 100.0, 1000.0), (0.0, 0.001, 0.002, 0.003))
    assert fpr.shape == (3, 4)
    assert len(calls) == 3 * 2  # one backward per T for each of the two sets (single batch each)
    assert (t, eps) in [(a, b) for a in (1.0, 100.0, 1000.0) for b in (0.0, 0.001, 0.002, 0.003)]
    assert fpr[(1.0, 100.0, 1000.0).index(t), (0.0, 0.001, 0.002, 0.003).index(eps)] == fpr.min()


def test_odin_records_tuned_values(easy_pair):
    model, _, _, _, val_in, val_out, small_grid = easy_pair
    detector = create_detector("odin", **small_grid).fit(model, val_in=val_in, val_out=val_out)
    assert detector.tuned_on_validation()
    assert detector.params()["temperature"] in (1, 10) and detector.params()["epsilon"] in (0.0, 0.002)
    fixed = create_detector("odin", temperature=1000, epsilon=0.0014).fit(model)
    assert not fixed.tuned_on_validation() and fixed.params() == {"temperature": 1000.0, "epsilon": 0.0014}


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (
            "odin",
            {"temperature": -1, "epsilon": 0.0},
            "The 'temperature' parameter of ODIN must be a float > 0. Got -1",
        ),
        (
            "odin",
            {"temperature": 1.0, "epsilon": -0.1},
            "The 'epsilon' parameter of ODIN must be a float >= 0",
        ),
        ("energy", {"temperature": 0}, "The 'temperature' parameter of Energy must be a float > 0"),
        ("mahalanobis", {"epsilon": -1}, "The 'epsilon' parameter of Mahalanobis must be a float >= 0"),
    ],
)
def test_invalid_hyperparameters_fail_with_clear_message(name, params, message, easy_pair):
    model, train, *_ = easy_pair
    with pytest.raises(UserInputError, match=message):
        create_detector(name, **params).fit(model, train=train)


def test_unknown_detector_and_parameter():
    with pytest.raises(UserInputError, match="Did you mean: odin"):
        create_detector("odn")
    with pytest.raises(UserInputError, match="Bad parameters for detector 'msp'"):
        create_detector("msp", temperature=2)


def test_mahalanobis_matches_direct_formula(easy_pair):
    model, train, x_in, *_ = easy_pair
    detector = create_detector("mahalanobis").fit(model, train=train)
    with torch.no_grad():
        f_train, f = model.features(train.x).double(), model.features(x_in[:5]).double()
    means = torch.stack([f_train[train.y == c].mean(0) for c in range(3)])
    centred = f_train - means[train.y]
    precision = torch.linalg.pinv(centred.T @ centred / len(f_train))
    expected = [-min(float((v - m) @ precision @ (v - m)) for m in means) for v in f]
    np.testing.assert_allclose(detector.score(model, x_in[:5]), expected, rtol=1e-6)


def test_mahalanobis_preprocessing_raises_in_distribution_scores(easy_pair):
    model, train, x_in, *_ = easy_pair
    plain = create_detector("mahalanobis").fit(model, train=train).score(model, x_in)
    shifted = create_detector("mahalanobis", epsilon=0.01).fit(model, train=train).score(model, x_in)
    assert np.mean(shifted > plain) > 0.9


def test_the_readme_plugin_passes_the_contract(contract_pair, tmp_path):
    """The one-file detector of README.md's "Adding a detector", loaded as `-d file.py:Class` loads it."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Adding a detector", 1)[1].split("\n## ", 1)[0]
    (tmp_path / "my_detector.py").write_text(re.findall(r"```python\n(.*?)```", section, flags=re.S)[0])
    model, train, x_in, x_out, val_in, val_out, _ = contract_pair
    detector = create_detector(f"{tmp_path / 'my_detector.py'}:CosineToMeans")
    check_detector(detector, model, train=train, x_in=x_in, x_out=x_out, val_in=val_in, val_out=val_out)
