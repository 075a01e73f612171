"""The paper's shorthands: `-d joint` is the joint-trained model scored by max-softmax."""

from __future__ import annotations

from collections.abc import Sequence

from oodbench.names import SHORTHAND_DETECTORS, TRAINED_SOURCES


def expand_shorthands(detectors: Sequence[str], models: Sequence[str]) -> tuple[list[str], list[str]]:
    """Resolve paper shorthands into (detectors, model sources).

    `--detector joint` alone means `--model joint --detector msp`. Next to plain detectors or
    explicit models, a shorthand adds its model and msp to them. With no model named and a plain
    detector present, every trained model source is evaluated.
    """
    plain = [d for d in detectors if d not in SHORTHAND_DETECTORS]
    pairs = [SHORTHAND_DETECTORS[d] for d in detectors if d in SHORTHAND_DETECTORS]
    chosen = list(models) if models or (pairs and not plain) else list(TRAINED_SOURCES)
    for model, detector in pairs:
        chosen += [] if model in chosen else [model]
        plain += [] if detector in plain else [detector]
    return plain, chosen
