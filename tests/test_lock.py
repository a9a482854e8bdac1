"""One study, one writer: StudyLock with real processes, real contention and real SIGKILLs."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHRINK, run_in_process
from tunetorch.errors import EnvironmentFault, UsageError
from tunetorch.journal import Journal
from tunetorch.lock import LOCK_FILE, StudyLock

HOLD = textwrap.dedent(
    """
    import sys, time
    from tunetorch.lock import StudyLock
    with StudyLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
    """
)


def _python(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True, **kw)


@pytest.fixture
def holder():
    """holder(study_dir) -> a live process that holds the study's lock; killed at the end."""
    procs = []

    def start(study_dir: Path) -> subprocess.Popen:
        p = _python("-c", HOLD, str(study_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(p)
        assert p.stdout.readline().strip() == "locked", p.stderr.read()
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))}


def _study(d: Path) -> Path:
    d.mkdir()
    j = Journal(d / "journal.sqlite")
    j.set_meta("direction", "maximize")
    j.close()
    return d


def test_a_second_lock_is_refused_naming_the_holder(tmp_path):
    with StudyLock(tmp_path) as lock:
        assert lock.held and (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(UsageError) as e:
            StudyLock(tmp_path).acquire()
        assert str(e.value) == (
            f"study.dir: {tmp_path} is in use by pid {os.getpid()} (a running tune, race or evaluate); "
            "wait for it or use another study.dir"
        )
    # released: the lock file is gone and the next holder takes it at once
    assert not (tmp_path / LOCK_FILE).exists()
    with StudyLock(tmp_path):
        pass


def test_another_process_is_refused_with_the_holders_pid_and_exit_2(tmp_path, holder):
    d = _study(tmp_path / "s")
    p = holder(d)
    before = _snapshot(d)
    out = subprocess.run(
        [sys.executable, "-m", "tunetorch.evaluate", f"study.dir={d}", "force=true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out
    assert out.stderr.strip().splitlines() == [
        f"error: study.dir: {d} is in use by pid {p.pid} (a running tune, race or evaluate); "
        "wait for it or use another study.dir"
    ]
    assert _snapshot(d) == before  # nothing written, not even the journal's WAL
    assert Journal(d / "journal.sqlite").evaluations() == []


def test_sigkill_leaves_no_stale_lock(tmp_path, holder):
    p = holder(tmp_path)
    with pytest.raises(UsageError, match=f"in use by pid {p.pid} "):
        StudyLock(tmp_path).acquire()
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(p.pid)  # the file stays, the lock does not
    with StudyLock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_processes_started_at_the_same_instant_get_one_lock(tmp_path):
    """Eight processes try at the same moment, again and again, on a new directory; at each
    moment exactly one holds it, the others are refused naming a pid."""
    script = textwrap.dedent(
        """
        import sys, time
        from tunetorch.errors import EnvironmentFault, UsageError
        from tunetorch.lock import StudyLock
        start = float(sys.argv[2])
        for k in range(5):
            while time.time() < start + k * 0.4:
                time.sleep(0.001)
            try:
                with StudyLock(sys.argv[1], create=True):
                    print(k, "held", flush=True)
                    time.sleep(0.2)
            except UsageError as e:
                print(k, "refused", str(e).split("pid ")[1].split()[0], flush=True)
        """
    )
    d = tmp_path / "new" / "study"
    start = time.time() + 3.0  # time for the interpreters to start
    procs = [_python("-c", script, str(d), str(start), stdout=subprocess.PIPE) for _ in range(8)]
    lines = [line.split() for p in procs for line in p.communicate(timeout=60)[0].splitlines()]
    assert len(lines) == 8 * 5
    for k in range(5):
        at_k = [line[1:] for line in lines if line[0] == str(k)]
        assert sorted(x[0] for x in at_k) == ["held"] + ["refused"] * 7, at_k
    pids = {str(p.pid) for p in procs}
    assert all(line[2] in pids for line in lines if line[1] == "refused")
    # Made for the runs and left without a file. (Usually removed as well; a process that made
    # the lock file again just as its maker removed the directory may leave it, empty.)
    assert [p for p in tmp_path.rglob("*") if not p.is_dir()] == []


def test_a_lock_on_a_file_its_holder_just_removed_is_taken_again(tmp_path, monkeypatch):
    """B opens study.lock; before B locks it, holder A releases and removes it. B must not
    end up holding a lock on the removed file (C would then lock a new one beside it)."""
    import fcntl

    a = StudyLock(tmp_path)
    a.acquire()
    real = fcntl.flock
    released = []

    def flock(fd, op):
        if op & fcntl.LOCK_EX and not released:
            released.append(fd)
            a.release()  # between B's open and B's flock
        return real(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    b = StudyLock(tmp_path)
    b.acquire()
    monkeypatch.setattr(fcntl, "flock", real)
    assert released and (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    with pytest.raises(UsageError, match="is in use by pid"):
        StudyLock(tmp_path).acquire()
    b.release()


def test_a_new_directory_is_removed_again_only_when_nothing_was_written(tmp_path):
    d = tmp_path / "a" / "b"
    with StudyLock(d, create=True):
        assert d.is_dir()
    assert not (tmp_path / "a").exists()
    with StudyLock(d, create=True):
        (d / "journal.sqlite").write_text("")
    assert sorted(p.name for p in d.iterdir()) == ["journal.sqlite"]
    with pytest.raises(UsageError, match="does not exist"):
        StudyLock(tmp_path / "missing").acquire()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="exists and is not a directory"):
        StudyLock(tmp_path / "file").acquire()


def test_an_unwritable_directory_is_an_environment_fault(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    if not _make_immutable(d):
        pytest.skip("cannot make a directory unwritable here (root without chattr)")
    try:
        with pytest.raises(
            EnvironmentFault, match=f"study.dir: {d} is not writable: cannot create its lock file"
        ):
            StudyLock(d).acquire()
    finally:
        _make_mutable(d)


def test_a_tune_on_a_locked_study_is_refused(tmp_path, holder):
    d = tmp_path / "s"
    d.mkdir()
    p = holder(d)
    before = _snapshot(d)
    out = run_in_process("tune", *SHRINK, "budget.n_trials=1", f"study.dir={d}")
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"is in use by pid {p.pid}" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert _snapshot(d) == before


def _make_immutable(path: Path) -> bool:
    """chattr +i (works for root); chmod for other users."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        return True
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0


def _make_mutable(path: Path) -> None:
    if os.geteuid() != 0:
        path.chmod(0o755)
    else:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
