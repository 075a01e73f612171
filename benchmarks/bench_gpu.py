"""GPU throughput of oodbench's training steps and of two detectors' scoring (run by gpu.sh).

    PYTHONPATH=. python benchmarks/bench_gpu.py                 # on a CUDA machine, ~4 min max
    PYTHONPATH=. python benchmarks/bench_gpu.py --device cpu --quick   # smoke test of the code paths

Needs only torch (and numpy); oodbench is imported from the checkout (PYTHONPATH=.). If tqdm
is missing a stand-in is used (progress bars are off here anyway).

1. Training steps/s of cross_entropy and joint (D, G, classifier steps of Lee et al. 2018) on the
   paper's VGG-13 + DCGAN at 3x32x32, batch 128, synthetic data: fp32, bf16 autocast, and bf16
   autocast with channels_last. Also the implied time of one SVHN epoch (573 steps) and of the
   100-epoch recipe.
2. Scoring throughput (images/s) of MSP (one forward, max softmax in float64) and ODIN (forward,
   backward to the input, forward on the perturbed input; T = 1000, eps = 0.0014), inline here,
   VGG-13 in eval mode, batch 512, fp32 and bf16 autocast.
3. A smoke run of oodbench.training.train on the device: joint, VGG-13/DCGAN, 256 synthetic
   images, 2 epochs with --bf16 and --channels-last where CUDA is present, then a resumed run
   and load_classifier, checking that the loop and the checkpoints work there.
Every measurement stops after --seconds seconds or its step budget, whichever comes first.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import types
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


def training_step_rate(method, amp_dtype, channels_last, x, y, device, args) -> float:
    """Steps/s of one method on fresh VGG-13 + DCGAN (built here, freed on return)."""
    classifier = create_classifier("vgg13", in_shape=(3, 32, 32), num_classes=10).to(device)
    generator = create_generator("dcgan", out_shape=(3, 32, 32), nz=100).to(device)
    discriminator = create_discriminator("dcgan", in_shape=(3, 32, 32)).to(device)
    if channels_last:
        for net in (classifier, generator, discriminator):
            net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt_c = torch.optim.Adam(classifier.parameters(), lr=2e-4)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))

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

    per_s, _ = rate(step, device, warmup=args.warmup, max_steps=args.max_steps, max_seconds=args.seconds)
    return per_s


def training_rates(device, args) -> None:
    print(f"\n## 1. Training steps/s, VGG-13 + DCGAN at 3x32x32, batch {args.batch}, synthetic data")
    print("| method | precision | memory format | steps/s | images/s | s per SVHN epoch | h per 100 epochs |")
    print("|---|---|---|---:|---:|---:|---:|")
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    variants = [(None, False), (torch.bfloat16, False), (torch.bfloat16, True)]
    if device.type != "cuda":
        variants = [(None, False)]
    for method in ("cross_entropy", "joint"):
        for amp_dtype, channels_last in variants:
            per_s = training_step_rate(method, amp_dtype, channels_last, x, y, device, args)
            epoch_s = 573 / per_s  # SVHN train: 73,257 images / 128 per batch
            precision = "bf16 autocast" if amp_dtype else "fp32"
            layout = "channels_last" if channels_last else "contiguous"
            print(
                f"| {method} | {precision} | {layout} | {per_s:.1f} | {per_s * args.batch:.0f} "
                f"| {epoch_s:.1f} | {100 * epoch_s / 3600:.2f} |",
                flush=True,
            )


def scoring_rates(device, args) -> None:
    print(f"\n## 2. Scoring throughput, VGG-13 at 3x32x32 (eval mode), batch {args.score_batch}")
    print("| detector | precision | batches/s | images/s |")
    print("|---|---|---:|---:|")
    torch.manual_seed(0)
    model = create_classifier("vgg13", in_shape=(3, 32, 32), num_classes=10).to(device).eval()
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
                fn, device, warmup=args.warmup, max_steps=args.max_steps, max_seconds=args.seconds
            )
            label = "bf16 autocast" if amp_dtype else "fp32"
            print(f"| {name} | {label} | {per_s:.1f} | {per_s * args.score_batch:.0f} |", flush=True)


def loop_smoke(device, args) -> None:
    print("\n## 3. oodbench.training.train on this device (joint, VGG-13/DCGAN, 256 synthetic images)")
    torch.manual_seed(0)
    n = 256
    data = SimpleNamespace(
        spec=SimpleNamespace(name="synthetic32", image_shape=(3, 32, 32), num_classes=10),
        suite=SimpleNamespace(name="synthetic32", seen_ood="synthetic_ood"),
        train=SimpleNamespace(x=torch.rand(n, 3, 32, 32), y=torch.randint(0, 10, (n,)), name="synthetic32"),
        seen_ood=SimpleNamespace(x=torch.rand(n, 3, 32, 32), y=None, name="synthetic_ood"),
    )
    gpu = device.type == "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "joint.pt"
        start = time.perf_counter()
        train(
            "joint",
            data,
            RECIPES.get("lee2018-svhn"),
            seed=1,
            device=device,
            checkpoint=path,
            progress=False,
            bf16=gpu,
            channels_last=gpu,
            epochs=2,
        )
        first = time.perf_counter() - start
        state = read_checkpoint(path)
        resumed = train(
            "joint",
            data,
            RECIPES.get("lee2018-svhn"),
            seed=1,
            device=device,
            checkpoint=path,
            progress=False,
            bf16=gpu,
            channels_last=gpu,
            epochs=2,
            resume=True,
        )
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
        print(f"bf16={gpu} channels_last={gpu}: 2 epochs in {first:.1f} s; last epoch {state['history'][-1]}")
        verdict = "OK" if ok else "FAILED"
        print(f"resume of a complete run + load_classifier: {verdict} (sha256 {meta['sha256'][:12]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke test)")
    parser.add_argument("--batch", type=int, default=128, help="training batch size")
    parser.add_argument("--score-batch", type=int, default=512, help="scoring batch size")
    parser.add_argument("--seconds", type=float, default=12.0, help="time cap per measurement")
    parser.add_argument("--max-steps", type=int, default=300, help="step cap per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before each measurement")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a CPU smoke test of this script)")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.score_batch, args.seconds, args.max_steps, args.warmup = 8, 8, 2.0, 2, 1
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("CUDA is not available here; use --device cpu --quick for a smoke test.")
        torch.backends.cudnn.benchmark = True
        print(
            f"device: {torch.cuda.get_device_name(device)}; torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
            f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
            f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}"
        )
    else:
        print(f"device: cpu ({torch.get_num_threads()} threads); torch {torch.__version__}")
    sections = [("training", training_rates), ("scoring", scoring_rates), ("loop", loop_smoke)]
    timings = {}
    for name, section in sections:
        start = time.perf_counter()
        try:
            section(device, args)
        except Exception as error:  # noqa: BLE001 - report and go on: one failing section must not hide the rest
            print(f"\n{name} section FAILED: {type(error).__name__}: {error}", flush=True)
        timings[name] = time.perf_counter() - start
        if device.type == "cuda":
            print(f"(peak GPU memory so far: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB)")
    print("\nsection seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))


if __name__ == "__main__":
    main()
