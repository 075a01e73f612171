"""OpenOOD v1.5 CIFAR-10 end to end: `oodbench run --suite openood-cifar10` against pytorch-ood
0.4.0's `CIFAR10_OpenOOD(...).evaluate(...)`, on the same fabricated tree, model and detectors.

    python benchmarks/bench_openood.py                      # 10,000 ID test + 6 x 2,000 OOD, 32x32
    python benchmarks/bench_openood.py --n-id 1000 --n-ood 200 --n-fit 200    # a quick check
    python benchmarks/bench_openood.py --only pytorch-ood   # one side only

Needs the `[bench]` extra (pytorch-ood) and /usr/bin/time (GNU time, for peak RSS).

The tree is OpenOOD's layout (tests/openood_tree.py's LISTS: every list of the CIFAR-10
benchmark) with every image a random smooth 32x32 RGB PNG: `--n-id` in test_cifar10, `--n-ood`
in each of the 6 OOD test lists, `--n-fit` in train / val / val_tin. It is made once under
`--root` and kept (ROOT/.bench-complete records its sizes; anything else is made again). The
model is OpenOOD's ResNet18_32x32 (oodbench.models.openood_arch), random weights from seed 0 with
random BatchNorm statistics, saved as a plain state_dict. Detectors (`--detectors`, pairs
oodbench=pytorch-ood): MSP, energy (EBO), max logit (MLS) and GEN (oodbench runs pytorch-ood's
GEN through its adapter: it has no GEN of its own). No fitting, no tuning: all 4 use logits.

Each side runs in a fresh process under `/usr/bin/time -v` (wall time includes start-up and
imports on both sides; peak RSS is the process's maximum resident set), on the CPU, with the
same batch size and decoding workers (`--workers`: oodbench `--workers`, pytorch-ood the
DataLoader's `num_workers`); oodbench starts with an empty score cache. pytorch-ood evaluates the
4 detectors in one `evaluate([...])` call, so it shares one forward pass per set as oodbench does.
Printed: wall time, peak RSS, the ratios (pytorch-ood / oodbench), and every AUROC of both sides
with the largest difference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# pytorch-ood's dataset names -> the suite file's set names.
SET_NAMES = {
    "CIFAR100": "cifar100",
    "TinyImageNet": "tin",
    "MNIST": "mnist",
    "SVHN": "svhn",
    "Textures": "texture",
    "Places365": "places365",
}
DEFAULT_DETECTORS = "msp=MaxSoftmax,energy=EnergyBased,max_logit=MaxLogit,pytorch-ood:GEN=GEN"
FIT_LISTS = ("train_cifar10.txt", "val_cifar10.txt", "val_tin.txt")


def make_tree(root: Path, n_id: int, n_ood: int, n_fit: int, seed: int = 0) -> bool:
    """The CIFAR-10 benchmark's lists and images under `root` (kept if complete); True if made."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(REPO))
    from tests.openood_tree import ID, LISTS

    marker = root / ".bench-complete"
    wanted = f"n_id={n_id} n_ood={n_ood} n_fit={n_fit} seed={seed} size=32 png\n"
    if marker.is_file() and marker.read_text() == wanted:
        return False
    for sub in ("benchmark_imglist", "images_classic"):
        shutil.rmtree(root / sub, ignore_errors=True)
    rng = np.random.default_rng(seed)
    (root / "benchmark_imglist" / "cifar10").mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    for file, images, setdir, labels, classes, _kind in LISTS["cifar10"]:
        n = n_fit if file in FIT_LISTS else n_id if file == "test_cifar10.txt" else n_ood
        stem = file.removesuffix(".txt")
        lines = []
        for i in range(n):
            label = (i * 7) % classes if labels == ID else -1
            rel = f"{setdir}/{stem}_{i:06d}.png"
            if rel not in written:
                small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
                path = root / images / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(small).resize((32, 32), Image.BILINEAR).save(path)
                written.add(rel)
            lines.append(f"{rel} {label}\n")
        (root / "benchmark_imglist" / "cifar10" / file).write_text("".join(lines), encoding="utf-8")
    marker.write_text(wanted)
    return True


