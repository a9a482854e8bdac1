"""Trial: one training run with one setting of the hyperparameters, as an immutable record."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any


class TrialState(str, enum.Enum):
    RUNNING = "RUNNING"  # asked, not yet told: a pending point for the strategy
    COMPLETE = "COMPLETE"
    FAIL = "FAIL"  # told with no usable score (exception, NaN loss, out of memory)
    INTERRUPTED = "INTERRUPTED"  # stopped by a shutdown; re-run when the study resumes


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict[str, Any]
    state: TrialState = TrialState.RUNNING
    score: float | None = None  # the value the study maximises (validation accuracy for training)
    device: str | None = None  # "cuda:0", "cpu"
    device_name: str | None = None  # "NVIDIA H100 80GB HBM3", the CPU model, ...
    device_seconds: float | None = None  # seconds the trial held its device, synchronised
    error: str | None = None  # why it failed or was interrupted
    attempts: int = 0  # how many times a worker started it
    info: dict[str, Any] = field(
        default_factory=dict
    )  # strategy diagnostics (e.g. EI), epoch of the best score

    @property
    def finished(self) -> bool:
        return self.state in (TrialState.COMPLETE, TrialState.FAIL)

    def replace(self, **changes: Any) -> Trial:
        return replace(self, **changes)
