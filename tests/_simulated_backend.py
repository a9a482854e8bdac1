"""A backend written as a user would add one: a module with preflight and start (the contract of
tunetorch/executors/__init__.py), here the in-process executor on `tuner.workers` simulated slots.
tests/test_executors.py adds it to BACKENDS with one line."""

from __future__ import annotations

from typing import Any

from tunetorch.errors import UsageError
from tunetorch.executors.inprocess import InProcessExecutor
from tunetorch.executors.layout import Layout


def preflight(tuner: Any) -> None:
    if Layout.of(tuner).devices != "cpu":
        raise UsageError(f"tuner.devices: {tuner.devices!r}: the simulated backend has only cpu")


def start(tuner: Any, setup: Any, task: Any, decide: bool = False) -> InProcessExecutor:
    preflight(tuner)
    return InProcessExecutor(task, slots=tuner.workers)
