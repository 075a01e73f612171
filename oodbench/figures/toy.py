"""The 2-D toy figures of Lee et al., ICLR 2018 (their Figures 1 and 2), on a CPU in seconds.

In-distribution: two Gaussian classes in the plane.

Figure "confidence loss" (paper Fig. 1): a small MLP is trained with the confidence loss
    E_in[-log p(y|x)] + beta * E_out[KL(U || p(.|x))]        (`training.losses.confidence_loss`)
once with OOD training samples FAR from the data (an annulus around the plot) and once with
samples CLOSE around it (a ring just outside each class blob). Close samples teach a classifier
that is confident only near the data; far samples leave it confident in the whole space between
the data and the far samples.

Figure "GAN" (paper Fig. 2 and Sec. 2.3). Every GAN here is trained with the shared
`training.joint.joint_confidence_step` (D step, G step on the same z1, classifier step on a
fresh z2); what differs is beta and which classifier the generator's KL term looks at:
  (a) plain GAN: beta = 0 (the classifier next to it learns plain cross-entropy);
  (b) GAN with the KL term against a FIXED confidence-loss classifier (the one of Fig. 1 (d);
      its optimiser has learning rate 0), the paper's boundary-sample GAN before it is made
      joint: the generator puts its samples on the low-density boundary around the data;
  (c) joint confidence loss (Sec. 2.3): generator and classifier trained together. In 2-D the
      classifier follows the generator and the samples do not settle on the boundary; see
      results/figures/README.md for the numbers and why.
(b) and (c) start from the plain GAN of (a) (like the `gan_warmup_epochs` of the recipes), so
that the generator has learned the data before the KL term pushes it away.

Library functions return arrays and metrics; `plot_*` write PNGs (matplotlib Agg, atomic).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from oodbench.atomic import atomic_write_bytes, atomic_write_text
from oodbench.errors import UserInputError
from oodbench.training.joint import joint_confidence_step
from oodbench.training.losses import confidence_loss

logger = logging.getLogger(__name__)

# Class centres and spread of the two in-distribution Gaussians (isotropic).
CENTERS = np.array([[-1.75, 0.0], [1.75, 0.0]])
STD = 0.5
# Square plot window [-EXTENT, EXTENT]^2; the classifiers' landscapes are drawn over it.
EXTENT = 6.0
# Zoomed window of the GAN figure, (x half-width, y half-width): the samples live near the data.
GAN_WINDOW = (4.0, 3.0)
# "Far" OOD training samples: uniform in this annulus around the origin (radii).
FAR_RADII = (5.0, 6.0)
# "Close" OOD training samples: uniform in a ring around each class centre (radii in units of
# STD), minus points closer than the inner radius to either centre.
CLOSE_RADII = (3.0, 4.5)
# Evaluation points "just outside the data": rings around each centre at these radii (STD
# units), drawn from a random stream of their own (never the training ring's points).
NEAR_RADII = (2.5, 4.0)


@dataclass(frozen=True)
class ToyConfig:
    """Sizes and optimiser settings of the toy; the defaults are the committed figures."""

    n_per_class: int = 500  # in-distribution training points per class
    n_ood: int = 1000  # OOD training points (far or close)
    n_eval: int = 1000  # held-out evaluation points and generator samples per set
    hidden: int = 64  # width of every toy MLP
    batch_size: int = 128
    beta: float = 1.0  # KL weight of the confidence loss (Fig. 1)
    confidence_steps: int = 1000
    confidence_lr: float = 1e-3
    # KL weight of the GAN runs (Fig. 2). Larger than the paper's 1 (SVHN) because with K = 2
    # classes KL(U || p) = -log 2 - (log p_1 + log p_2) / 2 is small (0.51 at max-softmax 0.9)
    # next to the GAN loss: with beta = 1 the samples of (b) stayed on the data (measured).
    gan_beta: float = 5.0
    gan_warmup_steps: int = 1000  # plain GAN (beta = 0) steps; panel (a) is this GAN
    gan_steps: int = 1500  # further steps with the KL term, from the plain GAN, panels (b), (c)
    gan_lr: float = 1e-3  # Adam lr of G, D and the joint classifier; G and D betas (0.5, 0.999)
    nz: int = 8  # generator noise dimension
    grid_size: int = 200  # landscape resolution (grid_size x grid_size)

    def validate(self) -> None:
        for name in (
            "n_per_class",
            "n_ood",
            "n_eval",
            "hidden",
            "batch_size",
            "confidence_steps",
            "gan_warmup_steps",
            "gan_steps",
            "nz",
            "grid_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserInputError(f"The '{name}' parameter of the toy must be an int >= 1. Got {value!r}.")
        for name in ("beta", "confidence_lr", "gan_beta", "gan_lr"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise UserInputError(f"The '{name}' parameter of the toy must be a float > 0. Got {value!r}.")


# ----------------------------------------------------------------------------- toy models
class ToyClassifier(nn.Module):
    """2 -> hidden -> hidden -> 2 ReLU MLP; `features` is the penultimate layer, like the image models."""

    def __init__(self, hidden: int = 64, num_classes: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ToyGenerator(nn.Module):
    """z (N, nz) -> point (N, 2); a linear output because the plane is unbounded."""

    def __init__(self, nz: int = 8, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(nz, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ToyDiscriminator(nn.Module):
    """point (N, 2) -> probability of being real (N,), the DCGAN discriminator's contract."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


