"""The race under real faults, no mocks: `python -m tunetorch.race` killed with SIGKILL in the middle
of an entrant (while its scheduler is stopping trials at rungs) and again while it draws the figure,
then re-run. Nothing finished may be lost, a changed re-run is refused in one line before anything
is written, and the same command ends with the race an uninterrupted run leaves."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, run_in_process
from tests.test_faults import kill_while_a_trial_runs

# Every rung scheduler on the landscape, in process, each in its own entrant; bayes+median first
# stops a trial once 2 trials completed. 10 trials an entrant, a small heatmap: seconds a race.
ENTRANTS = ["random+hyperband", "bayes+median", "grid", "bayes+asha"]
RACE = [
    "landscape=bumpy",
    f"race.strategies=[{','.join(ENTRANTS)}]",
    "budget.n_trials=10",
    "+race.options.median.n_startup_trials=2",
    "race.heatmap_resolution=30",
]


def start_race(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tunetorch.race", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(study_dir: Path) -> list[tuple]:
    """(number, state, score, params, updated) per trial of an entrant, read without disturbing the
    race; `updated` is when the row was last written, so a trial run again is not the one kept."""
    path = study_dir / "journal.sqlite"
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            query = "SELECT number, state, score, params, updated FROM trials ORDER BY number"
            return db.execute(query).fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:  # not yet made
        return []


def finished(study_dir: Path) -> list[tuple]:
    return [r for r in rows(study_dir) if r[1] in ("COMPLETE", "PRUNED", "FAIL")]


def kill_when(proc: subprocess.Popen, predicate, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the race ended before the kill ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the race to get there")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def snapshot(d: Path) -> dict[str, str]:
    """Every file of the race directory and its hash (the SQLite shared-memory index aside)."""
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm")
    }


def test_sigkill_mid_rung_and_mid_drawing_then_the_same_command_ends_with_the_uninterrupted_race(tmp_path):
    d = tmp_path / "race"
    # 1. Killed in bayes+median once it has stopped a trial at a rung, while a later trial of it
    # runs (a resume must run that one again): random+hyperband is done, bayes+median part way,
    # grid and bayes+asha not started. A landscape's trial is RUNNING for milliseconds, between
    # suggestions that take far longer: looked for every half millisecond.
    proc = start_race(*RACE, f"study.dir={d}")
    ready = lambda rows: any(r[1] == "PRUNED" for r in rows)  # noqa: E731
    kill_while_a_trial_runs(proc, d / "bayes+median", ready, timeout=180, poll=0.0005)
    kept = {name: finished(d / name) for name in ENTRANTS}
    assert len(kept["random+hyperband"]) == 10 and 0 < len(kept["bayes+median"]) < 10, kept
    assert not (d / "race.json").exists()
    # the uninterrupted race to compare with, in this process: the runs under test are the commands
    ref = tmp_path / "reference"
    out = run_in_process("race", *RACE, f"study.dir={ref}")
    assert out.returncode == 0, out.stderr + out.stdout
    reference = {name: [r[:4] for r in rows(ref / name)] for name in ENTRANTS}
    for name in ("random+hyperband", "bayes+median", "bayes+asha"):  # each scheduler stopped trials
        assert any(r[1] == "PRUNED" for r in reference[name]), name

    # 2. A changed re-run is refused in one line naming the key, before anything is written: an
    # option of the entrant that was cut short, and the landscape of every entrant so far.
    before = snapshot(d)
    changes = [
        ("+race.options.median.n_warmup_steps=1", "a different study (scheduler.n_warmup_steps: 0 -> 1)"),
        ("landscape.noise=0.01", "a race on a different landscape (landscape.noise: 0.0 -> 0.01)"),
    ]
    for change, message in changes:
        out = run_in_process("race", *RACE, change, f"study.dir={d}")  # as a command: test_race.py
        assert out.returncode == 2, out.stderr + out.stdout
        assert out.stderr.startswith("error: ") and message in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        assert snapshot(d) == before

    # 3. The same command resumes; killed again once every entrant is done, while it draws.
    proc = start_race(*RACE, f"study.dir={d}")
    kill_when(proc, lambda: len(finished(d / "bayes+asha")) == 10)
    assert not (d / "race.json").exists()  # the figure, the GIF and race.json come after the entrants
    for name in ENTRANTS:
        assert set(kept[name]) <= set(finished(d / name)), name
        kept[name] = finished(d / name)

    # 4. Once more: it ends, with every trial finished before either kill kept as it was, and the
    # race an uninterrupted run leaves, trial for trial and in race.json.
    out = run_in_process("race", *RACE, f"study.dir={d}")  # the command's own exit: test_race.py
    assert out.returncode == 0, out.stderr + out.stdout
    for name in ENTRANTS:
        assert set(kept[name]) <= set(rows(d / name)), name
        assert [r[:4] for r in rows(d / name)] == reference[name], name
    assert json.loads((d / "race.json").read_text()) == json.loads((ref / "race.json").read_text())
    assert (d / "race.png").stat().st_size > 20_000 and (d / "race.gif").is_file()
