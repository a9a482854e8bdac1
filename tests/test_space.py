import numpy as np
import pytest

from tunetorch import SearchSpace, UsageError

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
