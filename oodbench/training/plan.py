"""The first step of training: resolve the recipe, seed and overrides into the effective config
and the checkpoint file, once, without loading data (option errors fail here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oodbench.training import recipes


@dataclass(frozen=True)
class TrainingPlan:
    """Everything `oodbench train` decides before loading data: the effective config and the file."""

    method: str
    suite: str
    recipe: recipes.Recipe
    seed: int
    overrides: dict[str, Any]
    config: dict[str, Any]
    checkpoint: Path


def plan_training(
    method: str,
    suite: str,
    *,
    recipe: str | None = None,
    seed: int | None = None,
    overrides: dict[str, Any] | None = None,
    cache_dir: str | Path | None = None,
    checkpoint: str | Path | None = None,
) -> TrainingPlan:
    """Resolve the recipe (the suite's by default), seed (the recipe's) and overrides into the
    effective config, once, without loading data: option errors (e.g. --beta with cross_entropy)
    fail here. The checkpoint is `checkpoint` or the cache file `oodbench run` reuses."""
    from oodbench.data import DATASETS, SUITES  # the package registers every suite and data set
    from oodbench.training.checkpoints import checkpoint_path

    suite_obj = SUITES.get(suite)
    recipe_obj = recipes.RECIPES.get(recipe or suite_obj.recipe)
    seed = recipe_obj.seed if seed is None else seed
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    spec = DATASETS.get(suite_obj.in_dataset)
    config = recipes.resolve_config(
        method,
        recipe_obj,
        dataset=spec.name,
        in_shape=tuple(spec.image_shape),
        num_classes=spec.num_classes,
        seed=seed,
        seen_ood=suite_obj.seen_ood if method == "confidence" else None,
        overrides=overrides,
    )
    path = Path(checkpoint) if checkpoint else checkpoint_path(
        method, recipe_obj.name, spec.name, seed, cache_dir=cache_dir, overrides=overrides
    )
    return TrainingPlan(method, suite, recipe_obj, seed, overrides, config, path)
