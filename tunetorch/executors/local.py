"""The local executor: one worker process per slot, slots spread over devices, device seconds measured.

Slots: every CUDA device gets `trials_per_device` slots; without a GPU there are
`workers` CPU slots. Each slot is one spawned process (never forked: CUDA does not
survive a fork), pinned to its device for life. A worker runs `setup(device)` once
(for training: load the data set onto its device) and then one task at a time.

The main process does no CUDA work: it hands tasks to idle slots and reads events.
There is no batch barrier: the tuner refills a slot the moment its trial ends.

Device seconds: a worker synchronises its device before and after each task, so the
kernels a trial queued are counted in the trial that queued them. Slots that share a device
(same device string on this machine) share its time: a trial is charged its share of the
time it held the device (tunetorch.executors.ledger), so the summed device seconds of a
study are the time its devices were held. The raw synchronised time is `wall_seconds`.

Stop decisions: with `decide=True`, a task's `emit("epoch", payload)` waits for the main
process to answer with `pool.decide(slot, stop)` and returns that answer, so a trial stops
right after the epoch its scheduler judged. Every "epoch" event must then be answered.

Transport: each worker has two one-way pipes of its own (tasks in, events out), never a
queue shared between workers. A shared multiprocessing.Queue has one write lock for all
its writers: a worker killed while holding it (OOM killer, SIGKILL) would silence every
other worker for good. The main process waits on every pipe and every worker's exit at
once, so a death is seen the moment it happens.

Why one long module: the worker's loop, its two pipes, the stop channel and the handling of a
worker's death are one protocol; split, each half would be unreadable without the other.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_any
from typing import Any

from tunetorch.errors import EnvironmentFault, UsageError
from tunetorch.executors.ledger import DeviceLedger

# A task function runs one trial in a worker: task(state, number, params, emit) -> result dict.
# `emit(kind, payload)` sends progress (e.g. per-epoch metrics) to the main process; for an
# "epoch" it returns the main process's stop decision (always False without decide=True).
Setup = Callable[[str], Any]
Task = Callable[[Any, int, dict, Callable[[str, Any], bool]], dict]


@dataclass
class Event:
    kind: str  # "ready" | "epoch" | "done" | "died" | "setup_failed"
    # done's payload: result, error, device_seconds (the trial's share of its device's held
    # time), wall_seconds (its raw synchronised time on the slot), node (where it ran), and
    # "fault" when the task raised EnvironmentFault (next_event raises it: the study stops)
    slot: int
    number: int | None = None
    payload: Any = None


@dataclass
class _Slot:
    index: int
    device: str
    process: Any = None
    tasks: Any = None  # the write end of the worker's task pipe
    events: Any = None  # the read end of the worker's event pipe
    dead: bool = False  # its worker has exited; a "died" event is queued for it
    number: int | None = None  # the trial it runs, None when idle
    started: float = 0.0
    device_name: str | None = None
    busy_seconds: float = field(default=0.0)


def visible_cuda_devices() -> int:
    """How many CUDA devices this process may use (honours CUDA_VISIBLE_DEVICES).

    torch.cuda.device_count() asks NVML where it can and does not create a CUDA context,
    so the main process stays free of CUDA work.
    """
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def slot_devices(devices: Any, workers: int, trials_per_device: int, n_cuda: int | None = None) -> list[str]:
    """The device of every slot, from the `tuner` settings.

    devices: "auto" (every visible GPU, else the CPU), "cpu", or a list of CUDA indices.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"tuner.workers: {workers!r} must be a whole number >= 1")
    if isinstance(trials_per_device, bool) or not isinstance(trials_per_device, int) or trials_per_device < 1:
        raise UsageError(f"tuner.trials_per_device: {trials_per_device!r} must be a whole number >= 1")
    if devices == "cpu":
        return ["cpu"] * workers
    n_cuda = visible_cuda_devices() if n_cuda is None else n_cuda
    if devices == "auto":
        indices = list(range(n_cuda))
        if not indices:
            return ["cpu"] * workers
    elif isinstance(devices, Sequence) and not isinstance(devices, str) and len(devices) > 0:
        indices = list(devices)
        bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_cuda]
        if bad:
            raise UsageError(
                f"tuner.devices: {bad[0]!r} is not a visible CUDA device index (this machine has {n_cuda})"
            )
    else:
        raise UsageError(f"tuner.devices: {devices!r} is not auto, cpu or a list of CUDA indices")
    return [f"cuda:{i}" for i in indices for _ in range(trials_per_device)]


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    if device == "cpu":
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return "CPU: " + line.split(":", 1)[1].strip()
        except OSError:
            pass
        import platform

        return "CPU: " + (platform.processor() or platform.machine())
    return device  # injected test devices


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def _exit_with_parent() -> None:
    """End this worker when the tuner dies (even by SIGKILL), instead of holding its device
    for a trial nobody will record."""
    import threading

    parent = mp.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True).start()


