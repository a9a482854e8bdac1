"""Which knobs mattered: fANOVA-style parameter importance from every trial a model can use.

Method (Hutter, Hoos & Leyton-Brown, "An Efficient Approach for Assessing Hyperparameter
Importance", ICML 2014; the same idea as Optuna's FanovaImportanceEvaluator): fit a random
forest (scikit-learn) that predicts a trial's score from its parameters, then decompose the
variance of that prediction over the search space (uniform in the space's unit-cube encoding,
so log dimensions count in log units). A parameter's main effect is the variance of the
prediction averaged over all other parameters, as a function of that parameter alone:

    f_i(u) = E_{x_-i}[ f(x_i = u, x_-i) ],      V_i = Var_u f_i(u)

Its importance is V_i / sum_j V_j (the shares add up to 1). The expectations are estimated by
Monte Carlo on a fixed grid of u values and a fixed uniform sample of the other coordinates,
instead of fANOVA's exact walk over the trees; with 64 trees and a few hundred samples the
estimate is stable to about a percent. `main_effects` is V_i / Var f: what is left below 1 is
the share of interactions. `pair_surface` is the same average over two coordinates at once
(the contour in index.html).

Which trials count (`comparable`): a scheduler stops most trials early (ASHA: 18 of 20), so
the complete trials alone are often too few, and a pruned trial's score (after fewer epochs) is
not comparable with a complete one's. So once the scheduler has stopped a trial, every scored
trial counts (complete and pruned), valued by its standing as the scheduler judged it: ordered
by the epochs it trained (a complete trial above every pruned one, a trial stopped later above
one stopped earlier), then by its score, and the order mapped to normal scores (rank r of n ->
Phi^-1((r + 1/2) / n)). This is the order tunetorch's bayes strategy fits by default
(`fidelity: rank`; Optuna's TPE orders pruned trials the same way): one rule,
`history.by_standing`, so that trials that tie (same epochs, same score) keep the order they
are given in, the earlier below the later, as the strategy has them. A study with no pruned
trial counts its complete trials with their own scores, as before. Failed trials have no score
and never count.

Symbols: X: (n_trials, n_dims) parameters in the unit cube (SearchSpace.to_unit), y: (n_trials,)
scores, B: (n_base, n_dims) uniform base sample, G: (n_grid,) values of one coordinate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunetorch.history import SCORED, by_standing, finite, normal_scores
from tunetorch.space import SearchSpace
from tunetorch.trial import Trial, TrialState
from tunetorch.words import count

METHOD = "fANOVA main effects of a random forest (scikit-learn, 64 trees) over the unit-cube encoding"


def min_trials(n_dims: int) -> int:
    """Fewer trials than this give a forest that mostly fits noise: no importance then."""
    return max(5, n_dims + 2)


@dataclass(frozen=True)
class Comparable:
    """The trials that count and the value the forest learns for each."""

    trials: list[Trial]
    y: np.ndarray  # (n_trials,): own scores, or normal scores of the standing when `ranked`
    ranked: bool


def comparable(trials: Sequence[Trial], space: SearchSpace, direction: str = "maximize") -> Comparable:
    """The trials a model can use and their values (module docstring)."""
    scored = [t for t in trials if t.state in SCORED and finite(t.score) and space.contains(t.params)]
    if not any(t.state == TrialState.PRUNED for t in scored):
        done = [t for t in scored if t.state == TrialState.COMPLETE]
        return Comparable(done, np.array([t.score for t in done], dtype=float), False)
    ordered = by_standing(scored, direction)  # worst first
    return Comparable(ordered, normal_scores(len(ordered)), True)


def fit_forest(X: np.ndarray, y: np.ndarray, *, n_trees: int = 64, seed: int = 0):
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=n_trees, min_samples_leaf=1, random_state=seed)
    return forest.fit(X, y)


def main_effects(
    X: np.ndarray, y: np.ndarray, *, n_trees: int = 64, n_base: int = 256, n_grid: int = 24, seed: int = 0
) -> tuple[np.ndarray, float]:
    """(V_i / Var f for each dimension, Var f): main-effect variance fractions of a forest fit to (X, y)."""
    n, d = X.shape
    forest = fit_forest(X, y, n_trees=n_trees, seed=seed)
    rng = np.random.default_rng(seed)
    B = rng.random((n_base, d))
    total = float(np.var(forest.predict(B)))
    if total <= 0.0:
        return np.zeros(d), 0.0  # a constant forest: every trial scored the same
    G = (np.arange(n_grid) + 0.5) / n_grid  # cell centres: every int/categorical cell gets its share
    fractions = np.empty(d)
    for i in range(d):
        stacked = np.repeat(B[None, :, :], n_grid, axis=0)  # (n_grid, n_base, d)
        stacked[:, :, i] = G[:, None]
        marginal = forest.predict(stacked.reshape(-1, d)).reshape(n_grid, n_base).mean(axis=1)
        fractions[i] = float(np.var(marginal)) / total
    return fractions, total


def pair_surface(
    X: np.ndarray, y: np.ndarray, i: int, j: int, *, n_grid: int = 24, n_base: int = 96, seed: int = 0
) -> np.ndarray:
    """Z: (n_grid, n_grid), Z[a, b] = E_{x_-ij}[ f(x_i = G[a], x_j = G[b], x_-ij) ] for the forest
    fit to (X, y), G the cell centres of [0, 1]: the score the model expects at each pair."""
    n, d = X.shape
    forest = fit_forest(X, y, seed=seed)
    B = np.random.default_rng(seed).random((n_base, d))
    G = (np.arange(n_grid) + 0.5) / n_grid
    stacked = np.repeat(B[None, None, :, :], n_grid, axis=0).repeat(n_grid, axis=1)  # (g, g, n_base, d)
    stacked[:, :, :, i] = G[:, None, None]
    stacked[:, :, :, j] = G[None, :, None]
    return forest.predict(stacked.reshape(-1, d)).reshape(n_grid, n_grid, n_base).mean(axis=2)


def counting(used: Comparable) -> str:
    """How the trials counted, in words, for summary.json and index.html."""
    n_pruned = sum(t.state == TrialState.PRUNED for t in used.trials)
    n_complete = len(used.trials) - n_pruned
    if not used.ranked:
        return f"{count(n_complete, 'complete trial')}, each with its own score"
    return (
        f"{count(len(used.trials), 'trial')} ({n_complete} complete, {n_pruned} pruned), each valued by "
        "its standing: a complete trial above every pruned one, a trial stopped later above one stopped "
        "earlier, then by score (as normal scores of the rank)"
    )


def param_importance(
    trials: Sequence[Trial], space: SearchSpace, *, direction: str = "maximize", seed: int = 0
) -> dict[str, Any]:
    """Importance of each parameter from the trials `comparable` picks: every scored trial once
    the scheduler has stopped one, else the complete ones.

    Returns {"method", "n_trials", "n_pruned", "counted" (how the trials counted, in words),
    "importance": {name: share, ...} (largest first, shares add to 1), "main_effects": fraction
    of the variance the main effects explain} or, with too few trials, "importance": None and a
    "reason".
    """
    used = comparable(trials, space, direction)
    out: dict[str, Any] = {
        "method": METHOD,
        "n_trials": len(used.trials),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in used.trials),
        "counted": counting(used),
    }
    need = min_trials(len(space))
    if len(used.trials) < need:
        what = "scored trial" if used.ranked else "complete trial"
        reason = f"{count(len(used.trials), what)}; needs at least {need}"
        return out | {"importance": None, "reason": reason}
    if len(space) == 1:
        return out | {"importance": {space.names[0]: 1.0}, "main_effects": 1.0}
    X = np.array([space.to_unit(t.params) for t in used.trials])
    fractions, total = main_effects(X, used.y, seed=seed)
    if total == 0.0 or fractions.sum() <= 0.0:
        return out | {"importance": None, "reason": "every counted trial scored the same"}
    shares = fractions / fractions.sum()
    order = np.argsort(-shares, kind="stable")
    return out | {
        "importance": {space.names[i]: round(float(shares[i]), 4) for i in order},
        "main_effects": round(float(min(fractions.sum(), 1.0)), 4),
    }
