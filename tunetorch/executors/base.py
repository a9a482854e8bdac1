"""The executor contract: what the search loop (tunetorch.search) drives, and what it hears back.

An executor owns slots (each one trial at a time, on one device) and runs a task on them:

    executor.idle_slots()                    -> slots free for a trial now
    executor.submit(slot, number, params)    -> the slot's device; the trial starts
    executor.next_event(timeout)             -> the next Event, or None after `timeout` seconds
    executor.decide(slot, stop)              -> the answer to that slot's last "epoch" event
    executor.in_flight()                     -> trial number -> slot, for every running trial
    executor.pending_slots()                 -> slots being (re)placed: not idle yet, but coming
    executor.driver_device()                 -> a device of this process's machine (the evaluation)
    executor.close()                         -> stop every worker; trials in flight are abandoned

Events, and the type of each one's payload:

    "ready"          str    the slot's device name (a worker has set up and waits for a trial)
    "epoch"          dict   the task's metrics of one epoch, "epoch" among them
    "done"           Done   the trial ended: its result or error, and the time it held its device
    "died"           str    why the worker (and the trial it ran, if any) is gone
    "setup_failed"   str    a worker's setup raised: the reason with its traceback (a bug)
    "setup_refused"  str    a worker's setup raised UsageError: bad input, one line

An implementation is one module of this package that imports only this contract and the shared
steps (executors/layout.py, executors/device.py, executors/ledger.py), plus one line in
executors/__init__.py's BACKENDS when `tuner.backend` may choose it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunetorch.errors import EnvironmentFault

# A task runs one trial on a worker: task(state, number, params, emit) -> result dict, where
# `state` is what setup(device) returned once for that worker. `emit(kind, payload)` sends
# progress (an "epoch" and its metrics) to the driver; for an "epoch" it returns the driver's
# stop decision (always False unless the executor was opened to decide).
Setup = Callable[[str], Any]
Emit = Callable[[str, Any], bool]
Task = Callable[[Any, int, dict, Emit], dict]


@dataclass
class Done:
    """How a trial ended on its slot: the payload of a "done" event."""

    result: dict | None  # the task's return value; None when it raised
    error: str | None  # one line when the task raised, else None
    device_seconds: float  # the trial's share of its device's held time (tunetorch.executors.ledger)
    wall_seconds: float  # its raw synchronised time on the slot
    node: str | None = None  # where it ran (a host name, a Ray node id); None when simulated
    fault: str | None = None  # the environment's fault it raised (a full disk): the study stops


@dataclass
class Event:
    kind: str  # "ready" | "epoch" | "done" | "died" | "setup_failed" | "setup_refused"
    slot: int
    number: int | None = None  # the trial, for "epoch", "done" and "died"
    payload: Any = None  # typed per kind: see the module's docstring


@dataclass(kw_only=True)
class Slot:
    """What the search loop reads of a slot; each executor's slot adds its own bookkeeping."""

    index: int
    device: str  # "cuda:N", "cpu", or an executor's own name ("simulated")
    device_name: str | None = None  # known once the slot's worker is ready
    busy_seconds: float = 0.0  # summed wall seconds of the trials it finished
    number: int | None = None  # the trial it runs, None when idle


class Executor(ABC):
    """Slots that run trials. A subclass sets `slots` and implements the abstract methods."""

    slots: list[Slot]
    # Whether workers train while the driver computes: then the loop may prepare the next
    # suggestion ahead (tunetorch.prefetch); a simulated clock has nothing to overlap.
    trains_meanwhile: bool = True

    @abstractmethod
    def idle_slots(self) -> list[int]: ...

    @abstractmethod
    def submit(self, slot: int, number: int, params: dict) -> str:
        """Start trial `number` on an idle slot; returns the slot's device."""

    @abstractmethod
    def decide(self, slot: int, stop: bool) -> None:
        """Answer the last "epoch" event of the trial on `slot`: stop after it, or train on."""

    @abstractmethod
    def next_event(self, timeout: float = 1.0) -> Event | None:
        """The next event, or None after `timeout` seconds without one. A "done" or "died" frees
        its slot as it is handed out (not as it is read): until the search loop has recorded the
        trial, it still counts as in flight for the budget."""

    @abstractmethod
    def close(self, timeout: float = 10.0) -> None: ...

    def in_flight(self) -> dict[int, int]:
        """trial number -> slot, for every running trial."""
        return {s.number: s.index for s in self.slots if s.number is not None}

    def pending_slots(self) -> int:
        """Slots whose worker is being placed or set up again (after a death): not idle yet, but
        the search loop waits for them to retry its trials."""
        return 0

    def driver_device(self) -> str:
        """A device of this process's machine, for work done here (the final evaluation): a GPU
        of a slot, else the CPU."""
        return next((s.device for s in self.slots if s.device.startswith("cuda")), "cpu")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def raise_fault(event: Event) -> None:
    """A trial that ended on a fault of the environment (its worker could not write its weights:
    a full disk, a read-only folder) stops the study with that one line, EnvironmentFault, instead
    of being journaled as failed: it stays unfinished, and runs again when the study is resumed."""
    if event.kind == "done" and event.payload.fault:
        raise EnvironmentFault(
            f"{event.payload.fault}; the study stopped here: completed trials are kept in the journal, "
            "and once the fault is gone (space freed, the folder writable) the same command resumes the study"
        )
