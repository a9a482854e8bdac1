"""Parameter importance (fANOVA-style, random forest): the one parameter that matters ranks first."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunetorch.reports.importance import (
    comparable,
    main_effects,
    min_trials,
    normal_scores,
    pair_surface,
    param_importance,
)
from tunetorch.space import SearchSpace
from tunetorch.trial import Trial, TrialState

SPACE = SearchSpace.from_dict(
    {
        "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "optimizer.weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.6},
        "model.depth": {"type": "int", "low": 1, "high": 4},
        "model.act": {"type": "categorical", "choices": ["relu", "gelu", "tanh"]},
    }
)


def trials_of(objective, n: int, seed: int = 0, space: SearchSpace = SPACE) -> list[Trial]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = space.sample(rng)
        out.append(Trial(i, p, TrialState.COMPLETE, score=objective(p, rng)))
    return out


@pytest.mark.parametrize("name", list(SPACE.names))
def test_the_only_parameter_that_matters_ranks_first(name):
    dim = SPACE[name]

    def objective(p, rng):  # a bump in the one parameter's unit coordinate, plus a little noise
        u = dim.encode(p[name])
        return 0.9 - 0.3 * (u - 0.6) ** 2 + 0.002 * rng.normal()

    result = param_importance(trials_of(objective, 30), SPACE)
    shares = result["importance"]
    assert list(shares)[0] == name, shares
    assert shares[name] > 0.6, shares
    assert math.isclose(sum(shares.values()), 1.0, abs_tol=1e-3)
    assert result["n_trials"] == 30 and "fANOVA" in result["method"]


def test_log_dimensions_count_in_log_units():
    # Accuracy depends on log10(lr) linearly: on the unit cube (log-encoded) that is a clean main effect.
    result = param_importance(
        trials_of(lambda p, rng: 0.5 + 0.1 * math.log10(p["optimizer.lr"]) + 0.001 * rng.normal(), 25), SPACE
    )
    assert list(result["importance"])[0] == "optimizer.lr" and result["main_effects"] > 0.8


def test_failed_and_running_trials_never_count_and_too_few_give_a_reason():
    need = min_trials(len(SPACE))
    good = trials_of(lambda p, rng: p["model.dropout"], need - 2)
    others = [
        Trial(100, good[0].params, TrialState.PRUNED, score=0.1, epochs=1),  # counts
        Trial(101, good[0].params, TrialState.FAIL),
        Trial(102, good[0].params, TrialState.RUNNING),
    ]
    result = param_importance(good + others, SPACE)
    assert result["importance"] is None and result["n_trials"] == need - 1
    assert result["reason"] == f"{need - 1} scored trials; needs at least {need}"
    alone = param_importance(good, SPACE)
    assert alone["reason"] == f"{need - 2} complete trials; needs at least {need}"


def test_constant_scores_have_no_importance():
    result = param_importance(trials_of(lambda p, rng: 0.5, 12), SPACE)
    assert result["importance"] is None and "scored the same" in result["reason"]


def test_main_effects_of_an_additive_function_add_up_to_one():
    rng = np.random.default_rng(1)
    X = rng.random((200, 3))
    y = 3 * X[:, 0] + 1 * X[:, 1]  # additive: no interactions; x2 is irrelevant
    fractions, total = main_effects(X, y)
    assert total > 0 and fractions[0] > fractions[1] > fractions[2]
    assert fractions.sum() == pytest.approx(1.0, abs=0.15) and fractions[2] < 0.02


def _asha_like(n_complete: int, n_pruned: int, epochs: int = 9, seed: int = 0) -> list[Trial]:
    """Trials as ASHA leaves them: accuracy depends on lr alone (a bump), most stopped after one
    epoch with their score there, the rest run to `epochs`."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_complete + n_pruned):
        p = SPACE.sample(rng)
        peak = 0.95 - 0.3 * (SPACE["optimizer.lr"].encode(p["optimizer.lr"]) - 0.6) ** 2
        if i < n_complete:
            out.append(Trial(i, p, TrialState.COMPLETE, score=peak, epochs=epochs))
        else:
            out.append(Trial(i, p, TrialState.PRUNED, score=peak - 0.2, epochs=1))
    return out


def test_pruned_trials_count_when_the_complete_ones_are_too_few():
    """The issue's study: 2 complete trials, 18 stopped after one epoch: all 20 count."""
    trials = _asha_like(2, 18) + [Trial(20, SPACE.sample(np.random.default_rng(9)), TrialState.FAIL)]
    result = param_importance(trials, SPACE)
    assert result["n_trials"] == 20 and result["n_pruned"] == 18
    assert list(result["importance"])[0] == "optimizer.lr", result["importance"]
    assert result["importance"]["optimizer.lr"] > 0.6
    assert result["counted"].startswith("20 trials (2 complete, 18 pruned), each valued by its standing")


def test_standing_puts_complete_trials_above_pruned_ones_and_later_stops_above_earlier():
    """Ordered by epochs trained, then score (the order of bayes' `fidelity: rank`), as normal scores."""
    p = SPACE.sample(np.random.default_rng(0))
    trials = [
        Trial(0, p, TrialState.COMPLETE, score=0.80, epochs=9),
        Trial(1, p, TrialState.PRUNED, score=0.95, epochs=3),  # high, but stopped: below trial 0
        Trial(2, p, TrialState.PRUNED, score=0.90, epochs=1),
        Trial(3, p, TrialState.PRUNED, score=0.96, epochs=1),  # better than 2 at the same rung
        Trial(4, p, TrialState.COMPLETE, score=0.85, epochs=9),
        Trial(5, p, TrialState.FAIL),
    ]
    used = comparable(trials, SPACE)
    assert used.ranked and [t.number for t in used.trials] == [2, 3, 1, 0, 4]
    assert np.allclose(used.y, normal_scores(5)) and np.all(np.diff(used.y) > 0)
    assert abs(used.y.sum()) < 1e-12
    low = comparable([t.replace(score=-t.score) if t.score else t for t in trials], SPACE, "minimize")
    assert [t.number for t in low.trials] == [2, 3, 1, 0, 4]  # the same order, minimizing the negated


def test_without_pruned_trials_the_complete_ones_count_with_their_own_scores():
    trials = _asha_like(12, 0) + [Trial(50, SPACE.sample(np.random.default_rng(3)), TrialState.FAIL)]
    used = comparable(trials, SPACE)
    assert not used.ranked and [t.number for t in used.trials] == list(range(12))
    assert list(used.y) == [t.score for t in trials[:12]]
    assert param_importance(trials, SPACE)["counted"] == "12 complete trials, each with its own score"


def test_pair_surface_follows_the_two_parameters():
    rng = np.random.default_rng(2)
    X = rng.random((120, 3))
    y = X[:, 0] + 2 * X[:, 2]  # x1 is irrelevant
    Z = pair_surface(X, y, 0, 2, n_grid=8)
    assert Z.shape == (8, 8)
    assert Z[-1, -1] > Z[0, -1] > Z[0, 0] and Z[-1, -1] > Z[-1, 0] > Z[0, 0]
    assert (Z[-1, :] - Z[0, :]).mean() < (Z[:, -1] - Z[:, 0]).mean()  # x2 moves it twice as far
