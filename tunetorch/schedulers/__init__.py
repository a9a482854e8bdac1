"""Schedulers (early stopping), by name. Each is one module implementing `Scheduler.on_epoch`.

A scheduler is orthogonal to the strategy: any strategy runs with any scheduler. The study
hands it every report (`Study.report`) and stops the trial when it says so (state PRUNED).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from tunetorch import checks
from tunetorch.errors import UsageError
from tunetorch.schedulers.base import Scheduler

# name -> "module:Class", imported on first use.
REGISTRY: dict[str, str] = {
    "none": "tunetorch.schedulers.none:NoScheduler",
    "median": "tunetorch.schedulers.median:MedianRule",
    "asha": "tunetorch.schedulers.asha:ASHA",
    "hyperband": "tunetorch.schedulers.hyperband:Hyperband",
}


def make_scheduler(name: str, seed: int = 0, **options: Any) -> Scheduler:
    """The scheduler `name` with its options (as in conf/scheduler/NAME.yaml, less `name`)."""
    seed = checks.under().seed("seed", seed)  # the one seed rule, as strategies and the Study
    name = checks.under().one_of("scheduler", name, sorted(REGISTRY))
    module, cls_name = REGISTRY[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "seed")]
    for key in options:
        if key not in allowed:
            raise UsageError(
                f"scheduler.{key}: not an option of {name}; allowed: {', '.join(allowed) or 'none'}"
            )
    return cls(seed=seed, **options)


def check_epochs(scheduler: Scheduler, epochs: int) -> None:
    """A rung scheduler's max_resource is the epochs of a full trial: above trainer.epochs its
    upper rungs (and Hyperband's brackets, dealt by max_resource) lie past the end of every
    trial and never decide. UsageError naming scheduler.max_resource; below it is allowed (the
    decisions end at max_resource, the trials train on)."""
    max_resource = getattr(scheduler, "max_resource", None)
    if max_resource is not None and max_resource > epochs:
        raise UsageError(
            f"scheduler.max_resource: {max_resource} must be at most trainer.epochs ({epochs}), "
            f"the epochs a trial trains ({scheduler.name}: rungs past it never decide)"
        )


__all__ = ["REGISTRY", "Scheduler", "check_epochs", "make_scheduler"]
