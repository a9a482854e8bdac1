"""Any metric, either direction: the one look at the test split records every metric the validation
step returns, and every report names the study's metric and reads it in the study's direction.

A model whose own validation step returns other metrics is not built here (the trainer's step
contract is tested with it); the look itself is real, with `trainer.validate` returning a
regression's metrics. Journals of format 3 (tests/_format3_study, made by the code before format 4)
are migrated as they are opened and still evaluate.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests._report_studies import TEST_MSE, journal_study, regression_study
from tunetorch.errors import EnvironmentFault
from tunetorch.journal import FORMAT, Journal, check_format, read_meta
from tunetorch.reports import terminal, write_reports
from tunetorch.trial import Trial, TrialState

FORMAT3 = Path(__file__).parent / "_format3_study"
# tests/_format3_study/README.md: what the code of format 3 printed for that study's look
FORMAT3_LINE = (
    "test accuracy 0.1111 (loss 2.3) of trial 0 on 360 held-out examples, evaluated once; validation "
    "accuracy 0.1250: validation was optimistic by 0.0139 (the best of many trials on the validation "
    "split is partly luck; quote the test score)"
)
OPTIMISTIC = "(the best of many trials on the validation split is partly luck; quote the test score)"


def plain(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def tb_text(study_dir: Path) -> str:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    acc = EventAccumulator(str(study_dir / "tb" / "study"), size_guidance={"tensors": 0})
    acc.Reload()
    events = acc.Tensors("study/test_result/text_summary")
    return make_ndarray(events[-1].tensor_proto).item().decode()


# --- a minimised metric: val_mse ----------------------------------------------------------------
@pytest.fixture(scope="module")
def mse(tmp_path_factory):
    d = tmp_path_factory.mktemp("mse") / "study"
    journal = regression_study(d)
    data = write_reports(d, journal)
    best = min((t for t in journal.trials()), key=lambda t: t.score)
    return d, journal, data, best


def test_summary_holds_every_test_metric_and_the_optimism_on_the_studys_metric(mse):
    d, _, data, best = mse
    test = data["test"]
    assert test["metric"] == "val_mse" and test["value"] == TEST_MSE
    assert test["metrics"] == {"val_mse": TEST_MSE, "val_mae": 4.4} and test["trial"] == best.number
    assert "accuracy" not in test and "loss" not in test  # a classifier's keys, and this is none
    opt = data["optimism"]
    assert (opt["measure"], opt["metric"], opt["direction"]) == ("mse", "val_mse", "minimize")
    assert opt["val_mse"] == best.score and opt["test_mse"] == TEST_MSE
    # lower is better: a test mse above the validation mse is validation being optimistic
    assert opt["gap"] == pytest.approx(best.score - TEST_MSE) and opt["gap"] < 0
    assert opt["reading"] == f"validation was optimistic by {-opt['gap']:.4f} {OPTIMISTIC}"
    assert "accuracy" not in (d / "summary.json").read_text()
    assert json.loads((d / "summary.json").read_text()) == json.loads(json.dumps(data))


def test_a_test_mse_below_validation_is_not_called_optimism(tmp_path):
    data = write_reports(tmp_path / "s", regression_study(tmp_path / "s", test={"val_mse": 20.0}))
    assert data["optimism"]["gap"] > 0
    assert data["optimism"]["reading"].startswith("test came out")


def test_the_terminal_line_names_the_metric(mse):
    _, _, data, best = mse
    gap = TEST_MSE - best.score
    assert terminal.test_line(data["test"], data["optimism"], n_test=88) == (
        f"test mse 30.5000 (mae 4.4) of trial {best.number} on 88 held-out examples, evaluated once; "
        f"validation mse {best.score:.4f}: validation was optimistic by {gap:.4f} {OPTIMISTIC}"
    )


def test_the_page_names_the_metric_and_never_accuracy(mse):
    d, _, data, best = mse
    page = plain((d / "index.html").read_text())
    gap = data["optimism"]["gap"]
    assert f"test mse (evaluated once) 30.5000 (trial {best.number})" in page
    assert f"test mse 30.5000 (mae 4.4000) of trial {best.number}, evaluated once." in page
    assert (
        f"validation mse {best.score:.4f} minus test mse 30.5000 = {gap:+.4f} : validation was "
        f"optimistic by {-gap:.4f}" in page
    )
    assert "accuracy" not in page.lower()


def test_progress_png_marks_the_test_mse(mse):
    from tunetorch.reports import _test_marker

    _, _, data, best = mse
    assert _test_marker(data) == {"trial": best.number, "value": TEST_MSE, "label": "test mse"}


def test_tensorboard_card_names_the_metric(mse, tmp_path):
    from tunetorch.reports.tensorboard import TensorBoardLog

    _, _, data, best = mse
    with TensorBoardLog(tmp_path, metric="val_mse", direction="minimize") as log:
        log.test_result(data["test"], data["optimism"], n_trials=8)
    text = tb_text(tmp_path)
    assert text.startswith(f"**test mse 30.5000** (mae 4.4000) of trial {best.number}, evaluated once; ")
    assert f"validation mse {best.score:.4f}, optimism of validation (validation minus test) " in text
    assert f"validation was optimistic by {TEST_MSE - best.score:.4f}" in text
    assert "accuracy" not in text


# --- a metric with no test counterpart: train_loss ----------------------------------------------
@pytest.fixture(scope="module")
def train_loss(tmp_path_factory):
    """A classifier study scored by its train_loss: the test split has val_loss and val_accuracy."""
    d = tmp_path_factory.mktemp("train_loss") / "study"
    journal = journal_study(d, evaluate=False)
    journal.set_meta("metric", "train_loss")
    journal.set_meta("direction", "minimize")
    best = min((t for t in journal.trials() if t.score is not None), key=lambda t: t.score)
    look = journal.start_evaluation(best.number, "0" * 64, forced=False)
    journal.complete_evaluation(look, {"val_loss": 0.3, "val_accuracy": 0.91}, None, "f" * 64)
    return d, write_reports(d, journal), best


NO_COUNTERPART = (
    "the study's metric train_loss has no test counterpart (the test split is scored by the validation "
    "step, which returned val_loss, val_accuracy), so validation and test are not compared"
)


def test_a_metric_without_a_test_counterpart_is_said_so_everywhere(train_loss, tmp_path):
    from tunetorch.reports import _test_marker
    from tunetorch.reports.tensorboard import TensorBoardLog

    d, data, best = train_loss
    assert data["test"]["value"] is None and data["optimism"] is None and _test_marker(data) is None
    assert data["test"]["metrics"] == {"val_loss": 0.3, "val_accuracy": 0.91}
    line = terminal.test_line(data["test"], data["optimism"], n_test=360)
    assert line == (
        f"test loss 0.3, accuracy 0.91 of trial {best.number} on 360 held-out examples, evaluated once; "
        + NO_COUNTERPART
    )
    page = plain((d / "index.html").read_text())
    assert (
        f"test loss 0.3000, accuracy 0.9100 of trial {best.number}, evaluated once. {NO_COUNTERPART}." in page
    )
    assert "Optimism of validation:" not in page and "test train_loss" not in page
    with TensorBoardLog(tmp_path) as log:
        log.test_result(data["test"], data["optimism"], n_trials=16)
    assert tb_text(tmp_path).endswith(f"evaluated once; {NO_COUNTERPART}.")


# --- the look itself, with a validation step that returns a regression's metrics ----------------
@pytest.fixture
def regression_look(unevaluated_study, tmp_path, monkeypatch):
    """A copy of a real finished study (digits), made to read as a regression minimising val_mse:
    its trials' scores turned to mse (the best stays the best), and `trainer.validate` returning
    val_mse and val_mae, as a model's own validation step will."""
    import tunetorch.training.trainer as trainer

    d = tmp_path / "study"
    shutil.copytree(unevaluated_study, d)
    journal = Journal(d / "journal.sqlite")
    journal.set_meta("metric", "val_mse")
    journal.set_meta("direction", "minimize")
    for t in journal.trials():
        journal.put_trial(t.replace(score=100.0 * (1.0 - t.score)))
    journal.close()
    splits = []

    def validate(model, split, device, *a, **k):
        splits.append(len(split))
        return {"val_mse": 31.25, "val_mae": 4.125}

    monkeypatch.setattr(trainer, "validate", validate)
    return d, splits


