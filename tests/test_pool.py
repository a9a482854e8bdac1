import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests import _toy_tasks
from tests.conftest import ROOT, SHRINK, held_seconds
from tunetorch import Journal, SearchSpace, Study, TrialState, UsageError
from tunetorch.executors.local import Pool, slot_devices
from tunetorch.search import Budget, run_search

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})


def test_slots_from_settings():
    assert slot_devices("auto", workers=3, trials_per_device=2, n_cuda=0) == ["cpu"] * 3
    assert slot_devices("auto", workers=3, trials_per_device=2, n_cuda=2) == [
        "cuda:0",
        "cuda:0",
        "cuda:1",
        "cuda:1",
    ]
    assert slot_devices([1], workers=1, trials_per_device=3, n_cuda=2) == ["cuda:1"] * 3
    assert slot_devices("cpu", workers=2, trials_per_device=4, n_cuda=8) == ["cpu", "cpu"]
    with pytest.raises(
        UsageError, match=r"tuner.devices: 3 is not a visible CUDA device index \(this machine has 2\)"
    ):
        slot_devices([0, 3], workers=1, trials_per_device=1, n_cuda=2)
    with pytest.raises(UsageError, match="tuner.trials_per_device: 0 must be a whole number >= 1"):
        slot_devices("auto", workers=1, trials_per_device=0, n_cuda=1)
    with pytest.raises(UsageError, match="tuner.devices: 'tpu'"):
        slot_devices("tpu", workers=1, trials_per_device=1, n_cuda=1)


def test_two_cpu_workers_run_trials_in_parallel_and_record_devices():
    study = Study(SPACE, strategy="random", seed=0)
    with Pool(["cpu", "cpu"], setup=_toy_tasks.setup, task=_toy_tasks.sleepy) as pool:
        outcome = run_search(study, pool, Budget(n_trials=8))
    assert outcome.ok and len(study.completed) == 8
    assert all(t.device == "cpu" and t.device_name and t.wall_seconds >= 0.14 for t in study.trials)
    assert all(t.node == socket.gethostname() for t in study.trials)
    assert {t.attempts for t in study.trials} == {1}
    # the two slots share the one "cpu" device: each trial is charged its share of it
    assert sum(t.device_seconds for t in study.trials) < 0.75 * sum(t.wall_seconds for t in study.trials)


def test_fake_gpus_never_hold_more_than_their_slots_and_never_idle():
    """4 injected devices x 2 trials per device: at most 2 trials per device at any
    moment, and a slot is refilled as soon as it frees while trials remain."""
    devices = [f"fake:{i}" for i in range(4) for _ in range(2)]
    study = Study(SPACE, strategy="random", seed=0)
    events = []  # what each worker reported: its device, pid and when it ran
    with Pool(devices, setup=_toy_tasks.setup, task=_toy_tasks.sleepy) as pool:
        real_next = pool.next_event

        def next_event(timeout=1.0):
            e = real_next(timeout)
            if e is not None and e.kind == "done":
                events.append(e.payload.result)
            return e

        pool.next_event = next_event
        run_search(study, pool, Budget(n_trials=32))

    assert len(events) == 32
    assert {t.device for t in study.trials} == {f"fake:{i}" for i in range(4)}
    spans = sorted((r["start"], r["end"], r["device"], r["pid"]) for r in events)
    for start, _, device, _ in spans:  # concurrency per device at every trial start
        running = [s for s in spans if s[2] == device and s[0] <= start < s[1]]
        assert len(running) <= 2
    by_worker = defaultdict(list)
    for start, end, _, pid in spans:
        by_worker[pid].append((start, end))
    assert len(by_worker) == 8  # every slot was used
    last_start = max(s[0] for s in spans)
    for runs in by_worker.values():  # refilled at once: no long gap while trials remained
        gaps = [b[0] - a[1] for a, b in zip(runs, runs[1:], strict=False) if b[0] <= last_start]
        assert all(g < 1.0 for g in gaps), gaps


def test_a_trial_that_raises_fails_alone():
    study = Study(SPACE, strategy="random", seed=0)
    with Pool(["cpu"], setup=_toy_tasks.setup, task=_toy_tasks.crash_on_three) as pool:
        outcome = run_search(study, pool, Budget(n_trials=6))
    assert outcome.ok
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 1 and study.trials[3].state == TrialState.FAIL
    assert "RuntimeError: boom in trial 3" in study.trials[3].error


