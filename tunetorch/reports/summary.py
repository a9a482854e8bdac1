"""summary.json and trials.csv: the study in numbers, derived from the journal alone.

Epochs are counted from 1 here as everywhere a person reads them (`best_epoch` 3 is the third
epoch); the journal keeps its own 0-based count, converted by tunetorch/words.py: shown_epoch.
The cost is in `gpu_minutes` (the budget's unit), labelled by `words.trials_cost_unit`: "GPU minutes", or
"CPU minutes" for a study that ran on the CPU only.

The test block, summary.json's "test" (null until a look completed), the newest completed look:

    accuracy, loss   the validation step's val_accuracy and val_loss on the test split (a
                     classifier's, as before); absent where it returned no such metric
    trial, forced    the trial evaluated; whether the look was forced (an earlier look existed)
    status, weights_hash
    metric           the study's metric (study.metric), as the validation step names it
    value            that metric on the test split; null where it has no test counterpart
                     (study.metric=train_loss: the test split is scored by the validation step)
    metrics          every metric the validation step returned on the test split, by its names

"optimism" compares the study's metric on both splits (null without a test counterpart):
measure (the metric as read, words.measure: "accuracy" for val_accuracy), metric, direction,
trial, val_<measure>, test_<measure>, gap (validation minus test) and its reading. Every value
comes from the journal, so the file can be rebuilt from it at any time."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunetorch.history import (
    best_trial,
    completed_looks,
    count_state,
    device_minutes,
    pruned_per_rung,
    sign,
    stale_test,
)
from tunetorch.journal import Journal
from tunetorch.reports.meta import StudyMeta
from tunetorch.trial import Trial, TrialState
from tunetorch.words import measure, shown_epoch, trials_cost_unit

OPTIMISM_LABEL = (
    "optimism of validation: the chosen trial's validation score minus its test score (gap), on "
    "the same measure. The best of many trials on the validation split is partly luck, so its "
    "validation score tends to look better than its test score (looked at once); `reading` says "
    "what this gap is"
)


def optimism_reading(optimism: Mapping[str, Any]) -> str:
    """What this gap (validation minus test) is, in words, in the metric's `direction`: validation
    optimistic (it looks better than test: higher where higher is better, lower where lower is),
    test better than validation, or the two level (to 4 decimals)."""
    gap = float(optimism["gap"])
    size = f"{abs(gap):.4f}"
    if size == f"{0:.4f}":
        return "validation and test agree (no optimism showed; quote the test score)"
    if sign(optimism["direction"]) * gap > 0:
        return (
            f"validation was optimistic by {size} (the best of many trials on the validation split "
            "is partly luck; quote the test score)"
        )
    return (
        f"test came out {size} better than validation (no optimism showed: choosing the best "
        "trial on validation did not flatter it, and the two splits differ by chance; quote the "
        "test score)"
    )


CSV_COLUMNS = (
    "state",
    "val_score",
    "epochs",
    "best_epoch",
    "node",
    "device",
    "device_name",
    "device_seconds",
    "wall_seconds",
    "error",
)


def summary(journal: Journal, meta: StudyMeta, importance: dict[str, Any] | None = None) -> dict[str, Any]:
    trials = journal.trials()
    best = best_trial(trials, meta.direction)
    finished = [t for t in trials if t.finished]
    wall = float(journal.get_meta("wall_seconds") or 0.0)
    per_device: dict[str, float] = {}
    for t in finished:
        where = f"{t.node} {t.device}" if t.node else str(t.device)  # one entry per device per machine
        key = f"{where} ({t.device_name})" if t.device_name else where
        per_device[key] = per_device.get(key, 0.0) + (t.device_seconds or 0.0)
    evaluations = journal.evaluations()
    # Every look at the test split counts, even one that never completed (its result may have
    # been seen); the result shown is the newest completed one.
    completed = completed_looks(evaluations)
    last = completed[-1] if completed else None
    return {
        "strategy": meta.strategy,
        "n_trials": len(finished),
        "n_complete": count_state(trials, TrialState.COMPLETE),
        "n_failed": count_state(trials, TrialState.FAIL),
        "n_pruned": count_state(trials, TrialState.PRUNED),
        # trials the scheduler stopped, by the epochs they trained (its rungs): {"1": 6, "3": 2}
        "pruned_by_epochs": {str(k): v for k, v in pruned_per_rung(trials).items()},
        "n_interrupted": sum(t.state in (TrialState.INTERRUPTED, TrialState.RUNNING) for t in trials),
        "best": None
        if best is None
        else {
            "params": best.params,
            "val_score": best.score,
            "trial": best.number,
            "state": best.state.value,
            "epochs": best.epochs,
            "best_epoch": shown_epoch(best.best_epoch),  # 1-based, as the terminal and index.html
        },
        "metric": meta.metric,
        "direction": meta.direction,
        "gpu_minutes": device_minutes(finished),
        "device_unit": trials_cost_unit(trials),
        "wall_seconds": wall,
        "device_busy": {k: (v / wall if wall > 0 else None) for k, v in per_device.items()},
        "test": None if last is None else _test(last, meta.metric),
        "test_evaluations": len(evaluations),
        "test_incomplete": len(evaluations) - len(completed),
        "test_forced": any(e["forced"] for e in evaluations),
        # the test result on record belongs to a trial that is no longer the best (an extended study)
        "test_stale": stale_test(evaluations, trials, meta.direction),
        "optimism": None if last is None else optimism(trials, last, meta.metric, meta.direction),
        "importance": importance,
    }


def _test(evaluation: dict[str, Any], metric: str) -> dict[str, Any]:
    # a classifier's keys, as before; a model whose validation step returns no such metric has none
    out = {k: evaluation[k] for k in ("accuracy", "loss") if evaluation[k] is not None}
    out |= {k: evaluation[k] for k in ("trial", "forced", "status", "weights_hash")}
    return out | {"metric": metric, "value": evaluation["value"], "metrics": evaluation["metrics"]}


def optimism(
    trials: list[Trial], evaluation: dict[str, Any], metric: str, direction: str
) -> dict[str, Any] | None:
    """The evaluated trial's validation score against its test score, on the study's metric.

    The validation side is the trial's score (the study's metric at the epoch whose weights were
    kept and scored on the test split); the test side the same metric, as the validation step
    returned it on the test split. None where the metric has no test counterpart."""
    trial = next((t for t in trials if t.number == evaluation["trial"]), None)
    if trial is None or trial.score is None or evaluation["value"] is None:
        return None
    m = measure(metric)
    val, test = float(trial.score), float(evaluation["value"])
    out = {
        "label": OPTIMISM_LABEL,
        "measure": m,
        "metric": metric,
        "direction": direction,
        "trial": trial.number,
        f"val_{m}": val,
        f"test_{m}": test,
        "gap": val - test,
    }
    return out | {"reading": optimism_reading(out)}


def write_trials_csv(path: Path, trials: list[Trial]) -> None:
    names = sorted({k for t in trials for k in t.params})
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", *names, *CSV_COLUMNS])
        for t in trials:
            w.writerow(
                [
                    t.number,
                    *(t.params.get(n) for n in names),
                    t.state.value,
                    t.score,
                    t.epochs,
                    shown_epoch(t.best_epoch),  # 1-based, as everywhere a person reads it
                    t.node,
                    t.device,
                    t.device_name,
                    t.device_seconds,
                    t.wall_seconds,
                    t.error,
                ]
            )
    os.replace(tmp, path)


def atomic_write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    os.replace(tmp, path)