def test_evaluate_records_every_metric_of_the_validation_step(regression_look, capsys):
    from tunetorch import evaluate as entry
    from tunetorch.evaluate import evaluation_is_stale
    from tunetorch.history import best_trial

    d, splits = regression_look
    assert entry.main([f"study.dir={d}"]) == 0
    journal = Journal(d / "journal.sqlite")
    best = best_trial(journal.trials(), "minimize")
    [look] = journal.evaluations()
    assert look["metrics"] == {"val_mse": 31.25, "val_mae": 4.125} and look["value"] == 31.25
    assert look["accuracy"] is None and look["loss"] is None and splits == [360]
    gap = 31.25 - best.score
    assert capsys.readouterr().out.strip() == (
        f"test mse 31.2500 (mae 4.12) of trial {best.number} on 360 held-out examples, evaluated once; "
        f"validation mse {best.score:.4f}: validation was optimistic by {gap:.4f} {OPTIMISTIC}"
    )
    summary = json.loads((d / "summary.json").read_text())
    assert summary["test"]["value"] == 31.25 and summary["optimism"]["direction"] == "minimize"
    assert tb_text(d).startswith(f"**test mse 31.2500** (mae 4.1250) of trial {best.number}")
    # a better trial found later makes that look stale, whatever the metric
    assert not evaluation_is_stale(journal)
    journal.put_trial(Trial(99, {}, TrialState.COMPLETE, score=best.score - 1.0, epochs=1))
    assert evaluation_is_stale(journal)
    journal.close()
    # a second look names the metric it saw
    assert entry.main([f"study.dir={d}"]) == 2
    assert f"(trial {best.number}, mse 31.2500)" in capsys.readouterr().err


