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


def check_seed(seed: Any, key: str = "seed") -> int:
    """A seed as a Python int in [0, 2**32 - 1] (checks.Keys.seed); UsageError naming `key` otherwise."""
    return checks.under().seed(key, seed)


def make_strategy(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Strategy:
    seed = check_seed(seed)
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


__all__ = ["REGISTRY", "SEED_MAX", "Strategy", "check_seed", "make_strategy"]