def make_model():
    """OpenOOD's ResNet18_32x32, seed 0, random BatchNorm statistics (a random model that still
    depends on the normalisation; tests/openood_tree.py's `random_resnet18_32x32`)."""
    from tests.openood_tree import random_resnet18_32x32

    return random_resnet18_32x32(10, seed=0)


def timed(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run `cmd` under /usr/bin/time -v; (wall seconds, peak RSS in MB). Fails loudly."""
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    text = log.read_text(errors="replace")
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{text[-3000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return wall, int(peak.group(1)) / 1024 if peak else float("nan")


def run_oodbench(args, pairs, checkpoint: Path, work: Path) -> tuple[float, float, dict]:
    results = work / "oodbench-results"
    shutil.rmtree(results, ignore_errors=True)
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))  # an empty score cache: a cold run
    cmd = [sys.executable, "-m", "oodbench", "run", "--suite", "openood-cifar10"]
    cmd += ["--data-dir", str(args.root), "--checkpoint", str(checkpoint), "--arch", "openood:resnet18_32x32"]
    for ours, _ in pairs:
        cmd += ["-d", ours]
    cmd += ["--device", "cpu", "--workers", str(args.workers), "--batch-size", str(args.batch)]
    cmd += ["--results-dir", str(results), "--cache-dir", str(cache), "--plots", "none", "-q"]
    print("oodbench:", " ".join(cmd), flush=True)
    wall, peak = timed(cmd, work / "oodbench.log")
    aurocs = {}
    for line in (results / "rows.jsonl").read_text().splitlines():
        row = json.loads(line)
        aurocs[f"{row['detector']}/{row['out_dataset']}"] = row["auroc"]
    shutil.rmtree(cache, ignore_errors=True)
    return wall, peak, aurocs


def run_pytorch_ood(args, pairs, checkpoint: Path, work: Path) -> tuple[float, float, dict]:
    out = work / "pytorch-ood.json"
    cmd = [
        sys.executable,
        __file__,
        "_pytorch-ood",
        "--root",
        str(args.root),
        "--checkpoint",
        str(checkpoint),
    ]
    cmd += ["--workers", str(args.workers), "--batch", str(args.batch), "--detectors", args.detectors]
    cmd += ["--json", str(out)]
    print("pytorch-ood:", " ".join(cmd), flush=True)
    wall, peak = timed(cmd, work / "pytorch-ood.log")
    return wall, peak, json.loads(out.read_text())


def pytorch_ood_side(args) -> None:
    """The pytorch-ood half, in its own process: CIFAR10_OpenOOD on the tree, one evaluate call."""
    import torch
    from pytorch_ood import detector as pod
    from pytorch_ood.benchmark.img.openood import CIFAR10_OpenOOD
    from torchvision import transforms as T

    pairs = parse_pairs(args.detectors)
    model = make_model()
    model.load_state_dict(torch.load(args.checkpoint, map_location="cpu", weights_only=True))
    model.eval()
    mean, std = (0.4914, 0.4822, 0.4465), (0.247, 0.2435, 0.2616)  # the suite file's normalisation
    transform = T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor(), T.Normalize(mean, std)])
    with tempfile.TemporaryDirectory() as hub:
        # pytorch-ood reads the lists from torch.hub's dir (never from the data root).
        shutil.copytree(
            Path(args.root) / "benchmark_imglist",
            Path(hub) / "openood_benchmark_imglist" / "benchmark_imglist",
        )
        torch.hub.set_dir(hub)
        benchmark = CIFAR10_OpenOOD(
            root=str(Path(args.root) / "images_classic"), transform=transform, download=False
        )
        detectors = [getattr(pod, theirs)(model) for _, theirs in pairs]
        loader_kwargs = {"batch_size": args.batch, "num_workers": args.workers}
        results = benchmark.evaluate(detectors, loader_kwargs=loader_kwargs, device="cpu")
    ours_of = {theirs: ours for ours, theirs in pairs}
    aurocs = {f"{ours_of[r['Detector']]}/{SET_NAMES[r['Dataset']]}": float(r["AUROC"]) for r in results}
    Path(args.json).write_text(json.dumps(aurocs, indent=1))


def parse_pairs(text: str) -> list[tuple[str, str]]:
    pairs = [tuple(item.split("=", 1)) for item in text.split(",") if item]
    if not pairs or any(len(p) != 2 for p in pairs):
        sys.exit(f"--detectors: comma-separated OODBENCH=PYTORCH_OOD pairs, got {text!r}")
    return pairs  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "_pytorch-ood"))
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "bench-openood")
    parser.add_argument("--n-id", type=int, default=10_000, help="ID test images")
    parser.add_argument("--n-ood", type=int, default=2_000, help="images per OOD test set (6 sets)")
    parser.add_argument("--n-fit", type=int, default=1_000, help="images in train, val and val_tin")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--detectors", default=DEFAULT_DETECTORS, help="OODBENCH=PYTORCH_OOD pairs")
    parser.add_argument("--only", choices=("oodbench", "pytorch-ood"))
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.mode == "_pytorch-ood":
        pytorch_ood_side(args)
        return
    if not Path("/usr/bin/time").exists():
        sys.exit("needs GNU time at /usr/bin/time (peak RSS): apt-get install time")
    import torch

    pairs = parse_pairs(args.detectors)
    args.root = args.root.resolve()
    start = time.perf_counter()
    made = make_tree(args.root, args.n_id, args.n_ood, args.n_fit)
    print(f"tree {args.root}: {'made' if made else 'kept'} ({time.perf_counter() - start:.0f} s)")
    checkpoint = args.root / "resnet18_32x32_seed0.pt"
    torch.save(make_model().state_dict(), checkpoint)
    work = args.root / "work"
    work.mkdir(exist_ok=True)
    sides = {}
    if args.only != "pytorch-ood":
        sides["oodbench"] = run_oodbench(args, pairs, checkpoint, work)
    if args.only != "oodbench":
        sides["pytorch-ood"] = run_pytorch_ood(args, pairs, checkpoint, work)

    print(f"\nOpenOOD CIFAR-10 tree: {args.n_id} ID test + 6 x {args.n_ood} OOD, 32x32 PNG; "
          f"{len(pairs)} detectors; CPU, {args.workers} workers, batch {args.batch}; "
          f"{os.cpu_count()} CPUs; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")  # fmt: skip
    print(f"{'side':12s} {'wall s':>8s} {'peak RSS MB':>12s}")
    for name, (wall, peak, _) in sides.items():
        print(f"{name:12s} {wall:8.1f} {peak:12.0f}")
    if len(sides) == 2:
        (w0, p0, a0), (w1, p1, a1) = sides["oodbench"], sides["pytorch-ood"]
        print(f"ratio pytorch-ood / oodbench: wall {w1 / w0:.2f}x, peak RSS {p1 / p0:.2f}x")
    keys = sorted(set().union(*(a.keys() for _, _, a in sides.values())))
    print(f"\n{'AUROC':32s}" + "".join(f"{name:>13s}" for name in sides))
    for key in keys:
        print(f"{key:32s}" + "".join(f"{a.get(key, float('nan')):13.6f}" for _, _, a in sides.values()))
    if len(sides) == 2:
        common = set(a0) & set(a1)
        if common != set(a0) | set(a1):
            print(f"only one side has: {sorted((set(a0) | set(a1)) - common)}")
        if common:
            largest = max(abs(a0[k] - a1[k]) for k in common)
            print(f"largest |AUROC difference|: {largest:.2e} over {len(common)} cells")


if __name__ == "__main__":
    main()
