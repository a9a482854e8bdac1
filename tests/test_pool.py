import os
from collections import defaultdict

import pytest

from tests import _toy_tasks
from tunetorch import SearchSpace, Study, TrialState, UsageError
from tunetorch.pool import Pool, slot_devices
from tunetorch.tuner import Budget, run_search

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})


def test_slots_from_settings():
    assert slot_devices("auto", workers=3, trials_per_device=2, n_cuda=0) == ["cpu"] * 3
    assert slot_devices("auto", workers=3, trials_per_device=2, n_cuda=2) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    assert slot_devices([1], workers=1, trials_per_device=3, n_cuda=2) == ["cuda:1"] * 3
    assert slot_devices("cpu", workers=2, trials_per_device=4, n_cuda=8) == ["cpu", "cpu"]
    with pytest.raises(UsageError, match=r"tuner.devices: 3 is not a visible CUDA device index \(this machine has 2\)"):
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
    assert all(t.device == "cpu" and t.device_name and t.device_seconds >= 0.14 for t in study.trials)
    assert {t.attempts for t in study.trials} == {1}


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
                events.append(e.payload["result"])
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
        gaps = [b[0] - a[1] for a, b in zip(runs, runs[1:]) if b[0] <= last_start]
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
    study = Study(SPACE, strategy="random", seed=0)
    with Pool(["cpu"], setup=_toy_tasks.setup, task=_toy_tasks.crash_on_three) as pool:
        # every trial from 3 on is made to fail by raising through a bad score
        outcome = run_search(study, pool, Budget(n_trials=10), max_consecutive_failures=1)
    assert not outcome.ok and "1 failed trials in a row" in outcome.reason and "boom in trial 3" in outcome.reason
    assert len([t for t in study.trials if t.finished]) == 4


def test_main_process_does_no_cuda_work():
    import torch

    before = torch.cuda.is_initialized()
    with Pool(["cpu"], setup=_toy_tasks.setup, task=_toy_tasks.instant) as pool:
        run_search(Study(SPACE, strategy="random"), pool, Budget(n_trials=2))
    assert torch.cuda.is_initialized() == before


@pytest.mark.gpu
@pytest.mark.skipif(not os.environ.get("CUDA_VISIBLE_DEVICES") and not __import__("torch").cuda.is_available(),
                    reason="needs a CUDA device")
def test_gpu_trials_are_synchronised_and_named():
    import torch

    n = torch.cuda.device_count()
    devices = slot_devices("auto", workers=1, trials_per_device=2, n_cuda=n)
    study = Study(SPACE, strategy="random", seed=0)
    with Pool(devices, setup=_toy_tasks.setup, task=_toy_tasks.instant) as pool:
        run_search(study, pool, Budget(n_trials=2 * len(devices)))
    assert all(t.device.startswith("cuda:") and t.device_name for t in study.trials)
