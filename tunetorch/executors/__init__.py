"""Executors: where trials run. `open_executor` picks one from the `tuner` settings.

Both executors have one interface, the one the search loop (tunetorch.search) drives:
`slots` (each with device, device_name, busy_seconds), `idle_slots()`, `in_flight()`,
`submit(slot, number, params) -> device`, `next_event(timeout)`, `decide(slot, stop)`,
`close()`; events are tunetorch.executors.local.Event.

    local: tunetorch.executors.local.Pool, worker processes on this machine (the default)
    ray:   tunetorch.executors.ray.RayPool, Ray actors over a cluster's GPUs
    inprocess: tunetorch.executors.inprocess.InProcessExecutor, generator trials on simulated
           slots and a simulated clock (the race's landscapes; not chosen by tuner.backend)
"""

from __future__ import annotations

from typing import Any

from tunetorch.errors import UsageError

BACKENDS = ("local", "ray")


def open_executor(
    backend: str,
    devices: Any,
    workers: int,
    trials_per_device: int,
    setup,
    task,
    decide: bool = False,
    ray_address: str | None = None,
):
    """The executor for `tuner.backend`; `ray` is imported only for backend=ray."""
    if backend == "local":
        from tunetorch.executors.local import Pool, slot_devices

        return Pool(slot_devices(devices, workers, trials_per_device), setup, task, decide=decide)
    if backend == "ray":
        from tunetorch.executors.ray import RayPool

        return RayPool.connect(devices, workers, trials_per_device, setup, task, decide, ray_address)
    raise UsageError(f"tuner.backend: {backend!r} is not one of {', '.join(BACKENDS)}")
