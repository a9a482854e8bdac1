"""What the user reads, derived from the journal alone.

`write_reports(study_dir, journal)` rebuilds summary.json, trials.csv, progress.png, params.png,
importance.png and index.html at any time; TensorBoard is written live, epoch by epoch
(`TensorBoardLog`), so a running study can be watched.

    summary.py      summary.json, trials.csv          importance.py  which parameters mattered
    plots.py        the PNGs                          html.py        index.html
    tensorboard.py  tb/ (study, trials, strategy)     terminal.py    text the terminal prints
    hparams.py      TensorBoard's HParams (experiment, sessions)
    charts.py, svg.py, trials_table.py, index.css, index.js   index.html's charts, table, script
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunetorch.journal import Journal
from tunetorch.reports.meta import StudyMeta, study_meta
from tunetorch.reports.tensorboard import TensorBoardLog

__all__ = ["TensorBoardLog", "StudyMeta", "study_meta", "write_reports"]


def write_reports(study_dir: Path, journal: Journal, strategy: str | None = None) -> dict[str, Any]:
    """Rebuild every report file from the journal; returns summary.json's dict.

    `strategy` names it only for journals that do not record it (meta "strategy")."""
    from tunetorch.reports.html import render
    from tunetorch.reports.importance import param_importance
    from tunetorch.reports.plots import plot_importance, plot_params, plot_progress
    from tunetorch.reports.summary import atomic_write, summary, write_trials_csv

    study_dir = Path(study_dir)
    meta = study_meta(journal, strategy)
    trials = journal.trials()
    importance = None
    if meta.space is not None:
        importance = param_importance(trials, meta.space, direction=meta.direction)
    data = summary(journal, meta, importance)
    atomic_write(study_dir / "summary.json", json.dumps(data, indent=2) + "\n")
    write_trials_csv(study_dir / "trials.csv", trials)
    if any(t.finished for t in trials):
        test = _test_marker(data)
        plot_progress(
            trials,
            study_dir / "progress.png",
            unit=data["device_unit"],
            direction=meta.direction,
            metric=meta.metric,
            test=test,
        )
        plot_params(
            trials, study_dir / "params.png", space=meta.space, direction=meta.direction, metric=meta.metric
        )
    if not (importance and plot_importance(importance, study_dir / "importance.png")):
        (study_dir / "importance.png").unlink(missing_ok=True)  # never a stale picture
    atomic_write(study_dir / "index.html", render(data, trials, study_dir, journal))
    return data


def _test_marker(data: dict[str, Any]) -> dict[str, Any] | None:
    """The test score on the study's own scale (its metric on the test split), for progress.png;
    None where the metric has no test counterpart."""
    from tunetorch.words import test_name

    test = data.get("test")
    if not test or test["value"] is None:
        return None
    return {"trial": test["trial"], "value": test["value"], "label": test_name(data["metric"])}
