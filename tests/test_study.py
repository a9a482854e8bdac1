import math

import pytest

from tunetorch import Journal, SearchSpace, Study, TrialState, UsageError

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


# --- report: per-epoch values, the scheduler's decision, PRUNED trials -------------------------------

ASHA9 = {"scheduler": "asha", "scheduler_options": {"max_resource": 9}}


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, None, 2**32])
def test_a_bad_seed_is_a_usage_error_naming_it(seed):
    from tunetorch.schedulers import make_scheduler
    from tunetorch.strategies.random_search import RandomSearch

    space = SearchSpace.from_dict(SPACE)
    message = f"seed: {seed!r} must be a whole number from 0 to 4294967295"
    with pytest.raises(UsageError, match=message):
        Study(space, seed=seed)
    with pytest.raises(UsageError, match=message):  # also when no strategy or scheduler is made from it
        Study(space, strategy=RandomSearch(space), scheduler=make_scheduler("none"), seed=seed)
    with pytest.raises(UsageError, match=message):
        make_scheduler("hyperband", seed=seed, max_resource=9)


def test_telling_or_reporting_an_unknown_trial_names_it():
    study = Study(SearchSpace.from_dict(SPACE), strategy="random", **ASHA9)
    with pytest.raises(ValueError, match=r"trial 7 is not a trial of this study \(it has no trials yet\)"):
        study.tell(7, 1.0)
    study.ask()
    with pytest.raises(ValueError, match=r"trial 3 is not a trial of this study \(it has trials 0..0\)"):
        study.report(3, 0, 1.0)
    with pytest.raises(ValueError, match="epoch: -1 must be a whole number >= 0"):
        study.report(0, -1, 1.0)
    with pytest.raises(ValueError, match="value: 'high' for trial 0, epoch 0 is not a number"):
        study.report(0, 0, "high")


