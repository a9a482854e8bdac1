import numpy as np
import pytest

from tunetorch import SearchSpace, UsageError
from tunetorch.snapshot import Snapshot

DEFAULT = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "depth": {"type": "int", "low": 1, "high": 4},
}


def test_unit_roundtrip_and_bounds():
    space = SearchSpace.from_dict({**DEFAULT, "act": {"type": "categorical", "choices": ["relu", "gelu"]}})
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = space.sample(rng)
        assert space.contains(p)
        u = space.to_unit(p)
        assert u.shape == (5,) and np.all((u >= 0) & (u <= 1))
        back = space.from_unit(u)
        assert back["depth"] == p["depth"] and back["act"] == p["act"]
        assert back["lr"] == pytest.approx(p["lr"], rel=1e-9)
    assert space.from_unit(np.zeros(5))["lr"] == pytest.approx(1e-4)
    assert space.from_unit(np.ones(5))["depth"] == 4


def test_every_int_gets_an_equal_share_of_the_cube():
    space = SearchSpace.from_dict({"depth": {"type": "int", "low": 1, "high": 4}})
    values = [space.from_unit([u])["depth"] for u in np.linspace(0, 1, 4001)]
    counts = np.bincount(values)[1:]
    assert counts.min() >= 990 and counts.max() <= 1010


def test_grid_covers_the_ends_log_spaced():
    space = SearchSpace.from_dict({"lr": DEFAULT["lr"], "depth": DEFAULT["depth"]})
    points = space.grid({"lr": 4, "depth": 10})
    lrs = sorted({p["lr"] for p in points})
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert sorted({p["depth"] for p in points}) == [1, 2, 3, 4]
    assert len(points) == 16


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"lr": {"type": "float", "low": 0.1, "high": 0.01}}, "space.lr.low: 0.1 must be below high (0.01)"),
        ({"lr": {"type": "float", "low": 0.1, "high": 0.1}}, "space.lr.low: 0.1 must be below high"),
        (
            {"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}},
            "space.lr.low: 0.0 must be > 0 when log",
        ),
        (
            {"lr": {"type": "floaty", "low": 0, "high": 1}},
            "space.lr.type: 'floaty' is not one of float, int, categorical",
        ),
        ({"act": {"type": "categorical", "choices": []}}, "space.act.choices: [] must be a non-empty list"),
        ({"depth": {"type": "int", "low": 1.5, "high": 4}}, "must be whole numbers"),
        ({"lr": {"type": "float", "high": 1}}, "space.lr.low: missing"),
        (
            {"lr": {"type": "float", "low": 0, "high": 1, "step": 2}},
            "space.lr.step: not a key of a float dimension",
        ),
        ({}, "space: {} is not a mapping of dimensions"),
    ],
)
def test_bad_spaces_are_one_line_usage_errors(spec, message):
    with pytest.raises(UsageError) as e:
        SearchSpace.from_dict(spec)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_numpy_numbers_are_numbers():
    """Bounds computed with numpy (np.int64, np.float32) are numbers, not 'not a finite number'."""
    space = SearchSpace.from_dict(
        {
            "x": {"type": "int", "low": np.int64(1), "high": np.int64(5)},
            "lr": {"type": "float", "low": np.float32(1e-3), "high": np.float64(1e-1), "log": np.bool_(True)},
        }
    )
    assert space["x"] == space["x"].__class__("x", 1, 5, False)
    assert type(space["x"].low) is int and type(space["lr"].high) is float and space["lr"].log is True
    p = space.sample(np.random.default_rng(0))
    assert space.contains(p) and type(p["x"]) is int
    with pytest.raises(UsageError, match=r"space.x.low: True is not a finite number"):
        SearchSpace.from_dict({"x": {"type": "int", "low": True, "high": 5}})
    with pytest.raises(UsageError, match=r"space.x.high: np.float64\(nan\)|space.x.high: nan"):
        SearchSpace.from_dict({"x": {"type": "float", "low": 0, "high": np.float64("nan")}})


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "3", True, None])
def test_make_strategy_refuses_bad_seeds_naming_seed(seed):
    from tunetorch import Study
    from tunetorch.strategies import make_strategy

    space = SearchSpace.from_dict({"x": {"type": "int", "low": 1, "high": 5}})
    for build in (
        lambda: make_strategy("random", space, seed=seed),
        lambda: Study(space, "bayes", seed=seed),
    ):
        with pytest.raises(UsageError) as e:
            build()
        assert str(e.value).startswith(f"seed: {seed!r} must be a whole number from 0 to 4294967295")


def test_make_strategy_takes_the_whole_seed_range():
    from tunetorch.strategies import make_strategy

    space = SearchSpace.from_dict({"x": {"type": "int", "low": 1, "high": 5}})
    for seed in (0, np.int64(7), 2**32 - 1):
        for name in ("grid", "random", "bayes"):
            strategy = make_strategy(name, space, seed=seed)
            assert type(strategy.seed) is int and space.contains(strategy.suggest(0, Snapshot()))
