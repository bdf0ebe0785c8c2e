"""The built-in model families and their flavors (recipes).

Each family is a package `models/<name>/` exporting `Config` (a frozen
dataclass with `build(vocab)`), `FLAVORS` (name -> `Flavor`), `DEFAULT_FLAVOR`
and `SUMMARY`. Families are imported on first use so a missing optional
dependency of one family never breaks the others.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from nightshift.models.errors import ModelConfigError
from nightshift.models.overrides import apply_overrides
from nightshift.models.protocol import Flavor, ModelConfig

FAMILIES: tuple[str, ...] = ("transformer", "attractor", "holographic", "macro_unit")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A resolved `family:flavor` with its (possibly overridden) config."""

    family: str
    flavor: str
    config: ModelConfig  # the family's frozen Config, overrides applied
    train: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.family}:{self.flavor}"


def family_module(family: str) -> ModuleType:
    if family not in FAMILIES:
        raise ModelConfigError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(f"nightshift.models.{family}")


def available_families() -> dict[str, ModuleType]:
    """Families whose package imports (all of them in a complete install)."""
    found = {}
    for name in FAMILIES:
        try:
            found[name] = family_module(name)
        except ImportError:
            continue
    return found


def flavors(family: str) -> dict[str, Flavor]:
    return dict(family_module(family).FLAVORS)


def resolve(name: str, overrides: dict[str, Any] | None = None) -> ModelSpec:
    """`family[:flavor]` (+ `--set` overrides of model fields) -> ModelSpec."""
    family, _, flavor = name.partition(":")
    module = family_module(family)
    flavor = flavor or module.DEFAULT_FLAVOR
    if flavor not in module.FLAVORS:
        raise ModelConfigError(
            f"unknown flavor {flavor!r} of {family}; known: {', '.join(module.FLAVORS)}"
        )
    recipe: Flavor = module.FLAVORS[flavor]
    config = apply_overrides(recipe.model, overrides or {}, what=f"{family} model")
    return ModelSpec(family=family, flavor=flavor, config=config, train=dict(recipe.train))
