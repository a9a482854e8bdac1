"""What the terminal prints, as pure text functions (the search loop decides when to print them).

One number format everywhere: parameters and minutes to 3 significant digits, scores to 4
decimals; trials by their 0-based number, counts ("7 of 12 finished") kept apart from it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tunetorch.budget import Budget
from tunetorch.history import sign
from tunetorch.trial import Trial, TrialState

# Trials shorter than this print no epoch ticks: their finished line follows soon enough.
EPOCH_TICK_AFTER_SECONDS = 5.0

# The study directory's outputs, in the order a user reads them; `results_lines` lists those present.
OUTPUTS = (
    ("index.html", "the report: open it in a browser"),
    ("summary.json", "best trial, test result, optimism, importance"),
    ("trials.csv", "one row per trial"),
    ("progress.png", "best score so far against device minutes"),
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


def budget_text(budget: Budget, unit: str = "GPU minutes") -> str:
    """The budget as it applies (tunetorch/budget.py): '12 trials', '30 GPU minutes (no trial cap)',
    '12 trials or 30 GPU minutes, whichever is spent first', '20 trials (the default; set ...)'."""
    trials = f"{budget.n_trials} trial{'' if budget.n_trials == 1 else 's'}" if budget.n_trials else ""
    if budget.defaulted:
        return f"{trials} (the default; set budget.n_trials or budget.gpu_minutes)"
    minutes = ""
    if budget.gpu_minutes:
        # '1 GPU minute', '0.5 GPU minutes'
        minutes = f"{budget.gpu_minutes:g} {unit.removesuffix('s') if budget.gpu_minutes == 1 else unit}"
    if trials and minutes:
        return f"{trials} or {minutes}, whichever is spent first"
    return trials or f"{minutes} (no trial cap)"


def started_line(number: int, params: Mapping[str, Any], device: str | None = None) -> str:
    on = f" on {device}" if device else ""
    return f"trial {number} started{on}: {format_params(params)}"


def epoch_line(
    number: int, metrics: Mapping[str, Any], epochs: int | None, metric: str = "val_accuracy"
) -> str:
    """A tick while a long trial runs: 'trial 6 epoch 3/10: val_accuracy 0.9514, train_loss 0.123'.
    `metrics` is one epoch row ({"epoch": 0-based, ...}); shown 1-based against the epochs asked."""
    of = f"/{epochs}" if epochs else ""
    shown = [f"{metric} {format_score(metrics.get(metric))}"]
    for key in ("train_loss", "val_loss"):
        if key != metric and isinstance(metrics.get(key), (int, float)):
            shown.append(f"{key} {format_value(float(metrics[key]))}")
    return f"  trial {number} epoch {int(metrics['epoch']) + 1}{of}: {', '.join(shown)}"


def finished_line(
    trial: Trial,
    trials: Sequence[Trial],
    *,
    direction: str = "maximize",
    metric: str = "val_accuracy",
    n_trials: int | None = None,
    unit: str = "GPU minutes",
    seconds_left: float | None = None,
) -> str:
    """'trial 6 COMPLETE val_accuracy 0.9306 | 7 of 12 finished | best 0.9514 (trial 0) | 0.0633 CPU-device
    minutes | about 5 s left'. `trials`: the study's trials, this one included."""
    from tunetorch.history import best_trial, device_minutes

    done = sum(t.finished for t in trials)
    if trial.state == TrialState.FAIL:
        result = f"FAILED: {trial.error}"
    else:
        result = f"{metric} {format_score(trial.score)}"
        if trial.state == TrialState.PRUNED:
            result += f" (pruned after {trial.epochs} epoch{'' if trial.epochs == 1 else 's'})"
    best = best_trial(trials, direction)
    best_txt = f"best {format_score(best.score)} (trial {best.number})" if best else "no best yet"
    of = f" of {n_trials}" if n_trials else ""
    left = "" if seconds_left is None else f" | about {format_duration(seconds_left)} left"
    return (
        f"trial {trial.number} {result} | {done}{of} finished | {best_txt} | "
        f"{format_value(device_minutes(trials))} {unit}{left}"
    )


def seconds_left(
    trials: Sequence[Trial],
    *,
    slots: int,
    n_trials: int | None = None,
    minutes: float | None = None,
) -> float | None:
    """Wall seconds until the budget is spent, from the trials' own run times (not the time since the
    start, which holds the workers' start-up); None until a trial has finished with a run time.

    Trials budget: the remaining trials, `slots` at a time, each taking the median trial's wall time.
    Minutes budget: the device seconds left, spent `slots` at a time.
    """
    runs = [t.wall_seconds for t in trials if t.finished and t.wall_seconds]
    if not runs:
        return None
    per_trial = statistics.median(runs)
    done = sum(t.finished for t in trials)
    estimates = []
    if n_trials:
        estimates.append(math.ceil(max(0, n_trials - done) / max(slots, 1)) * per_trial)
    if minutes:
        spent = sum(t.device_seconds or 0.0 for t in trials if t.finished)
        estimates.append(max(0.0, minutes * 60 - spent) / max(slots, 1))
    return min(estimates) if estimates else None


def ranked(trials: Iterable[Trial], direction: str = "maximize") -> list[Trial]:
    """Scored trials best first, by the rule of history.best_trial (score, then epochs, then earliest)."""
    from tunetorch.history import SCORED

    s = sign(direction)
    scored = [t for t in trials if t.state in SCORED and t.score is not None]
    return sorted(scored, key=lambda t: (-s * t.score, -(t.epochs or 0), t.number))


def top_table(trials: Sequence[Trial], direction: str = "maximize", k: int = 5, metric: str = "score") -> str:
    """The k best trials as a text table: trial, score, epochs, device minutes, state, params."""
    rows = ranked(trials, direction)[:k]
    header = ["trial", metric, "epochs", "device min", "state", "params"]
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
    title = f"top {len(body)} of {sum(t.finished for t in trials)} finished trials ({direction} {metric}):"
    return "\n".join([title, *lines])


def best_line(best: Trial | None, metric: str = "val_accuracy") -> str:
    if best is None:
        return "best: none (no trial finished with a score)"
    return (
        f"best: trial {best.number}, {metric} {format_score(best.score)}, params {format_params(best.params)}"
    )


def optimism_line(optimism: Mapping[str, Any] | None) -> str | None:
    """'test accuracy 0.9417 for trial 0 (validation 0.9514): optimism of validation +0.0097 ...'."""
    if not optimism:
        return None
    m = optimism["measure"]
    return (
        f"test {m} {format_score(optimism[f'test_{m}'])} for trial {optimism['trial']} "
        f"(validation {format_score(optimism[f'val_{m}'])}): optimism of validation {optimism['gap']:+.4f} "
        f"(validation minus test; the best of many trials on validation flatters it)"
    )


def importance_line(importance: Mapping[str, Any] | None) -> str | None:
    """'which parameters mattered (fANOVA, 18 trials): optimizer.lr 71%, model.depth 16%, ...'."""
    if not importance:
        return None
    shares = importance.get("importance")
    if not shares:
        return f"which parameters mattered: not estimated ({importance.get('reason', 'too few trials')})"
    parts = ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
    return f"which parameters mattered (fANOVA, {importance['n_trials']} trials): {parts}"


def results_lines(study_dir: Path) -> list[str]:
    """Every output file present in the study directory, with what it holds, then how to open TensorBoard."""
    lines = [f"results in {study_dir}/:"]
    width = max(len(n) for n, _ in OUTPUTS)
    for name, what in OUTPUTS:
        if (study_dir / name).exists():
            lines.append(f"  {name:<{width}}  {what}")
    if (study_dir / "tb").is_dir():
        lines.append(f"  {'tb/':<{width}}  tensorboard --logdir {study_dir}/tb")
    return lines
