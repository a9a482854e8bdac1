"""A study's life (tunetorch/lifecycle.py): opened once for tune and race, its TensorBoard closed
on every way out, a new study refused before any trial finished leaving nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunetorch import config
from tunetorch.cli import conf_dir
from tunetorch.errors import UsageError
from tunetorch.history import count_state
from tunetorch.trial import TrialState


@pytest.fixture
def opened_study(compose, tmp_path: Path):
    """open(*overrides) -> (Opened, cfg, plan) for a new study in tmp_path/study."""
    from tunetorch.lifecycle import open_study

    made = []

    def open_(*overrides: str):
        cfg = compose(f"study.dir={tmp_path / 'study'}", *overrides)
        plan = config.check(cfg, conf_dir())
        opened = open_study(cfg, plan, folders=("checkpoints",))
        made.append(opened)
        return opened, cfg, plan

    yield open_
    for opened in made:
        opened.journal.close()


def _closed(tb) -> bool:
    # SummaryWriter.close() drops its writers: a closed one holds none.
    return tb.study.all_writers is None and all(w.all_writers is None for w in tb._runs.values())


def _finish_one_trial(study) -> None:
    trial = study.ask()
    study.tell(trial.number, score=0.5, epochs=1, best_epoch=0)


@pytest.mark.parametrize("way_out", ["return", "KeyboardInterrupt", "UsageError", "RuntimeError"])
def test_tensorboard_is_closed_on_every_way_out_of_a_running_study(opened_study, way_out: str):
    from tunetorch.lifecycle import running

    opened, cfg, plan = opened_study()
    _finish_one_trial(opened.study)  # so a refusal does not remove the study (tested below)
    errors = {"KeyboardInterrupt": KeyboardInterrupt, "UsageError": UsageError, "RuntimeError": RuntimeError}
    seen = None
    try:
        with running(opened, cfg, plan) as tb:
            seen = tb
            tb.epoch(opened.study.ask(), {"epoch": 0, "val_accuracy": 0.3})  # a trial's run left open
            assert not _closed(tb)
            if way_out in errors:
                raise errors[way_out]("stop")
    except (KeyboardInterrupt, UsageError, RuntimeError):
        pass
    assert seen is not None and _closed(seen)
    assert (opened.study_dir / "journal.sqlite").is_file()  # a finished trial is never removed


def test_a_new_study_refused_before_any_trial_finished_leaves_nothing_but_what_was_there(
    opened_study, tmp_path: Path
):
    from tunetorch.lifecycle import running

    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "notes.txt").write_text("mine")
    (tmp_path / "study" / "tb").mkdir()  # there before the study: not its to remove
    opened, cfg, plan = opened_study()
    assert not opened.resumed and (opened.study_dir / "checkpoints").is_dir()
    with pytest.raises(UsageError), running(opened, cfg, plan) as tb:
        opened.study.ask()  # running, then interrupted by the refusal: not finished
        raise UsageError("refused in the setup of the worker on cpu")
    assert _closed(tb)
    assert sorted(p.name for p in opened.study_dir.iterdir()) == ["notes.txt", "tb"]


def test_a_resumed_study_refused_keeps_everything(opened_study):
    from tunetorch.lifecycle import open_study, running

    first, cfg, plan = opened_study()
    first.journal.close()
    again = open_study(cfg, plan)
    try:
        assert again.resumed
        with pytest.raises(UsageError), running(again, cfg, plan):
            raise UsageError("refused")
        assert (again.study_dir / "journal.sqlite").is_file() and (again.study_dir / "config.yaml").is_file()
    finally:
        again.journal.close()


def test_wall_seconds_add_up_over_runs(opened_study):
    from tunetorch.lifecycle import add_wall_seconds

    opened, _, _ = opened_study()
    add_wall_seconds(opened.journal, 1.5)
    add_wall_seconds(opened.journal, 2.0)
    assert float(opened.journal.get_meta("wall_seconds")) == 3.5


def test_count_state_counts_the_trials_in_a_state(opened_study):
    opened, _, _ = opened_study()
    study = opened.study
    _finish_one_trial(study)
    _finish_one_trial(study)
    failed = study.ask()
    study.tell(failed.number, None, error="boom")  # no score: FAIL
    assert count_state(study.trials, TrialState.FAIL) == 1
    assert count_state(study.trials, TrialState.COMPLETE) == 2
