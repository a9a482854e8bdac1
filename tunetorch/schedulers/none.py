"""No scheduler: every trial trains all its epochs (tunetorch's behaviour before schedulers)."""

from __future__ import annotations

from collections.abc import Mapping

from tunetorch.schedulers.base import Scheduler


class NoScheduler(Scheduler):
    name = "none"

    def on_epoch(
        self, number: int, epoch: int, value: float, curves: Mapping[int, Mapping[int, float]]
    ) -> bool:
        return False
