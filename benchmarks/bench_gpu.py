"""GPU throughput of oodbench's training (steps/s, one real SVHN-sized epoch) and scoring (run by gpu.sh).

    PYTHONPATH=. python benchmarks/bench_gpu.py --summary gpu_results.md     # CUDA, < 7 min
    PYTHONPATH=. python benchmarks/bench_gpu.py --device cpu --quick          # CPU smoke test, seconds

Needs only torch (and numpy); oodbench is imported from the checkout (PYTHONPATH=.). If tqdm
is missing a stand-in is used (progress bars are off here anyway).

1. Training steps/s of cross_entropy and joint (D, G, classifier steps of Lee et al. 2018) on the
   paper's VGG-13 + DCGAN at 3x32x32, batch 128, synthetic data on the device: fp32 with
   torch's default Adam, bf16 autocast + channels_last with fused Adam (what `oodbench train
   --bf16 --channels-last` uses on CUDA), and the same under torch.compile. Each row gives the
   implied time of the 100-epoch lee2018-svhn recipe: SVHN train 73,257 - 1,000 validation =
   72,257 images = 565 steps of 128 per epoch.
2. The real loop, `oodbench.training.train("joint", ...)`, on 72,257 synthetic uint8 3x32x32
   images (the SVHN training set's size, held on the device as uint8: 222 MB) for 2 epochs with
   the fastest options of section 1; epoch 2 alone (no compilation, no cuDNN autotuning) x 100
   is the implied wall time of `oodbench train --method joint --in svhn`. Goal: < 15 minutes.
3. Scoring throughput (images/s) of MSP and ODIN (T = 1000, eps = 0.0014), VGG-13 in eval mode,
   batch 512, fp32 and bf16 autocast.
4. A smoke run of train() with a resume and load_classifier on the device.
Every measurement stops after --seconds seconds or its step budget, whichever comes first. The
last lines are a compact summary, also written to --summary (markdown).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import tempfile
import time
import types
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F


def _ensure_tqdm() -> None:
    """oodbench.training imports tqdm; a bare GPU image may lack it. Provide a silent stand-in."""
    if importlib.util.find_spec("tqdm") is not None:
        return

    class _Bar:
        def __init__(self, *args, **kwargs):
            pass

        def update(self, *args, **kwargs):
            pass

        def set_postfix(self, *args, **kwargs):
            pass

        def close(self):
            pass

    module, auto = types.ModuleType("tqdm"), types.ModuleType("tqdm.auto")
    module.tqdm = auto.tqdm = _Bar
    module.auto = auto
    sys.modules["tqdm"], sys.modules["tqdm.auto"] = module, auto
    print("note: tqdm not installed; using a silent stand-in")


_ensure_tqdm()

from oodbench.models import create_classifier, create_discriminator, create_generator  # noqa: E402
from oodbench.training import (  # noqa: E402
    RECIPES,
    cross_entropy_step,
    joint_confidence_step,
    load_classifier,
    read_checkpoint,
    train,
)

SVHN_TRAIN = 73_257 - 1_000  # lee2018-svhn trains on SVHN train minus its 1,000 validation images
EPOCHS = 100  # lee2018-svhn
SUMMARY: list[str] = []  # the compact summary, filled by the sections


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn, device: torch.device, *, warmup: int, max_steps: int, max_seconds: float) -> tuple[float, int]:
    """(calls per second, calls timed): `warmup` untimed calls, then until max_steps or max_seconds."""
    for _ in range(warmup):
        fn()
    sync(device)
    start, n = time.perf_counter(), 0
    while n < max_steps and time.perf_counter() - start < max_seconds:
        fn()
        n += 1
    sync(device)
    return n / (time.perf_counter() - start), n


def recipe(args):
    """lee2018-svhn with the networks of --arch / --gan (the paper's unless --quick)."""
    return replace(RECIPES.get("lee2018-svhn"), arch=args.arch, gen_arch=args.gan, disc_arch=args.gan)


def minutes_for_recipe(steps_per_s: float, batch: int) -> float:
    """Minutes of the 100-epoch recipe at this step rate (steps only, no data or checkpoints)."""
    return EPOCHS * math.ceil(SVHN_TRAIN / batch) / steps_per_s / 60


def training_step_rate(method, variant, x, y, device, args) -> float:
    """Steps/s of one method on fresh VGG-13 + DCGAN (built here, freed on return)."""
    amp_dtype = torch.bfloat16 if variant["bf16"] else None
    classifier = create_classifier(args.arch, in_shape=(3, 32, 32), num_classes=10).to(device)
    generator = create_generator(args.gan, out_shape=(3, 32, 32), nz=100).to(device)
    discriminator = create_discriminator(args.gan, in_shape=(3, 32, 32)).to(device)
    nets = [classifier, generator, discriminator]
    if variant["channels_last"]:
        for net in nets:
            net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    fused = True if variant["fused"] else None
    opt_c = torch.optim.Adam(classifier.parameters(), lr=2e-4, fused=fused)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=fused)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=fused)
    if variant["compile"]:
        classifier, generator, discriminator = (torch.compile(net) for net in nets)

    def step():
        if method == "cross_entropy":
            cross_entropy_step(x, y, classifier=classifier, opt_c=opt_c, amp_dtype=amp_dtype)
        else:
            joint_confidence_step(
                x,
                y,
                classifier=classifier,
                generator=generator,
                discriminator=discriminator,
                opt_c=opt_c,
                opt_g=opt_g,
                opt_d=opt_d,
                beta=1.0,
                nz=100,
                amp_dtype=amp_dtype,
            )

    # torch.compile compiles during the warm-up calls (several graphs: the G step freezes D and C).
    warmup = max(args.warmup, 3) if variant["compile"] else args.warmup
    per_s, _ = rate(step, device, warmup=warmup, max_steps=args.max_steps, max_seconds=args.seconds)
    return per_s


