"""The device ledger: a device's held time, shared out among the trials running on it.

Several slots may share one device (`trials_per_device` > 1 on a GPU, or CPU slots on one
machine sharing "cpu"). A trial is charged its share of the time it held the device: at
every instant the device's time is split evenly among the trials running on it, so the
shares of a study's trials add up to the time its devices were held, not to the sum of
overlapping wall times.

The slots of one device are separate processes (local workers or Ray actors on one node),
so the ledger is a small JSON file per (node, device), updated under an exclusive flock:
every start and stop first advances the ledger to "now" (each running trial accrues
elapsed / running), with "now" read while the lock is held, so the advances are serial
and the accrued shares sum to exactly the time at least one trial was running. flock is
released by the kernel when its holder dies, so a worker killed at any moment cannot
block the others; its entry is dropped by the next operation that finds its pid gone.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from pathlib import Path


class DeviceLedger:
    def __init__(self, directory: str | Path, node: str, device: str):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # node ids and device strings become one file name: keep it a plain name
        self.path = directory / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{node}__{device}.json")

    def start(self, key: str) -> float:
        """Trial `key` starts holding the device now; returns its start time."""
        with _Locked(self.path) as state:
            now = _advance(state)
            state["running"][key] = {"pid": os.getpid(), "start": now, "share": 0.0}
        return now

    def stop(self, key: str) -> tuple[float, float]:
        """Trial `key` lets the device go now; returns (its share, its raw wall seconds)."""
        with _Locked(self.path) as state:
            now = _advance(state)
            entry = state["running"].pop(key, None)
        if entry is None:  # dropped as dead, which only a pid reuse race could cause
            return 0.0, 0.0
        return entry["share"], now - entry["start"]


class _Locked:
    """The ledger's state, read and written back under an exclusive flock of its file."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> dict:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        raw = os.pread(self.fd, 1 << 20, 0)
        self.state = json.loads(raw) if raw else {"last": None, "running": {}}
        return self.state

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None:
                data = json.dumps(self.state).encode()
                os.ftruncate(self.fd, 0)
                os.pwrite(self.fd, data, 0)
        finally:
            os.close(self.fd)  # releases the flock


def _advance(state: dict) -> float:
    """Charge the time since the last change to the trials running since then; returns now."""
    now = time.monotonic()  # system-wide on Linux: one clock for every process of a node
    running = state["running"]
    for key in [k for k, e in running.items() if not _alive(e["pid"])]:
        del running[key]  # a worker killed mid-trial; its trial is retried, not charged
    if running and state["last"] is not None:
        each = (now - state["last"]) / len(running)
        for entry in running.values():
            entry["share"] += each
    state["last"] = now
    return now


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