def test_consecutive_failures_stop_the_study_quoting_the_last_reason():
    """Trials 0, 1 fail, 2 completes, 3, 4, 5 fail: with a threshold of 3 the study stops after
    trial 5, not after trial 3 (where a count that skipped the success would reach 3)."""
    study = Study(SPACE, strategy="random", seed=0)
    with Pool(["cpu"], setup=_toy_tasks.setup, task=_toy_tasks.fail_interleaved) as pool:
        outcome = run_search(study, pool, Budget(n_trials=10), max_consecutive_failures=3)
    assert not outcome.ok, outcome.reason
    assert "3 failed trials in a row" in outcome.reason and "boom in trial 5" in outcome.reason
    assert [t.number for t in study.trials if t.finished] == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "deaths, max_retries, state, attempts", [(1, 1, TrialState.COMPLETE, 2), (9, 2, TrialState.FAIL, 3)]
)
def test_a_worker_killed_mid_trial_is_replaced_and_the_trial_retried_then_failed(
    deaths, max_retries, state, attempts, tmp_path, monkeypatch
):
    """Trial 2 SIGKILLs its own worker on its first `deaths` attempts: the slot gets a new
    worker and the trial runs again, up to max_retries re-runs, then fails with the reason.
    The other trials are untouched."""
    monkeypatch.setenv("TOY_MARKERS", str(tmp_path))
    monkeypatch.setenv("TOY_DEATHS", str(deaths))
    study = Study(SPACE, strategy="random", seed=0)
    with Pool(["cpu", "cpu"], setup=_toy_tasks.setup, task=_toy_tasks.dies_on_two) as pool:
        first = {s.process.pid for s in pool.slots}
        outcome = run_search(study, pool, Budget(n_trials=6), max_retries=max_retries)
        now = {s.process.pid for s in pool.slots}
    assert outcome.ok
    killed = attempts if state == TrialState.FAIL else 1  # once per attempt, or on the first only
    assert len(list(tmp_path.glob("death_*"))) == killed
    assert now != first  # a dead worker is replaced by a new process
    trials = study.trials
    assert len(trials) == 6 and trials[2].state == state and trials[2].attempts == attempts
    if state == TrialState.FAIL:
        assert trials[2].error == f"worker process exited with status -9 (after {attempts} attempts)"
    assert all(t.state == TrialState.COMPLETE and t.attempts == 1 for t in trials if t.number != 2)


def test_the_device_minutes_budget_stops_new_trials_and_lets_in_flight_ones_finish():
    budget_s = 1.0
    study = Study(SPACE, strategy="random", seed=0)
    log = []  # ("submit", number) and ("done", device seconds), in the main process's order
    with Pool(["cpu", "cpu"], setup=_toy_tasks.setup, task=_toy_tasks.sleepy) as pool:
        real_submit, real_next = pool.submit, pool.next_event

        def submit(slot, number, params):
            log.append(("submit", number))
            return real_submit(slot, number, params)

        def next_event(timeout=1.0):
            e = real_next(timeout)
            if e is not None and e.kind == "done":
                log.append(("done", e.payload.device_seconds))
            return e

        pool.submit, pool.next_event = submit, next_event
        outcome = run_search(study, pool, Budget(n_trials=100, gpu_minutes=budget_s / 60))

    assert outcome.ok and outcome.reason == f"budget: budget.gpu_minutes={budget_s / 60:g} spent"
    spent, reached = 0.0, None
    for i, (kind, value) in enumerate(log):
        if kind == "done":
            spent += value
            if reached is None and spent >= budget_s:
                reached = i
    assert reached is not None
    after = log[reached + 1 :]
    assert not [e for e in after if e[0] == "submit"]  # nothing new starts once the budget is spent
    assert [e[0] for e in after] == ["done"]  # the trial in flight on the other slot ran to its end
    assert all(t.state == TrialState.COMPLETE for t in study.trials)  # ... and was recorded
    assert sum(t.device_seconds for t in study.trials) == pytest.approx(spent)
    # 0.15 s trials, two at a time on the one "cpu" device: 1 device second is about 13 trials
    # (charged twice over, as each trial's own wall time, it would be about 7)
    assert 10 <= len(study.trials) < 18


def epochs_until_told(state: dict, number: int, params: dict, emit) -> dict:
    """Up to 10 epochs, each reported; stops after the epoch the main process says to."""
    for epoch in range(10):
        if emit("epoch", {"epoch": epoch, "val_accuracy": epoch / 10}):
            break
    return {"score": epoch / 10, "epoch": epoch, "epochs": epoch + 1}


