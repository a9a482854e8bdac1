"""What the terminal prints, as pure text functions (the search loop decides when to print them).

One number format everywhere: parameters and minutes to 3 significant digits, scores to 4
decimals; trials by their 0-based number, counts ("7 of 12 finished") kept apart from it;
epochs from 1 ("epoch 3/10"), as in every report (tunetorch/words.py: shown_epoch); nouns in
the right number and the cost in GPU minutes, or CPU minutes on a CPU (words.count, words.minutes).
Every command printed runs as printed from where the study was started, with or without the
virtual environment activated (`python_command`, `tensorboard_command`).
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunetorch.budget import Budget
from tunetorch.history import ranked
from tunetorch.trial import Trial, TrialState
from tunetorch.words import (
    GPU_MINUTES,
    count,
    minutes,
    no_test_counterpart,
    shown_epoch,
    test_parts,
    trials_cost_unit,
)

# Trials shorter than this print no epoch ticks: their finished line follows soon enough.
EPOCH_TICK_AFTER_SECONDS = 5.0

# The study directory's outputs, in the order a user reads them; `results_lines` lists those present.
OUTPUTS = (
    ("index.html", "the report: open it in a browser"),
    ("summary.json", "best trial, test result, optimism, importance"),
    ("trials.csv", "one row per trial"),
    ("progress.png", "best score so far against the GPU (or CPU) minutes spent"),
    ("params.png", "score against each parameter"),
    ("importance.png", "which parameters mattered"),
    ("best.pt", "the best trial's weights"),
    ("config.yaml", "the study's configuration"),
    ("journal.sqlite", "everything above is rebuilt from it"),
)


def format_value(value: Any) -> str:
    """3 significant digits for floats (1e-04 -> 0.0001, 0.000123 -> 0.000123), ints and text as they are."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3g}"
    return str(value)


def format_params(params: Mapping[str, Any]) -> str:
    """ "optimizer.lr=0.00814, model.depth=2": the space's order, 3 significant digits."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in params.items())


def format_score(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"


def format_duration(seconds: float) -> str:
    """'7 s', '3 min 20 s', '1 h 05 min'."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def budget_text(budget: Budget, unit: str = GPU_MINUTES) -> str:
    """The budget as it applies (tunetorch/budget.py): '12 trials', '30 GPU minutes (no trial cap)',
    '12 trials or 30 GPU minutes, whichever is spent first', '20 trials (the default; set ...)'.
    `unit`: 'GPU minutes', or 'CPU minutes' for a study on the CPU (words.cost_unit)."""
    trials = count(budget.n_trials, "trial") if budget.n_trials else ""
    if budget.defaulted:
        return f"{trials} (the default; set budget.n_trials or budget.gpu_minutes)"
    spend = ""
    if budget.gpu_minutes:  # '1 GPU minute', '0.5 GPU minutes': as given, not rounded
        spend = count(float(budget.gpu_minutes), unit.removesuffix("s"), unit)
    if trials and spend:
        return f"{trials} or {spend}, whichever is spent first"
    return trials or f"{spend} (no trial cap)"


def started_line(number: int, params: Mapping[str, Any], device: str | None = None) -> str:
    on = f" on {device}" if device else ""
    return f"trial {number} started{on}: {format_params(params)}"


def epoch_line(
    number: int, metrics: Mapping[str, Any], epochs: int | None, metric: str = "val_accuracy"
) -> str:
    """A tick while a long trial runs: 'trial 6 epoch 3/10: val_accuracy 0.9514, train_loss 0.123'.
    `metrics` is one epoch row ({"epoch": 0-based, as journaled, ...}); shown 1-based against the
    epochs asked, as every report shows epochs."""
    of = f"/{epochs}" if epochs else ""
    shown = [f"{metric} {format_score(metrics.get(metric))}"]
    for key in ("train_loss", "val_loss"):
        if key != metric and isinstance(metrics.get(key), (int, float)):
            shown.append(f"{key} {format_value(float(metrics[key]))}")
    return f"  trial {number} epoch {shown_epoch(metrics['epoch'])}{of}: {', '.join(shown)}"


