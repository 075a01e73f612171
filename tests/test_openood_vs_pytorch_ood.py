"""MSP, energy and KNN AUROC on the fabricated OpenOOD CIFAR-10 tree: oodbench's suite file +
streaming loaders + oodbench.metrics against pytorch-ood 0.4.0's CIFAR10_OpenOOD +
Benchmark.evaluate, with one tiny model (OpenOOD's ResNet18_32x32, random weights).

The scores here are computed in the test from batches of `oodbench.data.sources` loaders (the
runner's wiring of suite files comes later); what is compared is the data path (lists, decoding,
preprocessing, normalisation) and the AUROC. pytorch-ood's detectors give outlier scores
(higher = more OOD, OOD positive); AUROC is the same for ours with the negated score.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torchvision import transforms as T

from oodbench.data.sources import make_loader
from oodbench.data.suite_file import builtin_suite_files, load_suite_file
from oodbench.metrics import compute
from tests.openood_tree import make_openood_tree, random_resnet18_32x32

K = 3  # neighbours (the tree's training list has 8 images)


def test_auroc_equals_pytorch_ood_benchmark(tmp_path: Path) -> None:
    pytest.importorskip("pytorch_ood")
    from pytorch_ood.benchmark.img.openood import CIFAR10_OpenOOD
    from pytorch_ood.detector import KNN, EnergyBased, MaxSoftmax

    root = tmp_path / "data"
    make_openood_tree(root, per_list=8, benchmarks=("cifar10",))
    model = random_resnet18_32x32(10)  # random BatchNorm statistics: sees the normalisation

    # Ours: the suite file, streamed uint8 batches, [0, 1] floats, the suite's normalisation.
    suite = load_suite_file(builtin_suite_files()["openood-cifar10"], data_root=root)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in suite.normalize)

    def outputs(source) -> tuple[torch.Tensor, torch.Tensor]:
        logits, feats = [], []
        with torch.no_grad():
            for batch in make_loader(source, batch_size=5, workers=0):
                x = (batch.x.float() / 255.0 - mean) / std
                f = model.features(x)
                feats.append(f)
                logits.append(model.fc(f))
        return torch.cat(logits), torch.cat(feats)

    sources = suite.named_sources()
    _, train_feats = outputs(sources["train"].build(suite.preprocess))
    bank = torch.nn.functional.normalize(train_feats, dim=1)

    def scores(source) -> dict[str, torch.Tensor]:
        logits, feats = outputs(source)
        distances = torch.cdist(torch.nn.functional.normalize(feats, dim=1), bank)
        return {
            "msp": logits.softmax(1).amax(1),
            "energy": logits.logsumexp(1),
            "knn": -distances.sort(dim=1).values[:, K - 1],
        }

    ours_in = scores(sources["test"].build(suite.preprocess))
    ours = {}
    for entry in suite.ood:
        s_out = scores(entry.source.build(suite.preprocess))
        ours[entry.name] = {d: compute(ours_in[d].numpy(), s_out[d].numpy())["auroc"] for d in s_out}

    # pytorch-ood: the same lists from torch.hub's cache dir, OpenOOD's test transform.
    hub = tmp_path / "hub"
    shutil.copytree(root / "benchmark_imglist", hub / "openood_benchmark_imglist" / "benchmark_imglist")
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        transform = T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor(), T.Normalize(*suite.normalize)])
        benchmark = CIFAR10_OpenOOD(root=str(root / "images_classic"), transform=transform, download=False)
    finally:
        torch.hub.set_dir(old)
    knn = KNN(model.features, k=K).fit(torch.utils.data.DataLoader(benchmark.train_set(), batch_size=5))
    detectors = {"msp": MaxSoftmax(model), "energy": EnergyBased(model), "knn": knn}
    names = {"CIFAR100": "cifar100", "TinyImageNet": "tin", "MNIST": "mnist", "SVHN": "svhn",
             "Textures": "texture", "Places365": "places365"}  # fmt: skip
    compared = 0
    for detector_name, detector in detectors.items():
        for result in benchmark.evaluate(detector, loader_kwargs={"batch_size": 7}):
            theirs = float(result["AUROC"])
            mine = ours[names[result["Dataset"]]][detector_name]
            assert mine == pytest.approx(theirs, abs=1e-6), (detector_name, result["Dataset"])
            compared += 1
    assert compared == 3 * 6
    # The comparison is not vacuous: the random model separates some sets and not others.
    values = [v for per_set in ours.values() for v in per_set.values()]
    assert len({round(v, 4) for v in values}) > 3
