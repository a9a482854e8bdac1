"""The Ray executor on a real two-node Ray cluster on this machine, not a mock.

The three scenarios run in turn in one subprocess inside a network namespace of its own
(`unshare -n`, loopback up, node IP 127.0.0.1), on one cluster: a `ray.cluster_utils.Cluster`
head plus one added node, each declaring one CPU and one logical GPU (a cluster start and a
Python + Ray + torch import cost several CPU-seconds each: paid once, not once a scenario).
The cluster and the driver (tunetorch.search.run_search over the Ray executor) never touch
the machine's network, and TMPDIR points Ray's files into a folder of the test's own. The
cluster is torn down by `Cluster.shutdown()`, nothing else. Order: two_nodes, driver_killed
(the GPU slots take no CPU, so the nodes' CPUs are the only ones: one each), node_dies last
(it removes the added node); a scenario that fails is reported by its own tests, and the
next one still runs.

The task is a real, tiny torch training (a linear classifier on a fixed synthetic set);
actors on logical GPUs train on the CPU, as they do when CUDA_VISIBLE_DEVICES names no
real device. The driver-kill scenario runs the real `python -m tunetorch.tune ... tuner.backend=ray`
(MLP on digits) as the driver instead, SIGKILLs it and runs it again on the same study.dir.
Run the scenarios by hand: `python -m tests.test_ray all OUT.json` (or one, on its own
cluster: two_nodes, driver_killed, node_dies) inside `unshare -n`.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.conftest import held_seconds
from tunetorch import SearchSpace, UsageError
from tunetorch.words import count

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
    return {"x": x.to(device), "y": y.to(device), "device": device, "pid": os.getpid()}


def refusing_setup(device: str) -> dict:
    """A setup that refuses its device, as setup_training does when the data module's fit() does."""
    raise UsageError(f"dataset.max_device_bytes: the data do not fit on {device}")


def train(state: dict, number: int, params: dict, emit) -> dict:
    """A few epochs of SGD on a linear classifier; each epoch reported; stops when told. The
    steps are written out: torch.optim's first step imports torch._dynamo, a CPU-second in
    every actor for nothing this test looks at."""
    import torch

    torch.manual_seed(number)
    start = time.monotonic()
    model = torch.nn.Linear(8, 2).to(state["device"])
    best, epochs = 0.0, 0
    for epoch in range(EPOCHS):
        for _ in range(5):
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(state["x"]), state["y"]).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= params["lr"] * p.grad
        with torch.no_grad():
            acc = (model(state["x"]).argmax(1) == state["y"]).float().mean().item()
        best, epochs = max(best, acc), epoch + 1
        time.sleep(EPOCH_SLEEP)
        if emit("epoch", {"epoch": epoch, "val_accuracy": acc}):
            break
    return {"score": best, "epoch": epochs - 1, "epochs": epochs, "start": start, "end": time.monotonic()}


def tuner(devices, workers: int, trials_per_device: int, address: str | None = None, backend: str = "ray"):
    """The `tuner` settings open_executor reads, as the composed config's `tuner` node holds them."""
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "backend": backend,
            "devices": devices,
            "workers": workers,
            "trials_per_device": trials_per_device,
            "ray": {"address": address},
        }
    )


# --- scenarios (run inside the namespace) ----------------------------------------------------
def _cluster():
    """A head and one added node, one CPU and one logical GPU each. Without the autoscaler's
    monitor (a fixed cluster) and the log monitor (every driver here, tunetorch's too, joins
    with log_to_driver=False): two Python processes less, nothing they would have done."""
    from ray.cluster_utils import Cluster

    args = {
        "num_cpus": 1,
        "num_gpus": 1,
        "node_ip_address": "127.0.0.1",
        "include_dashboard": False,
        "include_log_monitor": False,
    }
    cluster = Cluster(initialize_head=True, head_node_args={**args, "no_monitor": True})
    node = cluster.add_node(**args)
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


