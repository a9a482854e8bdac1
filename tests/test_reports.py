"""summary.json, trials.csv, the PNGs, the terminal text helpers and exact grid values."""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tests._report_studies import DIVERGED, FAILED, PRUNED, TEST_ACCURACY, journal_study, real_study
from tunetorch import history, time_left
from tunetorch.reports import terminal, write_reports
from tunetorch.reports.plots import params_figure, progress_figure, score_limits
from tunetorch.space import SearchSpace
from tunetorch.trial import Trial, TrialState


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("reports") / "study"
    journal = journal_study(d)
    data = write_reports(d, journal)
    return d, journal, data


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return real_study(tmp_path_factory)


# --- summary.json ---------------------------------------------------------------------------------
def test_summary_counts_pruned_trials_by_rung_and_gives_the_best_trials_epochs(study):
    d, journal, data = study
    on_disk = json.loads((d / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(data))
    assert data["n_pruned"] == len(PRUNED) and data["n_failed"] == 1
    assert data["pruned_by_epochs"] == {"1": 2, "2": 1}
    best = data["best"]
    # epochs counted from 1: the best trial's third epoch (the journal's epoch 2) is its best
    assert best["epochs"] == 3 and best["best_epoch"] == 3 and best["state"] == "COMPLETE"
    in_journal = next(t for t in journal.trials() if t.number == best["trial"])
    assert in_journal.best_epoch == 2 and data["device_unit"] == "CPU minutes"


def test_summary_reports_the_optimism_of_validation_labelled(study):
    _, journal, data = study
    opt = data["optimism"]
    assert opt["trial"] == data["best"]["trial"] == data["test"]["trial"]
    assert opt["val_accuracy"] == pytest.approx(data["best"]["val_score"])
    assert opt["test_accuracy"] == TEST_ACCURACY
    assert opt["gap"] == pytest.approx(opt["val_accuracy"] - TEST_ACCURACY)
    assert "optimism of validation" in opt["label"] and "test" in opt["label"]
    assert opt["gap"] > 0 and opt["reading"].startswith(f"validation was optimistic by {opt['gap']:.4f} (")


@pytest.mark.parametrize(
    "direction, gap, says",
    [
        ("maximize", 0.0097, "validation was optimistic by 0.0097 ("),
        ("maximize", -0.0069, "test came out 0.0069 better than validation (no optimism showed"),
        ("minimize", -0.02, "validation was optimistic by 0.0200 ("),  # a lower validation loss flatters
        ("minimize", 0.02, "test came out 0.0200 better than validation ("),
        ("maximize", 0.00001, "validation and test agree"),
    ],
)
def test_the_optimism_gap_is_read_as_what_it_is(direction, gap, says):
    from tunetorch.reports.summary import optimism_reading

    reading = optimism_reading({"direction": direction, "gap": gap})
    assert reading.startswith(says), reading
    if not says.startswith("validation was optimistic"):
        assert "optimistic" not in reading and "flatters" not in reading


def test_summary_holds_the_importance_with_its_method(study):
    imp = study[2]["importance"]
    # every scored trial, pruned ones by their standing; not the failed one
    assert imp["n_trials"] == 16 - 1 and imp["n_pruned"] == len(PRUNED)
    assert list(imp["importance"])[0] == "optimizer.lr" and "fANOVA" in imp["method"]


def test_a_look_that_never_completed_counts_but_shows_no_result(tmp_path):
    journal = journal_study(tmp_path / "s", evaluate=False)
    journal.start_evaluation(2, "0" * 64, forced=False)
    data = write_reports(tmp_path / "s", journal)
    assert data["test"] is None and data["optimism"] is None
    assert data["test_evaluations"] == 1 and data["test_incomplete"] == 1


def test_a_picture_is_drawn_again_exactly_when_what_it_shows_changed(tmp_path):
    """The reports are rewritten after the search and again after the test look: a picture whose
    inputs did not change is kept (not drawn twice), one whose inputs changed is drawn anew."""
    from tunetorch.history import best_trial

    d = tmp_path / "s"
    journal = journal_study(d, evaluate=False)
    write_reports(d, journal)
    names = ("progress.png", "params.png", "importance.png")
    first = {name: (d / name).read_bytes() for name in names}
    for name in names:  # a mark no drawing makes: a picture drawn again loses it
        (d / name).write_bytes(first[name] + b"kept")
    write_reports(d, journal)  # nothing changed
    assert all((d / name).read_bytes() == first[name] + b"kept" for name in names)

    best = best_trial(journal.trials())
    ev = journal.start_evaluation(best.number, "0" * 64, forced=False)
    journal.complete_evaluation(ev, {"val_accuracy": TEST_ACCURACY}, TEST_ACCURACY, "f" * 64)
    write_reports(d, journal)  # the test score is on progress.png only
    assert (d / "progress.png").read_bytes() not in (first["progress.png"], first["progress.png"] + b"kept")
    assert (d / "params.png").read_bytes() == first["params.png"] + b"kept"

    journal.put_trial(journal.trials()[-1].replace(score=0.5))  # a trial's score changed: all three
    write_reports(d, journal)
    assert all(not (d / name).read_bytes().endswith(b"kept") for name in names)


def test_trials_csv_keeps_its_columns(study):
    d, journal, _ = study
    rows = list(csv.reader((d / "trials.csv").open()))
    names = sorted(journal.trials()[0].params)
    assert rows[0] == ["number", *names, "state", "val_score", "epochs", "best_epoch", "node", "device",
                       "device_name", "device_seconds", "wall_seconds", "error"]  # fmt: skip
    assert len(rows) == 17 and rows[1 + FAILED][rows[0].index("state")] == "FAIL"
    # best_epoch counted from 1, as everywhere a person reads it: the journal's + 1
    for t in journal.trials():
        shown = rows[1 + t.number][rows[0].index("best_epoch")]
        assert shown == ("" if t.best_epoch is None else str(t.best_epoch + 1)), t.number


# --- the plots ------------------------------------------------------------------------------------
def test_score_axis_keeps_the_upper_trials_and_leaves_the_diverged_one_on_the_edge():
    scores = [0.13, 0.9, 0.92, 0.93, 0.95, 0.96]
    low, high = score_limits(scores)
    assert 0.13 < low < 0.92 and high > 0.96
    low_min, high_min = score_limits([1.5, 0.3, 0.25, 0.2, 0.22], "minimize")
    assert low_min < 0.2 and high_min < 1.5  # minimizing: the diverged loss is the high one


def test_progress_figure_marks_best_test_pruned_and_outliers(study):
    _, journal, data = study
    trials = journal.trials()
    test = {"trial": data["test"]["trial"], "value": TEST_ACCURACY, "label": "test accuracy"}
    fig = progress_figure(trials, unit="CPU minutes", test=test)
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert low > 0.13 and low < TEST_ACCURACY < high  # the diverged trial does not set the scale
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(s.startswith(f"best: trial {data['best']['trial']}") for s in labels)
    assert any(s.startswith("test accuracy 0.9100") for s in labels)
    assert f"{len(PRUNED)} pruned trials" in labels and "1 failed trial" in labels
    assert ax.get_xlabel() == "CPU minutes"
    assert any(s.startswith("outside the axis") for s in labels)
    dots = ax.collections[0]  # complete trials, coloured by their number
    assert list(dots.get_array()) == [t.number for t in trials if t.state == TrialState.COMPLETE]
    assert fig.axes[1].get_ylabel() == "trial number"


def test_params_figure_reads_its_axes_from_the_space(study):
    _, journal, data = study
    space = SearchSpace.from_dict(json.loads(journal.get_meta("space")))
    fig = params_figure(journal.trials(), space=space)
    lr, dropout, depth, act = fig.axes[:4]
    assert lr.get_xscale() == "log" and dropout.get_xscale() == "linear"
    assert [t.get_text() for t in act.get_xticklabels()] == ["relu", "gelu"]
    assert list(depth.get_xticks()) == [1, 2, 3, 4]
    xs = depth.collections[0].get_offsets()[:, 0]
    values = [t.params["model.depth"] for t in journal.trials() if t.state == TrialState.COMPLETE]
    assert np.all(np.abs(xs - values) <= 0.2) and not np.allclose(xs, values)  # jittered strips
    assert depth.get_ylim()[0] > 0.13


def test_write_reports_writes_every_file_on_a_real_study(real):
    d, _ = real
    for name in ("summary.json", "trials.csv", "progress.png", "params.png", "importance.png", "index.html"):
        assert (d / name).stat().st_size > 500, name
    data = json.loads((d / "summary.json").read_text())
    assert data["importance"]["importance"] is not None
    assert data["optimism"]["trial"] == data["best"]["trial"]


# --- the terminal ---------------------------------------------------------------------------------
def test_format_params_uses_three_significant_digits_everywhere():
    p = {"optimizer.lr": 0.008144886973076106, "optimizer.weight_decay": 1.1999049779393521e-05,
         "model.depth": 2, "model.act": "relu", "x": 1e-4, "y": 1000000.0}  # fmt: skip
    assert terminal.format_params(p) == (
        "optimizer.lr=0.00814, optimizer.weight_decay=1.2e-05, model.depth=2, model.act=relu, "
        "x=0.0001, y=1e+06"
    )


def test_budget_text_states_the_budget_as_it_applies():
    from tunetorch.budget import Budget

    def text(n_trials, minutes, unit="GPU minutes"):
        return terminal.budget_text(Budget(n_trials, minutes), unit)

    assert text(12, None, "CPU minutes") == "12 trials"
    assert text(1, None) == "1 trial"
    assert text(None, 30) == "30 GPU minutes (no trial cap)"
    assert text(None, 1, "CPU minutes") == "1 CPU minute (no trial cap)"
    assert text(12, 2.5) == "12 trials or 2.5 GPU minutes, whichever is spent first"
    assert text(None, None) == "20 trials (the default; set budget.n_trials or budget.gpu_minutes)"


def test_words_count_nouns_and_name_the_cost_unit():
    from tunetorch import words

    assert [words.count(n, "slot") for n in (0, 1, 2)] == ["0 slots", "1 slot", "2 slots"]
    assert words.count(1, "interrupted trial") == "1 interrupted trial"
    assert words.count(3, "probe") == "3 probes" and words.count(2, "entry") == "2 entries"
    assert words.count(3, "epoch") == "3 epochs" and words.count(2, "batch") == "2 batches"
    assert words.minutes(1.0, "GPU minutes") == "1 GPU minute"
    assert words.minutes(0.0633, "CPU minutes") == "0.0633 CPU minutes"
    assert words.minutes(1.0004, "GPU minutes") == "1 GPU minute"  # singular as written, 3 digits
    assert words.minutes(1.5) == "1.5 GPU minutes"
    assert [words.times(n) for n in (1, 2, 3)] == ["once", "twice", "3 times"]
    assert words.cost_unit(["cpu", "cpu"]) == "CPU minutes" and words.cost_unit([]) == "CPU minutes"
    assert words.cost_unit(["cpu", "cuda:1"]) == "GPU minutes"
    assert words.shown_epoch(0) == 1 and words.shown_epoch(None) is None


def test_no_report_says_s_in_brackets_or_device_minutes(study, real):
    """The wording rules hold in what the reports write: no 'slot(s)', no 'device minutes'."""
    for d in (study[0], real[0]):
        for name in ("index.html", "summary.json"):
            text = (d / name).read_text()
            assert "(s)" not in text and "device minute" not in text.lower(), (d, name)
            assert "CPU-device" not in text and "1 trials" not in text, (d, name)


def _path_without(folder) -> str:
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != folder)


