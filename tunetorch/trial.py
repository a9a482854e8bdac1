"""Trial: one training run with one setting of the hyperparameters, as an immutable record."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any


class TrialState(str, enum.Enum):
    RUNNING = "RUNNING"  # asked, not yet told: a pending point for the strategy
    COMPLETE = "COMPLETE"
    FAIL = "FAIL"  # told with no usable score (exception, NaN loss, out of memory)
    PRUNED = "PRUNED"  # stopped early by the scheduler; its score is the best it reached
    INTERRUPTED = "INTERRUPTED"  # stopped by a shutdown; re-run when the study resumes


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict[str, Any]
    state: TrialState = TrialState.RUNNING
    score: float | None = None  # the study's metric (`study.metric`) at the trial's scored epoch
    device: str | None = None  # "cuda:0", "cpu"
    device_name: str | None = None  # "NVIDIA H100 80GB HBM3", the CPU model, ...
    device_seconds: float | None = None  # device seconds charged to the trial (its share of its device)
    wall_seconds: float | None = None  # seconds from its start to its end on its slot, synchronised
    node: str | None = None  # the machine it ran on (host name, or a Ray node id)
    epochs: int | None = None  # epochs it trained (fewer than asked when pruned)
    best_epoch: int | None = None  # the epoch its score and weights are from (0-based)
    error: str | None = None  # why it failed or was interrupted
    attempts: int = 0  # how many times a worker started it
    info: dict[str, Any] = field(default_factory=dict)  # the strategy's diagnostics (e.g. EI)

    @property
    def finished(self) -> bool:
        return self.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

    def replace(self, **changes: Any) -> Trial:
        return replace(self, **changes)
