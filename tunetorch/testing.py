"""The strategy contract as tests anyone can run, the way Optuna ships its sampler tests.

    from tunetorch.testing import STRATEGY_CONTRACT
    @pytest.mark.parametrize("check", STRATEGY_CONTRACT)
    def test_my_strategy(check):
        check(lambda space, seed: MyStrategy(space, seed=seed))

A factory takes (space, seed) and returns a Strategy. Each check raises AssertionError with
what broke: reproducible with a seed, seed-dependent, inside the space, distinct points for
pending trials, unstopped by failed trials, and rebuildable from the history alone (no state
outside it, so a resumed study proposes what an uninterrupted one would have).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tunetorch.space import SearchSpace
from tunetorch.study import Study
from tunetorch.trial import TrialState

Factory = Callable[[SearchSpace, int], Any]

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "depth": {"type": "int", "low": 1, "high": 4},
    "act": {"type": "categorical", "choices": ["relu", "gelu", "tanh"]},
}


def objective(p: dict) -> float:
    """A smooth toy objective over SPACE, best near lr 10^-2.5, dropout 0.2, depth 2, gelu."""
    return (
        -((math.log10(p["lr"]) + 2.5) ** 2)
        - (p["dropout"] - 0.2) ** 2
        - 0.1 * abs(p["depth"] - 2)
        + (0.1 if p["act"] == "gelu" else 0.0)
    )


def _study(make: Factory, seed: int) -> Study:
    space = SearchSpace.from_dict(SPACE)
    return Study(space, make(space, seed), seed=seed)


def _run(make: Factory, n: int, seed: int = 0) -> list[dict]:
    study = _study(make, seed)
    out = []
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, objective(trial.params))
        out.append(trial.params)
    return out


def check_same_seed_same_suggestions(make: Factory) -> None:
    assert _run(make, 10, seed=3) == _run(make, 10, seed=3), "the same seed gave different suggestions"


def check_different_seed_different_suggestions(make: Factory) -> None:
    assert _run(make, 10, seed=1) != _run(make, 10, seed=2), "two seeds gave the same suggestions"


def check_never_outside_the_space(make: Factory) -> None:
    space = SearchSpace.from_dict(SPACE)
    for params in _run(make, 12):
        assert space.contains(params), f"outside the space: {params}"
        assert isinstance(params["depth"], int), f"an int dimension got {params['depth']!r}"


def check_pending_trials_get_distinct_points(make: Factory) -> None:
    study = _study(make, 0)
    for _ in range(8):  # past any initial design
        t = study.ask()
        study.tell(t, objective(t.params))
    pending = [study.ask() for _ in range(4)]  # four workers busy at once
    keys = {tuple(sorted(t.params.items())) for t in pending}
    assert len(keys) == 4, f"pending trials share points: {[t.params for t in pending]}"


def check_failed_trials_do_not_stop_the_search(make: Factory) -> None:
    study = _study(make, 0)
    for i in range(12):
        t = study.ask()
        study.tell(t, None if i % 3 == 0 else objective(t.params))
    assert sum(t.state == TrialState.FAIL for t in study.trials) == 4
    assert study.best is not None and study.best.state == TrialState.COMPLETE
    assert study.best.score == max(objective(t.params) for t in study.completed)


def check_rebuilt_from_history_suggests_the_same(make: Factory) -> None:
    space = SearchSpace.from_dict(SPACE)
    study = Study(space, make(space, 5), seed=5)
    for _ in range(7):
        t = study.ask()
        study.tell(t, objective(t.params))
    fresh = make(space, 5)
    assert fresh.suggest(7, study.snapshot()) == study.strategy.suggest(7, study.snapshot()), (
        "a fresh strategy given the same history proposed something else: it keeps state outside the history"
    )


STRATEGY_CONTRACT = [
    check_same_seed_same_suggestions,
    check_different_seed_different_suggestions,
    check_never_outside_the_space,
    check_pending_trials_get_distinct_points,
    check_failed_trials_do_not_stop_the_search,
    check_rebuilt_from_history_suggests_the_same,
]
