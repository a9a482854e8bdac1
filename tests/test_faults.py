"""Real faults, no mocks: SIGKILL of the tuner and of a worker, NaN losses, exceptions in
training, corrupt and foreign journals. Nothing completed may be lost."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHRINK, run_in_process, run_tune
from tests.test_tune_e2e import snapshot
from tunetorch import Journal, TrialState
from tunetorch.words import count

# 16 units, not 256: the faults are the same, each trial costs less.
SMALL = [*SHRINK, "budget.n_trials=6", "trainer.epochs=2", "model.width=16"]
# Bayes with a short initial design: trials 2-5 come from the GP, so a resume must rebuild it.
SMALL_BAYES = [*SMALL, "+strategy=bayes", "strategy.n_startup=2"]


def start_tune(*args: str, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "tunetorch.tune", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def journal_rows(study_dir: Path) -> list[tuple]:
    """(number, state, score, attempts, params) per trial, read without disturbing the running tuner."""
    path = study_dir / "journal.sqlite"
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            query = "SELECT number, state, score, attempts, params FROM trials ORDER BY number"
            return db.execute(query).fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return []


def wait_for(predicate, timeout: float = 120.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"tuner exited early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def kill_while_a_trial_runs(
    proc: subprocess.Popen, study_dir: Path, ready, timeout: float = 120.0, poll: float = 0.02
) -> list:
    """SIGKILL the tuner at a moment its journal shows a trial RUNNING and `ready(rows)` holds, and
    return those rows. The tuner is frozen (SIGSTOP) to look, so the look and the kill see the same
    journal: between two trials no row is RUNNING (the next suggestion is being computed), and a
    kill there would leave nothing for a resume to run again. `poll`: seconds between looks (a
    race's simulated trial is RUNNING for milliseconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = journal_rows(study_dir)
        if ready(rows) and any(r[1] == "RUNNING" for r in rows):
            proc.send_signal(signal.SIGSTOP)
            rows = journal_rows(study_dir)
            if ready(rows) and any(r[1] == "RUNNING" for r in rows):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return rows
            proc.send_signal(signal.SIGCONT)
        if proc.poll() is not None:
            raise AssertionError(f"tuner exited early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(poll)
    raise AssertionError("timed out waiting for a running trial")


def killed_meanwhile(proc: subprocess.Popen, study_dir: Path, ready, work):
    """work() in this thread (a study in this process: signal handlers need the main thread) while
    another kills `proc` as kill_while_a_trial_runs does; returns (work's result, the rows at the
    kill). The uninterrupted study and the one killed run at once, not one after the other."""
    seen: dict = {}

    def kill() -> None:
        try:
            seen["rows"] = kill_while_a_trial_runs(proc, study_dir, ready)
        except BaseException as e:  # raised below, in the test's own thread
            seen["error"] = e

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        result = work()
    finally:
        killer.join()
    if "error" in seen:
        raise seen["error"]
    return result, seen["rows"]


def worker_pids(parent: int) -> list[int]:
    """The tuner's spawned worker processes (not multiprocessing's resource tracker)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and "spawn_main" in cmd:
            pids.append(int(proc.name))
    return pids


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def finished(rows):
    return [r for r in rows if r[1] in ("COMPLETE", "PRUNED", "FAIL")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same small study, never interrupted (in this process: the runs under test are the commands)."""
    d = tmp_path_factory.mktemp("ref") / "study"
    out = run_in_process("tune", *SMALL_BAYES, f"study.dir={d}")
    assert out.returncode == 0, out.stderr
    return journal_rows(d)


def test_sigkill_of_the_tuner_twice_loses_nothing_and_resume_matches_an_uninterrupted_run(
    reference, tmp_path
):
    """SIGKILLed once a trial has finished (the start-up design), the same command again SIGKILLed
    once 4 have (the GP proposes from trial 2 on), each time while a trial runs; then resumed:
    nothing finished is lost, and the study ends as the uninterrupted one did, trial for trial."""
    d = tmp_path / "study"
    before: list = []
    for kill_after in (1, 4):
        proc = start_tune(*SMALL_BAYES, f"study.dir={d}")
        wait_for(lambda n=kill_after: len(finished(journal_rows(d))) >= n, proc=proc)
        workers = worker_pids(proc.pid)
        at_kill = kill_while_a_trial_runs(proc, d, lambda rows, n=kill_after: len(finished(rows)) >= n)
        now = finished(journal_rows(d))
        assert len(now) >= kill_after and finished(at_kill) == now
        assert set(before) <= set(now)  # what the first run finished, the second left untouched
        before = now
        # Orphaned workers notice their tuner is gone and exit instead of holding the device.
        wait_for(lambda workers=workers: not any(alive(p) for p in workers), timeout=15)

    out = run_in_process("tune", *SMALL_BAYES, f"study.dir={d}")  # the resume: what it does, not its exit
    assert out.returncode == 0, out.stderr
    assert "resuming" in out.stdout and f"{count(len(before), 'finished trial')} kept" in out.stdout
    after = journal_rows(d)
    assert [r[0] for r in after] == list(range(6)) and all(r[1] == "COMPLETE" for r in after)
    assert set(before) <= set(after)  # every trial finished before the kills is there, untouched
    # Same seed, CPU: the resumed study is the uninterrupted one, trial for trial: the GP,
    # rebuilt from the journal, proposes the same params, and they train to the same scores.
    assert [(r[0], r[1], r[2], r[4]) for r in after] == [(r[0], r[1], r[2], r[4]) for r in reference]
    assert (d / "summary.json").exists() and (d / "best.pt").exists()


# Bayes + ASHA, one worker: rungs at 1 and 3 epochs of 4; most trials are pruned at a rung.
SMALL_ASHA = [*SHRINK, "budget.n_trials=8", "trainer.epochs=4", "+strategy=bayes", "strategy.n_startup=3"]
SMALL_ASHA += ["+scheduler=asha", "study.evaluate=false", "model.width=16"]


def test_sigkill_mid_rung_and_resume_makes_the_decisions_of_an_uninterrupted_run(tmp_path):
    """The rung values live in the journal: after a SIGKILL while trials are being pruned, the
    resumed study prunes, scores and proposes exactly as the uninterrupted one did."""
    ref, d = tmp_path / "reference", tmp_path / "study"
    proc = start_tune(*SMALL_ASHA, f"study.dir={d}")
    # killed once a trial has been pruned, while a later one is mid-rung; meanwhile, in this
    # process, the uninterrupted reference (the runs under test are the command's)
    out, _ = killed_meanwhile(
        proc,
        d,
        lambda rows: sum(r[1] == "PRUNED" for r in rows) >= 2,
        lambda: run_in_process("tune", *SMALL_ASHA, f"study.dir={ref}"),
    )
    assert out.returncode == 0, out.stderr
    reference = journal_rows(ref)
    assert any(r[1] == "PRUNED" for r in reference) and any(r[1] == "COMPLETE" for r in reference)

    before = finished(journal_rows(d))
    out = run_in_process("tune", *SMALL_ASHA, f"study.dir={d}")
    assert out.returncode == 0, out.stderr
    after = journal_rows(d)
    assert set(before) <= set(after)
    assert [(r[0], r[1], r[2], r[4]) for r in after] == [(r[0], r[1], r[2], r[4]) for r in reference]


def test_a_worker_killed_mid_trial_is_replaced_and_its_trial_retried(tmp_path):
    d = tmp_path / "study"
    # Trial 1 is killed after its first epoch of 40 (a digits epoch takes about 10 ms: time for the
    # poll below); trial 0, before it, shows a trial not retried. No test look: not checked here.
    args = ["budget.n_trials=2", "trainer.epochs=40", "tuner.max_retries=1", "study.evaluate=false"]
    proc = start_tune(*SHRINK, *args, f"study.dir={d}")

    def first_epoch_done():
        path = d / "journal.sqlite"
        if not path.exists():
            return False
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM epochs WHERE trial = 1").fetchone()[0] > 0
        except sqlite3.OperationalError:
            return False
        finally:
            db.close()

    wait_for(first_epoch_done, proc=proc)
    (victim,) = worker_pids(proc.pid)
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    rows = journal_rows(d)
    assert [r[1] for r in rows] == ["COMPLETE"] * 2
    assert rows[1][3] == 2 and rows[0][3] == 1  # trial 1 ran twice; trial 0 once


def test_nan_loss_fails_the_trial_early_and_a_run_of_failures_stops_the_study(tmp_path):
    d = tmp_path / "study"
    out = run_in_process(
        "tune",
        *SHRINK,
        "budget.n_trials=10",
        "trainer.epochs=30",
        "trainer.batch_size=32",
        "space.optimizer.lr.low=1.0e5",
        "space.optimizer.lr.high=1.0e6",
        "tuner.max_consecutive_failures=3",
        f"study.dir={d}",
    )
    assert out.returncode == 1, out.stderr
    assert (
        "stopped after 3 failed trials in a row; the last: Diverged: training loss is"
        in out.stdout + out.stderr
    )
    journal = Journal(d / "journal.sqlite")
    trials = journal.trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    for t in trials:
        assert "Diverged" in t.error and t.device_seconds > 0
        assert len(journal.epochs(t.number)) < 5  # stopped long before its 30 epochs
    summary = (d / "summary.json").read_text()
    assert '"n_failed": 3' in summary and '"test": null' in summary


def test_an_exception_in_training_fails_that_trial_and_the_search_goes_on(tmp_path):
    d = tmp_path / "study"
    # batch_size 0 makes the training loop itself raise (a division by zero batches); 128 trains.
    # The seeded grid's order starts 0, 128: trial 0 fails and trial 1, after it, completes: the
    # search went on.
    out = run_in_process(
        "tune",
        *SHRINK,
        "budget.n_trials=2",
        "+space.trainer.batch_size={type:int,low:0,high:128}",
        "trainer.epochs=1",
        "+strategy=grid",
        "strategy.resolution=2",
        "model.width=16",
        f"study.dir={d}",
    )
    assert out.returncode == 0, out.stderr
    trials = Journal(d / "journal.sqlite").trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and all(
        t.params["trainer.batch_size"] == 0 and "ZeroDivisionError" in t.error for t in failed
    )
    assert all(t.params["trainer.batch_size"] == 128 for t in trials if t.state == TrialState.COMPLETE)
    assert len(trials) == 2 and "test accuracy" in out.stdout
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]  # went on past it


@pytest.fixture(scope="module")
def existing(tmp_path_factory):
    d = tmp_path_factory.mktemp("existing") / "study"
    out = run_in_process("tune", *SHRINK, "budget.n_trials=2", f"study.dir={d}")
    assert out.returncode == 0, out.stderr
    return d


@pytest.mark.parametrize(
    "args, message",
    [
        (["space.model.dropout.low=0.9"], "space.model.dropout.low: 0.9 must be below high (0.6)"),
        (["+space.model.depth.step=2"], "space.model.depth.step: not a key of a int dimension"),
        (
            ["space.optimizer.lr.type=normal"],
            "space.optimizer.lr.type: 'normal' is not one of float, int, categorical",
        ),
        (["dataset=svhn"], "dataset: 'svhn' is not one of cifar10, digits, fashion_mnist, mnist"),
        (
            ["model.dropout=1.5"],
            "model: tunetorch.training.models.MLP refused its arguments (ValueError: dropout",
        ),
        (["optimizer.weight_decay=-1"], "optimizer: torch.optim.AdamW refused its arguments"),
        (["dataset.n_classes=5"], "dataset.n_classes: 5 disagrees with the data (10 classes)"),
        (["dataset.val_fraction=0"], "dataset.val_fraction: 0 must be a number in (0, 1)"),
        (["study.seed=-1"], "study.seed: -1 must be a whole number from 0 to 4294967295"),
        (["study.seed=4294967296"], "study.seed: 4294967296 must be a whole number from 0 to 4294967295"),
        (["study.evaluate=off"], "study.evaluate: 'off' must be true or false"),
        (["study.evaluate='false'"], "study.evaluate: 'false' must be true or false"),
        (["--multirun"], "--multirun: not supported"),
        (
            ["tuner.devices=cpu", "tuner.workers=4096"],
            "tuner.workers: 4096 CPU workers would need about 2000 GiB",
        ),
        (["budget.gpu_minutes=0"], "budget.gpu_minutes: 0 must be a number > 0"),
        (["trainer.epochs=0"], "trainer.epochs: 0 must be a whole number >= 1"),
        (
            ["dataset=cifar10", "dataset.root=/nowhere", "dataset.download=false"],
            "cifar10 not found under /nowhere",
        ),
        (["study.seed=1"], "holds a different study (study.seed: 0 -> 1)"),
        (
            ["optimizer=sgd"],
            "holds a different study (optimizer._target_: 'torch.optim.AdamW' -> 'torch.optim.SGD')",
        ),
    ],
)
def test_bad_input_leaves_an_existing_study_byte_for_byte(args, message, existing):
    before = snapshot(existing)
    out = run_in_process("tune", *SHRINK, "budget.n_trials=2", f"study.dir={existing}", *args)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert snapshot(existing) == before


def test_the_command_itself_leaves_an_existing_study_byte_for_byte(existing):
    """The table above runs in this process; one of its cases as the command, in a new interpreter."""
    before = snapshot(existing)
    out = run_tune(*SHRINK, "budget.n_trials=2", f"study.dir={existing}", "study.seed=1")
    assert out.returncode == 2 and "holds a different study (study.seed: 0 -> 1)" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert snapshot(existing) == before


@pytest.mark.parametrize("content", [b"this is not a database, just text" * 10, "foreign"])
def test_a_corrupt_or_foreign_journal_is_refused(content, tmp_path):
    d = tmp_path / "study"
    d.mkdir()
    if content == "foreign":
        db = sqlite3.connect(d / "journal.sqlite")
        db.execute("CREATE TABLE photos (id INTEGER, path TEXT)")
        db.commit()
        db.close()
    else:
        (d / "journal.sqlite").write_bytes(content)
    before = snapshot(d)
    out = run_in_process("tune", *SHRINK, f"study.dir={d}")
    assert out.returncode == 2, out.stderr
    line = out.stderr.strip()
    assert "\n" not in line and "journal.sqlite" in line and "use a new study.dir" in line
    assert snapshot(d) == before


def test_an_unwritable_study_dir_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = run_in_process("tune", *SHRINK, f"study.dir={blocker}/study")
    assert out.returncode == 2 and f"study.dir: {blocker}/study cannot be made" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = run_in_process("tune", *SHRINK, f"study.dir={blocker}")
    assert out.returncode == 2 and "is a file, not a folder" in out.stderr


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "study.dir: '' must be a folder path"),
        ("null", "study.dir: None must be a folder path"),
        ("${nowhere}", "study.dir: cannot be resolved"),
        ("x" * 300, "a path component is 300 bytes long; the limit is 255"),
    ],
)
def test_a_study_dir_that_cannot_be_one_is_refused(value, message, tmp_path):
    out = run_in_process("tune", *SHRINK, f"study.dir={value}", cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


def test_a_study_of_an_older_layout_is_refused_in_one_line(existing, tmp_path):
    d = tmp_path / "old"
    shutil.copytree(existing, d)
    db = sqlite3.connect(d / "journal.sqlite")
    db.execute("UPDATE meta SET value = 'tunetorch-journal/1' WHERE key = 'format'")
    db.commit()
    db.close()
    before = snapshot(d)
    out = run_in_process("tune", *SHRINK, "budget.n_trials=2", f"study.dir={d}")
    assert out.returncode == 2 and "was made by an older tunetorch layout" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and snapshot(d) == before


# --- faults of the environment: one line, exit 1, nothing completed lost, then a resume --------
def _no_trials_arg(args: list[str]) -> list[str]:
    return [a for a in args if not a.startswith("budget.n_trials=")]


def in_namespace(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`sh -c SCRIPT sh ARGS` as root of a private user and mount namespace (`unshare -rm`): the
    mounts it makes (a small tmpfs, a read-only bind mount) are its own and end with it; the
    machine's are untouched. Commands in it see this environment, less HYDRA_FULL_ERROR."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def namespaces(tmp_path_factory):
    """Skip, saying why, where this machine will not let a process make a private mount
    namespace (`unshare -rm`: user namespaces off, or no unshare)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: no private mount namespace for a small disk")
    d = tmp_path_factory.mktemp("namespace")
    probe = 'mount -t tmpfs -o size=64k tmpfs "$1" && mount --bind "$1" "$1" && mount -o remount,ro,bind "$1"'
    out = in_namespace(probe, str(d), timeout=30)
    if out.returncode != 0:
        pytest.skip(f"cannot mount in a private namespace here (unshare -rm: {out.stderr.strip()[:200]})")


def one_line(out: subprocess.CompletedProcess, code: int) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == code and len(lines) == 1, out.stdout + out.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in out.stderr, lines[0]
    return lines[0]


# What fills the disk, the tmpfs, the study's folders that lie outside it (links, so that the
# write under test is the one that finds the disk full; TensorBoard's files, written live, are
# outside in both), and the trials run before the rest of the disk is filled (None: not filled).
# The journal: 2 trials run, then a file takes every free byte, and the same command resumes
# with nothing left for its journal's next write. A checkpoint: with the default 256 units,
# trial 1's weights (4 layers) do not fit in 600k, and its worker hands the fault to the driver.
FULL_DISK = {
    "journal": (
        ["model.width=16", "budget.n_trials=4"],
        "2m",
        "the journal cannot be",  # SQLite says "disk is full" or, on a full tmpfs, "disk I/O error"
        ("tb", "checkpoints"),
        2,
    ),
    "checkpoint": (["budget.n_trials=2"], "600k", "trial 1's weights cannot be written to", ("tb",), None),
}


@pytest.mark.parametrize("what", FULL_DISK)
def test_a_full_disk_is_one_line_keeps_completed_trials_and_the_study_resumes(what, namespaces, tmp_path):
    extra, size, needle, outside, first = FULL_DISK[what]
    args = [*_no_trials_arg(SHRINK), *extra, "tuner.progress=false"]
    mnt, kept = tmp_path / "small-disk", tmp_path / "kept"
    mnt.mkdir()
    # The study on a tmpfs of `size`, but for the folders `outside` (links to tmp_path); what it
    # left is copied out before the namespace (and the tmpfs with it) ends.
    links = ""
    for name in outside:
        (tmp_path / name).mkdir()
        links += f'ln -s {tmp_path / name} "$m/study/{name}"; '
    fill = ""
    if first is not None:
        fewer = [a if not a.startswith("budget.n_trials=") else f"budget.n_trials={first}" for a in args]
        run_first = shlex.join(
            [sys.executable, "-m", "tunetorch.tune", *fewer, "study.evaluate=false", f"study.dir={mnt}/study"]
        )
        fill = f'{run_first} > /dev/null || exit 98; dd if=/dev/zero of="$m/filler" bs=1k 2>/dev/null; '
    script = (
        'mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99; m=$2 k=$3; shift 3; '
        f'mkdir "$m/study"; {links}{fill}'
        '"$@"; rc=$?; cp -a "$m/study" "$k"; exit $rc'
    )
    full = in_namespace(
        script,
        size,
        str(mnt),
        str(kept),
        sys.executable,
        "-m",
        "tunetorch.tune",
        *args,
        f"study.dir={mnt}/study",
    )
    line = one_line(full, 1)
    assert line.startswith(f"error: study.dir: {mnt}/study") and needle in line, line
    assert "the same command resumes" in line, line
    before = finished(journal_rows(kept))  # the journal is readable, and holds what completed
    assert len(before) >= 1 and all(r[1] == "COMPLETE" for r in before), before
    assert not list((kept / "checkpoints").glob("*.tmp"))  # a half-written file holds no space

    out = run_in_process("tune", *args, f"study.dir={kept}")  # the same command on a disk with room
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{count(len(before), 'finished trial')} kept" in out.stdout and "test accuracy" in out.stdout
    after = journal_rows(kept)
    n = int(next(a for a in extra if a.startswith("budget.n_trials=")).split("=")[1])
    assert [r[1] for r in after] == ["COMPLETE"] * n
    assert set(before) <= set(after)  # every trial completed before the disk filled, untouched


def test_a_disk_too_full_for_a_new_study_leaves_nothing_on_it(namespaces, tmp_path):
    """A new study that cannot be written whole is not written at all: a half-made journal would
    be refused as foreign by the next run, instead of that run starting the study afresh."""
    mnt, left = tmp_path / "small-disk", tmp_path / "left.txt"
    mnt.mkdir()
    script = (
        'mount -t tmpfs -o size=40k tmpfs "$1" || exit 99; m=$1 l=$2; shift 2; '
        '"$@"; rc=$?; ls -A "$m" > "$l"; exit $rc'
    )
    out = in_namespace(
        script, str(mnt), str(left), sys.executable, "-m", "tunetorch.tune", *SHRINK, f"study.dir={mnt}/study"
    )
    line = one_line(out, 1)
    assert line.startswith(f"error: study.dir: {mnt}/study: the disk is full"), line
    assert left.read_text() == ""  # no study folder, no journal, no lock file


def _damage(path: Path, where: str) -> None:
    """Overwrite one whole page of the journal: the meta table's (page 2), or the middle one."""
    data = bytearray(path.read_bytes())
    page = 4096
    start = page if where == "meta page" else (len(data) // 2) // page * page
    data[start : start + page] = b"\xa5" * page
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["meta page", "middle page"])
def test_a_damaged_journal_is_one_line_and_left_byte_for_byte(where, existing, tmp_path):
    d = tmp_path / "study"
    shutil.copytree(existing, d)
    _damage(d / "journal.sqlite", where)
    db = sqlite3.connect(f"file:{d / 'journal.sqlite'}?mode=ro", uri=True)
    try:  # the premise: SQLite itself finds the file damaged
        assert db.execute("PRAGMA quick_check").fetchone()[0] != "ok"
    except sqlite3.DatabaseError:
        pass
    finally:
        db.close()
    before = snapshot(d)

    out = run_in_process("tune", *SHRINK, "budget.n_trials=3", f"study.dir={d}")
    line = one_line(out, 1)
    assert line.startswith(f"error: study.dir: {d / 'journal.sqlite'} is damaged") and "left as it is" in line
    assert snapshot(d) == before  # not repaired, not overwritten, nothing added

    from tests.test_evaluate import evaluate

    line = one_line(evaluate(d, "force=true"), 1)
    assert line.startswith(f"error: study.dir: {d / 'journal.sqlite'} is damaged") and "left as it is" in line
    assert snapshot(d) == before


@pytest.mark.parametrize("how", ["read-only mount", "immutable"])
def test_a_read_only_study_dir_is_an_environment_fault_and_resumes_once_writable(how, existing, tmp_path):
    """Tests run as root, which chmod does not stop: the folder is made read-only for real, by a
    read-only bind mount in a private namespace, or the immutable attribute (chattr +i)."""
    d = tmp_path / "study"
    shutil.copytree(existing, d)
    before = snapshot(d)
    args = [*_no_trials_arg(SHRINK), "budget.n_trials=3", "tuner.progress=false"]
    tune = [sys.executable, "-m", "tunetorch.tune", *args]
    if how == "read-only mount":
        if shutil.which("unshare") is None:
            pytest.skip("unshare (util-linux) is not installed")
        script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" || exit 99; shift; "$@"'
        resumed = in_namespace(script, str(d), *tune, f"study.dir={d}")
        made = in_namespace(script, str(d), *tune, f"study.dir={d}/new")
        if resumed.returncode == 99:
            pytest.skip(f"cannot mount in a private namespace here: {resumed.stderr.strip()[:200]}")
        reason = "is on a read-only file system"
    else:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(d)]).returncode != 0:
            pytest.skip("cannot make a folder immutable here (chattr +i)")
        try:
            resumed = run_in_process("tune", *args, f"study.dir={d}")
            made = run_in_process("tune", *args, f"study.dir={d}/new")
        finally:
            subprocess.run(["chattr", "-i", str(d)], check=True)
        reason = "is not writable"
    for out, target in ((resumed, d), (made, d / "new")):
        line = one_line(out, 1)
        assert line.startswith(f"error: study.dir: {target} cannot be written: {d} {reason}"), line
    assert snapshot(d) == before and not (d / "new").exists()

    out = run_in_process("tune", *args, f"study.dir={d}")  # writable again: the same command resumes
    assert out.returncode == 0 and "2 finished trials kept" in out.stdout, out.stdout + out.stderr
    assert [r[1] for r in journal_rows(d)] == ["COMPLETE"] * 3


@pytest.mark.parametrize("address", ["no.such.host:99999", "127.0.0.1:9"])
def test_a_refused_ray_backend_writes_nothing(address, tmp_path):
    """Every check of the backend comes before the study directory is made: Ray not installed,
    a port out of range, nothing answering at the address."""
    d = tmp_path / "new" / "study"
    out = run_tune(
        *SHRINK, "tuner.backend=ray", f"tuner.ray.address={address}", f"study.dir={d}", timeout=120
    )
    line = one_line(out, 2)
    assert line.startswith(("error: tuner.ray.address: ", "error: tuner.backend: 'ray' needs Ray")), line
    if address.endswith(":99999") and "needs Ray" not in line:  # refused before any name lookup
        assert "port 99999 is not 1..65535" in line, line
    assert not (tmp_path / "new").exists()
