"""One contract for every strategy: seeded, inside the space, pending and failed trials, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from tunetorch import SearchSpace, SpaceExhausted, Study, make_strategy
from tunetorch.strategies.base import Strategy
from tunetorch.testing import (
    SPACE,
    STRATEGY_CONTRACT,
    check_rebuilt_from_history_suggests_the_same,
    check_same_seed_same_suggestions,
)

# name -> strategy options; a new strategy adds one line here.
STRATEGIES = {
    "random": {},
    "grid": {"resolution": 3},
    "bayes": {"n_startup": 5},
}


def factory(name: str):
    return lambda space, seed: make_strategy(name, space, seed=seed, **STRATEGIES[name])


@pytest.mark.parametrize("check", STRATEGY_CONTRACT, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_keeps_the_contract(name, check):
    check(factory(name))


class _Remembers(Strategy):
    """A user's strategy that breaks the contract: it walks a counter kept outside the history."""

    name = "remembers"

    def __init__(self, space, seed=0):
        super().__init__(space, seed)
        self.calls = 0

    def suggest(self, number, trials):
        self.calls += 1
        rng = np.random.default_rng([self.seed, self.calls])
        return self.space.sample(rng)


def test_the_published_contract_catches_a_strategy_with_hidden_state():
    make = lambda space, seed: _Remembers(space, seed)  # noqa: E731
    check_same_seed_same_suggestions(make)  # reproducible from a fresh start...
    with pytest.raises(AssertionError, match="keeps state outside the history"):
        check_rebuilt_from_history_suggests_the_same(make)  # ...but not rebuildable on resume


def test_grid_exhausts_the_lattice_once():
    study = Study(SearchSpace.from_dict(SPACE), strategy="grid", strategy_options={"resolution": 2})
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


def test_a_strategy_written_over_a_list_of_trials_runs_on_the_snapshot():
    """A user's strategy from before the snapshot, suggest(number, trials), iterating the trials:
    a snapshot reads as its trials, so it runs unchanged."""

    class Counting(Strategy):
        name = "counting"

        def suggest(self, number, trials):
            done = sum(t.state.value == "COMPLETE" for t in trials)
            assert len(trials) == number and all(trials[i].number == i for i in range(len(trials)))
            return {**self.space.sample(np.random.default_rng(number)), "depth": 1 + done % 3}

    space = SearchSpace.from_dict(SPACE)
    study = Study(space, Counting(space))
    for _ in range(5):
        study.tell(study.ask(), 0.0)
    assert [t.params["depth"] for t in study.trials] == [1, 2, 3, 1, 2]
