"""Dispatch benchmark: what the pool adds per trial, and how busy it keeps a device.

    nice -n 5 .venv/bin/python scripts/bench_dispatch.py [--reps 5] [--trials 200] [--workers 2]
        [--data-root ../shared/data] [--gpu-trials 32] [--gpu-epochs 2] [--cpu-trials 20]
        [--cpu-epochs 10] [--out FILE]

1. Overhead: `--trials` trivial trials (the objective returns at once) through the pool with
   `--workers` CPU workers (tunetorch.search.run_search over a Study with random search),
   against the same calls in a plain ask / objective / tell loop. Per repetition: the whole
   run including worker start and shutdown, the worker start alone, the added cost per
   trial ((pool run - worker start - plain loop) / trials) and the median round trip of
   one trial (submit -> "done" read back). Median and [min, max] over `--reps`.
2. Utilisation: real training trials (tunetorch.training.objective.setup_training / run_training, the
   config composed from tunetorch/conf like `python -m tunetorch.tune` does). With CUDA:
   an MLP on MNIST with trials_per_device 1, 2, 4, 8 on one GPU. Always: the MLP on digits
   with 1 and 2 CPU workers. Timing starts once every worker is ready (data loaded), so
   worker start and data loading are excluded.

The tables are printed as markdown; `--out` also writes them with the machine and command.
Top-level imports are the standard library only: spawned workers re-import this file.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
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
                self.spans.append((start, now, slot, event.payload["device_seconds"]))
            return event

        pool.submit, pool.next_event = timed_submit, timed_next_event

    def all_ready(self, n_slots: int) -> float | None:
        return max(self.ready.values()) if len(self.ready) == n_slots else None


def _summary(values: list[float], fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}, {fmt.format(max(values))}]"


def overhead(n_trials: int, workers: int, reps: int) -> str:
    from tests import _toy_tasks as tasks
    from tunetorch import SearchSpace, Study
    from tunetorch.pool import Pool
    from tunetorch.search import Budget, run_search

    space = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    rows: dict[str, list[float]] = {k: [] for k in ("plain", "total", "start", "added", "rtt")}
    for rep in range(reps):
        study = Study(space, strategy="random", seed=rep)
        state = tasks.setup("cpu")
        t0 = time.perf_counter()
        for _ in range(n_trials):
            trial = study.ask()
            study.tell(trial, tasks.instant(state, trial.number, trial.params, None)["score"])
        plain = time.perf_counter() - t0

        study = Study(space, strategy="random", seed=rep)
        t0 = time.perf_counter()
        with Pool(["cpu"] * workers, setup=tasks.setup, task=tasks.instant) as pool:
            probe = Probe(pool, t0)
            outcome = run_search(study, pool, Budget(n_trials=n_trials))
        total = time.perf_counter() - t0
        assert outcome.ok and len(study.completed) == n_trials, outcome
        start = (probe.all_ready(workers) or time.perf_counter()) - t0
        rows["plain"].append(plain * 1e3)
        rows["total"].append(total)
        rows["start"].append(start)
        rows["added"].append((total - start - plain) / n_trials * 1e3)
        rows["rtt"].append(statistics.median(done - sub for sub, done, _, _ in probe.spans) * 1e3)

    return "\n".join(
        [
            f"### Overhead: {n_trials} instant trials, {workers} CPU workers, {reps} repetitions",
            "",
            "median [min, max] over repetitions",
            "",
            "| plain loop (ms, all trials) | pool: whole run (s) | worker start (s) "
            "| added per trial (ms) | round trip per trial, median (ms) |",
            "|---|---|---|---|---|",
            f"| {_summary(rows['plain'])} | {_summary(rows['total'], '{:.2f}')} "
            f"| {_summary(rows['start'], '{:.2f}')} | {_summary(rows['added'], '{:.2f}')} "
            f"| {_summary(rows['rtt'], '{:.2f}')} |",
            "",
            "added per trial = (pool whole run - worker start - plain loop) / trials; "
            "targets: <= 20 ms added per trial, whole run < 5 s.",
        ]
    )


# --- utilisation with real training ---------------------------------------------------------
def compose_config(dataset: str, data_root: Path, epochs: int, tmp: Path):
    from hydra import compose, initialize_config_dir

    from tunetorch.tune import CONF_DIR

    overrides = [
        "model=mlp",
        f"dataset={dataset}",
        f"trainer.epochs={epochs}",
        "+strategy=random",
        f"study.dir={tmp}",
    ]
    if dataset != "digits":
        overrides += [f"dataset.root={data_root}", "dataset.download=false"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
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


def utilisation_run(cfg, devices: list[str], n_trials: int, tmp: Path) -> dict:
    """n_trials real training trials on `devices`; times from the moment every worker is ready."""
    import functools

    from omegaconf import OmegaConf

    from tunetorch.pool import Pool
    from tunetorch.search import Budget, run_search
    from tunetorch.study import Study
    from tunetorch.training.datasets import ensure_available
    from tunetorch.training.objective import run_training, setup_training
    from tunetorch.tune import validate

    space = validate(cfg)
    ensure_available(cfg.dataset)
    checkpoints = Path(tempfile.mkdtemp(dir=tmp))
    setup = functools.partial(
        setup_training, cfg_yaml=OmegaConf.to_yaml(cfg, resolve=True), checkpoints=str(checkpoints)
    )
    t0 = time.perf_counter()
    with Pool(devices, setup=setup, task=run_training) as pool:
        probe = Probe(pool, t0)
        # Start the clock once every worker has its data on its device: warm-up excluded.
        while probe.all_ready(len(devices)) is None:
            event = pool.next_event(timeout=1.0)
            if event is not None and event.kind == "setup_failed":
                raise RuntimeError(event.payload)
        ready = probe.all_ready(len(devices))
        study = Study(space, strategy="random", seed=0)
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
        "slot_busy": device_seconds / (wall * len(devices)),
        "seconds_per_trial": statistics.median(t.device_seconds or 0.0 for t in study.trials),
        "max_seconds": max(t.device_seconds or 0.0 for t in study.trials),
        "names": names,
    }


def utilisation_table(title: str, unit: str, label: str, runs: list[tuple[int, dict]]) -> str:
    lines = [
        f"### {title}",
        "",
        f"| {label} | trials | wall (s) | trials per {unit}-hour | device busy (>= 1 trial running) "
        "| slot busy (device seconds / (wall x slots)) | device seconds per trial: median (max) |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, r in runs:
        lines.append(
            f"| {k} | {r['trials']} ({r['failed']} failed) | {r['wall']:.1f} | {r['per_device_hour']:.0f} "
            f"| {r['busy']:.2f} | {r['slot_busy']:.2f} "
            f"| {r['seconds_per_trial']:.2f} ({r['max_seconds']:.2f}) |"
        )
    lines += [
        "",
        f"wall: from every worker ready (data on its device) to the last trial recorded. "
        f"Trials per {unit}-hour: trials / wall hours / devices (the CPU is one device, whatever its "
        "slots). Device busy: share of the wall time with at least one trial on the device. Slot busy: "
        "summed device seconds over wall x slots, the figure summary.json's device_busy reports. The "
        "max device seconds is mostly a worker's first trial (cold caches); workers warm up AdamW "
        "(its torch._dynamo import) while setting up, so that is no longer charged to a trial.",
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
                runs.append((k, utilisation_run(cfg, ["cuda:0"] * k, args.gpu_trials, tmp)))
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
        for w in (1, 2):
            runs.append((w, utilisation_run(cfg, ["cpu"] * w, args.cpu_trials, tmp)))
            print(f"  cpu x {w}: {runs[-1][1]['wall']:.1f} s", file=sys.stderr)
        out.append(
            utilisation_table(
                f"Utilisation on the CPU ({cpu_name()}, {os.cpu_count()} cores): MLP on digits, "
                f"{args.cpu_epochs} epochs, {args.cpu_trials} trials",
                "CPU-device",
                "workers",
                runs,
            )
        )
    return out


# --- the report -----------------------------------------------------------------------------
def cpu_name() -> str:
    from tunetorch.pool import device_name

    return device_name("cpu").removeprefix("CPU: ")


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
    ap.add_argument("--skip-utilisation", action="store_true")
    ap.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    ap.add_argument("--note", default="", help="a sentence about the machine for --out")
    args = ap.parse_args()
    args.data_root = args.data_root.expanduser().resolve()

    import torch

    sections = [overhead(args.trials, args.workers, args.reps)]
    print(sections[0] + "\n", flush=True)
    if not args.skip_utilisation:
        for s in utilisation(args):
            sections.append(s)
            print(s + "\n", flush=True)

    if args.out:
        command = "nice -n 5 .venv/bin/python scripts/bench_dispatch.py " + shlex.join(sys.argv[1:])
        header = [
            "# Dispatch benchmark",
            "",
            f"Machine: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"torch {torch.__version__}; CUDA: {'yes' if torch.cuda.is_available() else 'none'}."
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
