"""The Ray executor on a real two-node Ray cluster on this machine, not a mock.

Each scenario runs in a subprocess inside a network namespace of its own (`unshare -n`,
loopback up, node IP 127.0.0.1): the cluster (a `ray.cluster_utils.Cluster` head plus one
added node, each declaring logical GPUs) and the driver (tunetorch.search.run_search over
the Ray executor) never touch the machine's network, and TMPDIR points Ray's files into a
folder of the test's own. The cluster is torn down by `Cluster.shutdown()`, nothing else.

The task is a real, tiny torch training (a linear classifier on a fixed synthetic set);
actors on logical GPUs train on the CPU, as they do when CUDA_VISIBLE_DEVICES names no
real device. Run a scenario by hand: `python -m tests.test_ray SCENARIO OUT.json` inside
`unshare -n`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.conftest import held_seconds
from tunetorch import SearchSpace, UsageError

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}}
EPOCHS = 3
EPOCH_SLEEP = 0.12  # long enough that trials on one GPU overlap for a measurable time


def _unshare_works() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    try:
        r = subprocess.run(
            ["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'tunetorch[ray]')")
needs_cluster = pytest.mark.skipif(
    not (HAVE_RAY and _unshare_works()),
    reason="ray is not installed" if not HAVE_RAY else "unshare -n is not permitted here (needs root)",
)


# --- the task the actors run ----------------------------------------------------------------
def setup(device: str) -> dict:
    import torch

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    weight = torch.zeros(1, requires_grad=True)  # the optimiser's first use imports torch._dynamo:
    torch.optim.SGD([weight], lr=0.1).step()  # here, not in the first trial
    return {"x": x.to(device), "y": y.to(device), "device": device, "pid": os.getpid()}


def train(state: dict, number: int, params: dict, emit) -> dict:
    """A few epochs of SGD on a linear classifier; each epoch reported; stops when told."""
    import torch

    torch.manual_seed(number)
    start = time.monotonic()
    model = torch.nn.Linear(8, 2).to(state["device"])
    opt = torch.optim.SGD(model.parameters(), lr=params["lr"])
    best, epochs = 0.0, 0
    for epoch in range(EPOCHS):
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(state["x"]), state["y"]).backward()
            opt.step()
        with torch.no_grad():
            acc = (model(state["x"]).argmax(1) == state["y"]).float().mean().item()
        best, epochs = max(best, acc), epoch + 1
        time.sleep(EPOCH_SLEEP)
        if emit("epoch", {"epoch": epoch, "val_accuracy": acc}):
            break
    return {"score": best, "epoch": epochs - 1, "epochs": epochs, "start": start, "end": time.monotonic()}


# --- scenarios (run inside the namespace) ----------------------------------------------------
def _cluster(head_gpus: int, node_gpus: int):
    from ray.cluster_utils import Cluster

    args = {"num_cpus": 2, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={**args, "num_gpus": head_gpus})
    node = cluster.add_node(**args, num_gpus=node_gpus)
    return cluster, node


def _trials(study) -> list[dict]:
    return [
        {
            "number": t.number,
            "state": t.state.value,
            "node": t.node,
            "device": t.device,
            "device_name": t.device_name,
            "device_seconds": t.device_seconds,
            "wall_seconds": t.wall_seconds,
            "attempts": t.attempts,
            "epochs": t.epochs,
            "error": t.error,
        }
        for t in study.trials
    ]


def _watch(pool, on_epoch) -> list:
    """Record every epoch event as the search loop reads it: [trial, epoch] in arrival order."""
    seen = []
    real_next = pool.next_event

    def next_event(timeout=1.0):
        e = real_next(timeout)
        if e is not None and e.kind == "epoch":
            seen.append([e.number, e.payload["epoch"]])
            on_epoch(e)
        return e

    pool.next_event = next_event
    return seen


def scenario_two_nodes(out: dict, tmp: Path) -> None:
    """4 slots (2 logical GPUs x 2 trials per device) over a head and a node; decide=True:
    odd trials are told to stop after their epoch 1 (decided at the pool, whatever the
    study's scheduler says). The study writes a real journal."""
    import ray

    from tunetorch import Journal, Study
    from tunetorch.executors import open_executor
    from tunetorch.search import Budget, run_search

    cluster, _ = _cluster(1, 1)
    try:
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        try:  # more GPUs than the cluster has: one line, before any actor starts
            open_executor("ray", [0, 1, 2], 1, 1, setup, train, ray_address=cluster.address)
        except UsageError as e:
            out["too_many_gpus"] = str(e)
        journal = Journal(tmp / "journal.sqlite")
        study = Study(SearchSpace.from_dict(SPACE), "random", seed=0, journal=journal, metric="val_accuracy")
        results = {}
        pool = open_executor("ray", "auto", 1, 2, setup, train, decide=True, ray_address=cluster.address)
        try:
            last = {}  # slot -> [trial, epoch] of its latest epoch event
            epochs = _watch(pool, lambda e: last.__setitem__(e.slot, [e.number, e.payload["epoch"]]))
            real_next, real_decide = pool.next_event, pool.decide

            def next_event(timeout=1.0):
                e = real_next(timeout)
                if e is not None and e.kind == "done" and e.payload["result"]:
                    results[e.number] = e.payload["result"]
                return e

            def decide(slot, stop):
                number, epoch = last[slot]
                real_decide(slot, number % 2 == 1 and epoch >= 1)

            pool.next_event, pool.decide = next_event, decide
            outcome = run_search(study, pool, Budget(n_trials=12))
            out["slots"] = [{"device": s.device, "node": s.node, "name": s.device_name} for s in pool.slots]
        finally:
            pool.close()
        out["outcome"] = {"ok": outcome.ok, "reason": outcome.reason}
        out["epochs"] = epochs
        out["journal_epochs"] = {
            str(n): [r["epoch"] for r in rows] for n, rows in journal.all_epochs().items()
        }
        out["results"] = {str(k): v for k, v in results.items()}
        out["trials"] = _trials(study)
        out["nodes"] = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()
        cluster.shutdown()


def scenario_node_dies(out: dict, tmp: Path) -> None:
    """One slot per node; the added node is removed while its first trial trains."""
    import ray

    from tunetorch import Study
    from tunetorch.executors import open_executor
    from tunetorch.search import Budget, run_search

    cluster, node = _cluster(1, 1)
    try:
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        doomed = node.node_id
        study = Study(SearchSpace.from_dict(SPACE), "random", seed=0, metric="val_accuracy")
        removed, died = [], []
        pool = open_executor("ray", "auto", 1, 1, setup, train, ray_address=cluster.address)
        try:

            def on_epoch(e) -> None:
                slot = pool.slots[e.slot]
                if not removed and slot.node == doomed and e.payload["epoch"] == 0:
                    # the whole machine goes at once: its raylet and, with it, the actors on it
                    # (Ray's own node removal leaves them running for a moment on their own)
                    removed.append(e.number)
                    pids = [s.pid for s in pool.slots if s.node == doomed]
                    cluster.remove_node(node, allow_graceful=False)
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)

            epochs = _watch(pool, on_epoch)
            watched = pool.next_event

            def next_event(timeout=1.0):
                e = watched(timeout)
                if e is not None and e.kind == "died":
                    died.append([e.number, e.payload])
                return e

            pool.next_event = next_event
            outcome = run_search(study, pool, Budget(n_trials=6), max_retries=1)
        finally:
            pool.close()
        out["outcome"] = {"ok": outcome.ok, "reason": outcome.reason}
        out["doomed"], out["removed"], out["epochs"], out["died"] = doomed, removed, epochs, died
        out["trials"] = _trials(study)
    finally:
        ray.shutdown()
        cluster.shutdown()


