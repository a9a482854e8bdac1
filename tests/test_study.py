import math

import pytest

from tunetorch import Journal, SearchSpace, Study, TrialState

SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}, "y": {"type": "float", "low": -5.0, "high": 5.0}}


def f(p):
    return -((p["x"] - 1) ** 2) - (p["y"] + 2) ** 2


def test_ask_tell_finds_the_best_and_allows_several_in_flight():
    study = Study(SearchSpace.from_dict(SPACE), strategy="random", seed=0)
    in_flight = [study.ask() for _ in range(3)]
    assert [t.number for t in in_flight] == [0, 1, 2]
    assert all(t.state == TrialState.RUNNING for t in study.trials)
    for t in reversed(in_flight):
        study.tell(t, f(t.params))
    for _ in range(20):
        t = study.ask()
        study.tell(t, f(t.params))
    assert study.best.score == max(t.score for t in study.trials)
    assert len(study.completed) == 23


def test_none_and_nan_mark_a_trial_failed_and_tell_twice_is_refused():
    study = Study(SearchSpace.from_dict(SPACE), strategy="random", seed=0)
    a, b = study.ask(), study.ask()
    assert study.tell(a, None).state == TrialState.FAIL
    failed = study.tell(b, math.nan)
    assert failed.state == TrialState.FAIL and "non-finite" in failed.error
    assert study.best is None
    with pytest.raises(ValueError, match="already told"):
        study.tell(a, 1.0)


def test_a_study_reopened_on_its_journal_continues(tmp_path):
    space = SearchSpace.from_dict(SPACE)
    first = Study(space, strategy="random", seed=7, journal=Journal(tmp_path / "j.sqlite"))
    for _ in range(5):
        t = first.ask()
        first.tell(t, f(t.params))
    pending = first.ask()
    again = Study(space, strategy="random", seed=7, journal=Journal(tmp_path / "j.sqlite"))
    assert [t.params for t in again.trials] == [t.params for t in first.trials]
    assert again.trials[-1].state == TrialState.RUNNING and again.trials[-1].number == pending.number
    nxt = again.ask()
    uninterrupted = first.ask()
    assert nxt.number == uninterrupted.number == 6 and nxt.params == uninterrupted.params
