"""A suite's tuning grids (`[tuning]` of a suite file) given to the detectors that take them.

    [tuning.odin]                     -> ODIN: temperatures x epsilons, chosen by AUROC
    temperature = [1, 10, 100, 1000]
    epsilon = [0.0014, 0.0028]
    [tuning.mahalanobis]              -> Mahalanobis: epsilons, chosen by AUROC
    epsilon = [0.0, 0.001, 0.002]
    [tuning."pytorch-ood:KNN"]        -> the adapter's grid search (oodbench.detectors.grid)
    k = [50, 100, 200, 500, 1000]

A value the user fixed (`--param odin.temperature=1000`, `params=` in the API, or a
pytorch-ood keyword) is not tuned: only the other parameters are searched. `check_grids`
refuses unknown detector and parameter names and bad values in one line before any fit.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from oodbench.detectors.base import Detector
from oodbench.detectors.mahalanobis import Mahalanobis
from oodbench.detectors.odin import ODIN
from oodbench.errors import UserInputError
from oodbench.names import PYTORCH_OOD_PREFIX

Grids = Mapping[str, Mapping[str, Sequence[Any]]]
# Built-in detectors that take a grid: suite parameter -> the detector's grid attribute.
BUILTIN_GRIDS: dict[str, dict[str, str]] = {
    "odin": {"temperature": "temperatures", "epsilon": "epsilons"},
    "mahalanobis": {"epsilon": "epsilons"},
}


def check_grids(grids: Grids) -> None:
    """Refuse, in one line, a grid for a detector that does not exist or takes no grid, a
    parameter the detector does not have (or that oodbench supplies), or a value the
    detector refuses (each grid point is validated as the detector would be)."""
    for name, grid in grids.items():
        if name in BUILTIN_GRIDS:
            unknown = sorted(set(grid) - set(BUILTIN_GRIDS[name]))
            if unknown:
                raise UserInputError(
                    f"[tuning.{name}]: {name} has no tuned parameter {', '.join(unknown)}; it tunes "
                    f"{', '.join(BUILTIN_GRIDS[name])}."
                )
            for point in _each_value(grid):
                _builtin(name, point).validate()
        elif name.startswith(PYTORCH_OOD_PREFIX):
            _check_pytorch_ood(name, grid)
        else:
            from oodbench.detectors import DETECTORS

            what = "takes no tuned parameters" if name in DETECTORS else "is not a detector"
            raise UserInputError(
                f"[tuning] names {name!r}, which {what}; grids are for "
                f"{', '.join(BUILTIN_GRIDS)} and pytorch-ood:NAME detectors."
            )


def with_suite_grid(detector: Detector, grids: Grids, given: Collection[str] | None = None) -> Detector:
    """`detector` with the suite's grid for it (a copy; the original is left as it was), or
    `detector` itself when the suite has none. `given`: the parameters the user fixed (None:
    read them from the detector: ODIN's and Mahalanobis' None means "not given", a pytorch-ood
    detector's keywords are all given). Fixed parameters are never tuned."""
    grid = grids.get(getattr(detector, "name", ""))
    if not grid:
        return detector
    if isinstance(detector, ODIN | Mahalanobis):
        tuned = copy.copy(detector)
        for parameter, values in grid.items():
            attribute = BUILTIN_GRIDS[detector.name][parameter]
            fixed = given is not None and (parameter in given or attribute in given)
            if given is None:
                fixed = getattr(detector, parameter) is not None
            if fixed:
                continue
            setattr(tuned, attribute, tuple(values))
            setattr(tuned, parameter, None)  # None: chosen on validation data
            tuned.criterion = "auroc"
        return tuned
    if hasattr(detector, "kwargs") and getattr(detector, "name", "").startswith(PYTORCH_OOD_PREFIX):
        free = {k: tuple(v) for k, v in grid.items() if k not in detector.kwargs}
        if not free:
            return detector
        tuned = copy.copy(detector)
        tuned.grid = free
        return tuned
    return detector


def grid_meta(detector: Detector) -> dict[str, Any]:
    """What a row records of a detector's grid search: "grid" (every point's validation AUROC,
    or None when no suite grid was searched) and "tuning_flags" (degenerate picks)."""
    result = getattr(detector, "grid_result_", None)
    if result is None:
        return {"grid": None, "tuning_flags": []}
    from_suite = getattr(detector, "criterion", "auroc") == "auroc"
    return {"grid": result.describe() if from_suite else None, "tuning_flags": result.flags()}


def _check_pytorch_ood(name: str, grid: Mapping[str, Sequence[Any]]) -> None:
    """The adapter's own checks of names and values (its `validate`), for the grid's keys only:
    required arguments may still come from --param."""
    import importlib.util
    import inspect

    if importlib.util.find_spec("pytorch_ood") is None:
        return  # not installed: no pytorch-ood detector can run, so its grids are never used
    from oodbench.detectors.pytorch_ood_adapter import SUPPLIED, PytorchOOD, _check_value

    try:
        cls = PytorchOOD(name.removeprefix(PYTORCH_OOD_PREFIX))._cls
    except UserInputError as error:
        raise UserInputError(f'[tuning."{name}"]: {error}') from None
    arguments = {k: p for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in arguments.values())
    bad = sorted(k for k in grid if k in SUPPLIED or (k not in arguments and not takes_any))
    if bad:
        tunable = [k for k, p in arguments.items() if k not in SUPPLIED and p.kind is not p.VAR_KEYWORD]
        raise UserInputError(
            f'[tuning."{name}"]: {name} has no tunable parameter {", ".join(bad)}; it takes '
            f"{', '.join(tunable) or 'none'}."
        )
    for point in _each_value(grid):
        for key, value in point.items():
            annotation = arguments[key].annotation if key in arguments else None
            try:
                _check_value(name, key, value, annotation)
            except UserInputError as error:
                raise UserInputError(f'[tuning."{name}"]: {error}') from None


def _each_value(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """One point per value (the other parameters left out): enough to validate every value."""
    return [{parameter: value} for parameter, values in grid.items() for value in values]


def _builtin(name: str, point: Mapping[str, Any]) -> Detector:
    return ODIN(**point) if name == "odin" else Mahalanobis(**point)
