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
import torch

from tests.conftest import SHRINK, run_tune
from tunetorch import SearchSpace, Study
from tunetorch.strategies import REGISTRY
from tunetorch.strategies.base import Strategy
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


def test_only_the_final_evaluation_reads_the_test_split(tmp_path):
    (tmp_path / "spy").mkdir()
    (tmp_path / "spy" / "sitecustomize.py").write_text(SPY)
    log = tmp_path / "reads.jsonl"
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "spy"), os.environ.get("PYTHONPATH", "")]),
        "TUNETORCH_SPY_LOG": str(log),
    }
    out = run_tune(*SHRINK, "tuner.workers=2", "budget.n_trials=4", f"study.dir={tmp_path / 's'}", env=env)
    assert out.returncode == 0, out.stderr
    reads = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(reads) == 1, reads
    assert reads[0]["what"] == "data.test" and reads[0]["caller"].endswith("tunetorch/evaluate.py")
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
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


class _Prying(Strategy):
    """A strategy that searches everything it was handed for tensors or arrays of images."""

    name = "prying"
    found: list = []

    def suggest(self, number, trials):
        _Prying.found.extend(
            o
            for o in _reachable((self, trials))
            if isinstance(o, (torch.Tensor, np.ndarray))
            and getattr(o, "size", 0)
            and np.prod(getattr(o, "shape", (0,))) > 64
        )
        return self.space.sample(np.random.default_rng(number))


def test_a_strategy_cannot_reach_the_test_split(monkeypatch):
    monkeypatch.setitem(REGISTRY, "prying", f"{__name__}:_Prying")
    space = SearchSpace.from_dict({"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}})
    study = Study(space, strategy="prying")
    for _ in range(3):
        t = study.ask()
        study.tell(t, 0.5, device="cpu", device_seconds=1.0)
    assert _Prying.found == []


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
SCAN = textwrap.dedent(
    """
    import gc, hashlib, json, os
    import numpy as np
    import tunetorch.training.objective as o

    TEST = set(json.load(open(os.environ["TEST_ROWS"])))
    TRAIN = set(json.load(open(os.environ["TRAIN_ROWS"])))
    _run = o.run_training

    def rows(obj):
        try:
            a = obj.detach().cpu().numpy() if hasattr(obj, "detach") else obj
            if not isinstance(a, np.ndarray) or a.ndim < 2 or a.shape[-2:] != (8, 8):
                return set()
            return {hashlib.sha256(np.ascontiguousarray(r, dtype=np.float32).tobytes()).hexdigest()
                    for r in a.reshape(-1, 64)}
        except Exception:
            return set()

    def run_training(state, number, params, emit):
        result = _run(state, number, params, emit)
        seen = set()
        for obj in gc.get_objects():
            if type(obj).__name__ in ("Tensor", "Parameter", "ndarray"):
                seen |= rows(obj)
        with open(os.environ["SCAN_LOG"], "a") as f:
            f.write(json.dumps({"test": len(seen & TEST), "train": len(seen & TRAIN)}) + "\\n")
        return result

    o.run_training = run_training
    """
)


def test_a_trial_in_a_real_study_holds_no_test_image_in_its_worker(tmp_path):
    """The check the in-process tests cannot make: in a real study, while each worker holds its
    data and trains, no array anywhere in the worker holds a test image (and the same scan does
    find the training images, so it can see data)."""
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
    (tmp_path / "spy" / "sitecustomize.py").write_text(SCAN)
    log = tmp_path / "scan.jsonl"
    env = {
        "PYTHONPATH": str(tmp_path / "spy"),
        "TEST_ROWS": str(tmp_path / "test.json"),
        "TRAIN_ROWS": str(tmp_path / "train.json"),
        "SCAN_LOG": str(log),
    }
    out = run_tune(*SHRINK, "tuner.workers=2", "budget.n_trials=4", f"study.dir={tmp_path / 's'}", env=env)
    assert out.returncode == 0, out.stderr
    scans = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(scans) == 4
    assert all(s["train"] > 1000 for s in scans)  # the scan sees the worker's training images
    assert all(s["test"] == 0 for s in scans), scans
