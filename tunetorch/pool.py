"""Kept importable: the local executor lives in tunetorch.executors.local."""

from tunetorch.executors.local import (  # noqa: F401 - re-exported
    Event,
    Pool,
    Setup,
    Task,
    device_name,
    slot_devices,
    visible_cuda_devices,
)

__all__ = ["Event", "Pool", "Setup", "Task", "device_name", "slot_devices", "visible_cuda_devices"]
