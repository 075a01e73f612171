"""GAN samples and max-softmax histograms on an image suite (paper Figs. 3-4, on the embedded data).

Two figures:
  <suite>_gan_samples.png      a grid of samples of a plain GAN (the joint method's training with
                               beta = 0: generator, discriminator and a cross-entropy classifier)
                               next to the same grid of the joint-confidence generator, from the
                               same z. The KL term pushes the joint generator towards images near
                               the digits that the classifier is unsure of.
  <suite>_max_softmax_hist.png max-softmax histograms of the in-distribution test set against each
                               OOD test set, one row per training method (cross_entropy,
                               confidence, joint): the paper's "simple experiment" panels.

The three classifiers and the joint generator come from `training.ensure_model` (trained once,
then cached); the plain GAN is `training.train("joint", ..., beta=0)` with the same recipe, so
both generators share architecture, data, epochs and optimiser and differ only in beta.
Max-softmax is computed from the logits in float64, as exp(max log_softmax), so confident
predictions do not tie at 1.0.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from oodbench import metrics as ood_metrics
from oodbench.atomic import atomic_write_text
from oodbench.data import load_suite
from oodbench.data.convert import as_float
from oodbench.data.spec import SuiteData
from oodbench.devices import resolve_device
from oodbench.errors import UserInputError
from oodbench.figures.toy import save_figure
from oodbench.models import create_generator
from oodbench.provenance import sha256_file
from oodbench.training import (
    ensure_model,
    load_classifier,
    read_checkpoint,
)

logger = logging.getLogger(__name__)

METHODS = ("cross_entropy", "confidence", "joint")
# Checkpoint overrides of the plain GAN: the joint method with the KL term switched off.
PLAIN_GAN_OVERRIDES = {"beta": 0.0}


# ----------------------------------------------------------------------------- models
def ensure_plain_gan(
    suite_name: str,
    *,
    seed: int = 0,
    recipe: str | None = None,
    device: str | torch.device = "auto",
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """The cached checkpoint of the joint method trained with beta = 0 (a plain GAN), training it if needed.

    Same recipe, seed and data as `ensure_model("joint", ...)`; the checkpoint file name carries
    the override (`joint-<recipe>-seed<seed>-beta0.0.pt`), so it never replaces the joint model.
    """
    return ensure_model(
        "joint",
        suite_name,
        seed=seed,
        recipe=recipe,
        device=device,
        cache_dir=cache_dir,
        data_dir=data_dir,
        progress=progress,
        overrides=PLAIN_GAN_OVERRIDES,
    )


def load_generator(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, int]:
    """The generator of a joint-method checkpoint (read with weights_only=True), in eval mode, and its nz."""
    state = read_checkpoint(path)
    config = state["config"]
    if "generator" not in state["models"]:
        raise UserInputError(
            f"checkpoint {path} has no generator (method {config['method']!r}); "
            "use a joint-method checkpoint."
        )
    generator = create_generator(config["gen_arch"], out_shape=tuple(config["in_shape"]), nz=config["nz"])
    generator.load_state_dict(state["models"]["generator"])
    generator.to(device).eval()
    return generator, int(config["nz"])


# ----------------------------------------------------------------------------- numbers
def max_softmax(
    model: nn.Module, images: torch.Tensor, *, batch_size: int = 500, device: str | torch.device = "cpu"
) -> np.ndarray:
    """max_k softmax(logits)_k per image, float64: exp(max_k log_softmax(logits.double()))."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(as_float(images[start : start + batch_size]).to(device)).double()
            out.append(torch.log_softmax(logits, dim=1).max(dim=1).values.exp().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def sample_images(
    generator: nn.Module, n: int, nz: int, *, seed: int, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """n images from z ~ N(0, I) drawn with a seeded CPU generator (the same z for every generator)."""
    z = torch.randn(n, nz, generator=torch.Generator().manual_seed(seed))
    generator.eval()  # BatchNorm with its running statistics: a sample does not depend on its batch
    with torch.no_grad():
        return generator(z.to(device)).float().cpu()


def mean_nearest_distance(points: torch.Tensor, reference: torch.Tensor, chunk: int = 256) -> float:
    """Mean over `points` of the L2 distance (flattened images) to the nearest `reference` image."""
    ref = as_float(reference).reshape(len(reference), -1).double()
    nearest = []
    for start in range(0, len(points), chunk):
        block = as_float(points[start : start + chunk]).reshape(-1, ref.shape[1]).double()
        nearest.append(torch.cdist(block, ref).min(dim=1).values)
    return float(torch.cat(nearest).mean()) if nearest else float("nan")


@dataclass
class SampleFigureData:
    """Everything the two figures show, plus the numbers written next to them."""

    in_dataset: str
    grid_plain: torch.Tensor  # (n_grid, C, H, W) plain GAN samples
    grid_joint: torch.Tensor  # the joint generator's samples from the same z
    msp_in: dict[str, np.ndarray]  # method -> max-softmax on the in-distribution test set
    msp_out: dict[str, dict[str, np.ndarray]]  # method -> OOD set -> max-softmax
    metrics: dict[str, float] = field(default_factory=dict)


def compute_sample_figure_data(
    data: SuiteData,
    classifiers: dict[str, nn.Module],
    plain_generator: nn.Module,
    joint_generator: nn.Module,
    nz: int,
    *,
    seed: int = 0,
    n_grid: int = 64,
    n_eval: int = 1000,
    device: str | torch.device = "cpu",
) -> SampleFigureData:
    """Samples, max-softmax arrays and metrics.

    metrics: `msp_<method>_<plain_gan|joint_gan|uniform_noise>` = mean max-softmax of that
    classifier on `n_eval` generator samples (or uniform noise images); `nn_distance_<...|test_in>`
    = mean L2 distance to the nearest training image; `msp_<method>_in` and
    `msp_<method>_<ood set>` = mean max-softmax on the test sets; `auroc_<method>_<ood set>`,
    `tnr_at_tpr95_<method>_<ood set>` from `oodbench.metrics.compute` with max-softmax scores.
    """
    missing = [m for m in METHODS if m not in classifiers]
    if missing:
        raise UserInputError(f"Missing classifiers for {', '.join(missing)}; need {', '.join(METHODS)}.")
    grid_plain = sample_images(plain_generator, n_grid, nz, seed=seed, device=device)
    grid_joint = sample_images(joint_generator, n_grid, nz, seed=seed, device=device)
    # Evaluation samples use their own z (seed + 1) so that the shown grid is not cherry-picked.
    eval_sets = {
        "plain_gan": sample_images(plain_generator, n_eval, nz, seed=seed + 1, device=device),
        "joint_gan": sample_images(joint_generator, n_eval, nz, seed=seed + 1, device=device),
        "uniform_noise": torch.rand(
            (n_eval, *data.test_in.x.shape[1:]), generator=torch.Generator().manual_seed(seed + 2)
        ),
    }
    metrics: dict[str, float] = {}
    for name, images in eval_sets.items():
        metrics[f"nn_distance_{name}"] = mean_nearest_distance(images, data.train.x)
    metrics["nn_distance_test_in"] = mean_nearest_distance(data.test_in.x[:n_eval], data.train.x)

    msp_in: dict[str, np.ndarray] = {}
    msp_out: dict[str, dict[str, np.ndarray]] = {}
    for method in METHODS:
        model = classifiers[method].to(device).eval()
        for name, images in eval_sets.items():
            metrics[f"msp_{method}_{name}"] = float(max_softmax(model, images, device=device).mean())
        msp_in[method] = max_softmax(model, data.test_in.x, device=device)
        metrics[f"msp_{method}_in"] = float(msp_in[method].mean())
        msp_out[method] = {}
        for out_name, out_set in data.test_out.items():
            scores = max_softmax(model, out_set.x, device=device)
            msp_out[method][out_name] = scores
            metrics[f"msp_{method}_{out_name}"] = float(scores.mean())
            # Score direction: higher max-softmax = more in-distribution (the package convention).
            result = ood_metrics.compute(msp_in[method], scores)
            metrics[f"auroc_{method}_{out_name}"] = result["auroc"]
            metrics[f"tnr_at_tpr95_{method}_{out_name}"] = result["tnr_at_tpr95"]
    return SampleFigureData(
        in_dataset=data.spec.name,
        grid_plain=grid_plain,
        grid_joint=grid_joint,
        msp_in=msp_in,
        msp_out=msp_out,
        metrics=metrics,
    )


# ----------------------------------------------------------------------------- plots
def _grid_image(images: torch.Tensor, ncols: int = 8, pad: int = 2) -> np.ndarray:
    """Tile (N, C, H, W) images in [0, 1] into one (rows*H', cols*W'[, 3]) array with white gutters."""
    n, c, h, w = images.shape
    rows = math.ceil(n / ncols)
    canvas = np.ones((rows * (h + pad) + pad, ncols * (w + pad) + pad, c), dtype=np.float32)
    arr = images.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, col = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[top : top + h, left : left + w] = arr[i]
    return canvas[..., 0] if c == 1 else canvas


def plot_gan_samples(result: SampleFigureData, path: str | Path) -> Path:
    """Two sample grids side by side: plain GAN vs joint-confidence GAN, same z."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result.metrics
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.8), constrained_layout=True)
    for ax, images, name, label in (
        (axes[0], result.grid_plain, "plain_gan", "(a) plain GAN (beta = 0)"),
        (axes[1], result.grid_joint, "joint_gan", "(b) joint confidence loss GAN"),
    ):
        ax.imshow(_grid_image(images), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(
            f"{label}\nmean max-softmax of the cross-entropy / joint classifier: "
            f"{m[f'msp_cross_entropy_{name}']:.3f} / {m[f'msp_joint_{name}']:.3f}",
            fontsize=8,
        )
        ax.axis("off")
    fig.suptitle(f"Generator samples, {result.in_dataset} (same z in both panels)", fontsize=10)
    return save_figure(fig, path)


def plot_max_softmax_histograms(result: SampleFigureData, path: str | Path) -> Path:
    """Rows: training method; columns: OOD test set; in-distribution vs OOD max-softmax densities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_names = list(next(iter(result.msp_out.values())))
    # 30 bins from the lowest score of any set (rounded down to a tenth; always >= 1/K) to 1.
    all_scores = [*result.msp_in.values(), *(s for d in result.msp_out.values() for s in d.values())]
    low = min(float(scores.min()) for scores in all_scores if len(scores))
    bins = np.linspace(math.floor(low * 10) / 10, 1.0, 31)
    fig, axes = plt.subplots(
        len(METHODS),
        len(out_names),
        figsize=(2.3 * len(out_names) + 0.6, 2.0 * len(METHODS) + 0.6),
        sharex=True,
        squeeze=False,
        constrained_layout=True,
    )
    for row, method in enumerate(METHODS):
        for col, out_name in enumerate(out_names):
            ax = axes[row][col]
            # Fractions per bin (weights 1/N), so sets of different sizes compare directly.
            for scores, color, label in (
                (result.msp_in[method], "tab:blue", f"in: {result.in_dataset}"),
                (result.msp_out[method][out_name], "tab:red", f"out: {out_name}"),
            ):
                ax.hist(
                    scores,
                    bins=bins,
                    weights=np.full(len(scores), 1 / max(len(scores), 1)),
                    histtype="stepfilled",
                    alpha=0.45,
                    color=color,
                    label=label,
                )
            auroc = result.metrics[f"auroc_{method}_{out_name}"]
            ax.set_title(f"{method} vs {out_name}\nAUROC {auroc:.3f}", fontsize=7)
            ax.tick_params(labelsize=6)
            if col == 0:
                ax.set_ylabel("fraction of set", fontsize=7)
            if row == len(METHODS) - 1:
                ax.set_xlabel("max softmax", fontsize=7)
    axes[0][0].legend(fontsize=6, loc="upper left")
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- entry point
def make_sample_figures(
    output_dir: str | Path,
    *,
    suite: str = "mnist",
    seed: int = 0,
    recipe: str | None = None,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    n_grid: int = 64,
    n_eval: int = 1000,
    progress: bool = False,
) -> dict[str, object]:
    """Ensure the four models, compute, and write <suite>_gan_samples.png, <suite>_max_softmax_hist.png
    and <suite>_samples_metrics.json under `output_dir`.

    `limit` caps each evaluation set (not the training of the models). Returns
    {"paths": [...], "metrics": {...}, "checkpoints": {name: path}}.
    """
    for name, value in (("n_grid", n_grid), ("n_eval", n_eval)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserInputError(f"The '{name}' parameter must be an int >= 1. Got {value!r} instead.")
    torch_device = resolve_device(device)
    checkpoints: dict[str, Path] = {}
    for method in METHODS:
        checkpoints[method] = ensure_model(
            method,
            suite,
            seed=seed,
            recipe=recipe,
            device=torch_device,
            cache_dir=cache_dir,
            data_dir=data_dir,
            progress=progress,
        )
    checkpoints["plain_gan"] = ensure_plain_gan(
        suite,
        seed=seed,
        recipe=recipe,
        device=torch_device,
        cache_dir=cache_dir,
        data_dir=data_dir,
        progress=progress,
    )
    data = load_suite(suite, data_dir=data_dir, limit=limit)
    shape = tuple(data.spec.image_shape)
    classifiers = {
        method: load_classifier(checkpoints[method], device=torch_device, expect_shape=shape)[0]
        for method in METHODS
    }
    plain_generator, nz = load_generator(checkpoints["plain_gan"], device=torch_device)
    joint_generator, nz_joint = load_generator(checkpoints["joint"], device=torch_device)
    if nz != nz_joint:
        raise UserInputError(
            f"The plain GAN (nz={nz}) and the joint GAN (nz={nz_joint}) differ; retrain one."
        )
    result = compute_sample_figure_data(
        data,
        classifiers,
        plain_generator,
        joint_generator,
        nz,
        seed=seed,
        n_grid=n_grid,
        n_eval=n_eval,
        device=torch_device,
    )
    output_dir = Path(output_dir)
    paths = [
        plot_gan_samples(result, output_dir / f"{suite}_gan_samples.png"),
        plot_max_softmax_histograms(result, output_dir / f"{suite}_max_softmax_hist.png"),
    ]
    summary = {
        "suite": suite,
        "seed": seed,
        "recipe": recipe or data.suite.recipe,
        "limit": limit,
        # File names and hashes: which weights made the figure (the cache may be retrained later).
        "checkpoints": {
            name: {"file": Path(p).name, "sha256": sha256_file(p)} for name, p in checkpoints.items()
        },
        "metrics": result.metrics,
    }
    metrics_path = output_dir / f"{suite}_samples_metrics.json"
    atomic_write_text(metrics_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    paths.append(metrics_path)
    return {"paths": paths, "metrics": result.metrics, "checkpoints": checkpoints}
