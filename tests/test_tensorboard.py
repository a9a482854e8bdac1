"""TensorBoard: curves written live epoch by epoch, no point written twice (a re-run, a resume), the
study's cards, single values as HParams metrics, HParams in the user's units; and a real
TensorBoard server answering for a study the tuner wrote."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from scripts._tensorboard_server import start_tensorboard
from tests._report_studies import DIVERGED, FAILED, PRUNED, SPACE, journal_study, real_study
from tests.conftest import ROOT, SHRINK, run_in_process
from tests.test_faults import start_tune, wait_for
from tunetorch.reports import write_reports
from tunetorch.reports.hparams import experiment_proto, hparam_value
from tunetorch.reports.tensorboard import TensorBoardLog, end_values
from tunetorch.space import SearchSpace
from tunetorch.trial import Trial, TrialState


def log_journal(study_dir: Path, journal) -> None:
    """Write study_dir/tb from a journal, driving TensorBoardLog as the tuner does: each trial's
    epochs as they would have arrived (one a second), then its end; the test result; the pictures."""
    from tunetorch.reports.meta import study_meta
    from tunetorch.reports.summary import summary

    meta = study_meta(journal)
    log = TensorBoardLog(study_dir, space=meta.space, metric=meta.metric, direction=meta.direction)
    trials = sorted(journal.trials(), key=lambda t: t.number)
    clock = 1_700_000_000.0
    for i, t in enumerate(trials):
        running = t.replace(state=TrialState.RUNNING)
        for row in journal.epochs(t.number):
            clock += 1.0
            log.epoch(running, row, wall_time=clock)
        if t.finished:
            log.trial(t, journal.epochs(t.number), trials[: i + 1])
    data = summary(journal, meta)
    log.test_result(data["test"], data["optimism"], n_trials=len(trials))
    log.images(sum(t.finished for t in trials))
    log.close()


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """The synthetic study (every trial state) logged as the search loop logs it."""
    d = tmp_path_factory.mktemp("tb") / "study"
    journal = journal_study(d)
    write_reports(d, journal)
    log_journal(d, journal)
    return d, journal


def _acc(path, **guidance):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(
        str(path), size_guidance={"scalars": 0, "images": 0, "tensors": 0, **guidance}
    ).Reload()


def _points(path, tag) -> list[tuple[int, float, float]]:
    acc = _acc(path)
    return [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def _ended(path) -> bool:
    from tensorboard.plugins.hparams import metadata

    return metadata.SESSION_END_INFO_TAG in _acc(path).Tags()["tensors"]


# --- written live -------------------------------------------------------------------------------
def test_a_running_trials_epochs_are_on_disk_with_their_wall_time_before_it_ends(tmp_path):
    log = TensorBoardLog(tmp_path, space=SearchSpace.from_dict(SPACE))
    t = Trial(0, {"optimizer.lr": 0.01, "model.dropout": 0.1, "model.depth": 2, "model.act": "relu"})
    running = t.replace(state=TrialState.RUNNING)
    run = tmp_path / "tb" / "trial_0000"
    log.epoch(running, {"epoch": 0, "val_accuracy": 0.5, "val_loss": 1.0, "seconds": 2.0}, wall_time=1000.0)
    log.epoch(running, {"epoch": 1, "val_accuracy": 0.7, "val_loss": 0.8, "seconds": 2.0}, wall_time=1002.5)
    # Read while the writer is still open: the curve is there, the session has started, not ended.
    assert _points(run, "trial/val_accuracy") == [(1, 0.5, 1000.0), (2, pytest.approx(0.7), 1002.5)]
    assert not _ended(run)
    files = {p.name: p.read_bytes() for p in run.iterdir()}
    done = t.replace(state=TrialState.COMPLETE, score=0.7, best_epoch=1, epochs=2, device_seconds=4.0)
    log.trial(done, [{"epoch": 0, "val_loss": 1.0}, {"epoch": 1, "val_loss": 0.8}], [done])
    log.close()
    # Nothing rewritten at the end: the same event file, grown.
    assert set(files) == {p.name for p in run.iterdir()}
    assert all((run / name).read_bytes().startswith(head) for name, head in files.items())
    assert _points(run, "trial/val_accuracy")[1][2] == 1002.5 and _ended(run)
    assert [(s, v) for s, v, _ in _points(run, "trials/val_loss_at_scored_epoch")] == [
        (0, pytest.approx(0.8))
    ]


def test_a_trial_that_starts_again_starts_its_run_afresh(tmp_path):
    """A retry, or a resumed study re-running an interrupted trial, reports epoch 0 again: the run
    then holds the new attempt alone, each step once (the journal does the same)."""
    t = Trial(3, {"x": 0.5}, TrialState.RUNNING)
    run = tmp_path / "tb" / "trial_0003"
    first = TensorBoardLog(tmp_path)
    for e in range(3):
        first.epoch(t, {"epoch": e, "val_accuracy": 0.1 * e}, wall_time=100.0 + e)
    first.close()  # the tuner stopped here (interrupted)
    again = TensorBoardLog(tmp_path)  # the resume
    for e in range(2):
        again.epoch(t, {"epoch": e, "val_accuracy": 0.5 + 0.1 * e}, wall_time=200.0 + e)
    again.close()
    assert [(s, w) for s, _, w in _points(run, "trial/val_accuracy")] == [(1, 200.0), (2, 201.0)]


def test_only_epochs_the_study_recorded_are_written(tmp_path):
    log = TensorBoardLog(tmp_path)
    pruned = Trial(0, {"x": 1}, TrialState.PRUNED, score=0.4, epochs=2)
    log.epoch(pruned.replace(state=TrialState.RUNNING), {"epoch": 0, "val_accuracy": 0.3})
    log.epoch(pruned, {"epoch": 1, "val_accuracy": 0.4})  # the epoch it was pruned at: recorded
    log.epoch(pruned, {"epoch": 2, "val_accuracy": 0.5})  # a late one: not
    log.epoch(Trial(1, {"x": 1}, TrialState.FAIL), {"epoch": 0, "val_accuracy": 0.5})
    log.epoch(None, {"epoch": 0, "val_accuracy": 0.5})
    log.close()
    assert [s for s, _, _ in _points(tmp_path / "tb" / "trial_0000", "trial/val_accuracy")] == [1, 2]
    assert not (tmp_path / "tb" / "trial_0001").exists()


# In the tuner's workers: a quarter of a second after each epoch has reached the driver, so that
# a trial is seen mid-way (six digits epochs otherwise take a fraction of a second on an idle CPU).
SLOW_EPOCHS = """
import time
import tunetorch.training.objective as o
_run = o.run_training
def run_training(state, number, params, emit):
    def emit_then_wait(kind, payload):
        answer = emit(kind, payload)
        time.sleep(0.25)
        return answer
    return _run(state, number, params, emit_then_wait)
