"""A worker's setup that refuses its device (UsageError in a worker, e.g. the data module's fit()
passing on the main process's CPU and refusing on the worker's device) is bad input, as any
refusal: one `error:` line, exit 2, and nothing of a new study left behind. A setup that raises
anything else is a bug: "a worker could not start", with its traceback, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import _refusing_data, _toy_tasks
from tests.conftest import ROOT, SHRINK, run_in_process, run_tune
from tunetorch import SearchSpace, Study, UsageError
from tunetorch.executors.local import Pool
from tunetorch.search import Budget, run_search

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
REFUSING = ["--config-dir", str(ROOT / "tests" / "_broken_conf"), "dataset=refuses_on_workers"]


def test_a_refused_setup_stops_the_search_with_a_usage_error_naming_the_device():
    study = Study(SPACE, strategy="random", seed=0)
    with Pool(["cpu"], setup=_refusing_data.refusing_setup, task=_toy_tasks.instant) as pool:
        with pytest.raises(UsageError) as refused:
            run_search(study, pool, Budget(n_trials=3))
    assert str(refused.value) == (
        "dataset.max_device_bytes: the data do not fit on cpu (refused in the setup of the worker on cpu)"
    )
    # the trial handed to the slot before its worker had set up never ran: left to run again
    assert [(t.state.value, t.error) for t in study.trials] == [
        ("INTERRUPTED", "the study stopped: a worker refused its setup")
    ]


def test_a_setup_with_a_bug_is_not_a_refusal():
    study = Study(SPACE, strategy="random", seed=0)
    with Pool(["cpu"], setup=_refusing_data.broken_setup, task=_toy_tasks.instant) as pool:
        outcome = run_search(study, pool, Budget(n_trials=3))
    assert not outcome.ok
    assert outcome.reason.startswith("a worker could not start: RuntimeError: a bug in the setup on cpu\n")
    assert "Traceback" in outcome.reason


def test_tune_refused_by_a_workers_setup_is_one_line_exit_2_and_leaves_no_study(tmp_path: Path):
    d = tmp_path / "made" / "study"  # made by the run (and its parent): both removed again
    out = run_tune(*SHRINK, *REFUSING, f"study.dir={d}")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.splitlines() == [
        "error: dataset.max_device_bytes: the digits do not fit on cpu (a deliberate refusal of this "
        "fixture, made only in a worker process) (refused in the setup of the worker on cpu)"
    ]
    assert "Traceback" not in out.stdout
    assert not (tmp_path / "made").exists()

    # A study.dir that was there before keeps what it held, and only that.
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    out = run_in_process("tune", *SHRINK, *REFUSING, f"study.dir={kept}")
    assert out.returncode == 2 and out.stderr.startswith("error: dataset.max_device_bytes: "), out.stderr
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]