def variants_for(device, args) -> list[dict]:
    if device.type != "cuda":  # CPU smoke: the code paths only
        return [{"name": "fp32", "bf16": False, "channels_last": False, "fused": False, "compile": False}]
    out = [
        {"name": "fp32", "bf16": False, "channels_last": False, "fused": False, "compile": False},
        {"name": "bf16+CL+fused", "bf16": True, "channels_last": True, "fused": True, "compile": False},
    ]
    if not args.no_compile:
        out.append(
            {
                "name": "bf16+CL+fused+compile",
                "bf16": True,
                "channels_last": True,
                "fused": True,
                "compile": True,
            }
        )
    return out


def training_rates(device, args) -> dict:
    print(
        f"\n## 1. Training steps/s, {args.arch} + {args.gan} at 3x32x32, batch {args.batch}, "
        "synthetic data on the device"
    )
    print("CL = channels_last; fused = Adam(fused=True); min/100 ep = steps only, 565 steps per epoch")
    print("| method | variant | steps/s | images/s | min per 100 epochs | time incl. warm-up s |")
    print("|---|---|---:|---:|---:|---:|")
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    best: dict = {}
    for method in ("cross_entropy", "joint"):
        for variant in variants_for(device, args):
            started = time.perf_counter()
            try:
                per_s = training_step_rate(method, variant, x, y, device, args)
            except Exception as error:  # noqa: BLE001 - e.g. compile failing: report, keep going
                print(
                    f"| {method} | {variant['name']} | FAILED: {type(error).__name__}: "
                    f"{str(error)[:120]} | | | |"
                )
                continue
            took = time.perf_counter() - started
            minutes = minutes_for_recipe(per_s, args.batch)
            print(
                f"| {method} | {variant['name']} | {per_s:.1f} | {per_s * args.batch:.0f} "
                f"| {minutes:.1f} | {took:.0f} |",
                flush=True,
            )
            if per_s > best.get(method, (0, None))[0]:
                best[method] = (per_s, variant)
    for method, (per_s, variant) in best.items():
        SUMMARY.append(
            f"- {method} steps/s (batch {args.batch}): best {per_s:.1f} with {variant['name']} "
            f"= {minutes_for_recipe(per_s, args.batch):.1f} min per 100 SVHN epochs (steps only)"
        )
    return best