def scenario_two_nodes(out: dict, tmp: Path, cluster, node) -> None:
    """4 slots (2 logical GPUs x 2 trials per device) over a head and a node; decide=True:
    odd trials are told to stop after their epoch 1 (decided at the pool, whatever the
    study's scheduler says). The study writes a real journal."""
    import ray

    from tunetorch import Journal, Study
    from tunetorch.executors import open_executor
    from tunetorch.search import Budget, run_search

    try:  # more GPUs than the cluster has: one line, before any actor starts
        open_executor(tuner([0, 1, 2], 1, 1, cluster.address), setup, train)
    except UsageError as e:
        out["too_many_gpus"] = str(e)
    # a setup that refuses its device on an actor: the search stops with that one line
    refusing = open_executor(tuner("cpu", 1, 1, cluster.address), refusing_setup, train)
    try:
        run_search(Study(SearchSpace.from_dict(SPACE), "random", seed=0), refusing, Budget(n_trials=2))
    except UsageError as e:
        out["refused"] = str(e)
    finally:
        refusing.close()
    journal = Journal(tmp / "journal.sqlite")
    study = Study(SearchSpace.from_dict(SPACE), "random", seed=0, journal=journal, metric="val_accuracy")
    results = {}
    pool = open_executor(tuner("auto", 1, 2, cluster.address), setup, train, decide=True)
    try:
        last = {}  # slot -> [trial, epoch] of its latest epoch event
        epochs = _watch(pool, lambda e: last.__setitem__(e.slot, [e.number, e.payload["epoch"]]))
        real_next, real_decide = pool.next_event, pool.decide

        def next_event(timeout=1.0):
            e = real_next(timeout)
            if e is not None and e.kind == "done" and e.payload.result:
                results[e.number] = e.payload.result
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
    out["journal_epochs"] = {str(n): [r["epoch"] for r in rows] for n, rows in journal.all_epochs().items()}
    out["results"] = {str(k): v for k, v in results.items()}
    out["trials"] = _trials(study)
    out["nodes"] = [n["NodeID"] for n in ray.nodes() if n["Alive"]]


def scenario_node_dies(out: dict, tmp: Path, cluster, node) -> None:
    """One slot per node; the added node is removed while its first trial trains."""
    from tunetorch import Study
    from tunetorch.executors import open_executor
    from tunetorch.search import Budget, run_search

    doomed = node.node_id
    study = Study(SearchSpace.from_dict(SPACE), "random", seed=0, metric="val_accuracy")
    removed, died = [], []
    pool = open_executor(tuner("auto", 1, 1, cluster.address), setup, train)
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


# The driver-kill scenario: the real command, two CPU slots (one per node of 1 CPU each, so an
# actor the killed driver left behind would hold a node's only CPU and stall the resumed run).
KILL_TRIALS, KILL_EPOCHS = 8, 10  # about a fifth of a second a trial here: the kill lands mid-study
KILL_TUNE = [
    "dataset=digits",
    "model=mlp",
    f"trainer.epochs={KILL_EPOCHS}",
    f"budget.n_trials={KILL_TRIALS}",
    "tuner.devices=cpu",
    "tuner.workers=2",
    "tuner.backend=ray",
]


