"""The pool: one worker process per slot, slots spread over devices, device seconds measured.

Slots: every CUDA device gets `trials_per_device` slots; without a GPU there are
`workers` CPU slots. Each slot is one spawned process (never forked: CUDA does not
survive a fork), pinned to its device for life. A worker runs `setup(device)` once
(for training: load the data set onto its device) and then one task at a time.

The main process does no CUDA work: it hands tasks to idle slots and reads events.
There is no batch barrier: the tuner refills a slot the moment its trial ends.

Device seconds: a worker synchronises its device before and after each task, so the
kernels a trial queued are counted in the trial that queued them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunetorch.errors import UsageError

# A task function runs one trial in a worker: task(state, number, params, emit) -> result dict.
# `emit(kind, payload)` sends progress (e.g. per-epoch metrics) to the main process.
Setup = Callable[[str], Any]
Task = Callable[[Any, int, dict, Callable[[str, Any], None]], dict]


@dataclass
class Event:
    kind: str  # "ready" | "epoch" | "done" | "died" | "setup_failed"
    slot: int
    number: int | None = None
    payload: Any = None


@dataclass
class _Slot:
    index: int
    device: str
    process: Any = None
    tasks: Any = None
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


def _worker_main(slot: int, device: str, setup: Setup, task: Task, tasks, events, threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    _exit_with_parent()
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        if device.startswith("cuda"):
            import torch

            torch.cuda.set_device(device)
        state = setup(device)
        name = device_name(device)
    except BaseException as e:  # noqa: BLE001 - reported to the main process, which stops
        events.put(Event("setup_failed", slot, payload=_reason(e, full=True)))
        return
    events.put(Event("ready", slot, payload=name))
    while True:
        item = tasks.get()
        if item is None:
            return
        number, params = item

        def emit(kind: str, payload: Any, number: int = number) -> None:
            events.put(Event(kind, slot, number, payload))

        _synchronize(device)
        start = time.perf_counter()
        result, error = None, None
        try:
            result = task(state, number, params, emit)
            _synchronize(device)
        except Exception as e:  # a failed trial, not a failed worker: report it and go on
            error = _reason(e)
            _recover(device)
        events.put(
            Event(
                "done",
                slot,
                number,
                {"result": result, "error": error, "device_seconds": time.perf_counter() - start},
            )
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

    def __init__(self, devices: Sequence[str], setup: Setup, task: Task, threads: int | None = None):
        self._ctx = mp.get_context("spawn")
        self._events = self._ctx.Queue()
        self._setup, self._task = setup, task
        cpu_slots = sum(d == "cpu" for d in devices)
        # CPU workers share the cores instead of each starting one thread per core.
        self._threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // max(1, cpu_slots))
        self.slots = [_Slot(i, d) for i, d in enumerate(devices)]
        for slot in self.slots:
            self._start(slot)

    def _start(self, slot: _Slot) -> None:
        slot.tasks = self._ctx.Queue()
        slot.number = None
        threads = self._threads if slot.device == "cpu" else 0
        slot.process = self._ctx.Process(
            target=_worker_main,
            args=(slot.index, slot.device, self._setup, self._task, slot.tasks, self._events, threads),
            daemon=True,
            name=f"tunetorch-worker-{slot.index}",
        )
        slot.process.start()

    # --- dispatch --------------------------------------------------------------------
    def idle_slots(self) -> list[int]:
        return [s.index for s in self.slots if s.number is None]

    def in_flight(self) -> dict[int, int]:
        """trial number -> slot, for every running trial."""
        return {s.number: s.index for s in self.slots if s.number is not None}

    def submit(self, slot: int, number: int, params: dict) -> str:
        """Start trial `number` on an idle slot; returns the slot's device."""
        s = self.slots[slot]
        assert s.number is None, f"slot {slot} is busy with trial {s.number}"
        s.number, s.started = number, time.monotonic()
        s.tasks.put((number, params))
        return s.device

    def next_event(self, timeout: float = 1.0) -> Event | None:
        """The next event from any worker; a worker that died mid-trial yields a "died" event."""
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return self._check_alive()
        slot = self.slots[event.slot]
        if event.kind == "ready":
            slot.device_name = event.payload
        elif event.kind == "done" and slot.number == event.number:
            slot.number = None
            slot.busy_seconds += event.payload["device_seconds"]
        return event

    def _check_alive(self) -> Event | None:
        for s in self.slots:
            if not s.process.is_alive() and s.process.exitcode is not None:
                number, code = s.number, s.process.exitcode
                self._start(s)  # replace the worker; its trial is the tuner's to retry or fail
                return Event("died", s.index, number, f"worker process exited with status {code}")
        return None

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker: politely, then by force. In-flight trials are abandoned."""
        for s in self.slots:
            if s.process.is_alive():
                if s.number is not None:
                    s.process.terminate()
                else:
                    s.tasks.put(None)
        deadline = time.monotonic() + timeout
        for s in self.slots:
            s.process.join(max(0.0, deadline - time.monotonic()))
            if s.process.is_alive():
                s.process.kill()
                s.process.join()
        self._events.close()
        self._events.join_thread()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
