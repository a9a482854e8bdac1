"""One task on one device, as every worker runs it (a local worker process, a Ray actor).

Device seconds: the device is synchronised before and after the task, so the kernels a trial
queued are counted in the trial that queued them, and the time between is booked in the node's
device ledger (tunetorch.executors.ledger), which shares it among the trials holding the device.
A task that raises is a failed trial, not a failed worker: its error is one line, and after an
out-of-memory the device's cached memory is given back before the next trial. A task that raises
EnvironmentFault (its weights cannot be written) is reported as the fault it is: the study stops.
A setup that raises UsageError refused its device (bad input); any other exception is a bug.
"""

from __future__ import annotations

import traceback
from typing import Any

from tunetorch.errors import EnvironmentFault, UsageError
from tunetorch.executors.base import Done, Emit, Event, Task
from tunetorch.executors.ledger import DeviceLedger


def run_task(
    task: Task,
    state: Any,
    number: int,
    params: dict,
    emit: Emit,
    device: str,
    ledger: DeviceLedger,
    key: str,
    node: str | None,
) -> Done:
    """Run trial `number` on `device` (this thread's current device from here on); `key` names it
    in the ledger. Returns how it ended, the payload of its "done" event."""
    result, error, fault = None, None, None
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(device)  # the current device is per thread (a Ray actor runs trials on threads)
    synchronize(device)
    ledger.start(key)
    try:
        result = task(state, number, params, emit)
        synchronize(device)
    except EnvironmentFault as e:  # the environment's (a full disk): the driver stops the study
        error = fault = str(e)
        _recover(device)
    except Exception as e:  # a failed trial, not a failed worker: report it and go on
        error = reason(e)
        _recover(device)
    share, wall = ledger.stop(key)
    return Done(result, error, share, wall, node, fault)


def setup_event(slot: int, e: BaseException) -> Event:
    """The event of a worker whose setup raised `e`: refused (UsageError, one line) or failed."""
    if isinstance(e, UsageError):
        return Event("setup_refused", slot, payload=str(e).strip().splitlines()[0] if str(e).strip() else "")
    return Event("setup_failed", slot, payload=reason(e, full=True))


def reason(e: BaseException, full: bool = False) -> str:
    """Why a task failed, in one line (with `full`, its traceback below it)."""
    text = f"{type(e).__name__}: {e}".strip()
    if "out of memory" in text.lower():
        text = f"CUDA out of memory: {e}"
    if full:
        return text + "\n" + "".join(traceback.format_exception(e))
    return text.splitlines()[0]


def device_name(device: str) -> str:
    """What the device is, as reports show it: the GPU's model, or "CPU: " and the processor's."""
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


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def _recover(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        try:
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()  # after an OOM, give the memory back before the next trial
        except Exception:
            pass
