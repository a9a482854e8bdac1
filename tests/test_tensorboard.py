"""TensorBoard: the study's cards, per-trial curves, HParams with declared domains, images; and a
real TensorBoard server answering for a finished study."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests._report_studies import DIVERGED, FAILED, PRUNED, SPACE, TEST_ACCURACY, journal_study, real_study
from tunetorch.reports import write_reports
from tunetorch.reports.tensorboard import TensorBoardLog, experiment_proto, replay, trial_curves
from tunetorch.space import SearchSpace


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """The synthetic study logged as the search loop logs it (replay drives TensorBoardLog)."""
    d = tmp_path_factory.mktemp("tb") / "study"
    journal = journal_study(d)
    write_reports(d, journal)
    replay(d, journal)
    return d, journal


def _acc(path, **guidance):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(
        str(path), size_guidance={"scalars": 0, "images": 0, "tensors": 0, **guidance}
    ).Reload()


def test_trial_curves_hold_a_running_best_and_the_loss_where_it_was_reached():
    epochs = [
        {"epoch": 0, "val_accuracy": 0.5, "val_loss": 1.0, "train_loss": 2.0, "seconds": 0.1},
        {"epoch": 1, "val_accuracy": 0.8, "val_loss": 0.6, "train_loss": 1.0, "seconds": 0.1},
        {"epoch": 2, "val_accuracy": 0.7, "val_loss": 0.7, "train_loss": 0.5, "seconds": 0.1, "f1": 0.6},
    ]
    c = trial_curves(epochs, "val_accuracy", "maximize", score=0.8)
    assert [v for _, v in c["trial/best_val_accuracy"]] == [0.5, 0.8, 0.8, 0.8]
    # Epochs as people count them: the journal's epoch 0 is step 1, the best (journal 1) is epoch 2.
    assert c["trial/best_epoch"] == [(1, 1.0), (2, 2.0), (3, 2.0)]
    assert [v for _, v in c["trial/val_loss_at_best_epoch"]] == [1.0, 0.6, 0.6]
    assert c["trial/f1"] == [(3, 0.6)] and "trial/epoch_seconds" in c
    assert [step for step, _ in c["trial/val_accuracy"]] == [1, 2, 3]
    low = trial_curves(epochs, "val_loss", "minimize", score=0.6)
    assert [v for _, v in low["trial/best_val_loss"]][:3] == [1.0, 0.6, 0.6]


def test_experiment_declares_log_discrete_and_interval_domains_and_every_metric():
    from tensorboard.plugins.hparams import metadata

    space = SearchSpace.from_dict(SPACE)
    proto = experiment_proto(space, "val_accuracy")
    exp = metadata.parse_experiment_plugin_data(proto.value[0].metadata.plugin_data.content)
    infos = {h.name: h for h in exp.hparam_infos}
    assert set(infos) == {"optimizer.lr (log10)", "model.dropout", "model.depth", "model.act"}  # no "state"
    lr = infos["optimizer.lr (log10)"].domain_interval
    assert (lr.min_value, lr.max_value) == (-4.0, -1.0)
    assert (
        list(infos["model.depth"].domain_discrete.values)
        and len(infos["model.depth"].domain_discrete.values) == 4
    )
    assert [v.string_value for v in infos["model.act"].domain_discrete.values] == ["gelu", "relu"]
    assert infos["model.dropout"].domain_interval.max_value == pytest.approx(0.6)
    assert all(h.differs for h in exp.hparam_infos)
    tags = [m.name.tag for m in exp.metric_infos]
    assert tags == [
        "trial/best_val_accuracy",
        "trial/val_loss_at_best_epoch",
        "trial/best_epoch",
        "trial/epochs",
        "trial/device_seconds",
        "trial/test_accuracy",
    ]


def test_study_cards_keep_every_trial_a_point(logged):
    d, journal = logged
    acc = _acc(d / "tb" / "study")
    scalars = acc.Tags()["scalars"]
    assert not [t for t in scalars if t.startswith(("strategy/", "hparam/"))]  # the study's cards alone
    finished = [t for t in journal.trials() if t.finished]
    by_ms = [e.step for e in acc.Scalars("study/best_val_accuracy_by_device_ms")]
    by_trial = [e.step for e in acc.Scalars("study/best_val_accuracy_by_trial")]
    assert len(by_ms) == len(by_trial) == len(finished)
    assert all(b > a for a, b in zip(by_ms, by_ms[1:], strict=False))  # strictly increasing
    minutes = acc.Scalars("study/device_minutes_by_trial")[-1].value
    assert minutes == pytest.approx(sum(t.device_seconds for t in finished) / 60, rel=1e-4)
    test = acc.Scalars("study/test_accuracy_of_best_trial")
    assert [e.value for e in test] == [pytest.approx(TEST_ACCURACY)] * 2
    assert set(acc.Tags()["images"]) == {"study/progress", "study/params", "study/importance"}


def test_each_trial_has_curves_a_session_and_its_status(logged):
    from tensorboard.plugins.hparams import api_pb2, metadata

    d, journal = logged
    for t in journal.trials():
        run = d / "tb" / f"trial_{t.number:04d}"
        acc = _acc(run)
        scalars = acc.Tags()["scalars"]
        assert {"trial/val_accuracy", "trial/best_val_accuracy", "trial/epochs"} <= set(scalars)
        best = acc.Scalars("trial/best_val_accuracy")
        if t.score is not None:
            assert best[-1].value == pytest.approx(t.score)
        contents = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(contents[metadata.SESSION_START_INFO_TAG])
        assert "state" not in start.hparams and "optimizer.lr (log10)" in start.hparams
        assert start.hparams["optimizer.lr (log10)"].number_value == pytest.approx(
            math.log10(t.params["optimizer.lr"])
        )
        end = metadata.parse_session_end_info_plugin_data(contents[metadata.SESSION_END_INFO_TAG])
        expected = api_pb2.STATUS_FAILURE if t.number == FAILED else (
            api_pb2.STATUS_UNKNOWN if t.number in PRUNED else api_pb2.STATUS_SUCCESS
        )  # fmt: skip
        assert end.status == expected, t.number
    assert _acc(d / "tb" / f"trial_{DIVERGED:04d}").Scalars("trial/best_val_accuracy")[
        -1
    ].value == pytest.approx(0.13)


def test_epochs_are_counted_from_one_as_in_summary_json(logged):
    """TensorBoard's steps and the HParams best epoch count from 1, as summary.json, trials.csv,
    index.html and the terminal do; the journal keeps its 0-based count."""
    d, journal = logged
    best = json.loads((d / "summary.json").read_text())["best"]
    acc = _acc(d / "tb" / f"trial_{best['trial']:04d}")
    assert [e.step for e in acc.Scalars("trial/val_accuracy")] == list(range(1, best["epochs"] + 1))
    assert acc.Scalars("trial/best_epoch")[-1].value == best["best_epoch"]
    in_journal = next(t for t in journal.trials() if t.number == best["trial"]).best_epoch
    assert best["best_epoch"] == in_journal + 1


def test_the_test_result_card_says_what_a_negative_gap_is(tmp_path):
    from tensorboard.util.tensor_util import make_ndarray

    def card(val_accuracy: float) -> str:
        d = tmp_path / str(val_accuracy)
        log = TensorBoardLog(d)
        log.test_result(0.91, 0.3, 0, val_accuracy=val_accuracy, n_trials=3)
        log.close()
        (event,) = _acc(d / "tb" / "study").Tensors("study/test_result/text_summary")
        return make_ndarray(event.tensor_proto).item().decode()

    better_test = card(0.9)
    assert "(validation minus test) -0.0100" in better_test and "optimistic" not in better_test
    assert "test came out 0.0100 better than validation" in better_test
    assert "validation was optimistic by 0.0300" in card(0.94)


def test_test_accuracy_is_a_metric_of_the_evaluated_trial_only(logged):
    d, journal = logged
    tested = journal.evaluations()[-1]["trial"]
    with_test = [
        p.name for p in (d / "tb").glob("trial_*") if "trial/test_accuracy" in _acc(p).Tags()["scalars"]
    ]
    assert with_test == [f"trial_{tested:04d}"]


def test_strategy_internals_only_when_asked(tmp_path):
    from tunetorch.trial import Trial, TrialState

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
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """TensorBoard on 127.0.0.1:FREE against a study finished by `python -m tunetorch.tune`."""
    from tunetorch.journal import Journal

    d, _ = real_study(tmp_path_factory)
    # Rebuilt from the journal with the same TensorBoardLog the search loop uses, so the check holds
    # whether or not the entry point already passes the space (it decides the HParams domains).
    replay(d, Journal(d / "journal.sqlite"))
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(d / "tb"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline, runs = time.monotonic() + 90, []
    while time.monotonic() < deadline and len(runs) < 7:  # study + 6 trials
        if proc.poll() is not None:
            pytest.skip(f"TensorBoard could not start: {proc.stderr.read()[-300:]}")
        try:
            runs = _get(f"{url}/data/runs")
        except OSError:
            pass
        time.sleep(0.5)
    if len(runs) < 7:
        proc.kill()
        pytest.skip(f"TensorBoard did not list the study's runs within 90 s (got {runs})")
    yield url, d
    proc.terminate()
    proc.wait(timeout=10)


def test_tensorboard_serves_the_study_runs_and_cards(server):
    url, d = server
    runs = _get(f"{url}/data/runs")
    assert "study" in runs and {f"trial_{n:04d}" for n in range(6)} <= set(runs)
    tags = _get(f"{url}/data/plugin/scalars/tags")
    assert {"study/best_val_accuracy_by_trial", "study/best_val_accuracy_by_device_ms"} <= set(tags["study"])
    assert "study/test_accuracy_of_best_trial" in tags["study"]
    points = _get(f"{url}/data/plugin/scalars/scalars?run=study&tag=study/best_val_accuracy_by_device_ms")
    assert len(points) == 6


def test_tensorboard_serves_hparams_domains_and_metrics(server):
    url, _ = server
    exp = _post(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {h["name"]: h for h in exp["hparamInfos"]}
    assert "state" not in infos
    lr = [n for n in infos if n.startswith("optimizer.lr")][0]
    assert lr == "optimizer.lr (log10)" and infos[lr]["domainInterval"] == {
        "minValue": -4.0,
        "maxValue": -1.0,
    }
    depth = [n for n in infos if n.endswith("depth")][0]
    assert infos[depth]["domainDiscrete"] == [1.0, 2.0, 3.0, 4.0]
    metrics = {m["name"]["tag"] for m in exp["metricInfos"]}
    assert {"trial/best_val_accuracy", "trial/val_loss_at_best_epoch", "trial/best_epoch",
            "trial/device_seconds", "trial/test_accuracy"} <= metrics  # fmt: skip
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
    tested = [g for g in groups if any(m["name"]["tag"] == "trial/test_accuracy" for m in g["metricValues"])]
    assert len(tested) == 1
    curve = _get(f"{url}/data/plugin/scalars/scalars?run=trial_0000&tag=trial/best_val_accuracy")
    assert len(curve) >= 2  # a curve per trial, not a dot


def test_tensorboard_serves_the_images(server):
    url, _ = server
    images = _get(f"{url}/data/plugin/images/tags")["study"]
    assert {"study/progress", "study/params", "study/importance"} <= set(images)
    entry = _get(f"{url}/data/plugin/images/images?run=study&tag=study/progress")[-1]
    with urllib.request.urlopen(
        f"{url}/data/plugin/images/individualImage?{entry['query']}", timeout=30
    ) as r:
        assert r.read(8) == b"\x89PNG\r\n\x1a\n"
