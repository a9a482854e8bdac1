"""The slot layout: how `tuner.devices`, `tuner.workers` and `tuner.trials_per_device` become slots.

    devices: auto   every GPU there is, `trials_per_device` slots on each; no GPU: `workers` CPU slots
             cpu    `workers` CPU slots
             [i..]  the GPUs listed, `trials_per_device` slots on each

The settings are read and checked for form here, once, for every executor. Which GPUs there
are is each executor's to say (this machine's visible CUDA devices for local workers, a Ray
cluster's GPUs for Ray): it checks a list against them and hands `slots` the GPUs to use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunetorch import checks
from tunetorch.errors import UsageError


@dataclass(frozen=True)
class Layout:
    devices: str | tuple  # "auto", "cpu", or the list given (its entries checked by the executor)
    workers: int
    trials_per_device: int

    @classmethod
    def of(cls, tuner: Any) -> Layout:
        """The layout asked for by the `tuner` settings (anything with devices, workers and
        trials_per_device: the composed config's `tuner` node)."""
        return cls.parse(tuner.devices, tuner.workers, tuner.trials_per_device)

    @classmethod
    def parse(cls, devices: Any, workers: Any, trials_per_device: Any) -> Layout:
        keys = checks.under("tuner")
        workers = keys.whole("workers", workers, low=1)
        trials_per_device = keys.whole("trials_per_device", trials_per_device, low=1)
        if devices in ("auto", "cpu"):
            return cls(devices, workers, trials_per_device)
        if not isinstance(devices, str) and isinstance(devices, Sequence) and len(devices) > 0:
            return cls(tuple(devices), workers, trials_per_device)  # a list, or OmegaConf's ListConfig
        raise UsageError(f"tuner.devices: {devices!r} is not auto, cpu or a list of CUDA indices")

    @property
    def listed(self) -> tuple | None:
        """The GPUs listed in `tuner.devices`, or None for auto and cpu."""
        return self.devices if isinstance(self.devices, tuple) else None

    def slots(self, gpus: Sequence[Any]) -> list[Any]:
        """Each slot's GPU, given the GPUs this layout uses (none: CPU slots, each None)."""
        if not gpus:
            return [None] * self.workers
        return [g for g in gpus for _ in range(self.trials_per_device)]
