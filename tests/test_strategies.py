"""One contract for every strategy: seeded, inside the space, pending and failed trials, resumable."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunetorch import SearchSpace, SpaceExhausted, Study, TrialState, make_strategy

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "depth": {"type": "int", "low": 1, "high": 4},
    "act": {"type": "categorical", "choices": ["relu", "gelu", "tanh"]},
}

# name -> strategy options; a new strategy adds one line here.
STRATEGIES = {
    "random": {},
    "grid": {"resolution": 3},
    "bayes": {"n_startup": 5},
}


def objective(p: dict) -> float:
    return (
        -((math.log10(p["lr"]) + 2.5) ** 2)
        - (p["dropout"] - 0.2) ** 2
        - 0.1 * abs(p["depth"] - 2)
        + (0.1 if p["act"] == "gelu" else 0.0)
    )


def run(name: str, n: int, seed: int = 0) -> list[dict]:
    study = Study(SearchSpace.from_dict(SPACE), strategy=name, seed=seed, **STRATEGIES[name])
    out = []
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, objective(trial.params))
        out.append(trial.params)
    return out


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_suggestions(name):
    assert run(name, 10, seed=3) == run(name, 10, seed=3)


@pytest.mark.parametrize("name", STRATEGIES)
def test_different_seed_different_suggestions(name):
    assert run(name, 10, seed=1) != run(name, 10, seed=2)


@pytest.mark.parametrize("name", STRATEGIES)
def test_never_outside_the_space(name):
    space = SearchSpace.from_dict(SPACE)
    for params in run(name, 12):
        assert space.contains(params), params
        assert isinstance(params["depth"], int)


@pytest.mark.parametrize("name", STRATEGIES)
def test_pending_trials_get_distinct_points(name):
    study = Study(SearchSpace.from_dict(SPACE), strategy=name, seed=0, **STRATEGIES[name])
    for _ in range(8):  # warm up past any initial design
        t = study.ask()
        study.tell(t, objective(t.params))
    pending = [study.ask() for _ in range(4)]  # four workers busy at once
    keys = {tuple(sorted(t.params.items())) for t in pending}
    assert len(keys) == 4
    assert all(t.state == TrialState.RUNNING for t in study.trials[-4:])


@pytest.mark.parametrize("name", STRATEGIES)
def test_failed_trials_do_not_stop_the_search(name):
    study = Study(SearchSpace.from_dict(SPACE), strategy=name, seed=0, **STRATEGIES[name])
    for i in range(12):
        t = study.ask()
        study.tell(t, None if i % 3 == 0 else objective(t.params))
    assert sum(t.state == TrialState.FAIL for t in study.trials) == 4
    assert study.best is not None and study.best.state == TrialState.COMPLETE
    assert study.best.score == max(objective(t.params) for t in study.completed)


@pytest.mark.parametrize("name", STRATEGIES)
def test_rebuilt_from_history_suggests_the_same(name):
    """A strategy keeps no state outside the history: a fresh one continues identically."""
    space = SearchSpace.from_dict(SPACE)
    study = Study(space, strategy=name, seed=5, **STRATEGIES[name])
    for _ in range(7):
        t = study.ask()
        study.tell(t, objective(t.params))
    fresh = make_strategy(name, space, seed=5, **STRATEGIES[name])
    assert fresh.suggest(7, study.trials) == study.strategy.suggest(7, study.trials)


def test_grid_exhausts_the_lattice_once():
    study = Study(SearchSpace.from_dict(SPACE), strategy="grid", resolution=2)
    seen = []
    with pytest.raises(SpaceExhausted):
        while True:
            t = study.ask()
            study.tell(t, 0.0)
            seen.append(tuple(sorted(t.params.items())))
    assert len(seen) == len(set(seen)) == 2 * 2 * 2 * 3  # lr x dropout x depth x act


def test_random_is_log_uniform_on_log_dimensions():
    study = Study(SearchSpace.from_dict(SPACE), strategy="random", seed=0)
    lrs = []
    for _ in range(2000):
        t = study.ask()
        study.tell(t, 0.0)
        lrs.append(t.params["lr"])
    decades = np.histogram(np.log10(lrs), bins=[-4, -3, -2, -1])[0]
    assert decades.min() > 550  # about 667 per decade; uniform-in-value would put ~90% in the top one


def test_unknown_strategy_and_option_are_usage_errors():
    from tunetorch import UsageError

    space = SearchSpace.from_dict(SPACE)
    with pytest.raises(UsageError, match="strategy: 'hill' is not one of bayes, grid, random"):
        make_strategy("hill", space)
    with pytest.raises(UsageError, match="strategy.resoluton: not an option of grid"):
        make_strategy("grid", space, resoluton=3)
