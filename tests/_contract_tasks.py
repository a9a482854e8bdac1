"""One trial, written for each kind of executor: three epochs of a score `x`, each reported, stopping
after the epoch the driver says to; with params["fail"], it raises after its first epoch.

`epochs` is a worker task (task(state, number, params, emit)), for the local pool and Ray;
`epochs_generator` is the same trial as a generator task, for the in-process executor.
"""

from __future__ import annotations

EPOCHS = 3


def epochs(state: dict, number: int, params: dict, emit) -> dict:
    for epoch in range(EPOCHS):
        stop = emit("epoch", {"epoch": epoch, "score": params["x"]})
        if params.get("fail"):
            raise ValueError(f"trial {number} fails on purpose\nand says more on a second line")
        if stop:
            break
    return {"score": params["x"], "epoch": epoch, "epochs": epoch + 1}


def epochs_generator(number: int, params: dict):
    for epoch in range(EPOCHS):
        stop = yield {"epoch": epoch, "score": params["x"]}, 1.0
        if params.get("fail"):
            raise ValueError(f"trial {number} fails on purpose\nand says more on a second line")
        if stop:
            break
    return {"score": params["x"], "epoch": epoch, "epochs": epoch + 1}
