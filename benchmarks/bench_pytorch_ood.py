"""Every pytorch-ood detector through `-d pytorch-ood:NAME` on the embedded suite: works or not, AUROC.

    python benchmarks/bench_pytorch_ood.py [--limit 500] [--fit-limit N] [--epochs N] [--output table.md]

The model is the embedded suite's cross-entropy classifier (tiny_cnn, recipe `embedded`, seed 0),
taken from the cache or trained first (`--epochs` overrides the recipe's 4). Each detector is
evaluated on its own with `oodbench.evaluate` (fitted on the whole training split, or on
`--fit-limit` images of it, and scored on at most `--limit` images of the ID test set and of each
OOD set), beside oodbench's msp, energy and
mahalanobis for comparison. A refusal or failure is recorded with its message; "seconds" is the
wall time of the whole evaluate call (loading the suite, fitting, scoring 6 sets). Prints a
Markdown table (and writes it to `--output`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import oodbench
from oodbench.detectors.plugins import PYTORCH_OOD_PREFIX
from oodbench.detectors.pytorch_ood_adapter import detector_classes
from oodbench.errors import UserInputError
from oodbench.training import ensure_model

# Constructor arguments the detectors cannot run without (ViM's d, DICE's p, WeightedEBO's
# weights) or whose default is sized for ImageNet; the values follow the papers' small settings.
PARAMS = {
    "ViM": lambda dim, classes: {"d": dim // 2},
    "DICE": lambda dim, classes: {"p": 0.9},  # the paper's sparsity for CIFAR
    "KNN": lambda dim, classes: {"k": 50},  # the paper's k for CIFAR-10
    "WeightedEBO": lambda dim, classes: {"weights": [1.0] * classes},
}
BUILT_IN = ("msp", "energy", "mahalanobis")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--fit-limit", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)

    overrides = {"epochs": args.epochs} if args.epochs else None
    checkpoint = ensure_model(
        "cross_entropy", "mnist", seed=0, device="cpu", progress=False, overrides=overrides
    )
    model = oodbench.load_model(checkpoint)
    with torch.no_grad():
        feats, logits = model.module.features_and_logits(torch.rand(1, 1, 28, 28))
    dim, classes = feats.shape[1], logits.shape[1]

    names = [*BUILT_IN, *(PYTORCH_OOD_PREFIX + n for n in sorted(detector_classes(), key=str.lower))]
    lines, out_sets = [], None
    for name in names:
        short = name.removeprefix(PYTORCH_OOD_PREFIX)
        from_pytorch_ood = name.startswith(PYTORCH_OOD_PREFIX)
        params = PARAMS[short](dim, classes) if short in PARAMS and from_pytorch_ood else {}
        start = time.perf_counter()
        try:
            limits = dict(limit=args.limit, fit_limit=args.fit_limit)
            frame = oodbench.evaluate(checkpoint, detectors=[name], params={name: params}, **limits)
        except UserInputError as error:  # oodbench refuses it, in one line: keep its first clause
            reason = str(error).removeprefix(name).split(";")[0].strip().replace("|", "/")
            lines.append((name, params, f"refused: {reason}", None, None))
            continue
        except Exception as error:  # noqa: BLE001  (the table records why a detector fails)
            reason = " ".join(str(error).split())[:120].replace("|", "/")
            lines.append((name, params, f"fails: {type(error).__name__}: {reason}", None, None))
            continue
        seconds = time.perf_counter() - start
        per_set = dict(zip(frame["out_dataset"], frame["auroc"], strict=True))
        out_sets = out_sets or list(per_set)
        lines.append((name, params, "works", per_set, seconds))

    header = ["detector", "params", "status", "mean AUROC", *(out_sets or []), "seconds"]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, params, status, per_set, seconds in lines:
        shown = ", ".join(f"{k}={v if not isinstance(v, list) else '1s'}" for k, v in params.items()) or "-"
        if per_set is None:
            cells = ["-"] * (len(out_sets or []) + 2)
        else:
            mean = sum(per_set.values()) / len(per_set)
            cells = [f"{100 * mean:.1f}", *(f"{100 * per_set[s]:.1f}" for s in out_sets), f"{seconds:.1f}"]
        table.append("| " + " | ".join([f"`{name}`", shown, status, *cells]) + " |")
    text = "\n".join(table) + "\n"
    fitted = "the whole training split" if args.fit_limit is None else f"{args.fit_limit} training images"
    print(f"model: {checkpoint.name} (features {dim}, classes {classes})")
    print(f"scored on at most {args.limit} images per set; fitted on {fitted}")
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