def test_evaluate_of_a_study_whose_metric_the_test_split_lacks_says_so(regression_look, capsys):
    from tunetorch import evaluate as entry

    d, _ = regression_look
    journal = Journal(d / "journal.sqlite")
    journal.set_meta("metric", "train_loss")
    journal.close()
    assert entry.main([f"study.dir={d}"]) == 0
    out = capsys.readouterr().out
    assert "the study's metric train_loss has no test counterpart" in out and "validation mse" not in out
    [look] = Journal(d / "journal.sqlite").evaluations()
    assert look["value"] is None and look["metrics"] == {"val_mse": 31.25, "val_mae": 4.125}


# --- journals of format 3 -------------------------------------------------------------------------
@pytest.fixture
def format3(tmp_path) -> Path:
    d = tmp_path / "study"
    shutil.copytree(FORMAT3, d)
    return d


def _columns(path: Path) -> list[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[1] for r in db.execute("PRAGMA table_info(evaluations)")]
    finally:
        db.close()


def test_a_format_3_journal_is_migrated_and_reads_as_its_own_code_wrote_it(format3):
    path = format3 / "journal.sqlite"
    check_format(read_meta(path, "format"), path)  # identity's read, before the Journal opens it
    assert read_meta(path, "format") == "tunetorch-journal/3" and "metrics" not in _columns(path)
    journal = Journal(path)
    assert journal.get_meta("format") == FORMAT and {"metrics", "value"} <= set(_columns(path))
    [look] = journal.evaluations()
    assert look["metrics"] == {"val_loss": look["loss"], "val_accuracy": look["accuracy"]}
    assert look["value"] == look["accuracy"]  # the study's metric, val_accuracy
    before = json.loads((FORMAT3 / "summary.json").read_text())
    after = write_reports(format3, journal)
    assert {k: v for k, v in after["test"].items() if k in before["test"]} == before["test"]
    assert {k: v for k, v in after["optimism"].items() if k in before["optimism"]} == before["optimism"]
    assert terminal.test_line(after["test"], after["optimism"], n_test=360) == FORMAT3_LINE
    journal.close()
    assert Journal(path).evaluations() == [look]  # opened again: nothing migrated twice
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert db.execute("SELECT metrics, value FROM evaluations").fetchall() == [(None, None)]  # no rewrite
    db.close()


def test_a_migration_that_fails_half_way_leaves_format_3_as_it_was(format3, monkeypatch):
    from tunetorch import journal as journal_module

    path = format3 / "journal.sqlite"
    execute = journal_module._Connection.execute

    def full_disk(self, sql, params=()):
        if sql.startswith("UPDATE meta"):  # the last step: the evaluations table is already altered
            raise journal_module.fault(path, sqlite3.OperationalError("database or disk is full"))
        return execute(self, sql, params)

    monkeypatch.setattr(journal_module._Connection, "execute", full_disk)
    with pytest.raises(EnvironmentFault, match="the disk is full"):
        Journal(path)
    assert read_meta(path, "format") == "tunetorch-journal/3" and "metrics" not in _columns(path)
    monkeypatch.undo()
    assert Journal(path).get_meta("format") == FORMAT


