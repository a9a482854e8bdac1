"""Search strategies, by name. Each is one module implementing `Strategy.suggest`."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from tunetorch import checks
from tunetorch.checks import SEED_MAX
from tunetorch.errors import UsageError
from tunetorch.space import SearchSpace
from tunetorch.strategies.base import Strategy

# name -> "module:Class", imported on first use so that `tunetorch` stays light.
REGISTRY: dict[str, str] = {
    "grid": "tunetorch.strategies.grid:GridSearch",
    "random": "tunetorch.strategies.random_search:RandomSearch",
    "bayes": "tunetorch.strategies.bayes:BayesSearch",
}


def make_strategy(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Strategy:
    seed = checks.under().seed("seed", seed)
    name = checks.under().one_of("strategy", name, sorted(REGISTRY))
    module, cls_name = REGISTRY[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "space", "seed")]
    for key in options:
        if key not in allowed:
            raise UsageError(
                f"strategy.{key}: not an option of {name}; allowed: {', '.join(allowed) or 'none'}"
            )
    return cls(space, seed=seed, **options)


__all__ = ["REGISTRY", "SEED_MAX", "Strategy", "make_strategy"]