o.run_training = run_training
"""


def test_a_study_grows_live_in_tensorboard_and_a_resume_adds_no_point_twice(tmp_path):
    """`python -m tunetorch.tune`, for real: while trial 0 trains its curve is already on disk,
    point by point with increasing wall times; the tuner is killed mid-trial and the same command
    resumes it: trial 0's run is left as it was, the re-run trial holds each epoch once."""
    d = tmp_path / "study"
    args = [a for a in SHRINK if not a.startswith(("budget.n_trials=", "trainer.epochs="))]
    args += ["budget.n_trials=3", "trainer.epochs=6", "study.evaluate=false", f"study.dir={d}"]
    tb = d / "tb"

    def mid_trial(n: int) -> bool:
        run = tb / f"trial_{n:04d}"
        return run.is_dir() and len(_points(run, "trial/val_accuracy")) >= 2 and not _ended(run)

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_EPOCHS)
    # ROOT too: sitecustomize imports tunetorch before `-m` puts the working folder on sys.path
    proc = start_tune(*args, env={"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])})
    try:
        wait_for(lambda: mid_trial(0), proc=proc, timeout=180)
        walls = [w for _, _, w in _points(tb / "trial_0000", "trial/val_accuracy")]
        assert walls == sorted(walls) and len(set(walls)) == len(walls)  # each epoch its own time
        wait_for(lambda: mid_trial(1), proc=proc, timeout=180)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    trial0 = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tb / "trial_0000").iterdir()}
    assert _ended(tb / "trial_0000")
    out = run_in_process("tune", *args)  # the resume (the kill needed a process of its own)
    assert out.returncode == 0, out.stderr + out.stdout
    assert trial0 == {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tb / "trial_0000").iterdir()
    }
    for n in range(3):
        steps = [s for s, _, _ in _points(tb / f"trial_{n:04d}", "trial/val_accuracy")]
        assert steps == [1, 2, 3, 4, 5, 6], n
        assert [s for s, _, _ in _points(tb / f"trial_{n:04d}", "trials/epochs")] == [n]
    assert [s for s, _, _ in _points(tb / "study", "study/trial_val_accuracy")] == [0, 1, 2]


