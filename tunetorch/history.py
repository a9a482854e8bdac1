"""Pure queries over a study's trial history: one rule, one place.

Every reader of trials (the study, the search loop, reports, plots, the race) asks these
functions instead of re-deriving them, so "the best trial" or "minutes spent" cannot
mean two things in two places.

    trials: a list of Trial, in any order
    direction: "maximize" | "minimize" (the study's `study.direction`)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from tunetorch.trial import Trial, TrialState

DIRECTIONS = ("maximize", "minimize")

# Trials whose score may make them the study's best: they hold weights for that score.
SCORED = (TrialState.COMPLETE, TrialState.PRUNED)


def sign(direction: str) -> float:
    """+1 when higher is better, -1 when lower is: `sign * score` is always "higher is better"."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: {direction!r} is not one of {', '.join(DIRECTIONS)}")
    return 1.0 if direction == "maximize" else -1.0


def maximized(trials: Iterable[Trial], direction: str) -> list[Trial]:
    """The trials with scores turned to "higher is better", as every strategy expects."""
    s = sign(direction)
    if s > 0:
        return list(trials)
    return [t if t.score is None else t.replace(score=-t.score) for t in trials]


def ranked(trials: Iterable[Trial], direction: str = "maximize") -> list[Trial]:
    """The scored trials, best first. On a tie the one that trained more epochs ranks higher (a
    pruned trial never beats a longer one that scored as well), then the earliest."""
    s = sign(direction)
    scored = [t for t in trials if t.state in SCORED and t.score is not None]
    return sorted(scored, key=lambda t: (-s * t.score, -(t.epochs or 0), t.number))


def best_trial(trials: Iterable[Trial], direction: str = "maximize") -> Trial | None:
    """The first of `ranked`: the study's best trial, whose weights are kept and evaluated."""
    order = ranked(trials, direction)
    return order[0] if order else None


# --- a trial's standing: what a scheduler's decisions say of it ------------------------------------
def finite(score: object) -> bool:
    """A score that can be ranked: a number (not a bool), neither inf nor nan."""
    return isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score)


def by_standing(
    trials: Iterable[Trial], direction: str = "maximize", epochs: Callable[[Trial], float] | None = None
) -> list[Trial]:
    """The scored trials with a finite score, worst first, by their standing as the scheduler
    judged them: the epochs they trained (a completed trial above every stopped one, a trial
    stopped later above one stopped earlier), then the score. Ties keep the order given (the
    bayes strategy fits this order, fidelity `rank`, so its suggestions depend on it bit for bit).
    `epochs(t)`: the epochs stopped trial `t` trained; its `epochs` when None."""
    s = sign(direction)
    trained = epochs or (lambda t: float(t.epochs or 0))

    def standing(t: Trial) -> tuple[float, float]:
        return (math.inf if t.state == TrialState.COMPLETE else trained(t)), s * float(t.score)

    return sorted((t for t in trials if t.state in SCORED and finite(t.score)), key=standing)


def normal_scores(n: int) -> Any:
    """(n,) Phi^-1((r + 1/2) / n) for ranks r = 0 .. n - 1: evenly spread quantiles of a normal,
    the value of the r-th of n trials by standing (and of any ranking put on a GP's scale)."""
    import numpy as np
    from scipy.stats import norm

    return norm.ppf((np.arange(n) + 0.5) / max(n, 1))


def finished(trials: Iterable[Trial]) -> list[Trial]:
    return sorted((t for t in trials if t.finished), key=lambda t: t.number)


def count_state(trials: Iterable[Trial], state: TrialState) -> int:
    """How many of the trials are in `state` (a TrialState, never its string)."""
    return sum(t.state == state for t in trials)


def device_minutes(trials: Iterable[Trial]) -> float:
    """Device minutes charged to the finished trials (completed, pruned and failed)."""
    return sum(t.device_seconds or 0.0 for t in trials if t.finished) / 60.0


def best_so_far(trials: Iterable[Trial], direction: str = "maximize") -> list[tuple[float, float, int]]:
    """(cumulative device minutes, best score so far, trial number) at each finished trial,
    in trial-number order, from the first trial that has a score."""
    s = sign(direction)
    out, spent, best = [], 0.0, None
    for t in finished(trials):
        spent += (t.device_seconds or 0.0) / 60.0
        if t.state in SCORED and t.score is not None and (best is None or s * t.score > s * best):
            best = t.score
        if best is not None:
            out.append((spent, best, t.number))
    return out


def consecutive_failures(trials: Iterable[Trial]) -> int:
    """How many of the newest finished trials failed in a row."""
    n = 0
    for t in reversed(finished(trials)):
        if t.state != TrialState.FAIL:
            break
        n += 1
    return n


def pruned_per_rung(trials: Iterable[Trial]) -> dict[int, int]:
    """How many trials the scheduler stopped at each rung: epochs trained -> count of PRUNED
    trials, in increasing epochs (a pruned trial's `epochs` is the rung it stopped at)."""
    counts: dict[int, int] = {}
    for t in trials:
        if t.state == TrialState.PRUNED and t.epochs is not None:
            counts[t.epochs] = counts.get(t.epochs, 0) + 1
    return dict(sorted(counts.items()))


def completed_looks(evaluations: Iterable[dict]) -> list[dict]:
    """The looks at the test split whose result was recorded, oldest first (a look journaled as
    started and never completed counts as a look, but has no result)."""
    return [e for e in evaluations if e.get("status") == "completed"]


def stale_test(evaluations: Iterable[dict], trials: Iterable[Trial], direction: str = "maximize") -> bool:
    """True when the last completed test result is of a trial that is no longer the best (a study
    resumed and extended after its evaluation): a new look at the test split must be forced."""
    completed = completed_looks(evaluations)
    best = best_trial(trials, direction)
    return bool(completed) and best is not None and completed[-1]["trial"] != best.number
