"""Schedulers (early stopping), by name. Each is one module implementing `Scheduler.on_epoch`.

A scheduler is orthogonal to the strategy: any strategy runs with any scheduler. The study
hands it every report (`Study.report`) and stops the trial when it says so (state PRUNED).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from tunetorch.errors import UsageError
from tunetorch.schedulers.base import Curves, Scheduler

# name -> "module:Class", imported on first use.
REGISTRY: dict[str, str] = {
    "none": "tunetorch.schedulers.none:NoScheduler",
    "median": "tunetorch.schedulers.median:MedianRule",
    "asha": "tunetorch.schedulers.asha:ASHA",
    "hyperband": "tunetorch.schedulers.hyperband:Hyperband",
}


def make_scheduler(name: str, seed: int = 0, **options: Any) -> Scheduler:
    """The scheduler `name` with its options (as in conf/scheduler/NAME.yaml, less `name`)."""
    from tunetorch.strategies import check_seed  # one seed rule for strategies and schedulers

    seed = check_seed(seed)
    if not isinstance(name, str) or name not in REGISTRY:
        raise UsageError(f"scheduler: {name!r} is not one of {', '.join(sorted(REGISTRY))}")
    module, cls_name = REGISTRY[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "seed")]
    for key in options:
        if key not in allowed:
            raise UsageError(
                f"scheduler.{key}: not an option of {name}; allowed: {', '.join(allowed) or 'none'}"
            )
    return cls(seed=seed, **options)


__all__ = ["REGISTRY", "Curves", "Scheduler", "make_scheduler"]