def real_epochs(device, args, best) -> None:
    n = args.loop_images
    variant = best.get(
        "joint", (0, {"bf16": False, "channels_last": False, "compile": False, "name": "fp32"})
    )[1]
    gpu = device.type == "cuda"
    print(
        f"\n## 2. oodbench.training.train('joint', lee2018-svhn recipe, batch {args.batch}) on {n:,} "
        f"synthetic uint8 3x32x32 images, 2 epochs, options of the fastest joint row ({variant['name']})"
    )
    torch.manual_seed(0)
    data = SimpleNamespace(
        spec=SimpleNamespace(name="synthetic32", image_shape=(3, 32, 32), num_classes=10),
        suite=SimpleNamespace(name="synthetic32", seen_ood="synthetic_ood"),
        train=SimpleNamespace(
            x=torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8),
            y=torch.randint(0, 10, (n,)),
            name="synthetic32",
        ),
        seen_ood=None,
    )
    stamps = [time.perf_counter()]
    with tempfile.TemporaryDirectory() as tmp:
        train(
            "joint",
            data,
            recipe(args),
            seed=1,
            device=device,
            checkpoint=Path(tmp) / "joint.pt",
            progress=False,
            bf16=gpu and variant["bf16"],
            channels_last=gpu and variant["channels_last"],
            compile=variant["compile"],
            epochs=2,
            batch_size=args.batch,
            epoch_callback=lambda epoch, nets: stamps.append(time.perf_counter()),
        )
        runtime = read_checkpoint(Path(tmp) / "joint.pt")["runtime"]
    first, second = stamps[1] - stamps[0], stamps[2] - stamps[1]
    steps = math.ceil(n / args.batch)
    implied = (first + (EPOCHS - 1) * second) / 60 * (SVHN_TRAIN / n)
    print(f"runtime: {runtime}")
    print(
        f"epoch 1 (with compilation / autotuning): {first:.1f} s; "
        f"epoch 2: {second:.1f} s = {steps / second:.1f} steps/s"
    )
    verdict = "met" if implied < 15 else "NOT met"
    line = (
        f"- train() joint, {variant['name']}, data {runtime.get('data_placement')}: "
        f"epoch 2 {second:.1f} s for {n:,} images; "
        f"implied 100-epoch lee2018-svhn joint run {implied:.1f} min (goal < 15 min: {verdict})"
    )
    print(line)
    SUMMARY.append(line)


def scoring_rates(device, args) -> None:
    print(f"\n## 3. Scoring throughput, {args.arch} at 3x32x32 (eval mode), batch {args.score_batch}")
    print("| detector | precision | batches/s | images/s |")
    print("|---|---|---:|---:|")
    torch.manual_seed(0)
    model = create_classifier(args.arch, in_shape=(3, 32, 32), num_classes=10).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(args.score_batch, 3, 32, 32, device=device)
    temperature, eps = 1000.0, 0.0014

    for amp_dtype in [None, torch.bfloat16] if device.type == "cuda" else [None]:

        def autocast(amp_dtype=amp_dtype):
            if amp_dtype is None:
                return torch.autocast(device_type=device.type, enabled=False)
            return torch.autocast(device_type=device.type, dtype=amp_dtype)

        def msp():
            with torch.inference_mode(), autocast():
                logits = model(x)
            return torch.softmax(logits.double(), dim=1).max(dim=1).values

        def odin():
            xg = x.clone().requires_grad_(True)
            with autocast():
                logits = model(xg) / temperature
            loss = F.cross_entropy(logits.float(), logits.detach().argmax(dim=1))
            (grad,) = torch.autograd.grad(loss, xg)
            x_tilde = xg.detach() - eps * grad.sign()
            with torch.no_grad(), autocast():
                logits2 = model(x_tilde) / temperature
            return torch.softmax(logits2.double(), dim=1).max(dim=1).values

        for name, fn in (("msp", msp), ("odin", odin)):
            per_s, n = rate(
                fn, device, warmup=args.warmup, max_steps=args.max_steps, max_seconds=args.seconds / 2
            )
            label = "bf16 autocast" if amp_dtype else "fp32"
            print(f"| {name} | {label} | {per_s:.1f} | {per_s * args.score_batch:.0f} |", flush=True)


