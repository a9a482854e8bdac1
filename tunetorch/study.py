"""Study: the public ask / report / tell API over a strategy, a scheduler and (optionally) a journal.

    space = SearchSpace.from_dict({"x": {"type": "float", "low": -5, "high": 5}})
    study = Study(space, strategy="bayes", strategy_options={"n_startup": 8},
                  scheduler="asha", scheduler_options={"max_resource": 8}, seed=0)
    for _ in range(30):
        trial = study.ask()
        for epoch in range(8):
            if study.report(trial, epoch, curve(trial.params, epoch)):
                break                    # the scheduler stopped it: it is PRUNED now
        else:
            study.tell(trial, curve(trial.params, 7))   # ran to the end: COMPLETE
    study.best.params

No Hydra and no training: any function can be optimised, and any learning curve scheduled.
Several trials may be asked before they are told; the strategy sees them as pending.

- `report` records one epoch's value of the study's metric (better as `direction` says) and
  returns the scheduler's decision. The study keeps every trial's curve, in maximise form,
  and hands the strategy and the scheduler one value (`snapshot()`, tunetorch/snapshot.py):
  the trials, their curves and which are complete. Options go to each as a dict
  (`strategy_options`, `scheduler_options`), as the config's strategy and scheduler groups
  hold them.
- A trial the scheduler stops is PRUNED at once: its score is the best value it reported
  (its `best_epoch`), its `epochs` the epochs it trained. A later `tell` (the search loop
  sends the device seconds when the worker has stopped) keeps all that and records the
  other fields.
- With a journal, every state change and every epoch row is written through (the study is
  the only writer of epoch rows), and a Study opened on an existing journal continues it:
  trials, curves and so every scheduler decision and suggestion are rebuilt from it.
- The study owns its identity: a new journal gets its direction, metric, space, strategy and
  scheduler from the Study (so reports and evaluate read a study made here exactly as one made
  by the command line); a journal of another study is refused, naming the first that differs.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tunetorch import checks, history
from tunetorch.errors import UsageError
from tunetorch.journal import Journal
from tunetorch.schedulers import Scheduler, make_scheduler
from tunetorch.snapshot import Snapshot
from tunetorch.space import SearchSpace
from tunetorch.strategies import Strategy, make_strategy
from tunetorch.trial import Trial, TrialState


@dataclass(frozen=True)
class Suggestion:
    """The strategy's params for trial `number`, and what it says about them (`info`)."""

    number: int
    params: dict[str, Any]
    info: dict[str, Any]


