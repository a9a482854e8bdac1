"""The local executor: one worker process per slot, slots spread over devices, device seconds measured.

Just over 350 lines as one backend: the worker loop, its pipes and the replacement of a dead
worker belong together.

Slots (the layout, executors/layout.py): every CUDA device gets `trials_per_device` slots;
without a GPU there are `workers` CPU slots. Each slot is one spawned process (never forked:
CUDA does not survive a fork), pinned to its device for life. A worker runs `setup(device)`
once (for training: load the data set onto its device) and then one task at a time.

The main process does no CUDA work: it hands tasks to idle slots and reads events.
There is no batch barrier: the tuner refills a slot the moment its trial ends.

Device seconds: a worker runs each task as every executor's worker does (executors/device.py):
synchronised before and after, so the kernels a trial queued are counted in the trial that
queued them. Slots that share a device
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
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_any
from typing import Any

from tunetorch.errors import UsageError
from tunetorch.executors.base import Event, Executor, Setup, Slot, Task, raise_fault
from tunetorch.executors.device import device_name, run_task, setup_event
from tunetorch.executors.layout import Layout
from tunetorch.executors.ledger import DeviceLedger

# Each CPU worker process holds its own torch and its own copy of the data: about this much.
CPU_WORKER_BYTES = 500 * 2**20


@dataclass(kw_only=True)
class _Slot(Slot):
    process: Any = None
    tasks: Any = None  # the write end of the worker's task pipe
    events: Any = None  # the read end of the worker's event pipe
    dead: bool = False  # its worker has exited; a "died" event is queued for it
    started: float = 0.0


def preflight(tuner: Any) -> None:
    """The local backend's checks, before the study directory is made: the layout against this
    machine's CUDA devices, and its memory against the CPU workers."""
    check_cpu_workers(slot_devices(tuner.devices, tuner.workers, tuner.trials_per_device))


def start(tuner: Any, setup: Setup, task: Task, decide: bool = False) -> Pool:
    """Worker processes for the `tuner` settings' slots (the layout checked again, as preflight does)."""
    return Pool(
        slot_devices(tuner.devices, tuner.workers, tuner.trials_per_device), setup, task, decide=decide
    )


def visible_cuda_devices() -> int:
    """How many CUDA devices this process may use (honours CUDA_VISIBLE_DEVICES).

    torch.cuda.device_count() asks NVML where it can and does not create a CUDA context,
    so the main process stays free of CUDA work.
    """
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def slot_devices(devices: Any, workers: int, trials_per_device: int, n_cuda: int | None = None) -> list[str]:
    """The device of every slot (the layout, tunetorch.executors.layout, on this machine's GPUs)."""
    layout = Layout.parse(devices, workers, trials_per_device)
    gpus: list[int] = []
    if layout.devices != "cpu":  # (a CPU layout asks nothing of CUDA: torch is not imported)
        n_cuda = visible_cuda_devices() if n_cuda is None else n_cuda
        gpus = list(range(n_cuda)) if layout.listed is None else list(layout.listed)
        bad = [i for i in gpus if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_cuda]
        if bad:
            raise UsageError(
                f"tuner.devices: {bad[0]!r} is not a visible CUDA device index (this machine has {n_cuda})"
            )
    return ["cpu" if g is None else f"cuda:{g}" for g in layout.slots(gpus)]


def check_cpu_workers(devices: list[str]) -> None:
    """Refuse more CPU workers than the machine's available memory can hold."""
    n = sum(d == "cpu" for d in devices)
    available = _available_memory()
    if n > 1 and available is not None and n * CPU_WORKER_BYTES > available:
        fits = max(1, available // CPU_WORKER_BYTES)
        raise UsageError(
            f"tuner.workers: {n} CPU workers would need about {n * CPU_WORKER_BYTES / 2**30:.0f} GiB "
            f"(each holds its own torch and data, ~0.5 GiB); {available / 2**30:.1f} GiB is available: "
            f"use at most {fits}"
        )


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


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
        events.send(setup_event(slot, e))
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

        done = run_task(task, state, number, params, emit, device, ledger, key, node)
        events.send(Event("done", slot, number, done))


class Pool(Executor):
    """Worker processes over slots. submit() to an idle slot; next_event() to hear back."""

    slots: list[_Slot]

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
        self.slots = [_Slot(index=i, device=d) for i, d in enumerate(devices)]
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
            slot.busy_seconds += event.payload.wall_seconds
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