def _limit_threads(threads: int) -> None:
    """Give torch `threads` intra-op threads without importing it: a task that never uses
    torch starts in a tenth of the time. torch reads OMP_NUM_THREADS when it loads."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


def _worker_main(
    slot: int,
    device: str,
    setup: Setup,
    task: Task,
    tasks,
    events,
    threads: int,
    decide: bool,
    ledger_dir: str,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    _exit_with_parent()
    if threads:
        _limit_threads(threads)
    try:
        if device.startswith("cuda"):
            import torch

            torch.cuda.set_device(device)
        state = setup(device)
        if threads:
            _limit_threads(threads)  # in case setup imported torch some other way
        name = device_name(device)
    except BaseException as e:  # noqa: BLE001 - reported to the main process, which stops
        events.send(Event("setup_failed", slot, payload=_reason(e, full=True)))
        return
    events.send(Event("ready", slot, payload=name))
    node = socket.gethostname()
    ledger = DeviceLedger(ledger_dir, node, device)
    key = f"{os.getpid()}:{slot}"
    while True:
        try:
            item = tasks.recv()
        except EOFError:  # the tuner closed the pipe
            return
        if item is None:
            return
        _, number, params = item

        def emit(kind: str, payload: Any, number: int = number) -> bool:
            events.send(Event(kind, slot, number, payload))
            if not (decide and kind == "epoch"):
                return False
            answer = tasks.recv()  # ("decide", stop); EOF: the tuner is gone, and so are we
            if answer is None:
                os._exit(0)
            return bool(answer[1])

        result, error, fault = None, None, None
        _synchronize(device)
        ledger.start(key)
        try:
            result = task(state, number, params, emit)
            _synchronize(device)
        except EnvironmentFault as e:  # the environment's (a full disk): the driver stops the study
            error = fault = str(e)
            _recover(device)
        except Exception as e:  # a failed trial, not a failed worker: report it and go on
            error = _reason(e)
            _recover(device)
        share, wall = ledger.stop(key)
        payload = {
            "result": result,
            "error": error,
            "device_seconds": share,
            "wall_seconds": wall,
            "node": node,
        }
        if fault is not None:
            payload["fault"] = fault
        events.send(Event("done", slot, number, payload))


def raise_fault(event: Event) -> None:
    """A trial that ended on a fault of the environment (its worker could not write its weights:
    a full disk, a read-only folder) stops the study with that one line, EnvironmentFault, instead
    of being journaled as failed: it stays unfinished, and runs again when the study is resumed."""
    fault = event.payload.get("fault") if isinstance(event.payload, dict) else None
    if fault:
        raise EnvironmentFault(
            f"{fault}; the study stopped here: completed trials are kept in the journal, and once "
            "the fault is gone (space freed, the folder writable) the same command resumes the study"
        )


def _reason(e: BaseException, full: bool = False) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    if "out of memory" in text.lower():
        text = f"CUDA out of memory: {e}"
    if full:
        text += "\n" + "".join(traceback.format_exception(e))
    return text.splitlines()[0] if not full else text


def _recover(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        try:
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()  # after an OOM, give the memory back before the next trial
        except Exception:
            pass


class Pool:
    """Worker processes over slots. submit() to an idle slot; next_event() to hear back."""

    trains_meanwhile = True  # workers train while the driver computes (it may prepare ahead)

    def __init__(
        self,
        devices: Sequence[str],
        setup: Setup,
        task: Task,
        threads: int | None = None,
        decide: bool = False,
    ):
        self._ctx = mp.get_context("spawn")
        self._setup, self._task, self._decide = setup, task, decide
        # The device ledgers of this pool's workers (tunetorch.executors.ledger), removed on close.
        self._ledger_dir = tempfile.mkdtemp(prefix="tunetorch-ledger-")
        # removed on close, or when the pool is collected or Python exits without a close
        self._remove_ledgers = weakref.finalize(self, shutil.rmtree, self._ledger_dir, ignore_errors=True)
        self._pending: deque[Event] = deque()  # read from the workers, not yet handed out
        cpu_slots = sum(d == "cpu" for d in devices)
        # CPU workers share the cores instead of each starting one thread per core.
        self._threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // max(1, cpu_slots))
        self.slots = [_Slot(i, d) for i, d in enumerate(devices)]
        for slot in self.slots:
            self._start(slot)

    def _start(self, slot: _Slot) -> None:
        task_reader, slot.tasks = self._ctx.Pipe(duplex=False)
        slot.events, event_writer = self._ctx.Pipe(duplex=False)
        slot.number, slot.dead = None, False
        threads = self._threads if slot.device == "cpu" else 0
        slot.process = self._ctx.Process(
            target=_worker_main,
            args=(
                slot.index,
                slot.device,
                self._setup,
                self._task,
                task_reader,
                event_writer,
                threads,
                self._decide,
                self._ledger_dir,
            ),
            daemon=True,
            name=f"tunetorch-worker-{slot.index}",
        )
        slot.process.start()
        # The worker holds its own ends now. Closing ours lets a read see the end of the
        # pipe once the worker is gone, instead of waiting for ever.
        task_reader.close()
        event_writer.close()

    # --- dispatch --------------------------------------------------------------------
    def idle_slots(self) -> list[int]:
        # A slot whose worker died is not idle until the "died" event has been handed out
        # and a new worker started: until then its trial may still be that worker's.
        return [s.index for s in self.slots if s.number is None and not s.dead]

    def in_flight(self) -> dict[int, int]:
        """trial number -> slot, for every running trial."""
        return {s.number: s.index for s in self.slots if s.number is not None}

    def submit(self, slot: int, number: int, params: dict) -> str:
        """Start trial `number` on an idle slot; returns the slot's device."""
        s = self.slots[slot]
        assert s.number is None, f"slot {slot} is busy with trial {s.number}"
        s.number, s.started = number, time.monotonic()
        try:
            s.tasks.send(("trial", number, params))
        except OSError:
            pass  # its worker has just died: next_event reports that, with this trial
        return s.device

    def decide(self, slot: int, stop: bool) -> None:
        """Answer the "epoch" event of the trial on `slot` (only with decide=True): stop it
        after this epoch, or let it train on."""
        if not self._decide:
            return
        try:
            self.slots[slot].tasks.send(("decide", bool(stop)))
        except OSError:
            pass  # its worker has just died: next_event reports that

    def next_event(self, timeout: float = 1.0) -> Event | None:
        """The next event from any worker, or None after `timeout` seconds without one.

        A worker that exited yields a "died" event, after everything it sent before it
        died, with the trial it was running (None if idle); a fresh worker takes its slot.
        """
        if not self._pending:
            self._collect(timeout)
        if not self._pending:
            return None
        event = self._pending.popleft()
        slot = self.slots[event.slot]
        if event.kind == "ready":
            slot.device_name = event.payload
        elif event.kind == "done" and slot.number == event.number:
            slot.number = None
            slot.busy_seconds += event.payload["wall_seconds"]
        if event.kind == "done":
            raise_fault(event)
        elif event.kind == "died":
            event.number = slot.number  # None when its "done" came through before it died
            self._start(slot)  # a fresh worker; the trial it ran is the tuner's to retry or fail
        return event

    def _collect(self, timeout: float) -> None:
        """Wait for events or exits; queue what arrived, a dead worker's last words first."""
        live = [s for s in self.slots if not s.dead]
        owner = {s.events: s for s in live} | {s.process.sentinel: s for s in live}
        for ready in wait_any(list(owner), timeout):
            s = owner[ready]
            if s.dead:  # both its pipe and its exit were ready; the exit has read the pipe
                continue
            if ready is s.events:
                self._read(s, limit=64)  # bounded, so that one chatty worker cannot starve the rest
            else:
                s.process.join()
                self._read(s, limit=None)  # everything it sent before it died, then EOF
                s.dead = True
                s.events.close()
                s.tasks.close()
                reason = f"worker process exited with status {s.process.exitcode}"
                self._pending.append(Event("died", s.index, payload=reason))

    def _read(self, s: _Slot, limit: int | None) -> None:
        n = 0
        try:
            while (limit is None or n < limit) and s.events.poll(0):
                self._pending.append(s.events.recv())
                n += 1
        except (EOFError, OSError):  # the worker is gone; a message it was cut off in is lost
            pass

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker: politely, then by force. In-flight trials are abandoned."""
        for s in self.slots:
            if s.process.is_alive():
                if s.number is not None:
                    s.process.terminate()
                else:
                    try:
                        s.tasks.send(None)
                    except OSError:
                        pass
        deadline = time.monotonic() + timeout
        for s in self.slots:
            s.process.join(max(0.0, deadline - time.monotonic()))
            if s.process.is_alive():
                s.process.kill()
                s.process.join()
            s.tasks.close()
            s.events.close()
        self._remove_ledgers()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
