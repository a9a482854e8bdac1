"""How long until the budget is spent: the estimate the terminal prints after each trial.

The rule, and why:
- **The pace of this run**: wall seconds between trials finishing, over the trials that finished
  since the first one did (all slots together). It holds whatever slows this run down: a busy
  machine, the driver's and the strategy's time, checkpoints, data loading between epochs. A
  trial's own run time holds none of those, and the time since the start holds the workers'
  start-up, which is spent once. Until more trials have finished than there are slots (their
  finishing times then say nothing yet about the pace), the median trial's run time divided
  among the slots stands in for it.
- **A range when trials vary**: trials that a scheduler stopped early, or small and large
  models, take different times; the range scales the estimate by the lower and upper quartile
  of finished trials' times against their median (from 4 finished trials on). When the
  quartiles are within a quarter of each other the estimate is one number.
- **Trials budget**: trials left x the pace. **GPU minutes budget**: device seconds left, in
  trials of the median device time, x the pace. Both given: the one spent first.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Finished trials needed before their spread is read as a range (quartiles of fewer say little).
MIN_FOR_RANGE = 4
# A range narrower than this ratio (upper / lower) is shown as one number.
ONE_NUMBER_BELOW = 1.25


@dataclass(frozen=True)
class Estimate:
    low: float  # seconds
    high: float

    @property
    def single(self) -> bool:
        return self.high <= self.low * ONE_NUMBER_BELOW or self.high - self.low < 2.0


def estimate(
    trials: Sequence[Any],
    *,
    slots: int,
    n_trials: int | None = None,
    minutes: float | None = None,
    finish_times: Sequence[float] = (),
) -> Estimate | None:
    """Seconds until the budget is spent, as a range (see the module's docstring). `trials`: the
    study's trials; `finish_times`: monotonic times at which trials finished in this run, in
    order. None until a trial has finished with a run time, or without a budget to count down."""
    done = [t for t in trials if t.finished]
    runs = [t.wall_seconds for t in done if t.wall_seconds]
    if not runs or not (n_trials or minutes):
        return None
    slots = max(slots, 1)
    if len(finish_times) > slots:
        pace = (finish_times[-1] - finish_times[0]) / (len(finish_times) - 1)
    else:
        pace = statistics.median(runs) / slots
    estimates = []
    if n_trials:
        estimates.append(_spread(runs, max(0, n_trials - len(done)) * pace))
    if minutes:
        spent = [t.device_seconds for t in done if t.device_seconds]
        if spent:
            left = max(0.0, minutes * 60 - sum(spent)) / statistics.median(spent)
            estimates.append(_spread(spent, left * pace))
    return min(estimates, key=lambda e: e.high) if estimates else None


def _spread(times: Sequence[float], central: float) -> Estimate:
    """`central` scaled by the lower and upper quartile of `times` against their median."""
    if len(times) < MIN_FOR_RANGE:
        return Estimate(central, central)
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    if median <= 0:
        return Estimate(central, central)
    return Estimate(central * q1 / median, central * q3 / median)