# --- what each run holds ------------------------------------------------------------------------
def test_end_values_are_the_journals_single_values():
    t = Trial(2, {}, TrialState.COMPLETE, score=0.8, best_epoch=1, epochs=3, device_seconds=5.0)
    rows = [{"epoch": 0, "val_loss": 1.0}, {"epoch": 1, "val_loss": 0.6}, {"epoch": 2, "val_loss": 0.7}]
    assert end_values(t, rows, "val_accuracy") == {
        "trials/val_accuracy": 0.8,
        "trials/scored_epoch": 2.0,  # the journal's epoch 1, counted from 1
        "trials/val_loss_at_scored_epoch": 0.6,
        "trials/epochs": 3.0,
        "trials/device_seconds": 5.0,
    }
    failed = Trial(3, {}, TrialState.FAIL, device_seconds=0.1)
    assert end_values(failed, rows[:1], "val_accuracy") == {
        "trials/epochs": 1.0,
        "trials/device_seconds": 0.1,
    }


def test_hparams_values_are_in_the_users_units():
    space = SearchSpace.from_dict(
        {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "layers": {"type": "int", "low": 1, "high": 12},
            "width": {"type": "int", "low": 16, "high": 512, "log": True},
            "batch": {"type": "categorical", "choices": [32, 64, 128]},
        }
    )
    dims = {d.name: d for d in space.dims}
    assert hparam_value(dims["lr"], 0.0093) == 0.0093  # the value, not log10 of it
    # Whole numbers as text ("3", not "3.0000"), padded so that text order is number order.
    layers = [hparam_value(dims["layers"], v) for v in (3, 12, 1)]
    assert [s.strip() for s in layers] == ["3", "12", "1"]
    assert sorted(layers) == [hparam_value(dims["layers"], v) for v in (1, 3, 12)]
    batch = [hparam_value(dims["batch"], v) for v in (128, 32, 64)]
    assert sorted(batch) == [hparam_value(dims["batch"], v) for v in (32, 64, 128)]
    assert hparam_value(dims["width"], 256) == 256  # a wide range keeps its numeric axis


def test_experiment_declares_domains_in_the_users_units_and_every_metric():
    from tensorboard.plugins.hparams import metadata

    space = SearchSpace.from_dict(SPACE)
    proto = experiment_proto(space, "val_accuracy")
    exp = metadata.parse_experiment_plugin_data(proto.value[0].metadata.plugin_data.content)
    infos = {h.name: h for h in exp.hparam_infos}
    assert set(infos) == {"optimizer.lr", "model.dropout", "model.depth", "model.act"}  # no "state"
    lr = infos["optimizer.lr"]
    assert (lr.domain_interval.min_value, lr.domain_interval.max_value) == (1e-4, 1e-1)
    assert lr.display_name == "lr" and "log scale" in lr.description
    assert [v.string_value for v in infos["model.depth"].domain_discrete.values] == ["1", "2", "3", "4"]
    assert [v.string_value for v in infos["model.act"].domain_discrete.values] == ["gelu", "relu"]
    assert infos["model.dropout"].domain_interval.max_value == pytest.approx(0.6)
    assert all(h.differs for h in exp.hparam_infos)
    assert [m.name.tag for m in exp.metric_infos] == [
        "trials/val_accuracy",
        "trials/val_loss_at_scored_epoch",
        "trials/scored_epoch",
        "trials/epochs",
        "trials/device_seconds",
    ]


def test_study_cards_hold_no_smoothed_staircase_and_no_lone_dot(logged):
    """The best so far is a picture (never smoothed, device minutes on its axis), redrawn as trials
    finish; the scalars are each trial's score by trial number; the test result is text."""
    d, journal = logged
    acc = _acc(d / "tb" / "study")
    assert acc.Tags()["scalars"] == ["study/trial_val_accuracy"]
    scored = [t.number for t in journal.trials() if t.score is not None]
    assert [e.step for e in acc.Scalars("study/trial_val_accuracy")] == scored
    progress = [e.step for e in acc.Images("study/progress")]
    assert progress[0] == 1 and len(progress) >= 2  # drawn live from the first trial on
    assert set(acc.Tags()["images"]) == {"study/progress", "study/params", "study/importance"}
    assert "study/test_result/text_summary" in acc.Tags()["tensors"]
    for run in (d / "tb").glob("trial_*"):  # no test accuracy as a one-point curve anywhere
        assert not [t for t in _acc(run).Tags()["scalars"] if "test" in t]


