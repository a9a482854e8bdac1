"""Executors: where trials run. The contract is executors/base.py; `tuner.backend` picks one here.

    local:     tunetorch.executors.local, worker processes on this machine (the default)
    ray:       tunetorch.executors.ray, Ray actors over a cluster's GPUs
    inprocess: tunetorch.executors.inprocess, generator trials on simulated slots and a simulated
               clock (the race's landscapes; built directly, not chosen by tuner.backend)

A backend is a module with two functions of the `tuner` settings (the composed config's `tuner`
node: backend, devices, workers, trials_per_device, ray.address):

    preflight(tuner)                          every check that can be made before a study is
                                              written (the devices, a cluster reached); UsageError
    start(tuner, setup, task, decide) -> Executor

Adding a backend is that module and one line in BACKENDS. This module is light on purpose
(config.check reads BACKENDS): a backend is imported only when it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from tunetorch import checks
from tunetorch.executors.base import Executor, Setup, Task

BACKENDS = {
    "local": "tunetorch.executors.local",
    "ray": "tunetorch.executors.ray",
}


def preflight(tuner: Any) -> None:
    """The chosen backend's checks, before the study directory is made."""
    _backend(tuner).preflight(tuner)


def open_executor(tuner: Any, setup: Setup, task: Task, decide: bool = False) -> Executor:
    """The executor for `tuner.backend`, its slots started. With `decide`, each task's "epoch"
    waits for the driver's answer (executor.decide): a scheduler is on."""
    return _backend(tuner).start(tuner, setup, task, decide=decide)


def _backend(tuner: Any):
    backend = checks.under("tuner").one_of("backend", tuner.backend, tuple(BACKENDS))
    return importlib.import_module(BACKENDS[backend])
