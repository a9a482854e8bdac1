"""A study on a synthetic landscape: its trials are learning curves, run through the study's own search loop.

    outcome = search_landscape(study, landscape, budget, seed=0, epochs=10)

The trials run in this process (tunetorch.executors.inprocess), driven by
tunetorch.search.run_search, the loop every study uses: the same budget rule (in-flight
trials counted), the same scheduler decisions after each epoch, the same failure handling.
A trial is `landscape_task`: one epoch per step, each epoch's score from
tunetorch.race.landscapes.learning_curve plus seeded noise, each epoch charged
cost_seconds(lr) / epochs simulated device seconds.
"""

from __future__ import annotations

from typing import Any

from tunetorch.race.plan import LANDSCAPE_DIMS


def landscape_task(landscape: dict, epochs: int, seed: int, metric: str = "score"):
    """The in-process task of one trial on `landscape` (a generator function, see executors.inprocess).

    Epoch e reports {"epoch": e, metric: value}, value = c(e) + noise, never above the curve's
    final value, which is the landscape's value (plus `landscape.noise`, one seeded draw per
    trial, as the score had before the curves). So a trial that trains to the end scores
    exactly that value, on its last epoch.
    """
    import numpy as np

    from tunetorch.race.landscapes import cost_seconds, epoch_noise, learning_curve, score
    from tunetorch.training.objective import trial_seed

    cost = landscape.get("cost") or {}
    curve = landscape.get("curve") or {}
    base, exponent = cost.get("base_seconds", 20.0), cost.get("lr_exponent", 0.4)

    def task(number: int, params: dict):
        lr, wd = (params[d] for d in LANDSCAPE_DIMS)
        final = float(score(landscape["name"], lr, wd))
        if landscape.get("noise"):
            final += float(np.random.default_rng(trial_seed(seed, number)).normal(0.0, landscape["noise"]))
        values = learning_curve(final, lr, epochs, curve.get("start", 0.10), curve.get("rate", 6.0), exponent)
        seconds = float(cost_seconds(lr, base, exponent)) / epochs
        best, best_epoch, epoch = -np.inf, 0, 0
        for epoch in range(epochs):
            value = min(
                float(values[epoch]) + epoch_noise(seed, number, epoch, epochs, curve.get("noise", 0.0)),
                final,
            )
            if value > best:
                best, best_epoch = value, epoch
            stop = yield {"epoch": epoch, metric: value}, seconds
            if stop:
                break
        return {"score": best, "epoch": best_epoch, "epochs": epoch + 1}

    return task


def search_landscape(
    study: Any,
    landscape: dict,
    budget: Any,
    seed: int = 0,
    epochs: int = 10,
    slots: int = 1,
    max_retries: int = 1,
    max_consecutive_failures: int = 10,
    on_trial=None,
):
    """Run `study` on the landscape until the budget is spent; returns run_search's Outcome."""
    from tunetorch.executors.inprocess import InProcessExecutor
    from tunetorch.search import run_search

    executor = InProcessExecutor(
        landscape_task(landscape, epochs, seed, study.metric),
        slots=slots,
        device="simulated",
        device_name=f"landscape {landscape['name']}",
    )
    try:
        return run_search(
            study,
            executor,
            budget,
            max_retries=max_retries,
            max_consecutive_failures=max_consecutive_failures,
            on_trial=on_trial,
        )
    finally:
        executor.close()