def test_a_pruned_trial_keeps_its_reported_score_and_records_the_loops_fields(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    study = Study(
        SearchSpace.from_dict(SPACE), strategy="random", journal=journal, metric="val_accuracy", **ASHA9
    )
    a, b = study.ask(), study.ask()
    assert study.report(a, 0, 0.8, {"val_loss": 0.5}) is False
    assert study.report(b, 0, 0.6, {"val_loss": 0.9, "val_accuracy": 0.123}) is True
    pruned = study.trials[b.number]
    assert (pruned.state, pruned.score, pruned.epochs, pruned.best_epoch) == (TrialState.PRUNED, 0.6, 1, 0)
    assert journal.trials()[b.number].state == TrialState.PRUNED
    # the reported value is the metric's row entry, whatever `metrics` said
    assert journal.epochs(b.number) == [{"epoch": 0, "val_loss": 0.9, "val_accuracy": 0.6}]
    with pytest.raises(ValueError, match="trial 1 is PRUNED: it takes no more reports"):
        study.report(b, 1, 0.7)
    # The search loop tells it once its worker has stopped, with what the worker measured.
    told = study.tell(b, 0.61, epochs=2, best_epoch=1, device_seconds=4.0, device="cpu")
    assert (told.state, told.score, told.epochs, told.best_epoch) == (TrialState.PRUNED, 0.6, 1, 0)
    assert told.device_seconds == 4.0 and journal.trials()[b.number].device_seconds == 4.0


def test_tell_after_reports_records_the_epochs_trained():
    study = Study(SearchSpace.from_dict(SPACE), strategy="random")
    t = study.ask()
    for e in range(4):
        assert study.report(t, e, 0.1 * e) is False  # the default scheduler (none) never stops
    done = study.tell(t, 0.3)
    assert (done.state, done.epochs) == (TrialState.COMPLETE, 4)
    assert study.tell(study.ask(), 0.5, epochs=7).epochs == 7


def test_a_rerun_trial_starts_its_curve_afresh_and_a_reopened_study_rebuilds_curves(tmp_path):
    path = tmp_path / "j.sqlite"
    study = Study(
        SearchSpace.from_dict(SPACE), strategy="random", journal=Journal(path), direction="minimize"
    )
    t = study.ask()
    for e, v in enumerate([3.0, 2.0, 1.5]):
        study.report(t, e, v)
    study.update(study.trials[0].replace(state=TrialState.INTERRUPTED))
    reopened = Study(
        SearchSpace.from_dict(SPACE), strategy="random", journal=Journal(path), direction="minimize"
    )
    assert reopened.curves == {0: {0: 3.0, 1: 2.0, 2: 1.5}}  # as reported, not in maximise form
    reopened.update(reopened.trials[0].replace(state=TrialState.RUNNING))
    reopened.report(0, 0, 2.5)  # the re-run reports epoch 0 again
    assert reopened.curves == {0: {0: 2.5}}
    assert [r["epoch"] for r in Journal(path).epochs(0)] == [0]


def test_non_finite_values_are_recorded_and_count_as_the_worst():
    study = Study(SearchSpace.from_dict(SPACE), strategy="random", **ASHA9)
    t = study.ask()
    assert study.report(t, 0, math.nan) is True  # diverged at a rung: stopped
    pruned = study.trials[0]
    assert pruned.state == TrialState.PRUNED and pruned.score is None and pruned.best_epoch is None
    assert study.best is None


def test_scheduler_options_only_with_a_scheduler_name():
    from tunetorch.schedulers import make_scheduler

    with pytest.raises(UsageError, match="scheduler_options: only for a scheduler given by name"):
        Study(SPACE, scheduler=make_scheduler("median"), scheduler_options={"n_warmup_steps": 1})
    with pytest.raises(UsageError, match="scheduler: 'asha2' is not one of"):
        Study(SPACE, scheduler="asha2")


def test_a_pruned_trials_score_is_its_best_epoch_not_its_last():
    for direction, s in (("maximize", 1.0), ("minimize", -1.0)):
        study = Study(SearchSpace.from_dict(SPACE), strategy="random", direction=direction, **ASHA9)
        a, b = study.ask(), study.ask()
        for e, v in enumerate([0.5, 0.95, 0.95]):
            assert study.report(a, e, s * v) is False
        # b: first at rung 1 beside a's .5 (goes on), best .9 at epoch 1, then .7 at rung 3 (epoch 2)
        assert [study.report(b, e, s * v) for e, v in enumerate([0.6, 0.9, 0.7])] == [False, False, True]
        pruned = study.trials[b.number]
        assert (pruned.score, pruned.best_epoch, pruned.epochs) == (s * 0.9, 1, 3)


def test_the_strategy_and_the_scheduler_see_one_snapshot_in_maximise_form():
    """One contract value for both: the trials, their curves and which are complete, with the
    scores and values negated for direction="minimize"."""
    from tunetorch.schedulers.asha import ASHA
    from tunetorch.snapshot import Snapshot
    from tunetorch.strategies.random_search import RandomSearch

    seen = {"strategy": [], "scheduler": []}

    class Watching(RandomSearch):
        def suggest(self, number, snapshot):
            seen["strategy"].append(snapshot)
            return super().suggest(number, snapshot)

    class WatchingASHA(ASHA):
        def on_epoch(self, number, epoch, value, snapshot):
            # What it sees now, copied: the study hands schedulers its live curves.
            seen["scheduler"].append((number, epoch, value, {n: dict(c) for n, c in snapshot.curves.items()}))
            seen["scheduler"].append(snapshot)
            return super().on_epoch(number, epoch, value, snapshot)

    space = SearchSpace.from_dict(SPACE)
    study = Study(space, Watching(space), direction="minimize", scheduler=WatchingASHA(max_resource=3))
    a = study.ask()
    for e, loss in enumerate([3.0, 2.0, 1.0]):
        study.report(a, e, loss)
    study.tell(a, 1.0)
    b = study.ask()
    assert study.report(b, 0, 5.0) is True  # worse than a at the rung: pruned, score 5.0
    study.ask()

    last = seen["strategy"][-1]
    assert isinstance(last, Snapshot) and [t.number for t in last.trials] == [0, 1]
    assert [t.score for t in last.trials] == [-1.0, -5.0]  # maximise form
    assert last.curves == {0: {0: -3.0, 1: -2.0, 2: -1.0}, 1: {0: -5.0}}
    assert last.complete == {0} and list(last) == list(last.trials)  # it reads as its trials
    assert seen["strategy"][0].trials == () and seen["strategy"][0].curves == {}

    number, epoch, value, curves = seen["scheduler"][-2]
    decided = seen["scheduler"][-1]
    assert (number, epoch, value) == (1, 0, -5.0) and curves == {0: {0: -3.0, 1: -2.0, 2: -1.0}, 1: {0: -5.0}}
    assert isinstance(decided, Snapshot) and decided.complete == {0}
    assert [(t.number, t.state, t.score) for t in decided.trials] == [
        (0, TrialState.COMPLETE, -1.0),
        (1, TrialState.RUNNING, None),
    ]
    # A study reopened on nothing but its trials and curves would hand over the same snapshot.
    assert study.snapshot().curves == last.curves and study.snapshot().trials[:2] == last.trials


def test_strategy_and_scheduler_options_are_each_one_dict():
    from tunetorch.strategies.random_search import RandomSearch

    space = SearchSpace.from_dict(SPACE)
    grid = Study(space, strategy="grid", strategy_options={"resolution": 2}, **ASHA9)
    assert len(grid.strategy.lattice) == 4 and grid.scheduler.max_resource == 9
    with pytest.raises(UsageError, match="strategy.resoluton: not an option of grid; allowed: resolution"):
        Study(space, strategy="grid", strategy_options={"resoluton": 2})
    with pytest.raises(UsageError, match="strategy_options: only for a strategy given by name"):
        Study(space, strategy=RandomSearch(space), strategy_options={"resolution": 2})
    with pytest.raises(TypeError):  # not a second way: options are not keywords of Study
        Study(space, strategy="grid", resolution=2)
