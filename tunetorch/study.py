"""Study: the public ask / tell API over a strategy and (optionally) a journal.

    space = SearchSpace.from_dict({"x": {"type": "float", "low": -5, "high": 5}})
    study = Study(space, strategy="bayes", seed=0)
    for _ in range(30):
        trial = study.ask()
        study.tell(trial, -(trial.params["x"] - 1) ** 2)   # higher is better (direction="maximize")
    study.best.params

No Hydra and no training: any function can be optimised. Several trials may be asked
before they are told; the strategy sees them as pending. With a journal, every state
change is written through, and a Study opened on an existing journal continues it.
"""

from __future__ import annotations

import math
from typing import Any

from tunetorch import history
from tunetorch.journal import Journal
from tunetorch.space import SearchSpace
from tunetorch.strategies import Strategy, make_strategy
from tunetorch.trial import Trial, TrialState


class Study:
    def __init__(
        self,
        space: SearchSpace | dict,
        strategy: str | Strategy = "random",
        seed: int = 0,
        journal: Journal | None = None,
        direction: str = "maximize",
        **strategy_options: Any,
    ):
        history.sign(direction)  # raises on anything but maximize / minimize
        self.direction = direction
        self.space = space if isinstance(space, SearchSpace) else SearchSpace.from_dict(space)
        if isinstance(strategy, Strategy):
            self.strategy = strategy
        else:
            self.strategy = make_strategy(strategy, self.space, seed=seed, **strategy_options)
        self.journal = journal
        self._trials: dict[int, Trial] = {t.number: t for t in journal.trials()} if journal else {}

    # --- the API -----------------------------------------------------------------------
    def ask(self) -> Trial:
        """A new RUNNING trial with the strategy's params. Raises SpaceExhausted when done."""
        number = max(self._trials, default=-1) + 1
        # Strategies maximise: with direction="minimize" they see negated scores.
        params = self.strategy.suggest(number, history.maximized(self.trials, self.direction))
        if not self.space.contains(params):
            raise RuntimeError(f"strategy {self.strategy.name} proposed {params!r}, outside the space")
        trial = Trial(number=number, params=params, info=dict(self.strategy.last_info))
        self._record(trial)
        return trial

    def tell(self, trial: Trial | int, score: float | None, **fields: Any) -> Trial:
        """Record the score (better as `direction` says). None or a non-finite score marks it FAIL.

        `fields` are Trial fields to record with it: device, device_seconds, error, ...
        """
        number = trial if isinstance(trial, int) else trial.number
        current = self._trials[number]
        if current.finished:
            raise ValueError(f"trial {number} was already told ({current.state.value})")
        if score is not None and not math.isfinite(score):
            fields.setdefault("error", f"non-finite score {score}")
            score = None
        state = fields.pop("state", TrialState.COMPLETE if score is not None else TrialState.FAIL)
        done = current.replace(state=state, score=None if score is None else float(score), **fields)
        self._record(done)
        return done

    def update(self, trial: Trial) -> None:
        """Record a changed trial as it is (the tuner marks re-runs and interruptions)."""
        self._record(trial)

    @property
    def trials(self) -> list[Trial]:
        return [self._trials[n] for n in sorted(self._trials)]

    @property
    def completed(self) -> list[Trial]:
        return [t for t in self.trials if t.state == TrialState.COMPLETE]

    @property
    def best(self) -> Trial | None:
        """The trial with the best score (history.best_trial: ties go to the longer, then the earlier)."""
        return history.best_trial(self.trials, self.direction)

    def _record(self, trial: Trial) -> None:
        self._trials[trial.number] = trial
        if self.journal is not None:
            self.journal.put_trial(trial)