def test_each_trial_has_curves_single_values_a_session_and_its_status(logged):
    from tensorboard.plugins.hparams import api_pb2, metadata

    d, journal = logged
    for t in journal.trials():
        run = d / "tb" / f"trial_{t.number:04d}"
        acc = _acc(run)
        scalars = acc.Tags()["scalars"]
        assert {"trial/val_accuracy", "trial/epoch_seconds", "trials/epochs"} <= set(scalars)
        assert not [s for s in scalars if "best" in s]  # no running-best staircase to smooth
        for tag in (s for s in scalars if s.startswith("trials/")):
            assert [e.step for e in acc.Scalars(tag)] == [t.number], tag  # one value, at its number
        if t.score is not None:
            assert acc.Scalars("trials/val_accuracy")[-1].value == pytest.approx(t.score)
        contents = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(contents[metadata.SESSION_START_INFO_TAG])
        assert "state" not in start.hparams
        assert start.hparams["optimizer.lr"].number_value == pytest.approx(t.params["optimizer.lr"])
        assert start.hparams["model.depth"].string_value == str(t.params["model.depth"])
        end = metadata.parse_session_end_info_plugin_data(contents[metadata.SESSION_END_INFO_TAG])
        expected = api_pb2.STATUS_FAILURE if t.number == FAILED else (
            api_pb2.STATUS_UNKNOWN if t.number in PRUNED else api_pb2.STATUS_SUCCESS
        )  # fmt: skip
        assert end.status == expected, t.number
    diverged = _acc(d / "tb" / f"trial_{DIVERGED:04d}")
    assert diverged.Scalars("trials/val_accuracy")[-1].value == pytest.approx(0.13)
    pruned = _acc(d / "tb" / f"trial_{min(PRUNED):04d}")
    assert pruned.Scalars("trials/epochs")[-1].value == PRUNED[min(PRUNED)]


def test_epochs_are_counted_from_one_as_in_summary_json(logged):
    """TensorBoard's steps and the HParams scored epoch count from 1, as summary.json, trials.csv,
    index.html and the terminal do; the journal keeps its 0-based count."""
    d, journal = logged
    best = json.loads((d / "summary.json").read_text())["best"]
    acc = _acc(d / "tb" / f"trial_{best['trial']:04d}")
    assert [e.step for e in acc.Scalars("trial/val_accuracy")] == list(range(1, best["epochs"] + 1))
    assert acc.Scalars("trials/scored_epoch")[-1].value == best["best_epoch"]
    in_journal = next(t for t in journal.trials() if t.number == best["trial"]).best_epoch
    assert best["best_epoch"] == in_journal + 1


def test_the_test_result_card_says_what_a_negative_gap_is(tmp_path):
    from tensorboard.util.tensor_util import make_ndarray

    def card(val_accuracy: float) -> str:
        from tunetorch.reports.summary import optimism

        d = tmp_path / str(val_accuracy)
        log = TensorBoardLog(d)
        metrics = {"val_loss": 0.3, "val_accuracy": 0.91}
        look = {"trial": 0, "forced": False, "value": 0.91, "metrics": metrics}
        trial = Trial(0, {}, TrialState.COMPLETE, score=val_accuracy)
        opt = optimism([trial], look, "val_accuracy", "maximize")
        log.test_result(look | {"metric": "val_accuracy"}, opt, n_trials=3)
        log.close()
        (event,) = _acc(d / "tb" / "study").Tensors("study/test_result/text_summary")
        return make_ndarray(event.tensor_proto).item().decode()

    better_test = card(0.9)
    assert "**test accuracy 0.9100**" in better_test
    assert "(validation minus test) -0.0100" in better_test and "optimistic" not in better_test
    assert "test came out 0.0100 better than validation" in better_test
    assert "validation was optimistic by 0.0300" in card(0.94)


def test_a_second_log_on_the_same_study_writes_the_experiment_once(tmp_path):
    """A resume, or `evaluate` after the study, opens the log again: one HParams experiment."""
    from tensorboard.plugins.hparams import metadata

    space = SearchSpace.from_dict(SPACE)
    for _ in range(2):
        TensorBoardLog(tmp_path, space=space).close()
    events = _acc(tmp_path / "tb" / "study").Tensors(metadata.EXPERIMENT_TAG)
    assert len(events) == 1


