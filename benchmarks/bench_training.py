"""Training cost: seconds per step of joint vs cross-entropy, the embedded recipe's wall time,
and grids of generated samples.

    python benchmarks/bench_training.py                 # everything (~3-4 min on 2 CPU cores)
    python benchmarks/bench_training.py --skip-vgg      # no VGG-13 step timing (the slow part)
    python benchmarks/bench_training.py --skip-embedded # only the per-step timing
    python benchmarks/bench_training.py --skip-steps    # only the embedded recipe (~1 min)

1. Per-step timing: one minibatch of cross_entropy, confidence (same batch size of seen OOD)
   and joint (D, G and classifier steps) on the same model and batch, median of --steps steps
   after one warm-up step, on the CPU with --threads threads. Models: tiny_cnn (the embedded
   recipe's) and small_cnn at 1x28x28 with the small DCGAN, VGG-13 at 3x32x32 with the paper's
   DCGAN.
2. The embedded recipe: trains cross_entropy, confidence and joint on the embedded MNIST suite
   exactly as `oodbench run` does (seed 0), reporting wall-clock and CPU seconds per method,
   test accuracy and the mean max-softmax on the seen OOD set. During the joint run it saves
   8x8 grids of generator samples (fixed noise) after the plain-GAN warm-up epoch and at the end:
   benchmarks/samples_embedded_joint_warmup.png and benchmarks/samples_embedded_joint_final.png.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from oodbench.models import create_classifier, create_discriminator, create_generator
from oodbench.training import RECIPES, confidence_step, cross_entropy_step, joint_confidence_step, train

HERE = Path(__file__).resolve().parent

STEP_CASES = [
    # (classifier, input shape, GAN arch, batch size)
    ("tiny_cnn", (1, 28, 28), "dcgan_small", 64),
    ("small_cnn", (1, 28, 28), "dcgan_small", 64),
    ("vgg13", (3, 32, 32), "dcgan", 64),
]


def time_steps(step, n_steps: int) -> float:
    """Median seconds of `step()` over n_steps calls, after one untimed warm-up call."""
    step()
    times = []
    for _ in range(n_steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_timing(arch: str, shape: tuple[int, ...], gan: str, batch: int, n_steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    x, x_out = torch.rand(batch, *shape), torch.rand(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    nz = 100
    result = {}
    classifier = create_classifier(arch, in_shape=shape, num_classes=10)
    opt_c = torch.optim.Adam(classifier.parameters(), lr=2e-4)
    result["cross_entropy"] = time_steps(
        lambda: cross_entropy_step(x, y, classifier=classifier, opt_c=opt_c), n_steps
    )
    result["confidence"] = time_steps(
        lambda: confidence_step(x, y, x_out, classifier=classifier, opt_c=opt_c, beta=1.0), n_steps
    )
    generator = create_generator(gan, out_shape=shape, nz=nz)
    discriminator = create_discriminator(gan, in_shape=shape)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    result["joint"] = time_steps(
        lambda: joint_confidence_step(
            x,
            y,
            classifier=classifier,
            generator=generator,
            discriminator=discriminator,
            opt_c=opt_c,
            opt_g=opt_g,
            opt_d=opt_d,
            beta=1.0,
            nz=nz,
        ),
        n_steps,
    )
    return result


def sample_grid(generator: torch.nn.Module, nz: int, path: Path) -> None:
    """8x8 samples from fixed noise; a copy of G in train mode (batch statistics, as during training)."""
    z = torch.randn(64, nz, generator=torch.Generator().manual_seed(0))
    g = copy.deepcopy(generator).train()
    with torch.no_grad():
        samples = g(z)
    grid = make_grid(samples, nrow=8, padding=2, pad_value=0.5)  # (3, H, W) in [0, 1]
    pixels = grid.mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    image = Image.fromarray(pixels)
    if samples.shape[1] == 1:
        image = image.convert("L")  # grey samples: a 1-channel PNG is a third of the size
    image.save(path, optimize=True)


def embedded_recipe(out_dir: Path) -> list[tuple[str, float, float, float, float]]:
    from oodbench.data import load_suite
    from oodbench.training import load_classifier

    data = load_suite("mnist")
    recipe = RECIPES.get(data.suite.recipe)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("cross_entropy", "confidence", "joint"):
            callback = None
            if method == "joint":
                warmup = recipe.gan_warmup_epochs
                last = recipe.method_epochs.get("joint", recipe.epochs)

                def callback(epoch, nets, warmup=warmup, last=last):
                    if epoch == warmup:
                        sample_grid(
                            nets["generator"], recipe.nz, out_dir / "samples_embedded_joint_warmup.png"
                        )
                    if epoch == last:
                        sample_grid(
                            nets["generator"], recipe.nz, out_dir / "samples_embedded_joint_final.png"
                        )

            wall, cpu = time.perf_counter(), time.process_time()
            path = train(
                method,
                data,
                recipe,
                seed=0,
                device="cpu",
                checkpoint=Path(tmp) / f"{method}.pt",
                progress=False,
                epoch_callback=callback,
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            model, _ = load_classifier(path)
            with torch.no_grad():
                accuracy = (model(data.test_in.x).argmax(1) == data.test_in.y).float().mean().item()
                msp = torch.softmax(model(data.seen_ood.x).double(), 1).max(1).values.mean().item()
            rows.append((method, wall, cpu, accuracy, msp))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per method (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--skip-vgg", action="store_true", help="skip VGG-13 step timing")
    parser.add_argument("--skip-embedded", action="store_true", help="skip the embedded recipe run")
    parser.add_argument("--skip-steps", action="store_true", help="skip the per-step timing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads\n"
    )

    print(
        "| model (input, GAN, batch) | cross_entropy s/step | confidence s/step | joint s/step "
        "| joint / CE | confidence / CE |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for arch, shape, gan, batch in STEP_CASES:
        if args.skip_steps or (arch == "vgg13" and args.skip_vgg):
            continue
        t = step_timing(arch, shape, gan, batch, args.steps)
        label = f"{arch} ({'x'.join(map(str, shape))}, {gan}, {batch})"
        print(
            f"| {label} | {t['cross_entropy']:.3f} | {t['confidence']:.3f} | {t['joint']:.3f} "
            f"| {t['joint'] / t['cross_entropy']:.1f} | {t['confidence'] / t['cross_entropy']:.1f} |",
            flush=True,
        )

    if args.skip_embedded:
        return
    print("\nEmbedded recipe (suite mnist, seed 0), as `oodbench run` trains it:\n")
    print("| method | wall s | CPU s | test accuracy | mean MSP on seen OOD |")
    print("|---|---:|---:|---:|---:|")
    rows = embedded_recipe(HERE)
    for method, wall, cpu, accuracy, msp in rows:
        print(f"| {method} | {wall:.1f} | {cpu:.1f} | {accuracy:.3f} | {msp:.3f} |")
    print(f"| total | {sum(r[1] for r in rows):.1f} | {sum(r[2] for r in rows):.1f} | | |")
    grids = [HERE / f"samples_embedded_joint_{when}.png" for when in ("warmup", "final")]
    print(f"\nSample grids: {grids[0]}, {grids[1]}")


if __name__ == "__main__":
    main()
