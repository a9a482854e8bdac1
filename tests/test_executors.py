"""The executor contract (tunetorch.executors.base), one test for every executor: a new executor
is added to EXECUTORS and checked by the same tests as the built-ins.

Each factory opens two slots that run tests/_contract_tasks.py's trial (three epochs of a score,
each awaiting the driver's decision). Ray's executor is checked on a real cluster by test_ray.py.
"""

from __future__ import annotations

import pytest

from tests import _contract_tasks, _toy_tasks
from tunetorch import SearchSpace, Study
from tunetorch.executors.base import Done, Event, Executor
from tunetorch.search import Budget, run_search


def _local() -> Executor:
    from tunetorch.executors.local import Pool

    return Pool(["cpu", "cpu"], setup=_toy_tasks.setup, task=_contract_tasks.epochs, decide=True)


def _inprocess() -> Executor:
    from tunetorch.executors.inprocess import InProcessExecutor

    return InProcessExecutor(_contract_tasks.epochs_generator, slots=2)


EXECUTORS = {"local": _local, "inprocess": _inprocess}


def _until_done(ex: Executor, number: int, stop_after: int | None = None) -> list[Event]:
    """Every event up to trial `number`'s "done"; its epochs answered (stop after `stop_after`)."""
    events = []
    for _ in range(200):
        e = ex.next_event(timeout=5.0)
        if e is None:
            continue
        events.append(e)
        if e.kind == "epoch":
            ex.decide(e.slot, stop_after is not None and e.payload["epoch"] >= stop_after)
        if e.kind == "done" and e.number == number:
            return events
    raise AssertionError(f"trial {number} never finished: {events}")


@pytest.mark.parametrize("name", EXECUTORS)
def test_a_trial_runs_on_a_slot_reports_its_epochs_and_frees_the_slot(name):
    with EXECUTORS[name]() as ex:
        assert isinstance(ex, Executor)
        assert [s.index for s in ex.slots] == [0, 1]
        assert ex.pending_slots() == 0 and ex.in_flight() == {}
        assert ex.idle_slots() == [0, 1]
        assert ex.submit(1, 7, {"x": 0.25}) == ex.slots[1].device
        assert ex.in_flight() == {7: 1} and ex.idle_slots() == [0]
        events = _until_done(ex, 7)
        trial = [e for e in events if e.number == 7]
        assert [e.payload["epoch"] for e in trial if e.kind == "epoch"] == [0, 1, 2]
        assert all(e.slot == 1 for e in trial)
        done = trial[-1].payload
        assert isinstance(done, Done)
        assert done.result == {"score": 0.25, "epoch": 2, "epochs": 3} and done.error is None
        assert 0.0 <= done.device_seconds <= done.wall_seconds + 1e-9
        assert ex.in_flight() == {} and sorted(ex.idle_slots()) == [0, 1]
        assert ex.slots[1].busy_seconds == pytest.approx(done.wall_seconds)
        assert ex.slots[0].busy_seconds == 0.0


@pytest.mark.parametrize("name", EXECUTORS)
def test_a_decision_to_stop_ends_the_trial_after_that_epoch(name):
    with EXECUTORS[name]() as ex:
        ex.submit(0, 3, {"x": 0.5})
        events = _until_done(ex, 3, stop_after=0)
        assert [e.payload["epoch"] for e in events if e.kind == "epoch"] == [0]
        assert events[-1].payload.result == {"score": 0.5, "epoch": 0, "epochs": 1}


@pytest.mark.parametrize("name", EXECUTORS)
def test_a_task_that_raises_is_a_failed_trial_in_one_line_and_the_slot_goes_on(name):
    with EXECUTORS[name]() as ex:
        ex.submit(0, 1, {"x": 0.5, "fail": True})
        done = _until_done(ex, 1)[-1].payload
        assert done.result is None and done.error == "ValueError: trial 1 fails on purpose"
        assert ex.idle_slots() == [0, 1]
        ex.submit(0, 2, {"x": 0.75})
        assert _until_done(ex, 2)[-1].payload.result["score"] == 0.75


@pytest.mark.parametrize("name", EXECUTORS)
def test_the_search_loop_runs_a_study_to_its_budget_on_it(name):
    study = Study(SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}}), "random", seed=0)
    with EXECUTORS[name]() as ex:
        outcome = run_search(study, ex, Budget(n_trials=5))
    assert outcome.ok and len(study.completed) == 5
    assert all(t.epochs == 3 and t.score == t.params["x"] for t in study.trials)
    assert {t.device for t in study.trials} == {ex.slots[0].device}


def test_the_slot_layout_is_read_once_for_every_backend():
    from tunetorch import UsageError
    from tunetorch.executors.layout import Layout

    assert Layout.parse("auto", 3, 2).slots([]) == [None] * 3  # no GPU: `workers` CPU slots
    assert Layout.parse("auto", 3, 2).slots([0, 1]) == [0, 0, 1, 1]
    assert Layout.parse([4, 6], 1, 2).listed == (4, 6)
    assert Layout.parse("cpu", 2, 4).listed is None
    with pytest.raises(UsageError, match=r"^tuner.workers: 0 must be a whole number >= 1$"):
        Layout.parse("cpu", 0, 1)
    with pytest.raises(UsageError, match=r"^tuner.trials_per_device: True must be a whole number >= 1$"):
        Layout.parse("cpu", 1, True)
    for bad in ("tpu", [], 3):
        with pytest.raises(
            UsageError, match=r"^tuner.devices: .* is not auto, cpu or a list of CUDA indices$"
        ):
            Layout.parse(bad, 1, 1)


def test_a_backend_is_one_module_and_one_line(monkeypatch, compose):
    """tests/_simulated_backend.py, listed in BACKENDS: config.check accepts it, preflight and
    open_executor reach it; a name not listed is refused by both, naming those that are."""
    from omegaconf import OmegaConf

    from tunetorch import UsageError, cli, config
    from tunetorch.executors import BACKENDS, open_executor, preflight

    monkeypatch.setitem(BACKENDS, "simulated", "tests._simulated_backend")
    cfg = compose("tuner.backend=simulated", "tuner.workers=2")
    config.check(cfg, cli.conf_dir())
    tuner = cfg.tuner
    preflight(tuner)
    with open_executor(tuner, None, _contract_tasks.epochs_generator) as ex:
        assert len(ex.slots) == 2
        ex.submit(0, 0, {"x": 0.5})
        assert _until_done(ex, 0)[-1].payload.result["score"] == 0.5
    with pytest.raises(UsageError, match=r"^tuner.devices: 'auto': the simulated backend has only cpu$"):
        preflight(OmegaConf.merge(tuner, {"devices": "auto"}))
    monkeypatch.delitem(BACKENDS, "simulated")
    with pytest.raises(UsageError, match=r"^tuner.backend: 'simulated' is not one of local, ray$"):
        config.check(cfg, cli.conf_dir())
    with pytest.raises(UsageError, match=r"^tuner.backend: 'simulated' is not one of local, ray$"):
        preflight(tuner)
