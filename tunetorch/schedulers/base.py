"""The scheduler contract: decide, after each epoch of a trial, whether it stops there.

    snapshot  Snapshot (tunetorch/snapshot.py)  the study as strategies see it too: its trials,
              their curves (trial number -> {epoch: value}, every trial of the study, including
              the report being decided) and which trials completed; values in maximise form
              (higher is better, the study negates them for direction="minimize"; a non-finite
              value is -inf)
    epoch     0-based; the resource a trial has used after epoch e is e + 1 epochs, so a rung at
              r epochs is decided on the report of epoch r - 1

A scheduler keeps no state of its own: every decision is a function of the snapshot and of
(seed, trial number), so a study reopened on its journal (which holds every trial and epoch
row) decides exactly as the uninterrupted study would have, as Optuna's pruners keep their rung
values in storage. A new scheduler is one file implementing `on_epoch`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from tunetorch import checks
from tunetorch.errors import UsageError
from tunetorch.snapshot import Snapshot


class Scheduler(ABC):
    name: str = "base"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    @abstractmethod
    def on_epoch(self, number: int, epoch: int, value: float, snapshot: Snapshot) -> bool:
        """True when trial `number` should stop after `epoch`, whose value (maximise form) is
        `value`; `snapshot` holds the whole study, this report included."""

    def rungs(self, number: int) -> list[int]:
        """The resources (epochs trained) at which trial `number` may be stopped, for reports;
        empty when it may be stopped after any epoch."""
        return []


# --- shared helpers for rung-based schedulers ------------------------------------------------------
def rung_resources(min_resource: int, max_resource: int, eta: int) -> list[int]:
    """min_resource * eta**k for k = 0, 1, ... below max_resource (a trial that reached
    max_resource is done anyway: stopping it there saves nothing). Integer arithmetic, so that
    27 = 3**3 is not lost to a rounding of log(27) / log(3)."""
    out, r = [], min_resource
    while r < max_resource:
        out.append(r)
        r *= eta
    return out


def resources(scheduler: str, min_resource: Any, max_resource: Any, eta: Any) -> tuple[int, int, int]:
    """Validated (min_resource, max_resource, eta) of asha and hyperband."""
    if max_resource is None:
        raise UsageError(
            f"scheduler.max_resource: required for {scheduler} (the epochs a full trial trains, "
            "trainer.epochs in the config)"
        )
    keys = checks.under("scheduler")
    eta = keys.whole("eta", eta, low=2, note=scheduler)
    min_resource = keys.whole("min_resource", min_resource, low=1, note=scheduler)
    max_resource = keys.whole("max_resource", max_resource, low=1, note=scheduler)
    if min_resource >= max_resource:
        raise UsageError(
            f"scheduler.min_resource: {min_resource} must be below max_resource ({max_resource}) "
            f"for {scheduler}: no trial could be stopped early"
        )
    return min_resource, max_resource, eta


def promotable(value: float, competing: Iterable[float], eta: int) -> bool:
    """True when `value` is in the top 1/eta of `competing` (which includes `value` itself).

    k = floor(n / eta) trials of the n recorded at a rung may go on; while n < eta that is 0,
    and the trial goes on only if it is the best recorded there so far (Optuna's
    SuccessiveHalvingPruner: a stopping scheduler cannot pause the first trials at a rung
    until enough others arrive, as the promotion variant of Li et al. 2020 does). A tie with
    the k-th best goes on.
    """
    ranked = sorted(competing, reverse=True)
    k = max(1, len(ranked) // eta)
    return value >= ranked[k - 1]
