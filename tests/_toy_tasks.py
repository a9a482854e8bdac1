"""Tiny worker tasks for pool tests and benchmarks: no torch, no data."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def setup(device: str) -> dict:
    return {"device": device, "pid": os.getpid()}


def instant(state: dict, number: int, params: dict, emit) -> dict:
    return {"score": float(params.get("x", 0.0)), "epoch": 0}


def sleepy(state: dict, number: int, params: dict, emit) -> dict:
    start = time.time()
    time.sleep(0.15)
    return {
        "score": float(params["x"]),
        "epoch": 0,
        "device": state["device"],
        "pid": state["pid"],
        "start": start,
        "end": time.time(),
    }


def crash_on_three(state: dict, number: int, params: dict, emit) -> dict:
    if number == 3:
        raise RuntimeError("boom in trial 3")
    return {"score": float(params["x"]), "epoch": 0}


FAILING = {0, 1, 3, 4, 5, 7}  # fail_interleaved: two failures, a success, then three in a row


def fail_interleaved(state: dict, number: int, params: dict, emit) -> dict:
    if number in FAILING:
        raise RuntimeError(f"boom in trial {number}")
    return {"score": float(params["x"]), "epoch": 0}


def dies_on_two(state: dict, number: int, params: dict, emit) -> dict:
    """Trial 2 SIGKILLs its own worker on its first TOY_DEATHS attempts, counted by marker
    files in the folder TOY_MARKERS (the environment reaches spawned workers)."""
    if number == 2:
        markers = Path(os.environ["TOY_MARKERS"])
        deaths = len(list(markers.glob("death_*")))
        if deaths < int(os.environ["TOY_DEATHS"]):
            (markers / f"death_{deaths}").touch()
            os.kill(os.getpid(), signal.SIGKILL)
    return {"score": float(params["x"]), "epoch": 0, "pid": os.getpid()}


def oom_on_one(state: dict, number: int, params: dict, emit) -> dict:
    """Trial 1 asks its device for far more memory than it has (a real CUDA OOM on a GPU)."""
    if number == 1:
        import torch

        torch.empty(1 << 46, dtype=torch.uint8, device=state["device"])  # 64 TiB
    return {"score": float(params["x"]), "epoch": 0, "pid": os.getpid()}


def slow_kernels(state: dict, number: int, params: dict, emit) -> dict:
    """Queues a second or so of matmuls and returns without waiting for them: the pool's
    synchronisation must still charge them to this trial."""
    import torch

    a = torch.randn(8192, 8192, device=state["device"])
    start = time.perf_counter()
    for _ in range(40):
        a = (a @ a).clamp_(-1, 1)
    return {"score": float(params["x"]), "epoch": 0, "queued_in": time.perf_counter() - start}
