"""The terminal while a study runs: a line when a trial starts, an epoch tick for trials that
run longer than a few seconds (epochs counted from 1), and a line when it finishes, with the
count, the best so far, the GPU minutes spent (CPU minutes on a CPU) and an estimate of the time
left (tunetorch/time_left.py: this run's pace, a range when trials vary). The wording lives in
reports/terminal.py and tunetorch/words.py."""

from __future__ import annotations

import time
from typing import Any

from tunetorch import time_left
from tunetorch.budget import Budget
from tunetorch.reports import terminal
from tunetorch.words import trials_cost_unit


class Progress:
    def __init__(
        self,
        study: Any,
        budget: Budget,
        metric: str,
        slots: int,
        epochs: int,
    ):
        self.study, self.n_trials, self.gpu_minutes = study, budget.n_trials, budget.gpu_minutes
        self.metric, self.slots, self.epochs = metric, slots, epochs
        self.started_at: dict[int, float] = {}
        self.finish_times: list[float] = []  # monotonic, trials finished in this run

    def started(self, trial: Any, device: str) -> None:
        self.started_at[trial.number] = time.monotonic()
        print(terminal.started_line(trial.number, trial.params, device), flush=True)

    def epoch(self, number: int, metrics: dict) -> None:
        start = self.started_at.get(number)
        if start is not None and time.monotonic() - start > terminal.EPOCH_TICK_AFTER_SECONDS:
            print(terminal.epoch_line(number, metrics, self.epochs, self.metric), flush=True)

    def finished(self, trial: Any) -> None:
        self.finish_times.append(time.monotonic())
        trials = self.study.trials
        left = time_left.estimate(
            trials,
            slots=self.slots,
            n_trials=self.n_trials,
            minutes=self.gpu_minutes,
            finish_times=self.finish_times,
        )
        print(
            terminal.finished_line(
                trial,
                trials,
                direction=self.study.direction,
                metric=self.metric,
                n_trials=self.n_trials,
                unit=trials_cost_unit(trials),
                left=left,
            ),
            flush=True,
        )
