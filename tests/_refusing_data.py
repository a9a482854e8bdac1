"""A data module whose fit() passes in the main process and refuses in a worker: the digits, with
`fit()` raising UsageError inside a worker process.

It stands for a data set that fits where tune's checks fit it (the CPU of the main process) and is
refused on a worker's own device (a GPU too small for it, say). tests/_broken_conf/dataset/
refuses_on_workers.yaml names it: `--config-dir tests/_broken_conf dataset=refuses_on_workers`.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from tunetorch.errors import UsageError
from tunetorch.training.datasets import Digits


class RefusesOnWorkers(Digits):
    """The digits, but fit() in a worker process (one with a parent) raises UsageError."""

    def fit(self, seed: int, device: Any = "cpu") -> Any:
        if multiprocessing.parent_process() is not None:
            raise UsageError(
                f"dataset.max_device_bytes: the digits do not fit on {device} (a deliberate refusal of "
                "this fixture, made only in a worker process)"
            )
        return super().fit(seed, device)


def refusing_setup(device: str) -> dict:
    """A worker's setup that refuses its device, as setup_training does when fit() refuses."""
    raise UsageError(f"dataset.max_device_bytes: the data do not fit on {device}")


def broken_setup(device: str) -> dict:
    """A worker's setup with a bug: not a refusal."""
    raise RuntimeError(f"a bug in the setup on {device}")
