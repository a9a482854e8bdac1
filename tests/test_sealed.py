"""The test split is sealed: only the final evaluation reads it, in the main process, once.

A `sitecustomize` module, put on PYTHONPATH, spies on every Python process of the run
(the tuner and each spawned worker): any call that reads test data is logged with its
process id and caller. Trials and strategies then try to reach the test data through
everything they are given, and find none.
"""

from __future__ import annotations

import gc
import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import SHRINK, run_tune
from tunetorch.training.datasets import Digits, _stratified

SPY = textwrap.dedent(
    """
    import inspect, json, os
    LOG = os.environ["TUNETORCH_SPY_LOG"]

    def _log(what):
        caller = inspect.stack()[2]
        with open(LOG, "a") as f:
            f.write(json.dumps({"what": what, "pid": os.getpid(), "caller": caller.filename}) + "\\n")

    import tunetorch.training.datasets as d
    _test, _tv = d.ImageData.test, d._read_torchvision

    def test(self, *a, **k):
        _log("data.test")
        return _test(self, *a, **k)

    def _read_torchvision(name, root, train, download):
        if not train:
            _log("read official test set")
        return _tv(name, root, train, download)

    d.ImageData.test, d._read_torchvision = test, _read_torchvision
    """
)


def test_only_the_final_evaluation_reads_the_test_split(spied_study):
    reads, _, study_dir = spied_study
    assert len(reads) == 1, reads
    assert reads[0]["what"] == "data.test" and reads[0]["caller"].endswith("tunetorch/evaluate.py")
    summary = json.loads((study_dir / "summary.json").read_text())
    assert summary["test_evaluations"] == 1


def test_a_trial_cannot_reach_the_test_split():
    """Everything a trial is given (the FitData) holds train and validation only, and
    no test image is among them."""
    module = Digits(n_classes=10, input_shape=(1, 8, 8), val_fraction=0.2, mean=[0.3], std=[0.4])
    data = module.fit(seed=0)
    test = module.test(seed=0)
    tensors = [o for o in _reachable(data) if isinstance(o, torch.Tensor)]
    assert (
        sum(t.numel() for t in tensors)
        == data.train.x.numel() + data.train.y.numel() + data.val.x.numel() + data.val.y.numel()
    )
    seen = {row.numpy().tobytes() for row in torch.cat([data.train.x, data.val.x]).flatten(1)}
    y = np.asarray(__import__("sklearn.datasets").datasets.load_digits().target)
    # digits has a few exact duplicate images; the split is by index, and those stay apart
    rest, held = _stratified(y, module.test_fraction, module.split_seed)
    assert not set(held) & set(rest) and len(data.train) + len(data.val) == len(rest)
    leaked = sum(row.numpy().tobytes() in seen for row in test.x.flatten(1))
    assert leaked <= 3, leaked


def _reachable(root, limit: int = 20000):
    """Objects reachable from root through attributes and containers (not modules or classes)."""
    seen, stack, out = set(), [root], []
    while stack and len(out) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, type(os), Path, str, bytes, int, float)):
            continue
        seen.add(id(obj))
        out.append(obj)
        if isinstance(obj, torch.Tensor):
            continue
        stack.extend(gc.get_referents(obj))
    return out


# In every worker, after each trial: scan the whole process for arrays holding test images
# (by their rows' hashes, computed outside), and for training images as a control that the scan
# sees the data the worker does hold.
ROWS = textwrap.dedent(
    """
    import gc, hashlib, json, os
    import numpy as np

    TEST = set(json.load(open(os.environ["TEST_ROWS"])))
    TRAIN = set(json.load(open(os.environ["TRAIN_ROWS"])))

    def rows(obj):
        try:
            a = obj.detach().cpu().numpy() if hasattr(obj, "detach") else obj
            if not isinstance(a, np.ndarray) or a.ndim < 2 or a.shape[-2:] != (8, 8):
                return set()
            return {hashlib.sha256(np.ascontiguousarray(r, dtype=np.float32).tobytes()).hexdigest()
                    for r in a.reshape(-1, 64)}
        except Exception:
            return set()

    def scan():
        seen = set()
        for obj in gc.get_objects():
            if type(obj).__name__ in ("Tensor", "Parameter", "ndarray"):
                seen |= rows(obj)
        return {"test": len(seen & TEST), "train": len(seen & TRAIN)}

    def log(where, found):
        with open(os.environ["SCAN_LOG"], "a") as f:
            f.write(json.dumps({"where": where, **found}) + "\\n")
    """
)

