"""The value rules of config keys (tunetorch/checks.py): each one line naming the full key."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunetorch import checks
from tunetorch.errors import UsageError
from tunetorch.history import by_standing, finite, normal_scores
from tunetorch.trial import Trial, TrialState


def refused(call) -> str:
    with pytest.raises(UsageError) as e:
        call()
    return str(e.value)


def test_the_prefix_names_the_full_key():
    assert checks.under("scheduler").key("eta") == "scheduler.eta"
    assert (
        checks.under("race").under("options").under("bayes").key("n_startup")
        == "race.options.bayes.n_startup"
    )
    assert checks.under().key("seed") == "seed"
    assert checks.under("strategy").key("") == "strategy"


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda k: k.whole("eta", 1, low=2, note="asha"),
            "scheduler.eta: 1 must be a whole number >= 2 (asha)",
        ),
        (lambda k: k.whole("eta", 2.5, low=2), "scheduler.eta: 2.5 must be a whole number >= 2"),
        (lambda k: k.whole("eta", True, low=1), "scheduler.eta: True must be a whole number >= 1"),
        (lambda k: k.whole("eta", "3", low=1), "scheduler.eta: '3' must be a whole number >= 1"),
        (lambda k: k.whole("eta", None, low=1), "scheduler.eta: None must be a whole number >= 1"),
        (
            lambda k: k.whole("n", 0, low=1, optional=True),
            "scheduler.n: 0 must be a whole number >= 1 or null",
        ),
        (
            lambda k: k.whole("r", 1001, low=10, high=1000),
            "scheduler.r: 1001 must be a whole number from 10 to 1000",
        ),
        (
            lambda k: k.whole("r", 9, low=10, high=1000),
            "scheduler.r: 9 must be a whole number from 10 to 1000",
        ),
        (lambda k: k.number("x", 0, above=0), "scheduler.x: 0 must be a number > 0"),
        (lambda k: k.number("x", -1, at_least=0.0), "scheduler.x: -1 must be a number >= 0"),
        (lambda k: k.number("x", math.inf, at_least=0.0), "scheduler.x: inf must be a number >= 0"),
        (
            lambda k: k.number("x", math.nan, above=0, optional=True),
            "scheduler.x: nan must be a number > 0 or null",
        ),
        (
            lambda k: k.number("x", 1.0, at_least=0.0, below=1.0),
            "scheduler.x: 1.0 must be a number in [0, 1)",
        ),
        (lambda k: k.number("x", 0, above=0.0, below=1.0), "scheduler.x: 0 must be a number in (0, 1)"),
        (
            lambda k: k.number("x", "0.2", above=0.0, below=1.0),
            "scheduler.x: '0.2' must be a number in (0, 1)",
        ),
        (lambda k: k.number("x", False), "scheduler.x: False is not a finite number"),
        (lambda k: k.one_of("kind", "x", ("a", "b")), "scheduler.kind: 'x' is not one of a, b"),
        (lambda k: k.one_of("kind", True, ("True", "b")), "scheduler.kind: True is not one of True, b"),
        (lambda k: k.boolean("flag", "yes"), "scheduler.flag: 'yes' must be true or false"),
        (lambda k: k.boolean("flag", 1), "scheduler.flag: 1 must be true or false"),
        (
            lambda k: k.seed("seed", -1),
            "scheduler.seed: -1 must be a whole number from 0 to 4294967295 (2**32 - 1)",
        ),
        (
            lambda k: k.seed("seed", 2**32),
            "scheduler.seed: 4294967296 must be a whole number from 0 to 4294967295 (2**32 - 1)",
        ),
    ],
)
def test_each_rule_refuses_in_one_line_naming_the_key_the_value_and_what_is_allowed(call, message):
    assert refused(lambda: call(checks.under("scheduler"))) == message


def test_each_rule_returns_what_it_let_through_in_its_plain_type():
    k = checks.under("k")
    assert k.whole("a", 3, low=2) == 3 and k.whole("a", 10, low=10, high=1000) == 10
    assert k.whole("a", None, optional=True) is None and k.number("b", None, above=0, optional=True) is None
    assert k.number("b", 0, at_least=0.0, below=1.0) == 0 and k.number("b", 0.5, above=0.0, below=1.0) == 0.5
    assert k.number("b", -3) == -3 and type(k.number("b", 2)) is int  # a space's int bounds stay ints
    assert k.one_of("c", 32, ("32", "bf16")) == "32"  # YAML's number is the word it spells
    assert k.boolean("d", False) is False
    assert k.seed("e", 2**32 - 1) == 2**32 - 1 and k.seed("e", 0) == 0
    # numpy's scalars are the numbers and booleans they hold (a space or a seed computed with numpy)
    assert type(k.whole("a", np.int64(4), low=1)) is int and type(k.number("b", np.float32(0.5))) is float
    assert k.boolean("d", np.bool_(True)) is True and type(k.seed("e", np.uint32(7))) is int


def test_finite_is_a_number_that_is_neither_inf_nor_nan_nor_a_bool():
    assert finite(1) and finite(-0.5) and finite(np.float64(2.0))
    assert not any(finite(v) for v in (math.inf, -math.inf, math.nan, None, True, "1"))


def test_standing_orders_by_epochs_trained_then_score_and_keeps_the_given_order_on_a_tie():
    p = {"x": 1}
    trials = [
        Trial(0, p, TrialState.COMPLETE, score=0.5, epochs=9),
        Trial(1, p, TrialState.PRUNED, score=0.9, epochs=3),
        Trial(2, p, TrialState.PRUNED, score=0.7, epochs=1),
        Trial(3, p, TrialState.PRUNED, score=0.7, epochs=1),  # ties with 2: stays after it
        Trial(4, p, TrialState.PRUNED, score=math.nan, epochs=3),  # no finite score: left out
        Trial(5, p, TrialState.RUNNING),
        Trial(6, p, TrialState.FAIL),
    ]
    assert [t.number for t in by_standing(trials)] == [2, 3, 1, 0]
    assert [t.number for t in by_standing(trials[::-1])] == [3, 2, 1, 0]
    low = [t.replace(score=-t.score) if t.score is not None else t for t in trials]
    assert [t.number for t in by_standing(low, "minimize")] == [2, 3, 1, 0]
    # epochs trained as the caller counts them (the bayes strategy: from the curves)
    assert [t.number for t in by_standing(trials, epochs=lambda t: -t.number)] == [3, 2, 1, 0]


def test_normal_scores_are_evenly_spread_normal_quantiles():
    y = normal_scores(4)
    assert np.all(np.diff(y) > 0) and abs(y.sum()) < 1e-12 and math.isclose(y[2], 0.31863936396437526)
    assert normal_scores(1).tolist() == [0.0] and len(normal_scores(0)) == 0