def _journal(study_dir: Path) -> tuple[dict, dict]:
    """The journal as it is on disk, read-only: trials by number, epoch rows by (trial, epoch)."""
    import sqlite3

    path = study_dir / "journal.sqlite"
    if not path.exists():
        return {}, {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            cols = "number, state, score, params, attempts, node, device_seconds, wall_seconds, epochs"
            trials = {r[0]: list(r) for r in db.execute(f"SELECT {cols} FROM trials ORDER BY number")}
            rows = db.execute("SELECT trial, epoch, metrics FROM epochs ORDER BY trial, epoch").fetchall()
            return trials, {f"{t}:{e}": m for t, e, m in rows}
        finally:
            db.close()
    except sqlite3.OperationalError:  # the tuner is creating it
        return {}, {}


def _slot_actors() -> list[int]:
    """PIDs of the SlotActor processes under this process (the raylets of the test's own
    cluster are its children): the actors of whichever driver is using the cluster."""
    parent, title = {}, {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
                title[int(proc.name)] = (
                    (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                )
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parent[int(proc.name)] = int(fields[1])

    def ours(pid: int) -> bool:
        while pid in parent:
            pid = parent[pid]
            if pid == os.getpid():
                return True
        return False

    return sorted(p for p, t in title.items() if p in parent and t.startswith("ray::SlotActor") and ours(p))


def scenario_driver_killed(out: dict, tmp: Path, cluster, node) -> None:
    """`python -m tunetorch.tune ... tuner.backend=ray` against the cluster, SIGKILLed once two
    trials are complete, then the same command again on the same study.dir, at once."""
    from tunetorch import Journal

    # an earlier scenario's actors, killed with its pool, end asynchronously: gone before the
    # command starts, the actors counted below are its own (and the nodes' CPUs free)
    deadline = time.monotonic() + 20
    while _slot_actors() and time.monotonic() < deadline:
        time.sleep(0.2)
    out["actors_before"] = _slot_actors()
    out["nodes"] = [cluster.head_node.node_id, node.node_id]
    study = tmp / "study"
    argv = [sys.executable, "-m", "tunetorch.tune", *KILL_TUNE, f"tuner.ray.address={cluster.address}"]
    argv.append(f"study.dir={study}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    with open(tmp / "first.log", "w") as log:
        first = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    # Killed once two trials are complete, while another is RUNNING (a resume must run it
    # again): the driver is frozen (SIGSTOP) to look, so the look and the kill agree.
    def ready() -> bool:
        states = [t[1] for t in _journal(study)[0].values()]
        return states.count("COMPLETE") >= 2 and "RUNNING" in states

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None:
        if ready():
            first.send_signal(signal.SIGSTOP)
            if ready():
                break
            first.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    out["killed_actors"] = _slot_actors()
    first.kill()  # SIGKILL: no finally, no atexit, no ray.shutdown() in the driver
    out["first_exit"] = first.wait()
    out["first_log"] = (tmp / "first.log").read_text()[-3000:]
    out["before"] = _journal(study)
    second = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    out["second_exit"], out["second_stdout"] = second.returncode, second.stdout
    out["second_stderr"] = second.stderr[-3000:]
    out["after"] = _journal(study)
    # of either driver: the resumed one closed its pool. Ray ends an actor whose owner died
    # asynchronously (seconds on a busy machine): given up to 20 s, not a second run's length.
    deadline = time.monotonic() + 20
    while _slot_actors() and time.monotonic() < deadline:
        time.sleep(0.2)
    out["actors_left"] = _slot_actors()
    journal = Journal(study / "journal.sqlite")
    out["evaluations"] = journal.evaluations()
    journal.close()
    with open(study / "trials.csv", newline="") as f:
        out["csv"] = list(csv.DictReader(f))


SCENARIOS = {  # in this order on the one cluster: node_dies removes the added node
    "two_nodes": scenario_two_nodes,
    "driver_killed": scenario_driver_killed,
    "node_dies": scenario_node_dies,
}


def scenarios(names: list[str], out: dict, tmp: Path, save) -> None:
    """The named scenarios in turn on one cluster, each into out[name], save(out) after each;
    one that raises is recorded there (out[name]["error"]) and the next one still runs."""
    import ray

    cluster, node = _cluster()
    try:
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        for name in names:
            out[name] = {}
            part = tmp / name
            part.mkdir()
            try:
                SCENARIOS[name](out[name], part, cluster, node)
            except Exception:
                out[name]["error"] = traceback.format_exc()
            save(out)
    finally:
        ray.shutdown()
        cluster.shutdown()


def run_scenarios(names: tuple[str, ...] = tuple(SCENARIOS), timeout: float = 400) -> dict:
    """Each scenario's out[name], from one subprocess in a network namespace of its own; a
    scenario the subprocess did not finish (it failed or ran past `timeout`) has an "error"."""
    tmp = Path(tempfile.mkdtemp(prefix="ttray-", dir="/tmp"))  # short: Ray's socket paths live in it
    out = tmp / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), "RAY_USAGE_STATS_ENABLED": "0"}
    script = f"ip link set lo up && exec {sys.executable} -m tests.test_ray {','.join(names)} {out}"
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
        result = json.loads(out.read_text()) if out.exists() else {}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if proc.returncode != 0:
        for name in names:
            result.setdefault(name, {"error": f"the scenarios' process failed:\n{stderr[-4000:]}"})
    return result


def _part(out: dict, name: str) -> dict:
    assert "error" not in out[name], f"scenario {name} failed:\n{out[name]['error']}"
    return out[name]


# --- tests -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_scenarios():
    """Every scenario, in turn on one cluster: one cluster start, one import of Ray and torch."""
    return run_scenarios()


@pytest.fixture(scope="module")
def two_nodes(ray_scenarios):
    return _part(ray_scenarios, "two_nodes")


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

    def test_a_setup_refused_on_an_actor_is_the_one_line_of_a_usage_error(self, two_nodes):
        assert two_nodes["refused"] == (
            "dataset.max_device_bytes: the data do not fit on cpu (refused in the setup of the worker on cpu)"
        )

    def test_too_many_gpus_is_one_line(self, two_nodes):
        assert two_nodes["too_many_gpus"] == (
            f"tuner.devices: [0, 1, 2] asks for 3 GPUs but the Ray cluster at "
            f"{two_nodes['too_many_gpus'].split('at ', 1)[1].split(' has')[0]} has 2"
        )


@needs_cluster
def test_a_node_removed_mid_trial_requeues_its_trial_and_the_study_completes(ray_scenarios):
    out = _part(ray_scenarios, "node_dies")
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


@needs_cluster
def test_a_driver_killed_with_sigkill_resumes_on_the_same_cluster_as_with_the_local_pool(ray_scenarios):
    """The real command, SIGKILLed after two trials completed, run again on the same study.dir
    at once: what was complete is kept as it was (not re-run), the interrupted trials run
    again with their params, the study ends with its 8 trials and one test evaluation, and
    the killed driver's actors (on 1-CPU nodes: they would hold every CPU) are gone."""
    out = _part(ray_scenarios, "driver_killed")
    assert out["actors_before"] == []  # the earlier scenarios' actors: gone, none counted below
    assert out["first_exit"] == -signal.SIGKILL, out["first_log"]
    assert len(out["killed_actors"]) == 2  # both slots were placed when the driver died
    before, before_epochs = out["before"]
    after, after_epochs = out["after"]
    kept = {n: t for n, t in before.items() if t[1] == "COMPLETE"}
    assert 2 <= len(kept) < KILL_TRIALS, before  # killed mid-study
    assert any(t[1] == "RUNNING" for t in before.values()), before  # and mid-trial
    assert out["second_exit"] == 0, out["second_stderr"]
    assert out["second_stdout"].startswith("resuming "), out["second_stdout"]
    assert f"{count(len(kept), 'finished trial')} kept" in out["second_stdout"], out["second_stdout"]
    # the study finished with the asked number of trials, each once
    assert sorted(int(n) for n in after) == list(range(KILL_TRIALS))
    assert all(t[1] == "COMPLETE" for t in after.values()), after
    assert len(out["csv"]) == KILL_TRIALS
    # complete before the kill: untouched, row for row (wall seconds too: a re-run would change them)
    for n, t in kept.items():
        assert after[n] == t, (n, t, after[n])
        rows = {k: v for k, v in before_epochs.items() if k.split(":")[0] == n}
        assert rows and all(after_epochs[k] == v for k, v in rows.items())
    # the interrupted ones ran again with the params they had
    for n, t in before.items():
        assert after[n][3] == t[3]
        if n not in kept:
            assert after[n][4] == t[4] + 1  # attempts: the killed one, then the resumed one
    # each (trial, epoch) once: every trial's epochs are exactly 0 .. epochs-1
    per_trial = Counter(k.split(":")[0] for k in after_epochs)
    for n, t in after.items():
        assert sorted(int(k.split(":")[1]) for k in after_epochs if k.split(":")[0] == n) == list(range(t[8]))
        assert per_trial[n] == t[8] == KILL_EPOCHS
    # the final test evaluation ran once, after the resume
    assert [e["status"] for e in out["evaluations"]] == ["completed"]
    assert out["second_stdout"].count("evaluated once") == 1 and "evaluated once" not in out["first_log"]
    # the resumed run had both slots: the new trials ran on both 1-CPU nodes
    assert {after[n][5] for n in after if n not in kept} == set(out["nodes"])
    assert out["actors_left"] == []  # the killed driver's actors too: Ray ended them with their owner


# --- errors that need no cluster -------------------------------------------------------------
def test_a_bad_backend_is_one_line():
    from tunetorch.executors import open_executor

    with pytest.raises(UsageError, match=r"^tuner.backend: 'spark' is not one of local, ray$"):
        open_executor(tuner("cpu", 1, 1, backend="spark"), setup, train)


def test_ray_not_installed_is_one_line(monkeypatch):
    from tunetorch.executors import open_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(UsageError, match=r"needs Ray installed: pip install 'tunetorch\[ray\]'"):
        open_executor(tuner("cpu", 1, 1), setup, train)


@needs_ray
def test_an_unreachable_address_is_one_line_in_seconds():
    from tunetorch.executors import open_executor

    start = time.monotonic()
    with pytest.raises(UsageError, match=r"^tuner.ray.address: '127.0.0.1:9': no Ray cluster answers"):
        open_executor(tuner("cpu", 1, 1, "127.0.0.1:9"), setup, train)
    assert time.monotonic() - start < 10


def test_gpus_asked_of_a_cluster_without_any_is_one_line():
    from tunetorch.executors.layout import Layout
    from tunetorch.executors.ray import _slot_options

    with pytest.raises(
        UsageError, match=r"^tuner.devices: \[0\] asks for 1 GPU but the Ray cluster at x:1 has 0$"
    ):
        _slot_options(Layout.parse([0], 2, 1), 0, "x:1")
    assert (
        _slot_options(Layout.parse("auto", 2, 2), 0, None) == [{"num_cpus": 1}] * 2
    )  # auto: CPU slots, as locally
    assert _slot_options(Layout.parse("auto", 1, 4), 2, None) == [{"num_gpus": 0.25, "num_cpus": 0}] * 8
    assert _slot_options(Layout.parse([5, 7], 3, 2), 2, None) == [{"num_gpus": 0.5, "num_cpus": 0}] * 4
    assert _slot_options(Layout.parse("cpu", 3, 2), 2, None) == [{"num_cpus": 1}] * 3


if __name__ == "__main__":
    out_path = Path(sys.argv[2])
    asked = sys.argv[1].split(",")
    names = [n for n in SCENARIOS if sys.argv[1] == "all" or n in asked]  # in SCENARIOS' order
    scenarios(names, {}, out_path.parent, lambda result: out_path.write_text(json.dumps(result)))