def test_a_format_3_study_evaluates_again(format3, capsys):
    from tunetorch import evaluate as entry

    assert entry.main([f"study.dir={format3}", "force=true"]) == 0
    old, new = Journal(format3 / "journal.sqlite").evaluations()
    assert new["forced"] and set(new["metrics"]) == {"val_loss", "val_accuracy"}
    assert new["value"] == new["accuracy"] == new["metrics"]["val_accuracy"]
    assert new["weights_hash"] == old["weights_hash"] and new["test_hash"] == old["test_hash"]
    out = capsys.readouterr().out.strip()
    assert out.startswith("test accuracy ") and "a FORCED re-evaluation, flagged in summary.json" in out


# --- the race -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, label",
    [((), "validation accuracy"), (("study.metric=val_loss", "study.direction=minimize"), "validation loss")],
)
def test_the_races_score_label_is_the_studys_metric(overrides, label):
    from tests.test_race import compose_race
    from tunetorch.race.plan import make_plan
    from tunetorch.race.runner import figure_kwargs

    cfg = compose_race("dataset=digits", "tuner.devices=cpu", *overrides)
    kwargs = figure_kwargs(cfg, make_plan(cfg), "CPU minutes", "digits")
    assert kwargs["score_label"] == label


def test_words_read_a_metric_on_either_split():
    from tunetorch.words import measure, test_name, validation_name

    assert [test_name(m) for m in ("val_accuracy", "val_mse", "perplexity")] == [
        "test accuracy",
        "test mse",
        "test perplexity",
    ]
    assert validation_name("val_loss") == "validation loss" and measure("val_") == "val_"


def test_the_races_tensorboard_keeps_the_best_in_the_studys_direction(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tunetorch.reports.tensorboard import write_race_tensorboard

    trials = [
        Trial(i, {}, TrialState.COMPLETE, score=s, device_seconds=60.0) for i, s in enumerate([3.0, 1.0, 2.0])
    ]
    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    write_race_tensorboard(tmp_path, {"bayes": trials}, fig, "minimize")
    acc = EventAccumulator(str(tmp_path / "bayes"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("race/best_score")] == [3.0, 1.0, 1.0]


@pytest.mark.parametrize(("direction", "best"), [("maximize", 3), ("minimize", 1)])
def test_the_race_figure_rings_and_curves_the_best_in_the_studys_direction(direction, best):
    """race.png's best ring, its best-so-far curve and race.html's scene follow study.direction
    (figure_kwargs passes it), as the race's summary and TensorBoard do."""
    from tests.test_race import compose_race
    from tunetorch.race import panels
    from tunetorch.race.figure import layout, race_figure
    from tunetorch.race.plan import make_plan
    from tunetorch.race.runner import figure_kwargs
    from tunetorch.space import Float, SearchSpace

    cfg = compose_race("dataset=digits", "tuner.devices=cpu", f"study.direction={direction}")
    assert figure_kwargs(cfg, make_plan(cfg), "CPU minutes", "digits")["direction"] == direction
    space = SearchSpace([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])
    scores = [2.0, 1.0, 2.5, 3.0, 1.5]
    trials = [
        Trial(i, {"x": 0.1 + 0.2 * i, "y": 0.5}, TrialState.COMPLETE, score=s, epochs=1, device_seconds=60.0)
        for i, s in enumerate(scores)
    ]
    lay = layout(space, {"bayes": trials}, None, None, None, 5, "CPU minutes", "score", 20, 1, direction)
    assert lay.direction == direction
    ringed = []
    original = panels.best_trial
    panels.best_trial = lambda ok, d="maximize": ringed.append(original(ok, d)) or ringed[-1]
    try:
        fig = race_figure(space, {"bayes": trials}, budget_trials=5, resolution=20, direction=direction)
    finally:
        panels.best_trial = original
    assert [t.number for t in ringed] == [best]
    curve = fig.axes[-1].lines[0].get_ydata() if fig.axes[-1].lines else None
    expected = [2.0, 2.0, 2.5, 3.0, 3.0] if direction == "maximize" else [2.0, 1.0, 1.0, 1.0, 1.0]
    assert curve is not None and list(curve) == expected
