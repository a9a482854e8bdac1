"""ASHA: asynchronous successive halving, the stopping variant.

Rungs sit at r_k = min_resource * eta**k epochs, for every k with r_k < max_resource. When a
trial reports the epoch that completes r_k epochs (epoch r_k - 1, 0-based), its value there is
compared with every value recorded at that rung so far - by any trial of the study, running,
finished or stopped, its own included. It goes on only if it is in the top 1/eta of them:
with n values recorded, the best floor(n / eta) go on, and while n < eta only a trial that
is the best so far at that rung goes on (the first trial at a rung always does). Between
rungs nothing is decided; a trial that reaches max_resource ends there.

Why this treatment of the first trials: the promotion variant (Li et al. 2020, "A System for
Massively Parallel Hyperparameter Tuning", Algorithm 2) pauses a trial at a rung until eta
trials have arrived there; a stopping scheduler cannot pause, so it must decide at once.
Ray Tune's AsyncHyperBandScheduler (`tune/schedulers/async_hyperband.py`) lets the first
trial through and compares later ones with the (1 - 1/eta) percentile of the values
recorded before them; Optuna's SuccessiveHalvingPruner (`optuna/pruners/_successive_halving.py`)
ranks the trial among the recorded values including its own, and lets it through while
fewer than eta are recorded only if it is the best. tunetorch follows Optuna's rule (no
interpolation between recorded values, so decisions are easy to check by hand). A
non-finite value (a diverged trial) is stopped at the first rung it reaches.

The rung values are the study's curves (`Snapshot.curves`), which the journal holds, so a resumed study
rebuilds them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from tunetorch.schedulers.base import Scheduler, promotable, resources, rung_resources
from tunetorch.snapshot import Snapshot


class ASHA(Scheduler):
    name = "asha"

    def __init__(self, seed: int = 0, max_resource: int | None = None, min_resource: int = 1, eta: int = 3):
        super().__init__(seed)
        self.min_resource, self.max_resource, self.eta = resources("asha", min_resource, max_resource, eta)
        self._rungs = rung_resources(self.min_resource, self.max_resource, self.eta)

    def rungs(self, number: int) -> list[int]:
        return list(self._rungs)

    def on_epoch(self, number: int, epoch: int, value: float, snapshot: Snapshot) -> bool:
        return stop_at_rung(number, epoch, value, snapshot.curves, self._rungs, self.eta)


def stop_at_rung(
    number: int,
    epoch: int,
    value: float,
    curves: Mapping[int, Mapping[int, float]],
    rungs: list[int],
    eta: int,
    member: Callable[[int], bool] | None = None,
) -> bool:
    """The successive-halving decision at `epoch`, among the trials for which `member` is true
    (all of them when None; Hyperband passes one bracket's members)."""
    if epoch + 1 not in rungs:
        return False
    if not math.isfinite(value):
        return True
    # The trial's own value counts whether or not the caller put it in `curves` yet.
    others = [
        c[epoch] for n, c in curves.items() if n != number and epoch in c and (member is None or member(n))
    ]
    return not promotable(value, [*others, value], eta)
