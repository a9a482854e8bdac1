"""Studies for the report tests: one written through the journal (every trial state), one run for real."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tunetorch.journal import Journal
from tunetorch.trial import Trial, TrialState

SPACE = {
    "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "model.depth": {"type": "int", "low": 1, "high": 4},
    "model.act": {"type": "categorical", "choices": ["relu", "gelu"]},
}
DIVERGED = 3  # the trial that diverged: accuracy at chance
PRUNED = {5: 1, 9: 1, 12: 2}  # trial -> epochs it trained before the scheduler stopped it
FAILED = 7
TEST_ACCURACY = 0.91


def _new_journal(study_dir: Path, metric: str, direction: str, seed: int):
    """A new journal of a random search over SPACE on `metric` -> (journal, space, a seeded rng)."""
    from tunetorch.space import SearchSpace

    study_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(study_dir / "journal.sqlite")
    journal.set_meta("strategy", "random")
    journal.set_meta("metric", metric)
    journal.set_meta("direction", direction)
    journal.set_meta("space", json.dumps(SPACE))
    return journal, SearchSpace.from_dict(SPACE), np.random.default_rng(seed)


def journal_study(study_dir: Path, n: int = 16, epochs: int = 3, evaluate: bool = True) -> Journal:
    """A finished study written straight into a journal: accuracy peaks at lr = 10**-2.5 (the other
    parameters barely matter), one diverged trial, three pruned, one failed, one test evaluation."""
    journal, space, rng = _new_journal(study_dir, "val_accuracy", "maximize", seed=0)
    for number in range(n):
        params = space.sample(rng)
        if number == DIVERGED:
            params["optimizer.lr"] = 0.09  # too high a learning rate: the cause, as in real studies
        peak = 0.97 - 0.08 * (math.log10(params["optimizer.lr"]) + 2.5) ** 2 + 0.003 * params["model.depth"]
        trained = PRUNED.get(number, epochs)
        rows = []
        for e in range(trained):
            acc = 0.13 if number == DIVERGED else peak - 0.05 * (epochs - 1 - e)
            rows.append(
                {"train_loss": 1.0 / (e + 1), "val_loss": 1.2 - acc, "val_accuracy": acc, "seconds": 0.4}
            )
        if number == FAILED:
            trial = Trial(
                number,
                params,
                TrialState.FAIL,
                error="loss is nan",
                device="cpu",
                device_name="test cpu",
                device_seconds=0.0002,  # died at start-up: under a millisecond
                wall_seconds=0.35,
                attempts=1,
            )
            rows = rows[:1]
        else:
            best_epoch = int(np.argmax([r["val_accuracy"] for r in rows]))
            state = TrialState.PRUNED if number in PRUNED else TrialState.COMPLETE
            trial = Trial(
                number,
                params,
                state,
                score=rows[best_epoch]["val_accuracy"],
                device="cpu",
                device_name="test cpu",
                device_seconds=1.2 * trained + 0.01 * number,
                wall_seconds=1.3 * trained,
                node="host",
                epochs=trained,
                best_epoch=best_epoch,
                attempts=1,
            )
        for e, row in enumerate(rows):
            journal.add_epoch(number, e, row)
        journal.put_trial(trial)
    journal.set_meta("wall_seconds", "30.0")
    if evaluate:
        from tunetorch.history import best_trial

        best = best_trial(journal.trials())
        ev = journal.start_evaluation(best.number, "0" * 64, forced=False)
        journal.complete_evaluation(
            ev, {"val_loss": 0.3, "val_accuracy": TEST_ACCURACY}, TEST_ACCURACY, "f" * 64
        )
    return journal


TEST_MSE = 30.5  # the regression study's test mse: above its best validation mse, as is usual


def regression_study(study_dir: Path, n: int = 8, test: dict[str, float] | None = None) -> Journal:
    """A finished study of a regression minimising val_mse (a model whose validation step returns
    val_mse and val_mae), written straight into a journal, evaluated once: `test` the metrics its
    validation step returned on the test split (default: val_mse TEST_MSE, val_mae 4.4)."""
    from tunetorch.history import best_trial

    journal, space, rng = _new_journal(study_dir, "val_mse", "minimize", seed=1)
    for number in range(n):
        params = space.sample(rng)
        low = 28.0 + 40.0 * (math.log10(params["optimizer.lr"]) + 2.5) ** 2
        rows = [
            {
                "train_loss": low * 1.5 / (e + 1),
                "val_mse": low + 6.0 * (1 - e),
                "val_mae": 4.0 + 0.02 * low,
                "seconds": 0.3,
            }
            for e in range(2)
        ]
        best_epoch = int(np.argmin([r["val_mse"] for r in rows]))
        for e, row in enumerate(rows):
            journal.add_epoch(number, e, row)
        journal.put_trial(
            Trial(
                number,
                params,
                TrialState.COMPLETE,
                score=rows[best_epoch]["val_mse"],
                device="cpu",
                device_name="test cpu",
                device_seconds=0.6,
                wall_seconds=0.7,
                node="host",
                epochs=2,
                best_epoch=best_epoch,
                attempts=1,
            )
        )
    journal.set_meta("wall_seconds", "6.0")
    best = best_trial(journal.trials(), "minimize")
    metrics = test or {"val_mse": TEST_MSE, "val_mae": 4.4}
    ev = journal.start_evaluation(best.number, "0" * 64, forced=False)
    journal.complete_evaluation(ev, metrics, metrics.get("val_mse"), "f" * 64)
    return journal


REAL_TRIALS = 6  # the fewest complete trials importance is estimated from
# The real study's command line, less its study.dir (as tests/conftest.py's SHRINK, 6 trials of 2 epochs).
REAL_ARGS = [
    "budget.n_trials=6",
    "trainer.epochs=2",
    "dataset=digits",
    "tuner.devices=cpu",
    "tuner.workers=1",
]


def _run_real_study(folder: Path) -> None:
    from tests.conftest import run_tune

    folder.mkdir(parents=True)
    out = run_tune(*REAL_ARGS, f"study.dir={folder / 'study'}")
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-2000:]
    (folder / "stdout.txt").write_text(out.stdout)


def real_study(tmp_path_factory) -> tuple[Path, str]:
    """A finished study run for real (`python -m tunetorch.tune`, digits, CPU, 6 trials of 2 epochs,
    the default strategy, evaluated), made once per test session and read by the report and
    end-to-end tests, which copy it before they change it. Returns (study dir, its stdout)."""
    from tests.conftest import made_once

    folder = made_once(tmp_path_factory, "real_study", _run_real_study)
    return folder / "study", (folder / "stdout.txt").read_text()
