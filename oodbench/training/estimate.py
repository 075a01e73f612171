"""How long a training run will take, from a short measured timing, and when to warn about it.

    seconds = epochs x training images x seconds per image

Seconds per image are measured, not assumed: the run's networks are built at the run's input
shape on the run's device and trained on random images (same shapes and operations as real
data; the joint step includes its generator and discriminator updates, the confidence step its
OOD batch). First a probe step of 16 images is timed; when even it (slow per image: first-call
costs, a small batch) shows that the run stays under the warning threshold, nothing more is run
(the figure is then an overestimate; the CLI does not show it). Otherwise one untimed warm-up
step and `steps` timed steps at the run's batch size follow. The global RNG state is restored
afterwards and `train` reseeds before building its own networks, so measuring never changes a
training run. Not measured: torch.compile, bf16, channels_last, data-parallel runs (the
estimate is for one process without them), data loading and the per-epoch checkpoint writes.
It varies with the machine's load (two measurements of the joint lee2018-svhn step on a shared
2-core CPU: 40 and 91 ms per image), so it is meant to tell minutes from hours, no more.

Before a run estimated to take longer than `LONG_TRAINING_SECONDS` (30 minutes), the CLI prints
the estimate and a smoke-test command: the same command with `SMOKE_OPTIONS` (one epoch on
1000 images; `run` also adds `--limit 1000` to evaluate on at most 1000 images per set).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

LONG_TRAINING_SECONDS = 30 * 60
SMOKE_OPTIONS = "--epochs 1 --train-limit 1000"
PROBE_BATCH = 16  # images in the first, untuned step (see measure_seconds_per_image)


@dataclass(frozen=True)
class TrainingEstimate:
    """A training run's expected duration: epochs x images x measured seconds per image."""

    method: str
    recipe: str
    device: str
    epochs: int  # epochs still to run (fewer than the config's when a run is resumed)
    images: int  # training images per epoch
    seconds_per_image: float

    @property
    def seconds(self) -> float:
        return self.epochs * self.images * self.seconds_per_image

    @property
    def long(self) -> bool:
        """Whether the run deserves a warning (more than LONG_TRAINING_SECONDS)."""
        return self.seconds > LONG_TRAINING_SECONDS

    def describe(self) -> str:
        """e.g. "Training joint with lee2018-svhn: about 3 h on cpu (100 epochs x 72,257 images)"."""
        return (
            f"Training {self.method} with {self.recipe}: about {format_duration(self.seconds)} on "
            f"{self.device} ({self.epochs} epochs x {self.images:,} images)"
        )


def format_duration(seconds: float) -> str:
    """Rounded for people: "40 s", "12 min", "2.5 h", "31 h"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    hours = seconds / 3600
    return f"{hours:.1f} h".replace(".0 h", " h") if hours < 10 else f"{round(hours)} h"


def measure_seconds_per_image(
    method: str,
    config: dict[str, Any],
    device: torch.device,
    *,
    steps: int = 2,
    stop_below: float | None = None,
) -> float:
    """Seconds per training image of `method` with `config` on `device`, timed over `steps` steps
    at the run's batch size after a warm-up step. First a probe step of PROBE_BATCH images is
    timed: per image it is slower than the run's steps (first-call costs, a small batch), so if
    it already gives less than `stop_below` seconds per image, that figure is returned and
    nothing more is run: the run is short either way, and a smoke run is not slowed down."""
    from oodbench.models import create_classifier, create_discriminator, create_generator
    from oodbench.training.joint import joint_confidence_step
    from oodbench.training.loop import confidence_step, cross_entropy_step

    in_shape, batch = tuple(config["in_shape"]), int(config["batch_size"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        classifier = create_classifier(config["arch"], in_shape=in_shape, num_classes=config["num_classes"])
        nets = {"classifier": classifier.to(device).train()}
        if method == "joint":
            nets["generator"] = create_generator(config["gen_arch"], out_shape=in_shape, nz=config["nz"])
            nets["discriminator"] = create_discriminator(config["disc_arch"], in_shape=in_shape)
        opts = {name: torch.optim.Adam(net.to(device).parameters(), lr=1e-4) for name, net in nets.items()}
        x_all = torch.rand(batch, *in_shape, device=device)
        y_all = torch.randint(0, config["num_classes"], (batch,), device=device)
        x_out_all = torch.rand(batch, *in_shape, device=device)

        def step(n: int) -> None:
            x, y, x_out = x_all[:n], y_all[:n], x_out_all[:n]
            if method == "cross_entropy":
                cross_entropy_step(x, y, classifier=nets["classifier"], opt_c=opts["classifier"])
            elif method == "confidence":
                classifier, opt = nets["classifier"], opts["classifier"]
                confidence_step(x, y, x_out, classifier=classifier, opt_c=opt, beta=1.0)
            else:
                joint_confidence_step(
                    x,
                    y,
                    classifier=nets["classifier"],
                    generator=nets["generator"],
                    discriminator=nets["discriminator"],
                    opt_c=opts["classifier"],
                    opt_g=opts["generator"],
                    opt_d=opts["discriminator"],
                    beta=1.0,
                    nz=config["nz"],
                )

        # A first, small step: per image it is slower than the run's steps (first-call costs,
        # a small batch), so if even it is fast enough the run is short and nothing more is timed.
        probe = min(batch, PROBE_BATCH)
        started = time.perf_counter()
        step(probe)
        _synchronize(device)
        probe_seconds = (time.perf_counter() - started) / probe
        if stop_below is not None and probe_seconds < stop_below:
            return probe_seconds
        step(batch)  # warm-up at the run's batch size (allocations, kernel choice)
        _synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            step(batch)
        _synchronize(device)
        elapsed = time.perf_counter() - started
    return elapsed / (steps * batch)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def estimate_training(
    method: str,
    config: dict[str, Any],
    *,
    images: int,
    device: torch.device,
    epochs: int | None = None,
    measure: Callable[..., float] | None = None,
) -> TrainingEstimate:
    """The estimate for `epochs` (default: all of the config's) epochs over `images` images;
    `measure` (default: measure_seconds_per_image) gives the seconds per image."""
    measure = measure or measure_seconds_per_image
    epochs = int(config["epochs"] if epochs is None else epochs)
    # Below this many seconds per image the run cannot reach the warning threshold.
    stop_below = LONG_TRAINING_SECONDS / max(1, epochs * images)
    return TrainingEstimate(
        method=method,
        recipe=str(config["recipe"]),
        device=str(device),
        epochs=epochs,
        images=int(images),
        seconds_per_image=float(measure(method, config, device, stop_below=stop_below)),
    )