# ----------------------------------------------------------------------------- data
def _ring(rng: np.random.Generator, n: int, center: np.ndarray, r_lo: float, r_hi: float) -> np.ndarray:
    """n points uniform (in area) in the annulus r_lo <= |p - center| <= r_hi."""
    radius = np.sqrt(rng.uniform(r_lo**2, r_hi**2, size=n))
    angle = rng.uniform(0.0, 2 * math.pi, size=n)
    return center + np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def make_in_distribution(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two isotropic Gaussians N(CENTERS[k], STD^2 I); returns x (2n, 2) float64 and y (2n,) int64."""
    x = np.concatenate([center + STD * rng.standard_normal((n_per_class, 2)) for center in CENTERS])
    y = np.repeat(np.arange(len(CENTERS)), n_per_class)
    return x, y


def far_ood(n: int, rng: np.random.Generator) -> np.ndarray:
    """OOD samples far from the data: uniform in the annulus FAR_RADII around the origin."""
    return _ring(rng, n, np.zeros(2), *FAR_RADII)


def _around_classes(n: int, rng: np.random.Generator, radii: tuple[float, float]) -> np.ndarray:
    """n points in rings (radii in STD units) around the class centres, none inside any inner radius."""
    r_lo, r_hi = radii[0] * STD, radii[1] * STD
    chunks: list[np.ndarray] = []
    while sum(len(c) for c in chunks) < n:
        draw = np.concatenate([_ring(rng, n, center, r_lo, r_hi) for center in CENTERS])
        draw = draw[rng.permutation(len(draw))]
        # Drop points of one class's ring that fall inside the other class's inner radius.
        nearest = np.linalg.norm(draw[:, None, :] - CENTERS[None, :, :], axis=2).min(axis=1)
        chunks.append(draw[nearest >= r_lo])
    return np.concatenate(chunks)[:n]


def close_ood(n: int, rng: np.random.Generator) -> np.ndarray:
    """OOD samples close around the data: rings of radii CLOSE_RADII * STD around each class centre."""
    return _around_classes(n, rng, CLOSE_RADII)


def near_ring(n: int, rng: np.random.Generator) -> np.ndarray:
    """Evaluation points just outside the data: rings of radii NEAR_RADII * STD around each centre."""
    return _around_classes(n, rng, NEAR_RADII)


def grid(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A size x size grid over the plot window; returns (xs, ys, points (size*size, 2))."""
    axis = np.linspace(-EXTENT, EXTENT, size)
    xx, yy = np.meshgrid(axis, axis)
    return axis, axis, np.stack([xx.ravel(), yy.ravel()], axis=1)


def mean_nearest_distance(points: np.ndarray, reference: np.ndarray, chunk: int = 2048) -> float:
    """Mean over `points` of the Euclidean distance to the nearest row of `reference`."""
    nearest = []
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        d2 = ((block[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2)
        nearest.append(np.sqrt(d2.min(axis=1)))
    return float(np.concatenate(nearest).mean())


# ----------------------------------------------------------------------------- evaluation
@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the toy MLPs (training and evaluation) on one intra-op thread, then restore the setting.

    For 64-unit MLPs, extra threads only add synchronisation; on a busy 2-core machine two
    threads per process made a GAN step ~10x slower (measured). One thread also makes the
    result independent of the machine's thread count.
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def max_softmax(model: nn.Module, points: np.ndarray | torch.Tensor, batch_size: int = 65536) -> np.ndarray:
    """max_k softmax(logits)_k in float64, as exp(max_k log_softmax): near-1 values do not tie at 1.0."""
    x = torch.as_tensor(points, dtype=torch.float32)
    out = []
    model.eval()
    with torch.no_grad(), _one_thread():
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size]).double()
            out.append(torch.log_softmax(logits, dim=1).max(dim=1).values.exp())
    return torch.cat(out).numpy()


def predict(model: nn.Module, points: np.ndarray) -> np.ndarray:
    """Predicted class (argmax of the logits), int64."""
    model.eval()
    with torch.no_grad(), _one_thread():
        return model(torch.as_tensor(points, dtype=torch.float32)).argmax(dim=1).numpy()


@dataclass
class Landscape:
    """A classifier evaluated over the plot grid: max-softmax and predicted class, (size, size)."""

    xs: np.ndarray
    ys: np.ndarray
    confidence: np.ndarray
    prediction: np.ndarray


def landscape(model: nn.Module, size: int) -> Landscape:
    xs, ys, points = grid(size)
    conf = max_softmax(model, points).reshape(size, size)
    pred = predict(model, points).reshape(size, size)
    return Landscape(xs=xs, ys=ys, confidence=conf, prediction=pred)


# ----------------------------------------------------------------------------- training
def _indices(generator: torch.Generator, n: int, batch_size: int) -> torch.Tensor:
    """A minibatch of indices drawn with replacement (the toy sets are small; epochs do not matter)."""
    return torch.randint(0, n, (min(batch_size, n),), generator=generator)


def train_confidence_mlp(
    x: np.ndarray, y: np.ndarray, x_ood: np.ndarray, config: ToyConfig, *, seed: int
) -> ToyClassifier:
    """A ToyClassifier trained with `training.losses.confidence_loss`: one in and one OOD batch per step."""
    with _one_thread():
        torch.manual_seed(seed)
        model = ToyClassifier(config.hidden)
        opt = torch.optim.Adam(model.parameters(), lr=config.confidence_lr)
        xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
        ot = torch.as_tensor(x_ood, dtype=torch.float32)
        order = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(config.confidence_steps):
            i = _indices(order, len(xt), config.batch_size)
            j = _indices(order, len(ot), config.batch_size)
            loss = confidence_loss(model(xt[i]), yt[i], model(ot[j]), config.beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


@dataclass
class GanState:
    """The three networks and three optimisers that `joint_confidence_step` updates."""

    classifier: nn.Module
    generator: ToyGenerator
    discriminator: ToyDiscriminator
    opt_c: torch.optim.Optimizer
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer

    def copy(self) -> GanState:
        """A deep copy; copying all six together keeps each optimiser bound to its copied network."""
        return copy.deepcopy(self)


def new_gan_state(config: ToyConfig, *, seed: int) -> GanState:
    """Fresh toy classifier, generator and discriminator with Adam optimisers (G, D betas 0.5, 0.999)."""
    torch.manual_seed(seed)
    classifier = ToyClassifier(config.hidden)
    generator = ToyGenerator(config.nz, config.hidden)
    discriminator = ToyDiscriminator(config.hidden)
    return GanState(
        classifier=classifier,
        generator=generator,
        discriminator=discriminator,
        opt_c=torch.optim.Adam(classifier.parameters(), lr=config.gan_lr),
        opt_g=torch.optim.Adam(generator.parameters(), lr=config.gan_lr, betas=(0.5, 0.999)),
        opt_d=torch.optim.Adam(discriminator.parameters(), lr=config.gan_lr, betas=(0.5, 0.999)),
    )


def run_gan_steps(
    state: GanState, x: np.ndarray, y: np.ndarray, config: ToyConfig, *, beta: float, steps: int, seed: int
) -> dict[str, float]:
    """`steps` calls of the shared `joint_confidence_step`; returns the last step's statistics.

    Seeds torch's global generator (z1, z2 are drawn from it inside the step) and a separate
    generator for the minibatch order, so each run is reproducible on its own.
    """
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
    stats: dict[str, float] = {}
    with _one_thread():
        torch.manual_seed(seed)
        order = torch.Generator().manual_seed(seed)
        for module in (state.classifier, state.generator, state.discriminator):
            module.train()
        for _ in range(steps):
            i = _indices(order, len(xt), config.batch_size)
            stats = joint_confidence_step(
                xt[i],
                yt[i],
                classifier=state.classifier,
                generator=state.generator,
                discriminator=state.discriminator,
                opt_c=state.opt_c,
                opt_g=state.opt_g,
                opt_d=state.opt_d,
                beta=beta,
                nz=config.nz,
            )
        for module in (state.classifier, state.generator, state.discriminator):
            module.eval()
    return {key: float(value) for key, value in stats.items()}  # the steps return 0-d tensors


def with_fixed_classifier(state: GanState, classifier: nn.Module) -> GanState:
    """A copy of `state`'s GAN whose classifier is `classifier` (copied), held fixed.

    The classifier's optimiser is SGD with learning rate 0, so the shared joint step still runs
    its classifier step but never changes the weights (the boundary-sample GAN, not yet joint).
    """
    gan = state.copy()
    fixed = copy.deepcopy(classifier)
    gan.classifier = fixed
    gan.opt_c = torch.optim.SGD(fixed.parameters(), lr=0.0)
    return gan


def sample_generator(generator: nn.Module, n: int, nz: int, *, seed: int) -> np.ndarray:
    """n generator samples (float64) from z ~ N(0, I) drawn with a seeded generator of their own."""
    z = torch.randn(n, nz, generator=torch.Generator().manual_seed(seed))
    generator.eval()
    with torch.no_grad(), _one_thread():
        return generator(z).double().numpy()


# ----------------------------------------------------------------------------- experiments
@dataclass
class ConfidenceToyResult:
    """Arrays and metrics of the confidence-loss figure (paper Fig. 1)."""

    x: np.ndarray
    y: np.ndarray
    far: np.ndarray
    close: np.ndarray
    near_eval: np.ndarray  # held-out evaluation points just outside the data
    far_landscape: Landscape
    close_landscape: Landscape
    close_model: ToyClassifier  # reused as the fixed classifier of the GAN figure, panel (b)
    metrics: dict[str, float] = field(default_factory=dict)


def run_confidence_toy(config: ToyConfig = ToyConfig(), *, seed: int = 0) -> ConfidenceToyResult:
    """Train the far-OOD and the close-OOD classifier.

    Metrics (mean max-softmax, float64, on held-out points): `<far|close>_msp_near` just outside
    the data (rings at NEAR_RADII), `_msp_in` on in-distribution test points, `_msp_far` on
    the far annulus; `_accuracy_in` on in-distribution test points.
    """
    config.validate()
    rng = np.random.default_rng(seed)
    x, y = make_in_distribution(config.n_per_class, rng)
    far, close = far_ood(config.n_ood, rng), close_ood(config.n_ood, rng)
    eval_rng = np.random.default_rng([seed, 1])  # held-out points: a stream of their own
    x_test, y_test = make_in_distribution(max(config.n_eval // 2, 1), eval_rng)
    near = near_ring(config.n_eval, eval_rng)
    far_test = far_ood(config.n_eval, eval_rng)
    far_model = train_confidence_mlp(x, y, far, config, seed=seed)
    close_model = train_confidence_mlp(x, y, close, config, seed=seed)
    metrics: dict[str, float] = {}
    for name, model in (("far", far_model), ("close", close_model)):
        metrics[f"{name}_accuracy_in"] = float((predict(model, x_test) == y_test).mean())
        metrics[f"{name}_msp_in"] = float(max_softmax(model, x_test).mean())
        metrics[f"{name}_msp_near"] = float(max_softmax(model, near).mean())
        metrics[f"{name}_msp_far"] = float(max_softmax(model, far_test).mean())
    return ConfidenceToyResult(
        x=x,
        y=y,
        far=far,
        close=close,
        near_eval=near,
        far_landscape=landscape(far_model, config.grid_size),
        close_landscape=landscape(close_model, config.grid_size),
        close_model=close_model,
        metrics=metrics,
    )


@dataclass
class GanToyResult:
    """Arrays and metrics of the GAN figure: samples of the three generators and their classifiers."""

    x: np.ndarray
    y: np.ndarray
    plain_samples: np.ndarray  # (a) plain GAN, beta = 0
    fixed_samples: np.ndarray  # (b) KL term against the fixed confidence-loss classifier
    joint_samples: np.ndarray  # (c) joint confidence loss
    noise: np.ndarray  # uniform over the in-distribution bounding box, for comparison
    noise_window: np.ndarray  # uniform over the GAN figure's window, GAN_WINDOW
    plain_landscape: Landscape  # the cross-entropy classifier trained next to (a)
    fixed_landscape: Landscape  # the fixed classifier of (b)
    joint_landscape: Landscape  # the classifier trained jointly in (c)
    metrics: dict[str, float] = field(default_factory=dict)


def run_gan_toy(
    config: ToyConfig = ToyConfig(), *, seed: int = 0, fixed_classifier: nn.Module | None = None
) -> GanToyResult:
    """Train the plain GAN, then from it the fixed-classifier KL GAN and the joint GAN.

    `fixed_classifier` defaults to the close-OOD confidence classifier of `run_confidence_toy`
    (trained here if not given). Metrics: `msp_<classifier>_<points>` = mean max-softmax
    (float64) of classifier plain|fixed|joint on points plain|fixed|joint (generator samples),
    in_test (held-out in-distribution points), noise (uniform over the training data's bounding
    box) or noise_window (uniform over GAN_WINDOW); `nn_distance_<points>` = mean distance from
    each point to its nearest in-distribution training point.
    """
    config.validate()
    rng = np.random.default_rng(seed)
    x, y = make_in_distribution(config.n_per_class, rng)
    if fixed_classifier is None:
        fixed_classifier = train_confidence_mlp(x, y, close_ood(config.n_ood, rng), config, seed=seed)

    plain = new_gan_state(config, seed=seed)
    run_gan_steps(plain, x, y, config, beta=0.0, steps=config.gan_warmup_steps, seed=seed)
    fixed = with_fixed_classifier(plain, fixed_classifier)
    stats_fixed = run_gan_steps(
        fixed, x, y, config, beta=config.gan_beta, steps=config.gan_steps, seed=seed + 1
    )
    joint = plain.copy()
    stats_joint = run_gan_steps(
        joint, x, y, config, beta=config.gan_beta, steps=config.gan_steps, seed=seed + 2
    )

    eval_rng = np.random.default_rng([seed, 2])
    x_test, _ = make_in_distribution(max(config.n_eval // 2, 1), eval_rng)
    # Uniform noise over the axis-aligned bounding box of the training data: the tightest
    # structure-free comparison for "how close to the data" the samples are.
    noise = eval_rng.uniform(x.min(axis=0), x.max(axis=0), size=(config.n_eval, 2))
    # Uniform noise over the window the figure shows (the paper's "uniform noise" OOD, cropped).
    half = np.array(GAN_WINDOW)
    noise_window = eval_rng.uniform(-half, half, size=(config.n_eval, 2))
    samples = {
        name: sample_generator(state.generator, config.n_eval, config.nz, seed=seed + 3)
        for name, state in (("plain", plain), ("fixed", fixed), ("joint", joint))
    }
    points = {**samples, "in_test": x_test, "noise": noise, "noise_window": noise_window}
    metrics: dict[str, float] = {}
    for cname, state in (("plain", plain), ("fixed", fixed), ("joint", joint)):
        for pname, pts in points.items():
            metrics[f"msp_{cname}_{pname}"] = float(max_softmax(state.classifier, pts).mean())
    for pname, pts in points.items():
        metrics[f"nn_distance_{pname}"] = mean_nearest_distance(pts, x)
    metrics["d_fake_fixed"] = stats_fixed["d_fake"]
    metrics["d_fake_joint"] = stats_joint["d_fake"]
    return GanToyResult(
        x=x,
        y=y,
        plain_samples=samples["plain"],
        fixed_samples=samples["fixed"],
        joint_samples=samples["joint"],
        noise=noise,
        noise_window=noise_window,
        plain_landscape=landscape(plain.classifier, config.grid_size),
        fixed_landscape=landscape(fixed.classifier, config.grid_size),
        joint_landscape=landscape(joint.classifier, config.grid_size),
        metrics=metrics,
    )


# ----------------------------------------------------------------------------- plots
_CLASS_COLORS = ("tab:red", "tab:blue")


def _scatter_data(ax, x: np.ndarray, y: np.ndarray, size: float = 4.0) -> None:
    for k, color in enumerate(_CLASS_COLORS):
        ax.scatter(
            x[y == k, 0], x[y == k, 1], s=size, c=color, alpha=0.6, linewidths=0, label=f"in-dist class {k}"
        )


def _landscape_panel(ax, land: Landscape, x: np.ndarray, y: np.ndarray, title: str):
    extent = (land.xs[0], land.xs[-1], land.ys[0], land.ys[-1])
    image = ax.imshow(
        land.confidence,
        origin="lower",
        extent=extent,
        cmap="viridis",
        vmin=0.5,
        vmax=1.0,
        interpolation="bilinear",
    )
    ax.contour(
        land.xs, land.ys, land.confidence, levels=[0.6, 0.8, 0.95], colors="white", linewidths=0.5, alpha=0.7
    )
    # Decision regions: the boundary where the predicted class changes.
    ax.contour(
        land.xs,
        land.ys,
        land.prediction.astype(float),
        levels=[0.5],
        colors="black",
        linewidths=1.0,
        linestyles="--",
    )
    _scatter_data(ax, x, y, size=2.0)
    ax.set_title(title, fontsize=9)
    return image


def _finish_axes(axes, half_widths: tuple[float, float] = (EXTENT, EXTENT)) -> None:
    for ax in axes:
        ax.set_xlim(-half_widths[0], half_widths[0])
        ax.set_ylim(-half_widths[1], half_widths[1])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])


def _figure(ncols: int, panel_size: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width, height = panel_size
    return plt.subplots(1, ncols, figsize=(width * ncols + 0.8, height), constrained_layout=True)


def save_figure(fig, path: str | Path) -> Path:
    """Render `fig` to PNG in memory, close it, then write the bytes atomically."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    # No "Software" metadata: the same figure gives the same bytes across matplotlib versions.
    fig.savefig(buffer, format="png", dpi=130, metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_confidence_toy(result: ConfidenceToyResult, path: str | Path) -> Path:
    """Four panels: (a) far OOD samples, (b) its landscape, (c) close OOD samples, (d) its landscape."""
    fig, axes = _figure(4, (3.2, 3.6))
    m = result.metrics
    for ax, ood, label in (
        (axes[0], result.far, "(a) far OOD training samples"),
        (axes[2], result.close, "(c) close OOD training samples"),
    ):
        _scatter_data(ax, result.x, result.y)
        ax.scatter(ood[:, 0], ood[:, 1], s=3, c="tab:green", alpha=0.6, linewidths=0, label="OOD (training)")
        ax.set_title(label, fontsize=9)
    _landscape_panel(
        axes[1],
        result.far_landscape,
        result.x,
        result.y,
        f"(b) max-softmax, trained with (a)\nmean just outside the data: {m['far_msp_near']:.3f}",
    )
    image = _landscape_panel(
        axes[3],
        result.close_landscape,
        result.x,
        result.y,
        f"(d) max-softmax, trained with (c)\nmean just outside the data: {m['close_msp_near']:.3f}",
    )
    _finish_axes(axes)
    axes[0].legend(loc="lower left", fontsize=6, markerscale=3)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="max softmax")
    return save_figure(fig, path)


def plot_gan_toy(result: GanToyResult, path: str | Path) -> Path:
    """Three panels: each generator's samples over the max-softmax landscape of its classifier."""
    fig, axes = _figure(3, (3.6, 3.2))
    m = result.metrics
    panels = (
        (
            result.plain_samples,
            result.plain_landscape,
            "plain",
            "(a) plain GAN (beta=0); classifier:\ncross-entropy, trained next to it",
        ),
        (
            result.fixed_samples,
            result.fixed_landscape,
            "fixed",
            "(b) GAN + KL term; classifier: fixed,\nconfidence loss (Fig. 1 (d))",
        ),
        (
            result.joint_samples,
            result.joint_landscape,
            "joint",
            "(c) joint confidence loss: GAN + KL term\nand classifier trained together",
        ),
    )
    image = None
    for ax, (samples, land, name, title) in zip(axes, panels, strict=True):
        image = _landscape_panel(ax, land, result.x, result.y, title)
        ax.scatter(
            samples[:, 0],
            samples[:, 1],
            s=2.5,
            c="white",
            edgecolors="black",
            linewidths=0.15,
            label="generator samples",
        )
        ax.text(
            0.02,
            0.02,
            f"samples: mean max-softmax {m[f'msp_{name}_{name}']:.3f}\n"
            f"mean dist. to data {m[f'nn_distance_{name}']:.3f}",
            transform=ax.transAxes,
            fontsize=6,
            va="bottom",
            color="white",
        )
    _finish_axes(axes, GAN_WINDOW)
    axes[0].legend(loc="upper left", fontsize=6, markerscale=3)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="max softmax")
    return save_figure(fig, path)


def make_toy_figures(
    output_dir: str | Path, *, seed: int = 0, config: ToyConfig = ToyConfig()
) -> dict[str, object]:
    """Run both toy experiments; write toy_confidence_loss.png, toy_gan.png and toy_metrics.json.

    Returns {"paths": [Path, ...], "metrics": {...}, "config": {...}}; metric keys are those of
    `run_confidence_toy` prefixed "confidence_" and of `run_gan_toy` prefixed "gan_".
    """
    output_dir = Path(output_dir)
    confidence = run_confidence_toy(config, seed=seed)
    gan = run_gan_toy(config, seed=seed, fixed_classifier=confidence.close_model)
    paths = [
        plot_confidence_toy(confidence, output_dir / "toy_confidence_loss.png"),
        plot_gan_toy(gan, output_dir / "toy_gan.png"),
    ]
    metrics = {
        **{f"confidence_{k}": v for k, v in confidence.metrics.items()},
        **{f"gan_{k}": v for k, v in gan.metrics.items()},
    }
    summary = {"seed": seed, "config": asdict(config), "metrics": metrics}
    metrics_path = output_dir / "toy_metrics.json"
    atomic_write_text(metrics_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    paths.append(metrics_path)
    return {"paths": paths, "metrics": metrics, "config": asdict(config)}
