"""The in-process executor: trials as generators in this process, on simulated slots and a simulated clock.

The search loop (tunetorch.search.run_search) drives it exactly as it drives the worker pool,
through the executor contract (tunetorch.executors.base) and its events. It exists for objectives that cost
nothing to compute but stand for something that does (the race's synthetic landscapes), so
that the budget rule, in-flight accounting, schedulers and failures are the loop's, once.

A task is a generator function, `task(number, params)`, that trains one epoch per step:

    def task(number, params):
        for epoch in range(epochs):
            stop = yield {"epoch": epoch, "score": value}, seconds   # one epoch and what it cost
            if stop:
                break
        return {"score": best, "epoch": best_epoch, "epochs": epoch + 1}

The executor runs a discrete-event simulation. A trial's next step (an epoch, or its end) is
computed as soon as the step before it has been decided (`decide`, which sends the
scheduler's answer into the generator), and is due when its slot's simulated clock has
advanced by that epoch's seconds. `next_event` hands out the step due first (ties to the
lower slot): an "epoch" event with the metrics the trial yielded, or a "done" event with its
result and the device seconds it was charged (the sum of its epochs' seconds). So several
slots interleave as workers of equal speed would, and every run of the same study makes the
same decisions in the same order. An exception in the task is a failed trial ("done" with the
error), as in a worker. Nothing waits: `timeout` is ignored, and None means nothing is in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from tunetorch.executors.base import Done, Event, Executor, Slot
from tunetorch.executors.device import reason

# task(number, params) -> a generator yielding (epoch payload, device seconds of that epoch),
# receiving the stop decision, returning the result {"score", "epoch", "epochs"}.
Task = Callable[[int, dict], Generator[tuple[dict, float], bool, dict]]


@dataclass(kw_only=True)
class _Slot(Slot):
    trial: Any = None  # the trial's generator
    clock: float = 0.0  # simulated time at which its work so far ends
    charged: float = 0.0  # device seconds of the running trial so far
    due: Event | None = None  # its next step, handed out when the clock reaches `clock`
    awaiting: bool = False  # an "epoch" event was handed out; the trial waits for the decision


class InProcessExecutor(Executor):
    """Simulated slots that run generator tasks in this process, one epoch per step."""

    slots: list[_Slot]

    # Nothing trains while the driver computes (the clock is simulated): nothing to prepare ahead.
    trains_meanwhile = False

    def __init__(self, task: Task, slots: int = 1, device: str = "simulated", device_name: str | None = None):
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots: {slots!r} must be a whole number >= 1")
        self._task = task
        self._now = 0.0  # the simulated time of the last event handed out
        self.slots = [_Slot(index=i, device=device, device_name=device_name or device) for i in range(slots)]

    # --- dispatch --------------------------------------------------------------------------
    def idle_slots(self) -> list[int]:
        return [s.index for s in self.slots if s.number is None]

    def submit(self, slot: int, number: int, params: dict) -> str:
        """Start trial `number` on an idle slot now; returns the slot's device."""
        s = self.slots[slot]
        assert s.number is None, f"slot {slot} is busy with trial {s.number}"
        s.number, s.charged, s.awaiting = number, 0.0, False
        s.clock = max(s.clock, self._now)  # a slot that idled starts its trial now, not in the past
        try:
            s.trial = self._task(number, dict(params))
        except Exception as e:  # the task could not even start: a failed trial
            s.trial = _raising(e)
        self._step(s, None)
        return s.device

    def decide(self, slot: int, stop: bool) -> None:
        """Answer the last "epoch" event of the trial on `slot`: stop it after that epoch, or go on."""
        s = self.slots[slot]
        if s.number is not None and s.awaiting:
            self._step(s, bool(stop))

    def next_event(self, timeout: float = 0.0) -> Event | None:
        """The step due first; None when no trial is in flight. `timeout` is ignored: nothing waits."""
        for s in self.slots:  # an epoch nobody answered: the trial goes on, as without a scheduler
            if s.number is not None and s.awaiting:
                self._step(s, False)
        due = [s for s in self.slots if s.due is not None]
        if not due:
            return None
        s = min(due, key=lambda d: (d.clock, d.index))
        event, s.due = s.due, None
        self._now = max(self._now, s.clock)
        if event.kind == "epoch":
            s.awaiting = True
        else:
            s.busy_seconds += s.charged
            s.number, s.trial = None, None
        return event

    def _step(self, s: _Slot, answer: bool | None) -> None:
        """Run the trial on `s` to its next yield (one epoch) or its end; schedule that step."""
        s.awaiting = False
        try:
            payload, seconds = next(s.trial) if answer is None else s.trial.send(answer)
        except StopIteration as done:
            s.due = self._done(s, done.value, None)
            return
        except Exception as e:  # a failed trial, not a failed executor
            s.due = self._done(s, None, reason(e))
            return
        seconds = float(seconds)
        s.clock += seconds
        s.charged += seconds
        s.due = Event("epoch", s.index, s.number, payload)

    def _done(self, s: _Slot, result: Any, error: str | None) -> Event:
        # simulated: the slot held its device for exactly the seconds charged
        return Event("done", s.index, s.number, Done(result, error, s.charged, s.charged))

    def close(self, timeout: float = 0.0) -> None:
        """Abandon the trials in flight (their generators are closed)."""
        for s in self.slots:
            if s.trial is not None:
                s.trial.close()
            s.number, s.trial, s.due, s.awaiting = None, None, None, False


def _raising(e: Exception):
    raise e
    yield  # unreachable: it makes this a generator, which raises on its first step
