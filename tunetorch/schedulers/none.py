"""No scheduler: every trial trains all its epochs (tunetorch's behaviour before schedulers)."""

from __future__ import annotations

from tunetorch.schedulers.base import Scheduler
from tunetorch.snapshot import Snapshot


class NoScheduler(Scheduler):
    name = "none"

    def on_epoch(self, number: int, epoch: int, value: float, snapshot: Snapshot) -> bool:
        return False