SCAN = ROWS + textwrap.dedent(
    """
    import tunetorch.training.objective as o

    _run = o.run_training

    def run_training(state, number, params, emit):
        result = _run(state, number, params, emit)
        log("trial", scan())
        return result

    o.run_training = run_training
    """
)


# In the tuner, each time the strategy is asked: scan the whole driver process, which holds
# whatever a strategy could reach. And once as the final evaluation reads the test split, as a
# control that the same scan finds test images where they are.
STRATEGY_SCAN = ROWS + textwrap.dedent(
    """
    import tunetorch.strategies.random_search as r
    import tunetorch.training.datasets as d

    _suggest, _test = r.RandomSearch.suggest, d.ImageData.test

    def suggest(self, *args, **kwargs):
        log("strategy", scan())
        return _suggest(self, *args, **kwargs)

    def test(self, *args, **kwargs):
        held = _test(self, *args, **kwargs)
        log("evaluation", scan())
        return held

    r.RandomSearch.suggest, d.ImageData.test = suggest, test
    """
)


@pytest.fixture(scope="module")
def spied_study(tmp_path_factory) -> tuple[list[dict], list[dict], Path]:
    """One real study of 4 trials on 2 workers with every spy above in each process's
    sitecustomize: (the test-split reads SPY logged, what the scans logged, the study dir).
    STRATEGY_SCAN wraps ImageData.test before SPY does, so SPY's wrapper is the outer one and
    sees evaluate.py call it."""
    tmp_path = tmp_path_factory.mktemp("spied")
    module = Digits(n_classes=10, input_shape=(1, 8, 8), val_fraction=0.2, mean=[0.3], std=[0.4])
    fit, test = module.fit(seed=0), module.test(seed=0)

    def hashes(x):
        import hashlib

        return sorted(
            {hashlib.sha256(r.numpy().astype(np.float32).tobytes()).hexdigest() for r in x.flatten(1)}
        )

    train_rows = set(hashes(fit.train.x))
    test_rows = [h for h in hashes(test.x) if h not in train_rows]  # digits holds a few duplicates
    (tmp_path / "test.json").write_text(json.dumps(test_rows))
    (tmp_path / "train.json").write_text(json.dumps(sorted(train_rows)))
    (tmp_path / "spy").mkdir()
    # each spy a module of its own (their names would clash in one), imported in this order
    for name, source in (("spy_strategy", STRATEGY_SCAN), ("spy_trial", SCAN), ("spy_reads", SPY)):
        (tmp_path / "spy" / f"{name}.py").write_text(source)
    (tmp_path / "spy" / "sitecustomize.py").write_text("import spy_strategy, spy_trial, spy_reads\n")
    log, reads = tmp_path / "scan.jsonl", tmp_path / "reads.jsonl"
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "spy"), os.environ.get("PYTHONPATH", "")]),
        "TEST_ROWS": str(tmp_path / "test.json"),
        "TRAIN_ROWS": str(tmp_path / "train.json"),
        "SCAN_LOG": str(log),
        "TUNETORCH_SPY_LOG": str(reads),
    }
    out = run_tune(*SHRINK, "tuner.workers=2", "budget.n_trials=4", f"study.dir={tmp_path / 's'}", env=env)
    assert out.returncode == 0, out.stderr
    lines = lambda path: [json.loads(line) for line in path.read_text().splitlines()]  # noqa: E731
    return lines(reads), lines(log), tmp_path / "s"


def test_a_trial_in_a_real_study_holds_no_test_image_in_its_worker(spied_study):
    """The check the in-process tests cannot make: in a real study, while each worker holds its
    data and trains, no array anywhere in the worker holds a test image (and the same scan does
    find the training images, so it can see data)."""
    scans = [s for s in spied_study[1] if s["where"] == "trial"]
    assert len(scans) == 4
    assert all(s["train"] > 1000 for s in scans)  # the scan sees the worker's training images
    assert all(s["test"] == 0 for s in scans), scans


def test_a_strategy_in_a_real_study_cannot_reach_the_test_split(spied_study):
    """Whenever the strategy is asked for a trial, no array anywhere in the tuner's process holds
    a test image: nothing a strategy is handed, or could find, reaches the test split. The same
    scan as the final evaluation reads the split does find its images."""
    scans = spied_study[1]
    asked = [s for s in scans if s["where"] == "strategy"]
    looked = [s for s in scans if s["where"] == "evaluation"]
    assert len(asked) >= 4 and all(s["test"] == 0 for s in asked), asked
    assert len(looked) == 1 and looked[0]["test"] > 100, looked  # the scan can see test images
