"""Tiny worker tasks for pool tests and benchmarks: no torch, no data."""

from __future__ import annotations

import os
import time


def setup(device: str) -> dict:
    return {"device": device, "pid": os.getpid()}


def instant(state: dict, number: int, params: dict, emit) -> dict:
    return {"score": float(params.get("x", 0.0)), "epoch": 0}


def sleepy(state: dict, number: int, params: dict, emit) -> dict:
    start = time.time()
    time.sleep(0.15)
    return {"score": float(params["x"]), "epoch": 0, "device": state["device"], "pid": state["pid"],
            "start": start, "end": time.time()}


def crash_on_three(state: dict, number: int, params: dict, emit) -> dict:
    if number == 3:
        raise RuntimeError("boom in trial 3")
    return {"score": float(params["x"]), "epoch": 0}