@pytest.mark.parametrize("active", [False, True])
def test_printed_commands_run_as_printed(active, monkeypatch, tmp_path):
    """TensorBoard's and evaluate's commands, as the terminal and index.html print them, run from
    the folder the study was started in, with the virtual environment active or not."""
    import shlex
    import subprocess
    import sys

    venv_bin = Path(sys.executable).parent
    path = _path_without(venv_bin)
    if active:
        path = os.pathsep.join([str(venv_bin), path])
    monkeypatch.setenv("PATH", path)
    monkeypatch.chdir(tmp_path)
    tb = terminal.tensorboard_command(Path("runs") / "x" / "tb")
    evaluate = terminal.evaluate_command(Path("runs") / "x")
    if active:
        assert tb == "tensorboard --logdir runs/x/tb" and evaluate.startswith("python -m tunetorch.evaluate ")
    else:
        assert not tb.startswith("tensorboard ") and not evaluate.startswith("python ")
    env = {**os.environ, "PATH": path}
    for command, extra in ((tb, "--version_tb"), (evaluate, "--help")):
        out = subprocess.run(
            [*shlex.split(command), extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, (command, out.stderr[-2000:])


def test_top_table_on_a_real_study(real):
    from tunetorch.journal import Journal

    d, _ = real
    trials = Journal(d / "journal.sqlite").trials()
    table = terminal.top_table(trials, "maximize", k=5, metric="val_accuracy")
    lines = table.splitlines()
    assert lines[0].startswith("top 5 of 6 finished trials")
    assert lines[1].split()[:5] == ["trial", "val_accuracy", "epochs", "CPU", "minutes"]
    ranked = sorted((t for t in trials if t.score is not None), key=lambda t: (-t.score, t.number))[:5]
    for line, t in zip(lines[2:], ranked, strict=True):
        cells = line.split()
        assert cells[0] == str(t.number) and cells[1] == f"{t.score:.4f}" and cells[2] == str(t.epochs)
        assert cells[4] == "COMPLETE" and terminal.format_params(t.params) in line
        assert float(cells[3]) == pytest.approx(t.device_seconds / 60, rel=0.01)


def test_top_table_ranks_pruned_and_minimized_studies(study):
    _, journal, _ = study
    trials = journal.trials()
    lines = terminal.top_table(trials, "minimize", k=3).splitlines()
    assert lines[2].split()[0] == str(DIVERGED)  # minimizing: the lowest score first
    assert history.ranked(trials, "maximize")[0].number == study[2]["best"]["trial"]


def test_progress_lines_number_trials_from_zero_and_count_apart(real):
    from tunetorch.journal import Journal

    d, _ = real
    trials = Journal(d / "journal.sqlite").trials()
    first = trials[0]
    line = terminal.finished_line(first, trials[:1], n_trials=6)
    assert line.startswith("trial 0 val_accuracy ") and "| 1 of 6 finished |" in line
    assert "best " in line and "(trial 0)" in line
    assert re.search(r"\| [0-9.e-]+ CPU minutes$", line)  # the unit from the trials' devices
    started = terminal.started_line(0, first.params, "cpu")
    assert started == f"trial 0 started on cpu: {terminal.format_params(first.params)}"
    rows = Journal(d / "journal.sqlite").epochs(0)
    tick = terminal.epoch_line(0, rows[-1], epochs=2)
    assert tick.startswith("  trial 0 epoch 2/2: val_accuracy ") and "train_loss" in tick


def _ran(seconds: list[float], device: list[float] | None = None) -> list[Trial]:
    """Finished trials that ran `seconds` each (and held their device `device` seconds each)."""
    device = device or seconds
    return [
        Trial(n, {}, TrialState.COMPLETE, score=0.5, wall_seconds=w, device_seconds=d)
        for n, (w, d) in enumerate(zip(seconds, device, strict=True))
    ]


def test_time_left_is_none_until_a_trial_has_run_then_from_run_times(real):
    """Until more trials have finished than there are slots, the median trial's run time (of a
    real study's trials) divided among the slots stands in for the run's pace."""
    from tunetorch.journal import Journal

    d, _ = real
    trials = Journal(d / "journal.sqlite").trials()
    assert time_left.estimate([], slots=1, n_trials=6) is None
    assert time_left.estimate(trials, slots=1) is None  # no budget to count down
    one = time_left.estimate(trials[:1], slots=1, n_trials=6, finish_times=[10.0])
    assert one.low == one.high == pytest.approx(5 * trials[0].wall_seconds)  # 5 more, each as long
    assert time_left.estimate(trials, slots=1, n_trials=6).high == 0
    two = time_left.estimate(trials[:2], slots=2, n_trials=6, finish_times=[10.0, 10.1])
    assert two.high == pytest.approx(4 * float(np.median([t.wall_seconds for t in trials[:2]])) / 2)


def test_time_left_follows_this_runs_pace_on_a_busy_machine():
    """Trials that train for 1 s each but finish 3 s apart (a busy machine, the driver's own time):
    the estimate is 3 s a trial, not the 1 s their run times say."""
    left = time_left.estimate(_ran([1.0] * 3), slots=1, n_trials=13, finish_times=[0.0, 3.0, 6.0])
    assert left.single and left.low == pytest.approx(30.0)
    assert terminal.left_text(left) == "about 30 s left"


def test_time_left_is_a_range_when_trials_vary():
    """Half the trials stopped early after 1 s, half ran 5 s: the range spans the quartiles."""
    trials = _ran([1.0, 5.0, 1.0, 5.0, 1.0, 5.0, 1.0, 5.0])
    left = time_left.estimate(trials, slots=1, n_trials=28, finish_times=[3.0 * i for i in range(8)])
    assert not left.single and left.low < 20 * 3.0 < left.high
    assert re.fullmatch(r"about \d+ s to \d+ min \d\d s left", terminal.left_text(left))


def test_time_left_with_a_minutes_budget_counts_device_seconds():
    """60 device seconds a trial, 10 minutes of budget with 3 minutes spent: 7 more trials."""
    trials = _ran([2.0] * 3, device=[60.0] * 3)
    left = time_left.estimate(trials, slots=1, minutes=10, finish_times=[0.0, 2.0, 4.0])
    assert left.single and left.low == pytest.approx(7 * 2.0)
    both = time_left.estimate(trials, slots=1, minutes=10, n_trials=4, finish_times=[0.0, 2.0, 4.0])
    assert both.low == pytest.approx(2.0)  # whichever budget is spent first


def test_final_lines_on_a_real_study(real):
    from tunetorch.journal import Journal

    d, _ = real
    data = json.loads((d / "summary.json").read_text())
    journal = Journal(d / "journal.sqlite")
    best = next(t for t in journal.trials() if t.number == data["best"]["trial"])
    line = terminal.best_line(best)
    params = terminal.format_params(best.params)
    at = f"at epoch {data['best']['best_epoch']} of {data['best']['epochs']}"  # 1-based, as summary.json
    assert line == f"best: trial {best.number}, val_accuracy {best.score:.4f} {at}, params {params}"
    assert not re.search(r"\d{6,}", line)  # no 16-digit floats
    test = terminal.test_line(data["test"], data["optimism"], n_test=360)
    assert "\n" not in test and test.startswith(
        f"test accuracy {data['test']['accuracy']:.4f} (loss {terminal.format_value(data['test']['loss'])}) "
        f"of trial {data['test']['trial']} on 360 held-out examples, evaluated once; validation accuracy "
    )
    assert test.endswith(data["optimism"]["reading"]) and f"{abs(data['optimism']['gap']):.4f}" in test
    opt = terminal.optimism_line(data["optimism"])
    assert f"test accuracy {data['test']['accuracy']:.4f}" in opt and data["optimism"]["reading"] in opt
    imp = terminal.importance_line(data["importance"])
    assert imp.startswith("which parameters mattered (fANOVA, 6 trials): ")
    listed = "\n".join(terminal.results_lines(d))
    for name in ("index.html", "summary.json", "trials.csv", "progress.png", "params.png", "importance.png",
                 "best.pt", "tensorboard --logdir"):  # fmt: skip
        assert name in listed, name


# --- exact grid values ----------------------------------------------------------------------------
def test_grid_values_are_exact():
    from tunetorch.strategies.grid import GridSearch

    space = SearchSpace.from_dict(
        {
            "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "optimizer.weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
            "big": {"type": "float", "low": 1.0, "high": 1e6, "log": True},
            "model.dropout": {"type": "float", "low": 0.0, "high": 0.6},
            "model.depth": {"type": "int", "low": 1, "high": 4},
        }
    )
    grid = GridSearch(space, resolution={"optimizer.lr": 4, "optimizer.weight_decay": 5, "big": 7,
                                         "model.dropout": 5, "model.depth": 4})  # fmt: skip
    values = {n: sorted({p[n] for p in grid.lattice}) for n in space.names}
    assert values["optimizer.lr"] == [1e-4, 1e-3, 1e-2, 1e-1]
    assert values["optimizer.weight_decay"] == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
    assert values["big"] == [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]
    assert values["model.dropout"] == [0.0, 0.15, 0.3, 0.45, 0.6]
    assert values["model.depth"] == [1, 2, 3, 4] and all(isinstance(v, int) for v in values["model.depth"])
    assert all(repr(v) == repr(float(f"{v:.3g}")) for v in values["optimizer.lr"])
    assert all(space.contains(p) for p in grid.lattice) and len(grid.lattice) == 4 * 5 * 7 * 5 * 4
    assert not any(math.isnan(v) for v in values["big"])