def finished_line(
    trial: Trial,
    trials: Sequence[Trial],
    *,
    direction: str = "maximize",
    metric: str = "val_accuracy",
    n_trials: int | None = None,
    unit: str | None = None,
    left: Any = None,
) -> str:
    """'trial 6 val_accuracy 0.9306 | 7 of 12 finished | best 0.9514 (trial 0) | 0.0633 CPU minutes |
    about 5 s left'. `trials`: the study's trials, this one included. `unit`: the cost unit (default:
    from the trials' devices, words.trials_cost_unit). `left`: a time_left.Estimate, or None."""
    from tunetorch.history import best_trial, device_minutes

    done = sum(t.finished for t in trials)
    if trial.state == TrialState.FAIL:
        result = f"FAILED: {trial.error}"
    else:
        result = f"{metric} {format_score(trial.score)}"
        if trial.state == TrialState.PRUNED:
            result += f" (pruned after {count(trial.epochs, 'epoch')})"
    best = best_trial(trials, direction)
    best_txt = f"best {format_score(best.score)} (trial {best.number})" if best else "no best yet"
    of = f" of {n_trials}" if n_trials else ""
    left = "" if left is None else f" | {left_text(left)}"
    unit = unit or trials_cost_unit(trials)
    return (
        f"trial {trial.number} {result} | {done}{of} finished | {best_txt} | "
        f"{minutes(device_minutes(trials), unit)}{left}"
    )


def left_text(left: Any) -> str:
    """A time_left.Estimate as words: 'about 40 s left', 'about 40 s to 1 min 20 s left'."""
    if left.single:
        return f"about {format_duration((left.low + left.high) / 2)} left"
    return f"about {format_duration(left.low)} to {format_duration(left.high)} left"


def top_table(trials: Sequence[Trial], direction: str = "maximize", k: int = 5, metric: str = "score") -> str:
    """The k best trials as a text table: trial, score, epochs, GPU (CPU) minutes, state, params."""
    rows = ranked(trials, direction)[:k]
    header = ["trial", metric, "epochs", trials_cost_unit(trials), "state", "params"]
    body = [
        [
            str(t.number),
            format_score(t.score),
            "-" if t.epochs is None else str(t.epochs),
            format_value((t.device_seconds or 0.0) / 60.0),
            t.state.value,
            format_params(t.params),
        ]
        for t in rows
    ]
    if not body:
        return "no scored trials"
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *body]:
        cells = [
            c.rjust(w) if i in (0, 1, 2, 3) else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=False))
        ]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    finished = count(sum(t.finished for t in trials), "finished trial")
    title = f"top {len(body)} of {finished} ({direction} {metric}):"
    return "\n".join([title, *lines])


def best_line(best: Trial | None, metric: str = "val_accuracy") -> str:
    """'best: trial 3, val_accuracy 0.9514 at epoch 9 of 10, params ...': the epoch counted from 1,
    as the epoch ticks, index.html and trials.csv count it."""
    if best is None:
        return "best: none (no trial finished with a score)"
    at = ""
    if best.best_epoch is not None:
        at = f" at epoch {shown_epoch(best.best_epoch)}" + (f" of {best.epochs}" if best.epochs else "")
    return (
        f"best: trial {best.number}, {metric} {format_score(best.score)}{at}, "
        f"params {format_params(best.params)}"
    )


def optimism_text(optimism: Mapping[str, Any]) -> str:
    """'validation accuracy 0.9514: validation was optimistic by 0.0097 (...)', or, when the test
    score came out better, what that is (summary.optimism_reading)."""
    from tunetorch.reports.summary import optimism_reading

    m = optimism["measure"]
    return f"validation {m} {format_score(optimism[f'val_{m}'])}: {optimism_reading(optimism)}"


def test_scores(test: Mapping[str, Any], rest: Any = format_value, bold: str = "") -> str:
    """A look's test metrics, worded once for the terminal and TensorBoard (words.test_parts):
    'test accuracy 0.9694 (loss 0.0673)', 'test mse 31.2000 (mae 4.1)': the study's metric to 4
    decimals (`bold` around it, e.g. "**"), the others as `rest` writes them; where the metric has
    no test counterpart, all of them: 'test loss 0.0673, accuracy 0.969'. `test`: summary.json's
    "test" (or evaluate's result)."""
    head, others = test_parts(test["metric"], test["metrics"])
    shown = [f"{name} {rest(float(value))}" for name, value in others]
    if head is None:
        return f"{bold}test {', '.join(shown)}{bold}" if shown else "no test metric"
    first = f"{bold}test {head[0]} {format_score(float(head[1]))}{bold}"
    return f"{first} ({', '.join(shown)})" if shown else first