def run_scenario(name: str, timeout: float = 100) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="ttray-", dir="/tmp"))  # short: Ray's socket paths live in it
    out = tmp / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), "RAY_USAGE_STATS_ENABLED": "0"}
    script = f"ip link set lo up && exec {sys.executable} -m tests.test_ray {name} {out}"
    proc = subprocess.Popen(
        ["unshare", "-n", "bash", "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test started, and only that
        stdout, stderr = proc.communicate()
    try:
        assert proc.returncode == 0, f"scenario {name} failed:\n{stderr[-4000:]}"
        return json.loads(out.read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- tests -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_nodes():
    return run_scenario("two_nodes")


@needs_cluster
class TestTwoNodeCluster:
    def test_trials_run_on_both_nodes_at_once(self, two_nodes):
        out = two_nodes
        assert out["outcome"]["ok"], out["outcome"]
        trials = out["trials"]
        assert len(trials) == 12 and {t["state"] for t in trials} == {"COMPLETE"}
        assert len({s["node"] for s in out["slots"]}) == 2 and len(set(out["nodes"])) == 2
        assert {t["node"] for t in trials} == set(out["nodes"])  # the Ray node id of each trial
        assert all(t["device"] == "cuda:0" and t["device_name"].startswith("logical GPU") for t in trials)
        by_node = defaultdict(list)
        for t in trials:
            r = out["results"][str(t["number"])]
            by_node[t["node"]].append((r["start"], r["end"]))
        a, b = by_node.values()
        assert any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)  # at once, not in turns

    def test_every_epoch_arrives_once_and_stop_decisions_reach_the_actor(self, two_nodes):
        out = two_nodes
        seen = Counter((n, e) for n, e in out["epochs"])
        assert max(seen.values()) == 1
        for t in out["trials"]:
            want = 2 if t["number"] % 2 else EPOCHS  # odd trials were told to stop after epoch 1
            assert t["epochs"] == want, t
            assert {e for n, e in seen if n == t["number"]} == set(range(want))
            assert out["journal_epochs"][str(t["number"])] == list(range(want))  # the study recorded each

    def test_two_trials_on_one_logical_gpu_share_its_minutes(self, two_nodes):
        """Per (node, GPU): the trials' device seconds add up to the time the GPU was held
        (the union of their intervals), not to their summed wall times."""
        out = two_nodes
        groups = defaultdict(list)
        for t in out["trials"]:
            groups[(t["node"], t["device"])].append(t)
        assert len(groups) == 2
        for trials in groups.values():
            spans = sorted(
                (out["results"][str(t["number"])]["start"], out["results"][str(t["number"])]["end"])
                for t in trials
            )
            held = held_seconds(spans)
            charged = sum(t["device_seconds"] for t in trials)
            walls = sum(t["wall_seconds"] for t in trials)
            assert held - 0.01 <= charged <= held + 0.02 * len(trials) + 0.05, (charged, held)
            assert walls > 1.5 * charged  # two at a time: their own wall times count it nearly twice

    def test_too_many_gpus_is_one_line(self, two_nodes):
        assert two_nodes["too_many_gpus"] == (
            f"tuner.devices: [0, 1, 2] asks for 3 GPU(s) but the Ray cluster at "
            f"{two_nodes['too_many_gpus'].split('at ', 1)[1].split(' has')[0]} has 2"
        )


@needs_cluster
def test_a_node_removed_mid_trial_requeues_its_trial_and_the_study_completes():
    out = run_scenario("node_dies")
    assert out["outcome"]["ok"], out["outcome"]
    assert len(out["removed"]) == 1
    victim = out["removed"][0]
    trials = {t["number"]: t for t in out["trials"]}
    assert len(trials) == 6 and all(t["state"] == "COMPLETE" for t in trials.values()), trials
    assert trials[victim]["attempts"] == 2 and trials[victim]["node"] != out["doomed"]
    assert all(t["attempts"] == 1 for n, t in trials.items() if n != victim)
    # the dead attempt's epoch 0 arrived once, then the retry's epochs: nothing arrived twice per attempt
    assert [e for n, e in out["epochs"] if n == victim] == [0, *range(EPOCHS)]
    assert [n for n, _ in out["died"]] == [victim]
    assert out["died"][0][1].startswith(f"Ray actor on node {out['doomed'][:12]}")


# --- errors that need no cluster -------------------------------------------------------------
def test_a_bad_backend_is_one_line():
    from tunetorch.executors import open_executor

    with pytest.raises(UsageError, match=r"^tuner.backend: 'spark' is not one of local, ray$"):
        open_executor("spark", "cpu", 1, 1, setup, train)


def test_ray_not_installed_is_one_line(monkeypatch):
    from tunetorch.executors import open_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(UsageError, match=r"needs Ray installed: pip install 'tunetorch\[ray\]'"):
        open_executor("ray", "cpu", 1, 1, setup, train)


@needs_ray
def test_an_unreachable_address_is_one_line_in_seconds():
    from tunetorch.executors import open_executor

    start = time.monotonic()
    with pytest.raises(UsageError, match=r"^tuner.ray.address: '127.0.0.1:9': no Ray cluster answers"):
        open_executor("ray", "cpu", 1, 1, setup, train, ray_address="127.0.0.1:9")
    assert time.monotonic() - start < 10


def test_gpus_asked_of_a_cluster_without_any_is_one_line():
    from tunetorch.executors.ray import _slot_options

    with pytest.raises(
        UsageError, match=r"^tuner.devices: \[0\] asks for 1 GPU\(s\) but the Ray cluster at x:1 has 0$"
    ):
        _slot_options([0], 2, 1, 0, "x:1")
    assert _slot_options("auto", 2, 2, 0, None) == [{"num_cpus": 1}] * 2  # auto: CPU slots, as locally
    assert _slot_options("auto", 1, 4, 2, None) == [{"num_gpus": 0.25, "num_cpus": 0}] * 8


if __name__ == "__main__":
    result: dict = {}
    out_path = Path(sys.argv[2])
    {"two_nodes": scenario_two_nodes, "node_dies": scenario_node_dies}[sys.argv[1]](result, out_path.parent)
    out_path.write_text(json.dumps(result))
