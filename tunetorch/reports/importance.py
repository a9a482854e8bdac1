"""Which knobs mattered: fANOVA-style parameter importance from the finished trials.

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
the share of interactions.

Symbols: X: (n_trials, n_dims) parameters in the unit cube (SearchSpace.to_unit), y: (n_trials,)
scores, B: (n_base, n_dims) uniform base sample, G: (n_grid,) values of one coordinate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunetorch.space import SearchSpace
from tunetorch.trial import Trial, TrialState
from tunetorch.words import count

METHOD = "fANOVA main effects of a random forest (scikit-learn, 64 trees) over the unit-cube encoding"


def min_trials(n_dims: int) -> int:
    """Fewer finished trials than this give a forest that mostly fits noise: no importance then."""
    return max(5, n_dims + 2)


def main_effects(
    X: np.ndarray, y: np.ndarray, *, n_trees: int = 64, n_base: int = 256, n_grid: int = 24, seed: int = 0
) -> tuple[np.ndarray, float]:
    """(V_i / Var f for each dimension, Var f): main-effect variance fractions of a forest fit to (X, y)."""
    from sklearn.ensemble import RandomForestRegressor

    n, d = X.shape
    forest = RandomForestRegressor(n_estimators=n_trees, min_samples_leaf=1, random_state=seed)
    forest.fit(X, y)
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


def param_importance(trials: Sequence[Trial], space: SearchSpace, *, seed: int = 0) -> dict[str, Any]:
    """Importance of each parameter from the COMPLETE trials (pruned ones trained fewer epochs, so
    their scores are not comparable; failed ones have none).

    Returns {"method", "n_trials", "importance": {name: share, ...} (largest first, shares add to 1),
    "main_effects": fraction of the score's variance the main effects explain} or, with too few
    trials, {"method", "n_trials", "importance": None, "reason"}.
    """
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.score is not None
        and np.isfinite(t.score)
        and space.contains(t.params)
    ]
    out: dict[str, Any] = {"method": METHOD, "n_trials": len(done)}
    need = min_trials(len(space))
    if len(done) < need:
        reason = f"{count(len(done), 'complete trial')}; needs at least {need}"
        return out | {"importance": None, "reason": reason}
    if len(space) == 1:
        return out | {"importance": {space.names[0]: 1.0}, "main_effects": 1.0}
    X = np.array([space.to_unit(t.params) for t in done])
    y = np.array([t.score for t in done], dtype=float)
    fractions, total = main_effects(X, y, seed=seed)
    if total == 0.0 or fractions.sum() <= 0.0:
        return out | {"importance": None, "reason": "every complete trial scored the same"}
    shares = fractions / fractions.sum()
    order = np.argsort(-shares, kind="stable")
    return out | {
        "importance": {space.names[i]: round(float(shares[i]), 4) for i in order},
        "main_effects": round(float(min(fractions.sum(), 1.0)), 4),
    }
