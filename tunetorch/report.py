"""What the user reads, derived from the journal: summary.json, trials.csv, TensorBoard, plots.

`write_reports(study_dir, journal, ...)` rebuilds summary.json, trials.csv and the PNGs
from the journal at any time. TensorBoard is written as trials finish (`TensorBoardLog`),
so a running study can be watched live.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from tunetorch.history import best_so_far, best_trial, device_minutes, device_unit
from tunetorch.journal import Journal
from tunetorch.trial import Trial, TrialState


def summary(journal: Journal, strategy: str) -> dict[str, Any]:
    trials = journal.trials()
    direction = journal.get_meta("direction") or "maximize"
    best = best_trial(trials, direction)
    finished = [t for t in trials if t.finished]
    wall = float(journal.get_meta("wall_seconds") or 0.0)
    per_device: dict[str, float] = {}
    for t in finished:
        key = f"{t.device} ({t.device_name})" if t.device_name else str(t.device)
        per_device[key] = per_device.get(key, 0.0) + (t.device_seconds or 0.0)
    evaluations = journal.evaluations()
    last = evaluations[-1] if evaluations else None
    return {
        "strategy": strategy,
        "n_trials": len(finished),
        "n_complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "n_failed": sum(t.state == TrialState.FAIL for t in trials),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "n_interrupted": sum(t.state in (TrialState.INTERRUPTED, TrialState.RUNNING) for t in trials),
        "best": None
        if best is None
        else {
            "params": best.params,
            "val_score": best.score,
            "trial": best.number,
            "epochs": best.epochs,
            "best_epoch": best.best_epoch,
        },
        "metric": journal.get_meta("metric") or "val_accuracy",
        "direction": direction,
        "gpu_minutes": device_minutes(finished),
        "device_unit": device_unit(trials),
        "wall_seconds": wall,
        "device_busy": {k: (v / wall if wall > 0 else None) for k, v in per_device.items()},
        "test": None
        if last is None
        else {
            "accuracy": last["accuracy"],
            "loss": last["loss"],
            "trial": last["trial"],
            "forced": last["forced"],
        },
        "test_evaluations": len(evaluations),
        "test_forced": any(e["forced"] for e in evaluations),
    }


def write_reports(study_dir: Path, journal: Journal, strategy: str) -> dict[str, Any]:
    trials = journal.trials()
    data = summary(journal, strategy)
    _atomic_write(study_dir / "summary.json", json.dumps(data, indent=2) + "\n")
    _write_trials_csv(study_dir / "trials.csv", trials)
    if any(t.finished for t in trials):
        from tunetorch.plots import plot_params, plot_progress

        plot_progress(trials, study_dir / "progress.png", unit=data["device_unit"])
        plot_params(trials, study_dir / "params.png")
    return data


def _write_trials_csv(path: Path, trials: list[Trial]) -> None:
    names = sorted({k for t in trials for k in t.params})
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "number",
                *names,
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
            ]
        )
        for t in trials:
            w.writerow(
                [
                    t.number,
                    *(t.params.get(n) for n in names),
                    t.state.value,
                    t.score,
                    t.epochs,
                    t.best_epoch,
                    t.node,
                    t.device,
                    t.device_name,
                    t.device_seconds,
                    t.wall_seconds,
                    t.error,
                ]
            )
    os.replace(tmp, path)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class TensorBoardLog:
    """tb/trial_NNNN: each trial's curves and its HParams entry; tb/study: the study's curves."""

    def __init__(self, study_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self._writer_cls = SummaryWriter
        self.root = study_dir / "tb"
        self.study = SummaryWriter(str(self.root / "study"))

    def trial(self, trial: Trial, epochs: list[dict], trials: list[Trial]) -> None:
        from torch.utils.tensorboard.summary import hparams

        with self._writer_cls(str(self.root / f"trial_{trial.number:04d}")) as w:
            for e in epochs:
                for key in ("train_loss", "val_loss", "val_accuracy"):
                    if e.get(key) is not None:
                        w.add_scalar(f"trial/{key}", e[key], e["epoch"])
            metrics = {"hparam/val_accuracy": trial.score if trial.score is not None else float("nan")}
            hp = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in trial.params.items()}
            hp["state"] = trial.state.value
            for summary_proto in hparams(hp, metrics):
                w.file_writer.add_summary(summary_proto)
            for k, v in metrics.items():
                w.add_scalar(k, v)
        curve = best_so_far(trials)
        if curve and curve[-1][2] == trial.number:
            minutes, best, _ = curve[-1]
            self.study.add_scalar("study/best_val_accuracy_by_trial", best, trial.number)
            # TensorBoard steps are integers: GPU (device) seconds, so the x axis reads in seconds.
            self.study.add_scalar("study/best_val_accuracy_by_device_seconds", best, int(round(minutes * 60)))
        for key, value in trial.info.items():  # the strategy's internals (bayes: EI, fit time, length scales)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.study.add_scalar(f"strategy/{key}", value, trial.number)
            elif isinstance(value, dict):
                for k, v in value.items():
                    if isinstance(v, (int, float)):
                        self.study.add_scalar(f"strategy/{key}/{k}", v, trial.number)
        self.study.flush()

    def test_result(self, accuracy: float, loss: float, trial: int) -> None:
        self.study.add_scalar("test/accuracy", accuracy, trial)
        self.study.add_scalar("test/loss", loss, trial)
        self.study.flush()

    def close(self) -> None:
        self.study.close()