def loop_smoke(device, args) -> None:
    print(
        f"\n## 4. train() + resume + load_classifier on this device (joint, {args.arch}/{args.gan}, "
        "64 synthetic images)"
    )
    torch.manual_seed(0)
    n = 64
    data = SimpleNamespace(
        spec=SimpleNamespace(name="synthetic32", image_shape=(3, 32, 32), num_classes=10),
        suite=SimpleNamespace(name="synthetic32", seen_ood="synthetic_ood"),
        train=SimpleNamespace(x=torch.rand(n, 3, 32, 32), y=torch.randint(0, 10, (n,)), name="synthetic32"),
        seen_ood=SimpleNamespace(x=torch.rand(n, 3, 32, 32), y=None, name="synthetic_ood"),
    )
    gpu = device.type == "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "joint.pt"
        kwargs = dict(
            seed=1, device=device, checkpoint=path, progress=False, bf16=gpu, channels_last=gpu, epochs=2
        )
        train("joint", data, recipe(args), batch_size=32, **kwargs)
        state = read_checkpoint(path)
        resumed = train("joint", data, recipe(args), batch_size=32, resume=True, **kwargs)
        model, meta = load_classifier(
            resumed, device=device, expect_dataset="synthetic32", expect_shape=(3, 32, 32)
        )
        with torch.no_grad():
            out = model(data.train.x[:8].to(device))
        ok = (
            state["complete"]
            and meta["epoch"] == 2
            and out.shape == (8, 10)
            and bool(torch.isfinite(out).all())
        )
        verdict = "OK" if ok else "FAILED"
        print(f"bf16={gpu} channels_last={gpu}: last epoch {state['history'][-1]}")
        print(f"resume of a complete run + load_classifier: {verdict}")
        SUMMARY.append(f"- train() + resume + load_classifier on {device.type}: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke test)")
    parser.add_argument("--batch", type=int, default=128, help="training batch size")
    parser.add_argument("--score-batch", type=int, default=512, help="scoring batch size")
    parser.add_argument("--seconds", type=float, default=8.0, help="time cap per measurement")
    parser.add_argument("--max-steps", type=int, default=300, help="step cap per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before each measurement")
    parser.add_argument("--loop-images", type=int, default=SVHN_TRAIN, help="images in section 2's epochs")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--arch", default="vgg13", help="classifier (the paper's vgg13)")
    parser.add_argument("--gan", default="dcgan", help="generator and discriminator (the paper's dcgan)")
    parser.add_argument("--summary", type=Path, default=None, help="also write the compact summary here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a CPU smoke test of this script)")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.score_batch, args.seconds, args.max_steps, args.warmup = 8, 8, 2.0, 2, 1
        args.loop_images, args.no_compile, args.arch, args.gan = 32, True, "tiny_cnn", "dcgan_small"
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("CUDA is not available here; use --device cpu --quick for a smoke test.")
        torch.backends.cudnn.benchmark = True
        header = (
            f"device: {torch.cuda.get_device_name(device)}; torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
        )
    else:
        header = f"device: cpu ({torch.get_num_threads()} threads); torch {torch.__version__}"
    if args.quick:
        header += " [--quick: a smoke test with tiny sizes; the numbers mean nothing]"
    print(header)
    best: dict = {}
    sections = [
        ("steps", lambda: best.update(training_rates(device, args))),
        ("epochs", lambda: real_epochs(device, args, best)),
        ("scoring", lambda: scoring_rates(device, args)),
        ("smoke", lambda: loop_smoke(device, args)),
    ]
    timings = {}
    for name, section in sections:
        start = time.perf_counter()
        try:
            section()
        except Exception as error:  # noqa: BLE001 - report and go on: one failing section must not hide the rest
            print(f"\n{name} section FAILED: {type(error).__name__}: {error}", flush=True)
            SUMMARY.append(f"- section {name} FAILED: {type(error).__name__}: {str(error)[:200]}")
        timings[name] = time.perf_counter() - start
        if device.type == "cuda":
            print(f"(peak GPU memory so far: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB)")
    print("\nsection seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    summary = "\n".join([f"## Summary ({header})", *SUMMARY])
    print("\n" + summary)
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(summary + "\n")


if __name__ == "__main__":
    main()
