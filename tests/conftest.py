"""Shared fixtures: the real config composed once and shrunk (few trials, 1-2 epochs, digits, CPU)."""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Two pytest workers on two cores each start trials whose workers give torch one thread per core
# (executors/local.py): more threads than cores. OpenMP's threads spin while they wait for each
# other, so a thread whose core is taken stalls every step of the others: a 40-epoch digits trial
# took 30 s instead of 3 s beside the other pytest worker. Waiting threads sleep instead; the
# threads, and so every result, are the same. Set before torch loads, for every process started.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SHARED_DATA = ROOT.parent / "shared" / "data"
SHRINK = ["budget.n_trials=3", "trainer.epochs=1", "dataset=digits", "tuner.devices=cpu", "tuner.workers=1"]

needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "MNIST").is_dir(), reason=f"real MNIST/CIFAR subsets not found at {SHARED_DATA}"
)


@pytest.fixture(scope="session")
def compose():
    """compose(*overrides) -> the real tune config, shrunk, with the overrides applied."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from tunetorch.cli import conf_dir

    def make(*overrides: str):
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            return hydra_compose("tune", overrides=[*SHRINK, "study.dir=unused", *overrides])

    return make


@pytest.fixture(scope="session")
def unevaluated_study(tmp_path_factory) -> Path:
    """A finished study of 3 one-epoch trials (SHRINK), not evaluated yet: made once per test
    session for the tests of the one look (test_evaluate, test_trust), which copy it."""

    def make(folder: Path) -> None:
        out = run_tune(*SHRINK, "study.evaluate=false", f"study.dir={folder}")
        assert out.returncode == 0, out.stdout + out.stderr

    return made_once(tmp_path_factory, "unevaluated_study", make)


def run_tune(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 240):
    """`python -m tunetorch.tune ARGS` as a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "tunetorch.tune", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def made_once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """The folder `name`, made by make(folder) once per test session and shared by every test that
    reads it: under pytest-xdist, by whichever worker asks first while the others wait on a file
    lock, then read the same folder. A make that fails leaves nothing, and the next asker tries."""
    from filelock import FileLock  # torch's own dependency

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this session's folder, above each worker's own
    folder, done = base / name, base / f"{name}.done"
    with FileLock(str(base / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            make(folder)
            done.touch()
    return folder


def run_in_process(command: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -m tunetorch.COMMAND ARGS` (tune, race or evaluate) through the command's own `main()`, in this
    process, from `cwd`: the exit status, stdout and stderr the command gives, without a new
    interpreter's start-up (and torch's import) for each case of a table of refusals. Each table
    also runs one case as a real subprocess, for what only the interpreter shows (its exit)."""
    from tunetorch import evaluate, tune
    from tunetorch.race import runner

    main = {"tune": tune.main, "race": runner.main, "evaluate": evaluate.main}[command]
    out, err, code = io.StringIO(), io.StringIO(), 0
    argv, here, hydra_full_error = sys.argv, os.getcwd(), os.environ.pop("HYDRA_FULL_ERROR", None)
    sys.argv = [f"tunetorch.{command}", *args]
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main() or 0  # evaluate's main returns its exit status; tune's and race's exit
    except SystemExit as e:  # as the interpreter turns it into an exit status
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        # A command's process ends after it: what it left open (a finished study's journal, whose
        # close folds the write-ahead log into journal.sqlite) is closed then, not some cases later.
        gc.collect()
        sys.argv = argv
        os.chdir(here)
        if hydra_full_error is not None:
            os.environ["HYDRA_FULL_ERROR"] = hydra_full_error
    return subprocess.CompletedProcess([command, *args], code, out.getvalue(), err.getvalue())


def held_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one (start, end) span: the time a device was held."""
    total, end = 0.0, None
    for a, b in sorted(spans):
        if end is None or a > end:
            total, end = total + b - a, b
        elif b > end:
            total, end = total + b - end, b
    return total


# Files whose tests may run on both pytest-xdist workers at once: each test works in its own
# tmp_path (its own study, Ray cluster, TensorBoard port, mount namespace), and tests that share
# a module fixture stay on one worker. Every other file runs whole on one worker, as under
# `--dist loadfile`: its tests may share more than fixtures say (timing checks, a browser).
SPREAD = {
    "tests/test_evaluate.py",
    "tests/test_example.py",
    "tests/test_faults.py",
    "tests/test_race.py",
    "tests/test_refusals.py",
    "tests/test_scripts.py",
    "tests/test_sealed.py",
    "tests/test_step_examples.py",
    "tests/test_tensorboard.py",
    "tests/test_trust.py",
    "tests/test_tune_e2e.py",
}


# Whole-file units that take a minute or more: started first (see pytest_collection_modifyitems).
FIRST = ("tests/test_ray.py", "tests/test_race_faults.py")

UNITS = "xdist_units.json"  # nodeid -> its work unit, written by the workers, read by the scheduler


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under `--dist loadgroup` (./scripts/test), on each worker: the work units handed out by the
    scheduler below. A file not in SPREAD is one unit; in a SPREAD file, the tests joined by a
    module (or class) fixture are one unit and every other test a unit of its own. The SPREAD
    files' tests go first, so that a long one starts early and the two workers end together."""
    if not getattr(config.option, "loadgroup", False):  # set on each worker (whose own dist is "no")
        return
    groups: dict[str, str] = {}  # fixture -> a fixture of its unit (union-find over shared fixtures)

    def unit(key: str) -> str:
        while groups.get(key, key) != key:
            key = groups[key]
        return key

    shared_of = {}
    for item in items:
        path = item.nodeid.split("::")[0]
        defs = getattr(item, "_fixtureinfo", None)
        names = defs.name2fixturedefs if defs else {}
        shared = sorted(
            f"{path}::{name}"
            for name in item.fixturenames
            if names.get(name) and names[name][-1].scope in ("module", "class", "package")
        )
        shared_of[item.nodeid] = shared
        for other in shared[1:]:
            groups[unit(other)] = unit(shared[0])
    units = {}
    for item in items:
        path, shared = item.nodeid.split("::")[0], shared_of[item.nodeid]
        units[item.nodeid] = path if path not in SPREAD else unit(shared[0]) if shared else item.nodeid
    # stable: order kept within. The longest whole-file units (a Ray cluster or two, a race killed
    # twice) go first of all: handed out last, one of them would keep one worker busy alone.
    items.sort(
        key=lambda item: (item.nodeid.split("::")[0] not in FIRST, item.nodeid.split("::")[0] not in SPREAD)
    )
    # Every worker collects the same tests: whichever writes last writes the same map.
    target = Path(config.option.basetemp).parent / UNITS
    partial = target.with_name(f"{UNITS}.{os.getpid()}")
    partial.write_text(json.dumps(units))
    partial.replace(target)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` hands out the units above. (pytest-xdist's own loadgroup reads a suffix it
    adds to each node id, which pytest 9 no longer lets a plugin change.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        units: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.units is None:  # written before the workers reported their collections
                self.units = json.loads((config._tmp_path_factory.getbasetemp() / UNITS).read_text())
            return self.units.get(nodeid, nodeid)

    return Units(config, log)