def test_line(
    test: Mapping[str, Any],
    optimism: Mapping[str, Any] | None = None,
    *,
    n_test: int | None = None,
) -> str:
    """The test result on one line: 'test accuracy 0.9417 (loss 0.213) of trial 3 on 360 held-out
    examples, evaluated once; validation accuracy 0.9514: validation was optimistic by 0.0097 (...)'.
    `test`: summary.json's "test" (or evaluate's result); `optimism`: summary.json's "optimism".
    A study whose metric has no test counterpart says so where the optimism would be."""
    on = f" on {count(n_test, 'held-out example')}" if n_test else ""
    once = "a FORCED re-evaluation, flagged in summary.json" if test.get("forced") else "evaluated once"
    line = f"{test_scores(test)} of trial {test['trial']}{on}, {once}"
    if test.get("value") is None:
        line += f"; {no_test_counterpart(test['metric'], test['metrics'])}"
    elif optimism and optimism.get("trial") == test["trial"]:
        line += f"; {optimism_text(optimism)}"
    return line


def optimism_line(optimism: Mapping[str, Any] | None) -> str | None:
    """'test accuracy 0.9417 of trial 0; validation accuracy 0.9514: validation was optimistic by
    0.0097 (...)'. The test result with its optimism on one line: prefer `test_line`, which also
    gives the other test metrics and the examples."""
    if not optimism:
        return None
    m = optimism["measure"]
    return (
        f"test {m} {format_score(optimism[f'test_{m}'])} of trial {optimism['trial']}; "
        f"{optimism_text(optimism)}"
    )


def importance_line(importance: Mapping[str, Any] | None) -> str | None:
    """'which parameters mattered (fANOVA, 18 trials): optimizer.lr 71%, model.depth 16%, ...'."""
    if not importance:
        return None
    shares = importance.get("importance")
    if not shares:
        return f"which parameters mattered: not estimated ({importance.get('reason', 'too few trials')})"
    parts = ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
    return f"which parameters mattered (fANOVA, {count(importance['n_trials'], 'trial')}): {parts}"


# --- commands the terminal prints: each runs as printed ----------------------------------------
def _on_path(name: str) -> bool:
    """True when `name` typed in this shell runs the program beside this interpreter (the virtual
    environment is active, or the program is installed where PATH finds it first)."""
    found = shutil.which(name)
    here = Path(sys.executable).parent
    return found is not None and Path(os.path.abspath(found)).parent == Path(os.path.abspath(here))


def _as_typed(path: Path) -> str:
    """A program's path as a user would type it from the current folder: '.venv/bin/tensorboard'
    below it, the absolute path elsewhere; quoted for the shell when it needs to be."""
    path = Path(os.path.abspath(path))
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    return shlex.quote(shown)


def python_command() -> str:
    """How to start this interpreter, with tunetorch importable, from the current folder: 'python'
    when that is it (the environment is active), else its path ('.venv/bin/python')."""
    return "python" if _on_path("python") else _as_typed(Path(sys.executable))


def tensorboard_command(logdir: Path | str) -> str:
    """'tensorboard --logdir runs/x/tb' when the environment is active, else the script of this
    interpreter's environment ('.venv/bin/tensorboard --logdir runs/x/tb'), or, without one,
    '.venv/bin/python -m tensorboard.main --logdir runs/x/tb'."""
    logdir = shlex.quote(str(logdir))
    if _on_path("tensorboard"):
        return f"tensorboard --logdir {logdir}"
    script = Path(sys.executable).parent / "tensorboard"
    if script.is_file() and os.access(script, os.X_OK):
        return f"{_as_typed(script)} --logdir {logdir}"
    return f"{python_command()} -m tensorboard.main --logdir {logdir}"


def evaluate_command(study_dir: Path | str, force: bool = False) -> str:
    """'python -m tunetorch.evaluate study.dir=runs/x' (the interpreter as `python_command` gives it)."""
    forced = " force=true" if force else ""
    return f"{python_command()} -m tunetorch.evaluate {shlex.quote(f'study.dir={study_dir}')}{forced}"


def results_lines(study_dir: Path) -> list[str]:
    """Every output file present in the study directory, with what it holds, then how to open
    TensorBoard: a command that runs as printed (`tensorboard_command`)."""
    lines = [f"results in {study_dir}/:"]
    width = max(len(n) for n, _ in OUTPUTS)
    for name, what in OUTPUTS:
        if (study_dir / name).exists():
            lines.append(f"  {name:<{width}}  {what}")
    if (study_dir / "tb").is_dir():
        lines.append(f"  {'tb/':<{width}}  TensorBoard: {tensorboard_command(Path(study_dir) / 'tb')}")
    return lines
