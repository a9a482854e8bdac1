"""The two example projects whose models bring their own steps: examples/regression (an MLP on
scikit-learn's diabetes data, val_mse minimised, dict batches) and examples/char_lm (a byte-level
transformer on Python's documentation, val_loss minimised, its own optimiser). Each is tuned and
then evaluated once by its README's command, shrunk, as a subprocess from its own folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"
REGRESSION = ("model=regressor", "dataset=diabetes", "space=regressor")  # examples/regression's options


def tune_in(project: str, *args: str) -> subprocess.CompletedProcess:
    folder = EXAMPLES / project
    return subprocess.run(
        [sys.executable, "-m", "tunetorch.tune", "--config-dir", "conf", "tuner.devices=cpu", *args],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(folder), "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def journal_of(study_dir):
    from tunetorch.journal import Journal

    return Journal(study_dir / "journal.sqlite")


def test_the_regression_example_minimises_val_mse_and_is_tested_once_on_mse(tmp_path):
    d = tmp_path / "study"
    out = tune_in(
        "regression",
        *REGRESSION,
        "study.metric=val_mse",
        "study.direction=minimize",
        "trainer.epochs=6",
        "trainer.batch_size=32",
        "+strategy=bayes",
        "strategy.n_startup=2",
        "budget.n_trials=3",
        f"study.dir={d}",
    )
    assert out.returncode == 0, out.stderr + out.stdout
    journal = journal_of(d)
    trials = journal.trials()
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:  # each trial's score: the lowest val_mse of its epochs, its own step's metric
        epochs = journal.epochs(t.number)
        assert {"train_loss", "val_mse", "val_mae"} <= set(epochs[0])
        assert "val_accuracy" not in epochs[0]
        assert t.score == min(e["val_mse"] for e in epochs)
    best = min(trials, key=lambda t: t.score)
    assert best.score < 1.0  # better than predicting the mean (standardised targets)
    summary = json.loads((d / "summary.json").read_text())
    assert summary["best"]["trial"] == best.number and summary["direction"] == "minimize"
    assert summary["test_evaluations"] == 1
    test = summary["test"]
    assert test["trial"] == best.number and test["metric"] == "val_mse"
    assert set(test["metrics"]) == {"val_mse", "val_mae"} and 0 < test["value"] < 2
    assert summary["optimism"]["metric"] == "val_mse" and summary["optimism"]["val_mse"] == best.score
    assert "test mse" in out.stdout and "accuracy" not in out.stdout


def test_the_language_model_example_uses_its_own_optimiser_and_is_tested_once_on_its_loss(tmp_path):
    d = tmp_path / "study"
    out = tune_in(
        "char_lm",
        "model=char_lm",
        "dataset=python_docs",
        "dataset.max_chars=12000",
        "model.layers=1",
        "space.model.width.choices=[32]",
        "study.metric=val_loss",
        "study.direction=minimize",
        "trainer.epochs=2",
        "trainer.batch_size=32",
        "budget.n_trials=2",
        f"study.dir={d}",
    )
    assert out.returncode == 0, out.stderr + out.stdout
    journal = journal_of(d)
    trials = journal.trials()
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials)
    assert {"model.lr", "model.weight_decay"} <= set(trials[0].params)  # the model's optimiser
    for t in trials:
        epochs = journal.epochs(t.number)
        assert {"train_loss", "val_loss", "val_bits_per_byte"} <= set(epochs[0])
        assert t.score == min(e["val_loss"] for e in epochs) < 5.55  # below uniform over 256 bytes
    summary = json.loads((d / "summary.json").read_text())
    assert summary["test_evaluations"] == 1
    assert set(summary["test"]["metrics"]) == {"val_loss", "val_bits_per_byte"}
    assert "test loss" in out.stdout and "accuracy" not in out.stdout


def test_a_metric_the_steps_do_not_return_is_one_line_before_anything_is_written(tmp_path):
    """The sanity check (each step once, on its split's first batch) runs before the study
    directory exists: the command's whole answer is one line and exit status 2."""
    d = tmp_path / "study"
    out = tune_in(
        "regression",
        *REGRESSION,
        "study.metric=val_r2",
        "study.direction=maximize",
        f"study.dir={d}",
    )
    assert out.returncode == 2, out.stderr + out.stdout
    assert out.stderr.strip() == (
        "error: study.metric: 'val_r2' is not among the metrics the trial's steps returned "
        "(train_loss, val_mse, val_mae); set study.metric to one of them"
    ), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == "" and not d.exists()
