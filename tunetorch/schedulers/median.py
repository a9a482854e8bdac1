"""The median rule (Optuna's MedianPruner, `optuna/pruners/_percentile.py` at the 50th percentile).

After epoch e (a "step" in Optuna's words; tunetorch's steps are 0-based epochs), a trial is
stopped when the best value it has reported so far is worse than the median of the values
that *completed* trials (those that ran to their end, not stopped ones, not running ones)
reported at the same epoch e. Nothing is stopped:

- while fewer than `n_startup_trials` trials have completed (so the median means something);
- before epoch `n_warmup_steps` (curves are noisy and cross early on);
- except at the first report of each `interval_steps`-long interval after the warm-up
  (with a report every epoch: epochs n_warmup_steps, n_warmup_steps + interval_steps, ...);
- while fewer than `n_min_trials` completed trials have a value at epoch e.

A trial whose values are all non-finite (diverged) is stopped at the first epoch that is
checked. Non-finite values of completed trials are left out of the median (Optuna's
nanpercentile). Which trials completed comes with the curves (`Snapshot.complete`), rebuilt
from the journal like the curves themselves.
"""

from __future__ import annotations

import math

import numpy as np

from tunetorch import checks
from tunetorch.schedulers.base import Scheduler
from tunetorch.snapshot import Snapshot


class MedianRule(Scheduler):
    name = "median"

    def __init__(
        self,
        seed: int = 0,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        n_min_trials: int = 1,
    ):
        super().__init__(seed)
        keys = checks.under("scheduler")
        self.n_startup_trials = keys.whole("n_startup_trials", n_startup_trials, low=0, note="median")
        self.n_warmup_steps = keys.whole("n_warmup_steps", n_warmup_steps, low=0, note="median")
        self.interval_steps = keys.whole("interval_steps", interval_steps, low=1, note="median")
        self.n_min_trials = keys.whole("n_min_trials", n_min_trials, low=1, note="median")

    def on_epoch(self, number: int, epoch: int, value: float, snapshot: Snapshot) -> bool:
        curves = snapshot.curves
        others = [n for n in snapshot.complete if n != number]
        if not others or len(others) < self.n_startup_trials:
            return False
        if epoch < self.n_warmup_steps:
            return False
        own = {**curves.get(number, {}), epoch: value}
        # Optuna's _is_first_in_interval_step: decide only at the first report at or after
        # each interval boundary, whatever epochs the trial skipped reporting.
        boundary = (
            epoch - self.n_warmup_steps
        ) // self.interval_steps * self.interval_steps + self.n_warmup_steps
        previous = max((e for e in own if e < epoch), default=-1)
        if previous >= boundary:
            return False
        finite = [v for e, v in own.items() if e <= epoch and math.isfinite(v)]
        if not finite:
            return True
        at_epoch = [curves[n][epoch] for n in others if n in curves and epoch in curves[n]]
        at_epoch = [v for v in at_epoch if math.isfinite(v)]
        if len(at_epoch) < self.n_min_trials:
            return False
        return max(finite) < float(np.median(at_epoch))