class Study:
    def __init__(
        self,
        space: SearchSpace | dict,
        strategy: str | Strategy = "random",
        seed: int = 0,
        journal: Journal | None = None,
        direction: str = "maximize",
        *,
        strategy_options: Mapping[str, Any] | None = None,
        scheduler: str | Scheduler = "none",
        scheduler_options: Mapping[str, Any] | None = None,
        metric: str = "score",
    ):
        history.sign(direction)  # raises on anything but maximize / minimize
        if not isinstance(metric, str) or not metric:
            raise UsageError(f"metric: {metric!r} must be the name of a reported metric")
        self.direction = direction
        self.metric = metric
        # Checked before numpy sees it: one line naming the seed, not numpy's error.
        self.seed = checks.under().seed("seed", seed)
        self.space = space if isinstance(space, SearchSpace) else SearchSpace.from_dict(space)
        if isinstance(strategy, Strategy):
            if strategy_options:
                raise UsageError("strategy_options: only for a strategy given by name")
            self.strategy = strategy
        else:
            self.strategy = make_strategy(
                strategy, self.space, seed=self.seed, **dict(strategy_options or {})
            )
        if isinstance(scheduler, Scheduler):
            if scheduler_options:
                raise UsageError("scheduler_options: only for a scheduler given by name")
            self.scheduler = scheduler
        else:
            self.scheduler = make_scheduler(scheduler, seed=self.seed, **dict(scheduler_options or {}))
        self.journal = journal
        if journal is not None:
            self._own_identity(journal)
        # Both by trial number: `_seen` holds each trial as strategies and schedulers see it
        # (score in maximise form), kept with `_trials` by `_record`, their one writer.
        self._trials: dict[int, Trial] = {}
        self._seen: dict[int, Trial] = {}
        for trial in sorted(journal.trials() if journal else [], key=lambda t: t.number):
            self._record(trial, write=False)
        # trial number -> {epoch: value of `metric`, maximise form}: the schedulers' rung values.
        self._curves: dict[int, dict[int, float]] = {}
        if journal is not None:
            for number, rows in journal.all_epochs().items():
                curve = {int(r["epoch"]): self._maximised(r[metric]) for r in rows if metric in r}
                if curve:
                    self._curves[number] = curve

    # --- the API -----------------------------------------------------------------------
    def ask(self, suggestion: Suggestion | None = None) -> Trial:
        """A new RUNNING trial with the strategy's params. Raises SpaceExhausted when done.
        `suggestion`: one computed ahead from `prepare()` (the search loop's prefetch)."""
        if suggestion is None:
            suggestion = self.prepare()()
        number = max(self._trials, default=-1) + 1
        if suggestion.number != number:
            raise ValueError(f"a suggestion for trial {suggestion.number} offered as trial {number}")
        if not self.space.contains(suggestion.params):
            raise RuntimeError(
                f"strategy {self.strategy.name} proposed {suggestion.params!r}, outside the space"
            )
        trial = Trial(number=number, params=suggestion.params, info=suggestion.info)
        self._record(trial)
        return trial

    def prepare(self) -> Callable[[], Suggestion]:
        """The next trial's suggestion as a computation over a copy of the history as it is now:
        call it at once (`ask` does) or on another thread while trials run; it does not touch
        the study, so a suggestion stays a function of the history it saw and the seed. Only
        one prepared computation may run at a time (it uses the strategy)."""
        number = max(self._trials, default=-1) + 1
        snapshot = self.snapshot()

        def compute() -> Suggestion:
            params = self.strategy.suggest(number, snapshot)
            return Suggestion(number, params, dict(self.strategy.last_info))

        return compute

    def report(
        self, trial: Trial | int, epoch: int, value: float, metrics: Mapping[str, Any] | None = None
    ) -> bool:
        """Record the metric's `value` after `epoch` (0-based) and return True when the trial
        should stop there; it is then PRUNED. `metrics` are further values for the epoch's
        journal row. Reporting epoch 0 again (a re-run trial) starts its curve afresh."""
        number = self._number(trial)
        current = self._get(number)
        if current.finished:
            raise ValueError(f"trial {number} is {current.state.value}: it takes no more reports")
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch: {epoch!r} must be a whole number >= 0 (epochs count from 0)")
        epoch = int(epoch)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"value: {value!r} for trial {number}, epoch {epoch} is not a number") from None
        if epoch == 0:
            self._curves.pop(number, None)
            if self.journal is not None:
                self.journal.clear_epochs(number)
        if self.journal is not None:
            # The reported value wins over a same-named entry of `metrics`: it is what was decided on.
            self.journal.add_epoch(number, epoch, {**(metrics or {}), self.metric: value})
        maximised = self._maximised(value)
        self._curves.setdefault(number, {})[epoch] = maximised
        # The scheduler decides now, on the study as it is: no copy of the curves.
        seen = Snapshot(tuple(self._seen.values()), self._curves)
        stop = bool(self.scheduler.on_epoch(number, epoch, maximised, seen))
        if stop:
            self._record(self._pruned(current, epoch))
        return stop

    def tell(self, trial: Trial | int, score: float | None, **fields: Any) -> Trial:
        """Record the score (better as `direction` says). None or a non-finite score marks it FAIL.

        `fields` are Trial fields to record with it: device, device_seconds, error, ...
        `epochs` defaults to the epochs reported. A PRUNED trial stays PRUNED with the score,
        epochs and best_epoch its reports gave it; only the other fields are recorded.
        """
        number = self._number(trial)
        current = self._get(number)
        if current.state == TrialState.PRUNED:
            for key in ("state", "score", "epochs", "best_epoch"):
                fields.pop(key, None)
            done = current.replace(**fields)
            self._record(done)
            return done
        if current.finished:
            raise ValueError(f"trial {number} was already told ({current.state.value})")
        if score is not None and not math.isfinite(score):
            fields.setdefault("error", f"non-finite score {score}")
            score = None
        if fields.get("epochs") is None and self._curves.get(number):
            fields["epochs"] = max(self._curves[number]) + 1
        state = fields.pop("state", TrialState.COMPLETE if score is not None else TrialState.FAIL)
        done = current.replace(state=state, score=None if score is None else float(score), **fields)
        self._record(done)
        return done

    def update(self, trial: Trial) -> None:
        """Record a changed trial as it is (the tuner marks re-runs and interruptions)."""
        self._record(trial)

    def trial(self, number: int | None) -> Trial | None:
        """Trial `number`, or None when the study has no such trial."""
        return self._trials.get(number)

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

    def snapshot(self) -> Snapshot:
        """The study as its strategy and scheduler see it (tunetorch/snapshot.py), a copy: the
        trials by number and their curves, scores and values in maximise form (with
        direction="minimize", negated)."""
        curves = {n: dict(c) for n, c in self._curves.items()}
        return Snapshot(tuple(self._seen[n] for n in sorted(self._seen)), curves)

    @property
    def curves(self) -> dict[int, dict[int, float]]:
        """trial number -> {epoch: reported value}, as reported (not in maximise form); a copy."""
        s = history.sign(self.direction)
        return {n: {e: s * v for e, v in c.items()} for n, c in sorted(self._curves.items())}

    # --- internals -------------------------------------------------------------------------
    def _identity(self) -> dict[str, str]:
        """What makes this study itself, as the journal's meta keeps it (reports read these)."""
        return {
            "direction": self.direction,
            "metric": self.metric,
            "space": json.dumps(self.space.to_dict()),
            "strategy": self.strategy.name,
            "scheduler": self.scheduler.name,
        }

    def _own_identity(self, journal: Journal) -> None:
        """Write the identity to a journal that has none; refuse a journal of another study."""
        mine = self._identity()
        for key, value in mine.items():
            stored = journal.get_meta(key)
            if stored is not None and _comparable(key, stored) != _comparable(key, value):
                raise UsageError(
                    f"{key}: {_shown(key, stored)} -> {_shown(key, value)}: the journal {journal.path} "
                    "holds another study; open it with its own settings, or use a new journal"
                )
        for key, value in mine.items():
            if journal.get_meta(key) is None:
                journal.set_meta(key, value)

    def _maximised(self, value: Any) -> float:
        """A value in maximise form; a missing or non-finite one (a diverged epoch) is the worst."""
        if value is None or not math.isfinite(value):
            return -math.inf
        return history.sign(self.direction) * float(value)

    def _pruned(self, trial: Trial, epoch: int) -> Trial:
        """The trial stopped after `epoch`: scored by its best reported value (the earliest on a tie)."""
        finite = [
            (v, e) for e, v in sorted(self._curves[trial.number].items()) if e <= epoch and v > -math.inf
        ]
        best = max(finite, key=lambda ve: (ve[0], -ve[1]), default=None)
        return trial.replace(
            state=TrialState.PRUNED,
            score=None if best is None else history.sign(self.direction) * best[0],
            best_epoch=None if best is None else best[1],
            epochs=epoch + 1,
        )

    def _number(self, trial: Trial | int) -> int:
        return trial.number if isinstance(trial, Trial) else trial

    def _get(self, number: int) -> Trial:
        if number not in self._trials:
            have = f"trials 0..{max(self._trials)}" if self._trials else "no trials yet"
            raise ValueError(f"trial {number!r} is not a trial of this study (it has {have})")
        return self._trials[number]

    def _record(self, trial: Trial, write: bool = True) -> None:
        self._trials[trial.number] = trial
        self._seen[trial.number] = history.maximized([trial], self.direction)[0]
        if write and self.journal is not None:
            self.journal.put_trial(trial)


def _comparable(key: str, value: str) -> object:
    """A meta value in a form that compares by meaning (a space by its parsed dimensions)."""
    if key != "space":
        return value
    try:
        return SearchSpace.from_dict(json.loads(value)).to_dict()
    except (UsageError, ValueError, TypeError):
        return value


def _shown(key: str, value: str) -> str:
    return value if key == "space" else repr(value)
