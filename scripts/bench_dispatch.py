"""Dispatch benchmark: what the pool adds per trial, and how busy it keeps a device.

    nice -n 5 .venv/bin/python scripts/bench_dispatch.py [--reps 5] [--trials 200] [--workers 2]
        [--backends local,ray] [--tune-reps 1] [--one-cluster]
        [--data-root ../shared/data] [--gpu-trials 32] [--gpu-epochs 2] [--cpu-trials 20]
        [--cpu-epochs 10] [--cpu-workers 1,2] [--out FILE]

1. Overhead: `--trials` trivial trials (the objective returns at once) through the pool with
   `--workers` CPU workers (tunetorch.search.run_search over a Study with random search),
   against the same calls in a plain ask / objective / tell loop. Per repetition: the whole
   run including worker start and shutdown, the worker start alone, the added cost per
   trial ((pool run - worker start - plain loop) / trials) and the median round trip of
   one trial (submit -> "done" read back). Median and [min, max] over `--reps`.
   Backends: `local` (the process pool), `ray` (tunetorch.executors.ray over a two-node Ray
   cluster on this machine, one CPU slot per node) and `tune` (Ray Tune itself on the same
   cluster, the same trivial trainable, `--tune-reps` runs; needs `ray[tune]`; asked for by
   `--backends local,ray,tune`: it takes minutes). The Ray rows
   run in a child of this script inside a network namespace of its own (`unshare -n`, node
   IP 127.0.0.1, as tests/test_ray.py does); they are skipped with the reason when Ray or
   unshare is missing. Cluster start is excluded from every Ray row.
2. Utilisation: real training trials (tunetorch.training.objective.setup_training / run_training, the
   config composed from tunetorch/conf like `python -m tunetorch.tune` does). With CUDA:
   an MLP on MNIST with trials_per_device 1, 2, 4, 8 on one GPU. Always: the MLP on digits
   with 1 and 2 CPU workers (`--cpu-workers`) on the local pool and, with `ray` in
   `--backends`, the same study on the Ray backend (a two-node cluster on this machine in a
   network namespace of its own, one CPU slot per node; its own child run, its own cluster).
   Timing starts once every worker is ready (data loaded), so worker start and data loading are excluded.

`--one-cluster`: both Ray parts in one child on one cluster (one CPU a node; `--workers` 3 at
most), started once instead of twice: for a quick check of the script (tests/test_scripts.py).

The tables are printed as markdown; `--out` also writes them with the machine and command.
Top-level imports are the standard library only: spawned workers re-import this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests._toy_tasks: importable by the spawned workers too


# --- measuring the pool ---------------------------------------------------------------------
class Probe:
    """Wraps a Pool's submit / next_event to time worker start and every trial's round trip."""

    def __init__(self, pool, t0: float):
        self.t0 = t0
        self.ready: dict[int, float] = {}
        self.submitted: dict[int, tuple[float, int]] = {}  # trial -> (time, slot)
        self.spans: list[tuple[float, float, int, float]] = []  # (submit, done, slot, device seconds)
        submit, next_event = pool.submit, pool.next_event

        def timed_submit(slot, number, params):
            self.submitted[number] = (time.perf_counter(), slot)
            return submit(slot, number, params)

        def timed_next_event(timeout=1.0):
            event = next_event(timeout)
            now = time.perf_counter()
            if event is not None and event.kind == "ready":
                self.ready[event.slot] = now
            elif event is not None and event.kind == "done" and event.number in self.submitted:
                start, slot = self.submitted.pop(event.number)
                self.spans.append((start, now, slot, event.payload.device_seconds))
            return event

        pool.submit, pool.next_event = timed_submit, timed_next_event

    def all_ready(self, n_slots: int) -> float | None:
        return max(self.ready.values()) if len(self.ready) == n_slots else None


def _summary(values: list[float], fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}, {fmt.format(max(values))}]"


SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
KEYS = ("plain", "total", "start", "added", "rtt")


def plain_loop(n_trials: int, rep: int) -> float:
    """Seconds for the same trials in a plain ask / objective / tell loop, no pool."""
    from tests import _toy_tasks as tasks
    from tunetorch import SearchSpace, Study

    study = Study(SearchSpace.from_dict(SPACE), strategy="random", seed=rep)
    state = tasks.setup("cpu")
    t0 = time.perf_counter()
    for _ in range(n_trials):
        trial = study.ask()
        study.tell(trial, tasks.instant(state, trial.number, trial.params, None)["score"])
    return time.perf_counter() - t0


def pool_rows(n_trials: int, workers: int, reps: int, open_pool) -> dict[str, list[float]]:
    """`reps` runs of n_trials instant trials through the executor `open_pool(t0)` makes;
    worker start: until every slot reported ready (the Ray pool is ready when it returns)."""
    from tunetorch import SearchSpace, Study
    from tunetorch.search import Budget, run_search

    rows: dict[str, list[float]] = {k: [] for k in KEYS}
    for rep in range(reps):
        plain = plain_loop(n_trials, rep)
        study = Study(SearchSpace.from_dict(SPACE), strategy="random", seed=rep)
        t0 = time.perf_counter()
        pool, ready_at = open_pool()
        with pool:
            probe = Probe(pool, t0)
            outcome = run_search(study, pool, Budget(n_trials=n_trials))
        total = time.perf_counter() - t0
        lost = [
            (t.number, t.state.value, t.error, t.attempts) for t in study.trials if t not in study.completed
        ]
        assert outcome.ok and len(study.completed) == n_trials, (outcome, len(study.trials), lost[:5])
        start = (ready_at or probe.all_ready(workers) or time.perf_counter()) - t0
        rows["plain"].append(plain * 1e3)
        rows["total"].append(total)
        rows["start"].append(start)
        rows["added"].append((total - start - plain) / n_trials * 1e3)
        rows["rtt"].append(statistics.median(done - sub for sub, done, _, _ in probe.spans) * 1e3)
    return rows


def local_rows(n_trials: int, workers: int, reps: int) -> dict[str, list[float]]:
    from tests import _toy_tasks as tasks
    from tunetorch.executors.local import Pool

    return pool_rows(
        n_trials,
        workers,
        reps,
        lambda: (Pool(["cpu"] * workers, setup=tasks.setup, task=tasks.instant), None),
    )


def _tune_trainable(config: dict) -> dict:
    return {"score": config["x"]}  # the same trivial objective: returns at once


def two_node_cluster(num_cpus: int):
    """A head and one added node on 127.0.0.1, `num_cpus` each; and the seconds it took."""
    from ray.cluster_utils import Cluster

    node = {"num_cpus": num_cpus, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args=node)
    cluster.add_node(**node)
    return cluster, time.perf_counter() - t0


def ray_tuner(workers: int, address: str):
    """The `tuner` settings of `workers` CPU slots on the Ray cluster at `address`."""
    from types import SimpleNamespace

    return SimpleNamespace(
        backend="ray",
        devices="cpu",
        workers=workers,
        trials_per_device=1,
        ray=SimpleNamespace(address=address),
    )


def inside_namespace(args) -> dict:
    """The Ray rows, run inside the network namespace: a head and one added node. Overhead:
    `workers // 2` CPUs each; the Ray backend with `workers` CPU slots, then Ray Tune on the
    same cluster. Utilisation: one CPU each, so 2 slots are one per node. Both (--one-cluster):
    the one cluster of one CPU a node serves the two parts in turn."""
    import ray

    from tests import _toy_tasks as tasks
    from tunetorch.executors import open_executor

    cluster, started = two_node_cluster(1 if args.ray_part != "overhead" else max(1, args.workers // 2))
    out: dict = {"cluster_start": started}
    try:
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")

        def open_ray():
            pool = open_executor(ray_tuner(args.workers, cluster.address), tasks.setup, tasks.instant)
            return pool, time.perf_counter()

        if args.ray_part != "utilisation" and "ray" in args.backends:
            out["ray"] = pool_rows(args.trials, args.workers, args.reps, open_ray)
        if args.ray_part != "utilisation" and "tune" in args.backends:
            out["tune"] = tune_rows(args)
        if args.ray_part != "overhead" and "ray" in args.backends:
            out["runs"] = ray_utilisation(args, cluster.address)
    finally:
        ray.shutdown()
        cluster.shutdown()
    return out


def tune_rows(args) -> dict[str, list[float]] | str:
    try:
        from ray import tune
    except ImportError as e:  # ray without the tune extra
        return f"skipped: Ray Tune is not installed ({e}); pip install 'ray[tune]==2.60.0'"
    rows: dict[str, list[float]] = {k: [] for k in KEYS}
    for rep in range(args.tune_reps):
        plain = plain_loop(args.trials, rep)
        with tempfile.TemporaryDirectory() as storage:
            t0 = time.perf_counter()
            tuner = tune.Tuner(
                _tune_trainable,
                param_space={"x": tune.uniform(0.0, 1.0)},
                tune_config=tune.TuneConfig(num_samples=args.trials, metric="score", mode="max"),
                run_config=tune.RunConfig(storage_path=storage, name="bench", verbose=0),
            )
            results = tuner.fit()
            total = time.perf_counter() - t0
        assert len(results) == args.trials and not results.errors, results.errors
        rows["plain"].append(plain * 1e3)
        rows["total"].append(total)
        rows["added"].append((total - plain) / args.trials * 1e3)
    return rows


def ray_in_namespace(args, part: str = "overhead") -> dict | str:
    """Run this script's Ray `part` (overhead, utilisation) in a network namespace of its own;
    its rows, or why not."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return "skipped: Ray is not installed (pip install 'tunetorch[ray]')"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "skipped: unshare or ip is not available"
    with tempfile.TemporaryDirectory(prefix="ttbench-", dir="/tmp") as tmp:  # short: Ray's sockets
        out = Path(tmp) / "ray.json"
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--inside-namespace",
            str(out),
            *("--trials", str(args.trials), "--workers", str(args.workers), "--reps", str(args.reps)),
            *("--tune-reps", str(args.tune_reps), "--backends", ",".join(args.backends)),
            *("--cpu-trials", str(args.cpu_trials), "--cpu-epochs", str(args.cpu_epochs)),
            *("--cpu-workers", ",".join(map(str, args.cpu_workers))),
            *("--data-root", str(args.data_root), "--ray-part", part),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": tmp, "RAY_USAGE_STATS_ENABLED": "0"}
        script = "ip link set lo up && exec " + shlex.join(argv)
        proc = subprocess.run(
            ["unshare", "-n", "bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0 or not out.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return f"skipped: the Ray run failed inside `unshare -n` (exit {proc.returncode}): {last}"
        return json.loads(out.read_text())


def overhead(args) -> str:
    """The overhead table. With --one-cluster, the Ray utilisation runs come back with its Ray
    rows: kept in args.ray_utilisation for utilisation()."""
    n_trials, workers, reps = args.trials, args.workers, args.reps
    table = [
        ("local pool (processes)", local_rows(n_trials, workers, reps) if "local" in args.backends else None)
    ]
    notes = []
    ray_part = None
    if {"ray", "tune"} & set(args.backends):
        ray_part = ray_in_namespace(
            args, "both" if args.one_cluster and not args.skip_utilisation else "overhead"
        )
        if args.one_cluster:
            args.ray_utilisation = ray_part
    if isinstance(ray_part, str):
        notes.append(f"Ray rows {ray_part}")
    elif ray_part is not None:
        notes.append(f"Ray cluster start (head + 1 node, excluded above): {ray_part['cluster_start']:.1f} s.")
        if "ray" in ray_part:
            table.append(("Ray backend (2 nodes, 1 actor each)", ray_part["ray"]))
        if isinstance(ray_part.get("tune"), str):
            notes.append(f"Ray Tune row {ray_part['tune']}")
        elif "tune" in ray_part:
            table.append((f"Ray Tune 2.60.0 (same cluster; {args.tune_reps} run(s))", ray_part["tune"]))
        if "ray" in ray_part and isinstance(ray_part.get("tune"), dict):
            ratio = statistics.median(ray_part["tune"]["total"]) / statistics.median(ray_part["ray"]["total"])
            notes.append(f"Ray Tune's whole run / the Ray backend's whole run: {ratio:.1f}x (target >= 10x).")

    lines = [
        f"### Overhead: {n_trials} instant trials, {workers} CPU workers, {reps} repetitions",
        "",
        "median [min, max] over repetitions",
        "",
        "| backend | plain loop (ms, all trials) | whole run (s) | worker start (s) "
        "| added per trial (ms) | round trip per trial, median (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in table:
        if rows is None:
            continue
        cells = [
            _summary(rows["plain"]),
            _summary(rows["total"], "{:.2f}"),
            _summary(rows["start"], "{:.2f}") if rows["start"] else "-",
            _summary(rows["added"], "{:.2f}"),
            _summary(rows["rtt"], "{:.2f}") if rows["rtt"] else "-",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "added per trial = (whole run - worker start - plain loop) / trials (Ray Tune: its worker "
        "start is part of its whole run); targets: <= 20 ms added per trial (local and Ray backend), "
        "local whole run < 5 s, Ray Tune >= 10x the Ray backend's whole run.",
        *([""] + notes if notes else []),
    ]
    return "\n".join(lines)


# --- utilisation with real training ---------------------------------------------------------
def compose_config(dataset: str, data_root: Path, epochs: int, tmp: Path):
    from hydra import compose, initialize_config_dir

    from tunetorch.cli import conf_dir

    overrides = [
        "model=mlp",
        f"dataset={dataset}",
        f"trainer.epochs={epochs}",
        "strategy=random",
        f"study.dir={tmp}",
    ]
    if dataset != "digits":
        overrides += [f"dataset.root={data_root}", "dataset.download=false"]
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose("tune", overrides=overrides)


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def local_pool(devices: list[str]):
    """open_pool for utilisation_run: the local process pool over `devices`."""
    from tunetorch.executors.local import Pool

    return lambda setup, task: Pool(devices, setup=setup, task=task)


def utilisation_run(cfg, open_pool, n_trials: int, tmp: Path) -> dict:
    """n_trials real training trials on the executor `open_pool(setup, task)` makes; times from
    the moment every worker is ready. A device is a slot's (node, device): the CPU of one
    machine under the local pool, each node's CPU under Ray (as the device ledger books them)."""
    import functools

    from omegaconf import OmegaConf

    from tunetorch import config
    from tunetorch.cli import conf_dir
    from tunetorch.search import Budget, run_search
    from tunetorch.study import Study
    from tunetorch.training.objective import run_training, setup_training

    plan = config.check(cfg, conf_dir())
    config.check_code(cfg, plan)  # the model's and data module's code, as `tunetorch.tune` checks it
    space = plan.space
    checkpoints = Path(tempfile.mkdtemp(dir=tmp))
    setup = functools.partial(
        setup_training, cfg_yaml=OmegaConf.to_yaml(cfg, resolve=True), checkpoints=str(checkpoints)
    )
    t0 = time.perf_counter()
    with open_pool(setup, run_training) as pool:
        probe = Probe(pool, t0)
        # Start the clock once every worker has its data on its device: warm-up excluded.
        while probe.all_ready(len(pool.slots)) is None:
            event = pool.next_event(timeout=1.0)
            if event is not None and event.kind in ("setup_failed", "died"):
                raise RuntimeError(f"{event.kind}: {event.payload}")
        ready = probe.all_ready(len(pool.slots))
        devices = [(getattr(s, "node", None), s.device) for s in pool.slots]
        study = Study(space, strategy="random", seed=0, metric=str(cfg.study.metric))
        outcome = run_search(study, pool, Budget(n_trials=n_trials))
        end = time.perf_counter()
        names = sorted({s.device_name for s in pool.slots})
    assert outcome.ok, outcome.reason
    wall = end - ready
    n_devices = len(set(devices))
    device_seconds = sum(t.device_seconds or 0.0 for t in study.trials)
    spans = {d: [(a, b) for a, b, slot, _ in probe.spans if devices[slot] == d] for d in set(devices)}
    per_device = [_union(s) for s in spans.values()]
    return {
        "trials": len(study.trials),
        "failed": sum(t.score is None for t in study.trials),
        "wall": wall,
        "per_device_hour": len(study.trials) / (wall / 3600) / n_devices,
        "busy": sum(per_device) / (wall * n_devices),
        "slot_busy": sum(t.wall_seconds or 0.0 for t in study.trials) / (wall * len(devices)),
        "charged": device_seconds / (wall * n_devices),
        "seconds_per_trial": statistics.median(t.device_seconds or 0.0 for t in study.trials),
        "max_seconds": max(t.device_seconds or 0.0 for t in study.trials),
        "names": names,
    }


def utilisation_table(
    title: str, unit: str, label: str, runs: list[tuple[int | str, dict]], notes: list[str] = ()
) -> str:
    lines = [
        f"### {title}",
        "",
        f"| {label} | trials | wall (s) | trials per {unit}-hour | device busy (>= 1 trial running) "
        "| slot busy (trial wall seconds / (wall x slots)) | charged (device seconds / (wall x devices)) "
        "| device seconds per trial: median (max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, r in runs:
        lines.append(
            f"| {k} | {r['trials']} ({r['failed']} failed) | {r['wall']:.1f} | {r['per_device_hour']:.0f} "
            f"| {r['busy']:.2f} | {r['slot_busy']:.2f} | {r['charged']:.2f} "
            f"| {r['seconds_per_trial']:.2f} ({r['max_seconds']:.2f}) |"
        )
    lines += [
        "",
        f"wall: from every worker ready (data on its device) to the last trial recorded. "
        f"Trials per {unit}-hour: trials / wall hours / devices (the CPU is one device, whatever its "
        "slots). Device busy: share of the wall time with at least one trial on the device. Slot busy: "
        "summed raw trial wall seconds over wall x slots. Charged: summed device seconds (each trial's "
        "share of the device it held, the GPU minutes a budget counts) over wall x devices; it "
        "matches device busy when the charging is right. The max device seconds is mostly a worker's "
        "first trial (cold caches); workers warm up AdamW "
        "(its torch._dynamo import) while setting up, so that is no longer charged to a trial.",
        *(f"\n{n}" for n in notes),
    ]
    return "\n".join(lines)


def utilisation(args) -> list[str]:
    import torch

    out = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if torch.cuda.is_available():  # NVML / device count only: no CUDA context in this process
            cfg = compose_config("mnist", args.data_root, args.gpu_epochs, tmp)
            runs = []
            for k in (1, 2, 4, 8):
                runs.append((k, utilisation_run(cfg, local_pool(["cuda:0"] * k), args.gpu_trials, tmp)))
                print(f"  cuda:0 x {k}: {runs[-1][1]['wall']:.1f} s", file=sys.stderr)
            gpu = ", ".join(runs[0][1]["names"])
            out.append(
                utilisation_table(
                    f"Utilisation on {gpu}: MLP on MNIST, {args.gpu_epochs} epochs, {args.gpu_trials} trials",
                    "GPU",
                    "trials_per_device",
                    runs,
                )
            )
        else:
            out.append(
                "### Utilisation on a GPU\n\nskipped: torch.cuda.is_available() is False on this machine "
                "(run this script on a CUDA machine for the trials_per_device 1, 2, 4, 8 table)."
            )
        cfg = compose_config("digits", args.data_root, args.cpu_epochs, tmp)
        runs = []
        for w in args.cpu_workers:
            runs.append(
                (f"{w} (local pool)", utilisation_run(cfg, local_pool(["cpu"] * w), args.cpu_trials, tmp))
            )
            print(f"  cpu x {w}: {runs[-1][1]['wall']:.1f} s", file=sys.stderr)
    notes = []
    if "ray" in args.backends:
        ray_part = args.ray_utilisation if args.one_cluster else ray_in_namespace(args, "utilisation")
        if isinstance(ray_part, str):
            notes.append(f"Ray rows {ray_part}")
        else:
            runs += [(f"{w} (Ray backend, {w} node{'s' if w != 1 else ''})", r) for w, r in ray_part["runs"]]
            notes.append(
                "Ray rows: the same study on the Ray backend, a head and one added node on this machine "
                "(one CPU each, so one slot per node; cluster start excluded, "
                f"{ray_part['cluster_start']:.1f} s). Each node is a device there, as the device "
                "ledger books time per (Ray node, device): the 2-worker row counts 2 CPU devices "
                "though both nodes share this machine's cores, so its trials per device-hour are "
                "per node; compare the backends on wall (s)."
            )
    out.append(
        utilisation_table(
            f"Utilisation on the CPU ({cpu_name()}, {os.cpu_count()} cores): MLP on digits, "
            f"{args.cpu_epochs} epochs, {args.cpu_trials} trials",
            "CPU-device",
            "workers (backend)",
            runs,
            notes,
        )
    )
    return out


def ray_utilisation(args, address: str) -> list:
    """The CPU utilisation study on the Ray backend, inside the namespace: 1 and 2 workers
    (`--cpu-workers`) over the cluster at `address`, a head and one added node of one CPU each
    (2 workers: one slot per node)."""
    from tunetorch.executors import open_executor

    runs = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cfg = compose_config("digits", args.data_root, args.cpu_epochs, tmp)
        for w in args.cpu_workers:

            def open_ray(setup, task, w=w):
                return open_executor(ray_tuner(w, address), setup, task)

            runs.append((w, utilisation_run(cfg, open_ray, args.cpu_trials, tmp)))
            print(f"  ray cpu x {w}: {runs[-1][1]['wall']:.1f} s", file=sys.stderr)
    return runs


# --- the report -----------------------------------------------------------------------------
def cpu_name() -> str:
    from _machine import cpu_model

    return cpu_model()


def ray_version() -> str:
    import importlib.metadata

    try:
        return f"ray {importlib.metadata.version('ray')}; "
    except importlib.metadata.PackageNotFoundError:
        return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="repetitions of the overhead run")
    ap.add_argument("--trials", type=int, default=200, help="instant trials per overhead run")
    ap.add_argument("--workers", type=int, default=2, help="CPU workers in the overhead run")
    ap.add_argument(
        "--data-root", type=Path, default=ROOT.parent / "shared" / "data", help="holds MNIST/raw/"
    )
    ap.add_argument("--gpu-trials", type=int, default=32, help="trials per GPU utilisation run")
    ap.add_argument("--gpu-epochs", type=int, default=2, help="epochs per MNIST trial on the GPU")
    ap.add_argument("--cpu-trials", type=int, default=20, help="trials per CPU utilisation run")
    ap.add_argument("--cpu-epochs", type=int, default=10, help="epochs per digits trial on the CPU")
    ap.add_argument(
        "--cpu-workers",
        default="1,2",
        help="worker counts of the CPU utilisation runs, comma-separated, each 1 or 2 (the Ray rows' "
        "cluster has 2 nodes of one CPU)",
    )
    ap.add_argument("--skip-utilisation", action="store_true")
    ap.add_argument(
        "--backends",
        default="local,ray",
        help="overhead rows: any of local, ray, tune (slow: Ray Tune), comma-separated",
    )
    ap.add_argument("--tune-reps", type=int, default=1, help="repetitions of the Ray Tune run")
    ap.add_argument(
        "--one-cluster",
        action="store_true",
        help="both Ray parts on one cluster of one CPU a node, started once (--workers 3 at most)",
    )
    ap.add_argument("--inside-namespace", type=Path, help=argparse.SUPPRESS)  # the Ray part's child run
    ap.add_argument("--ray-part", default="overhead", help=argparse.SUPPRESS)  # which Ray part it runs
    ap.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    ap.add_argument("--note", default="", help="a sentence about the machine for --out")
    args = ap.parse_args()
    args.data_root = args.data_root.expanduser().resolve()
    args.backends = [b for b in args.backends.split(",") if b]
    try:
        args.cpu_workers = [int(w) for w in args.cpu_workers.split(",") if w]
    except ValueError:
        args.cpu_workers = []
    if not args.cpu_workers or not set(args.cpu_workers) <= {1, 2}:
        ap.error(f"--cpu-workers: {args.cpu_workers!r} is not a comma-separated list of 1 and 2")
    if args.one_cluster and args.workers // 2 > 1:
        ap.error(
            f"--workers: {args.workers} with --one-cluster; the overhead run's nodes have one CPU: 3 at most"
        )
    if args.inside_namespace:
        args.inside_namespace.write_text(json.dumps(inside_namespace(args)))
        return 0

    import torch

    sections = [overhead(args)]
    print(sections[0] + "\n", flush=True)
    if not args.skip_utilisation:
        for s in utilisation(args):
            sections.append(s)
            print(s + "\n", flush=True)

    if args.out:
        command = shlex.join(["python", "scripts/bench_dispatch.py", *sys.argv[1:]])  # as it was run
        header = [
            "# Dispatch benchmark",
            "",
            f"Machine: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"torch {torch.__version__}; {ray_version()}"
            f"CUDA: {'yes' if torch.cuda.is_available() else 'none'}."
            + (f" {args.note}" if args.note else ""),
            "",
            "```",
            command.strip(),
            "```",
            "",
        ]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(header) + "\n" + "\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
