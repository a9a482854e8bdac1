"""A study's budget: the one rule for how `budget.n_trials` and `budget.gpu_minutes` combine.

    budget = Budget(cfg.budget.n_trials, cfg.budget.gpu_minutes)   # the rule applied
    budget.spent(n_trials=finished + in_flight, minutes=device minutes)  # None, or why it is spent

- neither given: DEFAULT_N_TRIALS trials (`defaulted` is True, and the terminal says so);
- gpu_minutes only: the study runs until its minutes are spent, with no trial cap. Under a
  scheduler most trials stop after an epoch or two, so a default trial count would end the
  study with most of its minutes unspent (issue 18: 20 trials, 0.37 of 1 minute);
- n_trials only: that many finished trials (completed, pruned or failed);
- both: whichever is spent first.

The tuner, the race (each entrant) and the terminal all build a Budget, so they apply this
rule and describe it alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunetorch.words import count

DEFAULT_N_TRIALS = 20  # the trial count when neither budget.n_trials nor budget.gpu_minutes is given


@dataclass(frozen=True)
class Budget:
    n_trials: int | None = None  # finished trials (running ones count, so none starts past it)
    gpu_minutes: float | None = None  # device minutes held by finished trials
    defaulted: bool = field(default=False, init=False)  # True: neither was given, DEFAULT_N_TRIALS applies

    def __post_init__(self) -> None:
        if self.n_trials is None and self.gpu_minutes is None:
            object.__setattr__(self, "n_trials", DEFAULT_N_TRIALS)
            object.__setattr__(self, "defaulted", True)

    def spent(self, n_trials: int, minutes: float) -> str | None:
        """Why no new trial may start (`n_trials` finished or running, `minutes` of finished ones),
        or None while the budget lasts."""
        if self.n_trials is not None and n_trials >= self.n_trials:
            return f"budget: {count(self.n_trials, 'trial')}"
        if self.gpu_minutes is not None and minutes >= self.gpu_minutes:
            return f"budget: budget.gpu_minutes={self.gpu_minutes:g} spent"
        return None
