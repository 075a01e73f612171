"""What `oodbench list detectors` shows for pytorch-ood's detectors, without importing torch.

{class name: (what oodbench feeds it, its paper)} for pytorch-ood 0.4; tests/test_plugins.py
checks it against the installed pytorch-ood (every class present, `uses` from its base class).
Which of them run on oodbench's models, and how well: benchmarks/README.md ("pytorch-ood").
"""

PYTORCH_OOD_DETECTORS: dict[str, tuple[str, str]] = {
    "ASH": ("features", "ASH, ICLR 2023"),
    "DICE": ("features", "DICE, ECCV 2022"),
    "EnergyBased": ("logits", "Energy, NeurIPS 2020"),
    "Entropy": ("logits", "Entropy maximization, ICCV 2021"),
    "fDBD": ("features", "fDBD, ICML 2024"),
    "GEN": ("logits", "GEN, CVPR 2023"),
    "GMM": ("features", "Gaussian mixture (no paper)"),
    "GradNorm": ("input", "GradNorm, NeurIPS 2021"),
    "GradUncertainty": ("input", "Gradients as uncertainty, ICIP 2020"),
    "Gram": ("input", "Gram matrices, ICML 2020"),
    "KLMatching": ("logits", "KL matching, ICML 2022"),
    "KNN": ("features", "Deep nearest neighbors, ICML 2022"),
    "LTS": ("features", "Logit scaling, MVA 2025"),
    "Mahalanobis": ("features", "Mahalanobis, NeurIPS 2018"),
    "MahalanobisODIN": ("input", "Mahalanobis + input preprocessing, NeurIPS 2018"),
    "MaxLogit": ("logits", "MaxLogit, ICML 2022"),
    "MaxSoftmax": ("logits", "Max softmax, ICLR 2017"),
    "MCD": ("input", "Monte Carlo dropout, ICML 2016"),
    "MCM": ("features", "MCM, NeurIPS 2022"),
    "MultiMahalanobis": ("input", "Mahalanobis over layers, NeurIPS 2018"),
    "NACUE": ("input", "Neuron activation coverage, ICLR 2024"),
    "NCI": ("features", "Neural collapse inspired, CVPR 2025"),
    "NNGuide": ("features", "NNGuide, ICCV 2023"),
    "ODIN": ("input", "ODIN, ICLR 2018"),
    "OpenMax": ("logits", "OpenMax, CVPR 2016"),
    "PNML": ("features", "pNML, NeurIPS 2021"),
    "RankFeat": ("features", "RankFeat, NeurIPS 2022"),
    "ReAct": ("features", "ReAct, NeurIPS 2021"),
    "RMD": ("features", "Relative Mahalanobis, arXiv 2021"),
    "SCALE": ("features", "SCALE, ICLR 2024"),
    "SHE": ("features", "SHE, ICLR 2023"),
    "TemperatureScaling": ("logits", "Temperature scaling, ICML 2017"),
    "ViM": ("features", "ViM, CVPR 2022"),
    "VRA": ("features", "VRA, NeurIPS 2023"),
    "WeightedEBO": ("logits", "VOS weighted energy, ICLR 2022"),
}