@pytest.mark.parametrize("decide", [True, False])
def test_a_trial_stops_right_after_the_epoch_the_main_process_stops(decide):
    """With decide=True each "epoch" waits for pool.decide(), which the search loop calls
    for every epoch event; here even trials are stopped after their epoch 2 (the decision
    is overridden at the pool, whatever the study's scheduler says) and train no further.
    Without it, emit returns False and every trial trains on."""
    study = Study(SPACE, strategy="random", seed=0, metric="val_accuracy")
    seen, answered = [], []
    with Pool(["cpu", "cpu"], setup=_toy_tasks.setup, task=epochs_until_told, decide=decide) as pool:
        real_next, real_decide = pool.next_event, pool.decide
        last = {}  # slot -> (trial, epoch) of its latest epoch event

        def next_event(timeout=1.0):
            e = real_next(timeout)
            if e is not None and e.kind == "epoch":
                seen.append((e.number, e.payload["epoch"]))
                last[e.slot] = (e.number, e.payload["epoch"])
            return e

        def decide_(slot, stop):
            number, epoch = last[slot]
            answered.append(number)
            real_decide(slot, number % 2 == 0 and epoch >= 2)

        pool.next_event, pool.decide = next_event, decide_
        outcome = run_search(study, pool, Budget(n_trials=6))
    assert outcome.ok and len(study.completed) == 6
    assert len(answered) == len(seen)  # every epoch event was answered
    for t in study.trials:
        want = 3 if decide and t.number % 2 == 0 else 10
        assert t.epochs == want, t
        assert [e for n, e in seen if n == t.number] == list(range(want))


