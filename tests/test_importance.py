"""Parameter importance (fANOVA-style, random forest): the one parameter that matters ranks first."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunetorch.reports.importance import main_effects, min_trials, param_importance
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


def test_only_complete_trials_count_and_too_few_give_a_reason():
    good = trials_of(lambda p, rng: p["model.dropout"], min_trials(len(SPACE)) - 1)
    others = [
        Trial(100, good[0].params, TrialState.PRUNED, score=0.1, epochs=1),
        Trial(101, good[0].params, TrialState.FAIL),
        Trial(102, good[0].params, TrialState.RUNNING),
    ]
    result = param_importance(good + others, SPACE)
    assert result["importance"] is None and result["n_trials"] == len(good)
    assert f"needs at least {min_trials(len(SPACE))}" in result["reason"]


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
