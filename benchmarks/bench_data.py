"""Decode throughput and memory of the streaming sources (oodbench.data.sources).

    python benchmarks/bench_data.py throughput [--jpegs 1000] [--pngs 5000] [--workers 0,2]
    python benchmarks/bench_data.py make-pngs DIR N          # N random 32x32 PNGs in DIR
    python benchmarks/bench_data.py make-images DIR N [--size 224] [--format jpg] [--classes 10]
    /usr/bin/time -v python benchmarks/bench_data.py stream DIR [--in-memory]
    python benchmarks/bench_data.py out-time DIR [--limit 1000] [--shape 1,28,28]

throughput: generated 224x224 JPEGs (quality 90) through Resize(256) + CenterCrop(224), and
32x32 PNGs as they are, in 10 class folders; images/s of `make_loader(ClassFolderSource)` side by
side with torchvision's `ImageFolder` + `DataLoader` with the same workers, batch size and
transform (PIL resize + centre crop + PILToTensor: uint8 batches on both sides). Each figure is
the best of `--repeats` passes over the whole folder (the page cache is warm after the first).
make-images: N random images (class folders class0..class<k-1>) for the scale benchmarks
(benchmarks/bench_issue17.sh); DIR/.bench-complete records what was made, so a finished set with
the same parameters is kept and anything else (a partial or different set) is made again.
out-time: the data time of `--out folder:DIR` as `oodbench run` reads it: the seconds of
`oodbench.data.load_custom_outs` (the runner's call) plus one pass over the set's batches when
it streams (a set read into memory is fully decoded by the load itself), with `--limit`.
stream: one pass of the streaming loader over DIR (workers 0, batch 256), or with --in-memory
today's `read_image_folder` (the whole folder decoded into one tensor), to read peak RSS with
/usr/bin/time -v.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_images(root: Path, n: int, size: int, suffix: str, seed: int = 0, classes: int = 10) -> None:
    """n random images in `classes` class folders; smooth-ish content so JPEG sizes are realistic."""
    rng = np.random.RandomState(seed)
    for i in range(n):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        low = rng.randint(0, 256, (size // 8 + 1, size // 8 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(low).resize((size, size), Image.BILINEAR)
        noisy = np.clip(np.asarray(image, np.int16) + rng.randint(-12, 13, (size, size, 3)), 0, 255)
        kwargs = {"quality": 90} if suffix == ".jpg" else {}
        Image.fromarray(noisy.astype(np.uint8)).save(folder / f"{i:06d}{suffix}", **kwargs)


def make_image_set(root: Path, n: int, size: int, fmt: str, classes: int = 10, seed: int = 0) -> bool:
    """`make_images` into `root` unless its marker says this exact set is already complete there;
    returns whether images were written. A partial or different set is removed first."""
    import shutil

    marker = root / ".bench-complete"
    wanted = f"n={n} size={size} format={fmt} classes={classes} seed={seed}\n"
    if marker.is_file() and marker.read_text() == wanted:
        return False
    if root.exists():
        shutil.rmtree(root)
    make_images(root, n, size, "." + fmt, seed=seed, classes=classes)
    marker.write_text(wanted)
    return True


def _rate(loader, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start, seen = time.perf_counter(), 0
        for batch in loader:
            seen += len(batch[0]) if isinstance(batch, list | tuple) else len(batch.x)
        best = min(best, time.perf_counter() - start)
        assert seen == n, (seen, n)
    return n / best


def throughput(args: argparse.Namespace) -> None:
    import torch
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    from oodbench.data.sources import ClassFolderSource, Preprocess, make_loader

    torch.set_num_threads(1)
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        if args.jpegs:
            make_images(Path(tmp) / "jpeg", args.jpegs, 224, ".jpg")
            pre = Preprocess(channels=3, size=(224, 224), resize=256, crop=(224, 224))
            tv = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224), v2.PILToTensor()])
            cases.append(
                ("224x224 JPEG, Resize(256)+CenterCrop(224)", Path(tmp) / "jpeg", args.jpegs, pre, tv)
            )
        if args.pngs:
            make_images(Path(tmp) / "png", args.pngs, 32, ".png")
            cases.append(
                ("32x32 PNG", Path(tmp) / "png", args.pngs, Preprocess(3, (32, 32)), v2.PILToTensor())
            )
        print(f"batch {args.batch}, best of {args.repeats} passes, images/s")
        print(f"{'images':44s} {'workers':>7s} {'oodbench':>9s} {'torchvision':>11s}")
        for title, folder, n, pre, tv in cases:
            for w in workers:
                ours = make_loader(ClassFolderSource(folder, pre), batch_size=args.batch, workers=w)
                theirs = DataLoader(
                    ImageFolder(str(folder), transform=tv), batch_size=args.batch, num_workers=w
                )
                a, b = _rate(ours, n, args.repeats), _rate(theirs, n, args.repeats)
                print(f"{title:44s} {w:7d} {a:9.0f} {b:11.0f}")


def stream(args: argparse.Namespace) -> None:
    from oodbench.data.sources import ImageFolderSource, Preprocess, make_loader

    folder = Path(args.dir)
    start = time.perf_counter()
    if args.in_memory:
        from oodbench.data.image_folders import read_image_folder

        x = read_image_folder(folder, shape=(3, 32, 32), name="bench")
        n = len(x)
    else:
        n = 0
        for batch in make_loader(
            ImageFolderSource(folder, Preprocess(3, (32, 32))), batch_size=256, workers=0
        ):
            n += len(batch.x)
    print(
        f"{n} images in {time.perf_counter() - start:.1f} s ({'in memory' if args.in_memory else 'streamed'})"
    )


def out_time(args: argparse.Namespace) -> None:
    import torch  # noqa: F401  (imported before the clock starts, as in a run)

    import oodbench.data.custom  # noqa: F401
    import oodbench.data.image_folders  # noqa: F401
    from oodbench.data import load_custom_outs

    shape = tuple(int(v) for v in args.shape.split(","))
    start = time.perf_counter()
    sets = load_custom_outs([f"folder:{args.dir}"], shape=shape, limit=args.limit)
    n = 0
    for data in sets.values():
        x = data.x
        if hasattr(x, "batches"):  # a streamed set: decoding happens while batches are read
            for batch in x.batches(256):
                n += len(batch)
        else:
            n += len(x)
    seconds = time.perf_counter() - start
    print(f"out-time {args.dir} limit={args.limit}: {n} images, data time {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--jpegs", type=int, default=1000)
    t.add_argument("--pngs", type=int, default=5000)
    t.add_argument("--workers", default="0,2")
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--repeats", type=int, default=2)
    m = sub.add_parser("make-pngs")
    m.add_argument("dir")
    m.add_argument("n", type=int)
    mi = sub.add_parser("make-images")
    mi.add_argument("dir")
    mi.add_argument("n", type=int)
    mi.add_argument("--size", type=int, default=32)
    mi.add_argument("--format", choices=("png", "jpg"), default="png")
    mi.add_argument("--classes", type=int, default=10)
    mi.add_argument("--seed", type=int, default=0)
    o = sub.add_parser("out-time")
    o.add_argument("dir")
    o.add_argument("--limit", type=int, default=None)
    o.add_argument("--shape", default="1,28,28", help="the suite's image shape C,H,W (mnist: 1,28,28)")
    s = sub.add_parser("stream")
    s.add_argument("dir")
    s.add_argument("--in-memory", action="store_true")
    args = parser.parse_args()
    if args.command == "throughput":
        throughput(args)
    elif args.command == "make-pngs":
        make_images(Path(args.dir), args.n, 32, ".png")
    elif args.command == "make-images":
        start = time.perf_counter()
        made = make_image_set(Path(args.dir), args.n, args.size, args.format, args.classes, args.seed)
        what = f"{args.n} {args.size}x{args.size} {args.format.upper()} in {args.dir}"
        print(f"{what}: made in {time.perf_counter() - start:.0f} s" if made else f"{what}: already complete")
    elif args.command == "out-time":
        out_time(args)
    else:
        stream(args)


if __name__ == "__main__":
    sys.exit(main())