def rendezvous(state: dict, number: int, params: dict, emit) -> dict:
    """Waits until TOY_PARTIES trials have started (marker files in TOY_MARKERS), then holds
    its device for 0.3 s: the trials surely overlap."""
    start = time.monotonic()
    markers = Path(os.environ["TOY_MARKERS"])
    (markers / f"started_{number}").touch()
    deadline = start + 20
    while (
        len(list(markers.glob("started_*"))) < int(os.environ["TOY_PARTIES"]) and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    time.sleep(0.3)
    return {"score": float(params["x"]), "epoch": 0, "start": start, "end": time.monotonic()}


def test_two_trials_at_once_on_one_device_are_charged_the_time_it_was_held_not_twice(tmp_path, monkeypatch):
    """Slots 0 and 1 share the injected device fake:0, slot 2 has fake:1 to itself: the
    device seconds of fake:0's two trials add up to the time fake:0 was held (the union of
    their spans), not to the sum of their raw wall times."""
    monkeypatch.setenv("TOY_MARKERS", str(tmp_path))
    monkeypatch.setenv("TOY_PARTIES", "3")
    study = Study(SPACE, strategy="random", seed=0)
    results = {}
    with Pool(["fake:0", "fake:0", "fake:1"], setup=_toy_tasks.setup, task=rendezvous) as pool:
        real_next = pool.next_event

        def next_event(timeout=1.0):
            e = real_next(timeout)
            if e is not None and e.kind == "done":
                results[e.number] = e.payload.result
            return e

        pool.next_event = next_event
        outcome = run_search(study, pool, Budget(n_trials=3))
    assert outcome.ok and len(study.completed) == 3
    shared = [t for t in study.trials if t.device == "fake:0"]
    alone = [t for t in study.trials if t.device == "fake:1"]
    assert len(shared) == 2 and len(alone) == 1
    held = held_seconds([(results[t.number]["start"], results[t.number]["end"]) for t in shared])
    charged = sum(t.device_seconds for t in shared)
    assert held <= charged <= held + 0.02, (charged, held)
    # they overlapped for at least the 0.3 s after the rendezvous: raw wall times count that
    # twice, the shares once; each trial is charged half of the overlap
    assert sum(t.wall_seconds for t in shared) - charged >= 0.28
    assert all(t.device_seconds <= t.wall_seconds - 0.14 for t in shared)
    assert alone[0].device_seconds == pytest.approx(alone[0].wall_seconds)  # nobody to share with
    assert all(t.node == socket.gethostname() for t in study.trials)


def _journal_states(path) -> list[str]:
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return [r[0] for r in db.execute("SELECT state FROM trials ORDER BY number")]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return []


def test_ctrl_c_exits_130_keeping_completed_trials_and_marking_in_flight_ones_interrupted(tmp_path):
    d = tmp_path / "study"
    args = [*SHRINK, "tuner.workers=2", "budget.n_trials=500", "trainer.epochs=20", f"study.dir={d}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunetorch.tune", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # A shell's background job (`cmd &`) inherits SIGINT ignored, and Python then never
        # raises KeyboardInterrupt: give the command Ctrl-C as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while _journal_states(d / "journal.sqlite").count("COMPLETE") < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial completed in time"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: run the same command again to resume" in err
    trials = Journal(d / "journal.sqlite").trials()
    states = [t.state for t in trials]
    assert TrialState.COMPLETE in states and TrialState.RUNNING not in states
    interrupted = [t for t in trials if t.state == TrialState.INTERRUPTED]
    assert len(interrupted) in (1, 2)  # one trial per worker was in flight, or between two trials
    assert {t.error for t in interrupted} == {"interrupted (Ctrl-C or SIGTERM); re-run on resume"}
    assert all(t.score is not None for t in trials if t.state == TrialState.COMPLETE)
    summary = json.loads((d / "summary.json").read_text())
    assert summary["n_complete"] == states.count(TrialState.COMPLETE)
    assert summary["n_interrupted"] == len(interrupted) and summary["test"] is None


needs_cuda = pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")


def test_an_out_of_memory_trial_fails_and_the_search_goes_on():
    """On the CPU the 64 TiB request fails as a plain allocation error; the trial is FAIL
    with that reason, the worker survives and runs the rest."""
    study = Study(SPACE, strategy="random", seed=0)
    with Pool(["cpu"], setup=_toy_tasks.setup, task=_toy_tasks.oom_on_one) as pool:
        outcome = run_search(study, pool, Budget(n_trials=4))
    assert outcome.ok and [t.state for t in study.trials].count(TrialState.FAIL) == 1
    failed = study.trials[1]
    assert failed.state == TrialState.FAIL and failed.error and failed.device_seconds is not None
    assert len(study.completed) == 3


@pytest.mark.gpu
@needs_cuda
def test_main_process_does_no_cuda_work():
    """Trials on a GPU run in the workers: the driver never initialises CUDA (a context there
    would hold memory on the GPU the trials share). On a CPU it could not fail, so it needs one."""
    import torch

    assert not torch.cuda.is_initialized()
    with Pool(["cuda:0"], setup=_toy_tasks.setup, task=_toy_tasks.instant) as pool:
        outcome = run_search(Study(SPACE, strategy="random"), pool, Budget(n_trials=2))
    assert outcome.ok and not torch.cuda.is_initialized()


@pytest.mark.gpu
@needs_cuda
def test_cuda_out_of_memory_is_a_failed_trial_on_a_surviving_worker():
    study = Study(SPACE, strategy="random", seed=0)
    with Pool(["cuda:0"], setup=_toy_tasks.setup, task=_toy_tasks.oom_on_one) as pool:
        outcome = run_search(study, pool, Budget(n_trials=3))
    assert outcome.ok and study.trials[1].state == TrialState.FAIL
    assert study.trials[1].error.startswith("CUDA out of memory")
    assert len(study.completed) == 2 and {t.attempts for t in study.trials} == {1}


@pytest.mark.gpu
@needs_cuda
def test_device_seconds_include_kernels_still_queued_when_the_trial_returns():
    study = Study(SPACE, strategy="random", seed=0)
    seen = []
    with Pool(["cuda:0"], setup=_toy_tasks.setup, task=_toy_tasks.slow_kernels) as pool:
        real_next = pool.next_event

        def next_event(timeout=1.0):
            e = real_next(timeout)
            if e is not None and e.kind == "done":
                seen.append((e.payload.result["queued_in"], e.payload.device_seconds))
            return e

        pool.next_event = next_event
        run_search(study, pool, Budget(n_trials=2))
    for queued_in, device_seconds in seen:
        assert device_seconds > 2 * queued_in  # the matmuls ran after the task returned


@pytest.mark.gpu
@needs_cuda
def test_gpu_trials_are_synchronised_and_named():
    import torch

    n = torch.cuda.device_count()
    devices = slot_devices("auto", workers=1, trials_per_device=2, n_cuda=n)
    study = Study(SPACE, strategy="random", seed=0)
    with Pool(devices, setup=_toy_tasks.setup, task=_toy_tasks.instant) as pool:
        run_search(study, pool, Budget(n_trials=2 * len(devices)))
    assert all(t.device.startswith("cuda:") and t.device_name for t in study.trials)