def test_strategy_internals_only_when_asked(tmp_path):
    t = Trial(0, {"x": 0.5}, TrialState.COMPLETE, score=0.5, info={"ei": 0.1, "length_scales": {"x": 0.3}})
    for asked in (False, True):
        d = tmp_path / str(asked)
        log = TensorBoardLog(d, strategy_internals=asked)
        log.trial(t, [{"epoch": 0, "val_accuracy": 0.5}], [t])
        log.close()
        assert (d / "tb" / "strategy").is_dir() == asked
    assert set(_acc(tmp_path / "True" / "tb" / "strategy").Tags()["scalars"]) == {
        "strategy/ei",
        "strategy/length_scales/x",
    }


# --- a real TensorBoard, over HTTP ------------------------------------------------------------------
def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _post(url: str, body: dict):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """TensorBoard on 127.0.0.1:FREE against the tb/ that `python -m tunetorch.tune` wrote as it
    ran. A run missing is a failure (a writer that stopped writing), never a skip."""
    d, _ = real_study(tmp_path_factory)
    try:
        proc, url = start_tensorboard(d / "tb", need_runs=False)
    except (RuntimeError, TimeoutError) as e:
        pytest.fail(f"TensorBoard could not start: {e}")
    deadline, runs = time.monotonic() + 90, []
    try:
        while time.monotonic() < deadline and len(runs) < 7:  # study + 6 trials
            if proc.poll() is not None:
                pytest.fail(f"TensorBoard could not start: {proc.stderr.read()[-300:]}")
            try:
                runs = _get(f"{url}/data/runs")
            except OSError:
                pass
            time.sleep(0.5)
        if len(runs) < 7:
            pytest.fail(f"TensorBoard did not list the study's 7 runs within 90 s (got {runs})")
        yield url, d
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_tensorboard_serves_the_study_runs_and_cards(server):
    url, d = server
    runs = _get(f"{url}/data/runs")
    assert "study" in runs and {f"trial_{n:04d}" for n in range(6)} <= set(runs)
    tags = _get(f"{url}/data/plugin/scalars/tags")
    assert set(tags["study"]) == {"study/trial_val_accuracy"}
    points = _get(f"{url}/data/plugin/scalars/scalars?run=study&tag=study/trial_val_accuracy")
    assert [p[1] for p in points] == list(range(6))  # [wall time, step, value]: one per trial
    curve = _get(f"{url}/data/plugin/scalars/scalars?run=trial_0000&tag=trial/val_accuracy")
    assert [p[1] for p in curve] == [1, 2] and curve[0][0] < curve[1][0]  # each epoch its own time
    text = _get(f"{url}/data/plugin/text/tags")
    assert "study/test_result/text_summary" in text["study"]


def test_tensorboard_serves_hparams_in_the_users_units_and_metrics(server):
    url, d = server
    exp = _post(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {h["name"]: h for h in exp["hparamInfos"]}
    assert "state" not in infos
    assert infos["optimizer.lr"]["displayName"] == "lr"
    assert infos["optimizer.lr"]["domainInterval"] == {"minValue": 1e-4, "maxValue": 1e-1}
    assert [v.strip() for v in infos["model.depth"]["domainDiscrete"]] == ["1", "2", "3", "4"]
    metrics = {m["name"]["tag"] for m in exp["metricInfos"]}
    assert {"trials/val_accuracy", "trials/val_loss_at_scored_epoch", "trials/scored_epoch",
            "trials/epochs", "trials/device_seconds"} <= metrics  # fmt: skip
    groups = _post(
        f"{url}/data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 100,
        },  # fmt: skip
    )["sessionGroups"]
    assert len(groups) == 6
    rows = [r for r in csv_rows(d)]
    lrs = sorted(g["hparams"]["optimizer.lr"] for g in groups)
    assert lrs == pytest.approx(sorted(float(r["optimizer.lr"]) for r in rows))  # as trials.csv has them
    assert all(len(g["metricValues"]) == 5 for g in groups)


def csv_rows(d: Path) -> list[dict]:
    import csv

    return list(csv.DictReader((d / "trials.csv").open()))


def test_tensorboard_serves_the_images(server):
    url, _ = server
    images = _get(f"{url}/data/plugin/images/tags")["study"]
    assert {"study/progress", "study/params", "study/importance"} <= set(images)
    entry = _get(f"{url}/data/plugin/images/images?run=study&tag=study/progress")[-1]
    with urllib.request.urlopen(
        f"{url}/data/plugin/images/individualImage?{entry['query']}", timeout=30
    ) as r:
        assert r.read(8) == b"\x89PNG\r\n\x1a\n"
