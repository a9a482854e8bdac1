"""One recorded look: `python -m tunetorch.evaluate` on real studies, with real SIGKILLs.

A `sitecustomize` module on PYTHONPATH logs every read of the test split (a data module's
`test()`) and, when TUNETORCH_TEST_KILL_AT names a moment, sends the process SIGKILL there:

    after_start       the look is journaled as started; the split is not read yet
    after_split       the split was read
    before_complete   the split was read and scored; the result is not journaled yet
    best_copy         (in tune) a new best is journaled, best.pt is about to be replaced
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHRINK, run_in_process, run_tune
from tunetorch.errors import UsageError
from tunetorch.evaluate import evaluate_best, evaluation_is_stale
from tunetorch.journal import Journal
from tunetorch.trial import Trial, TrialState

SITE = textwrap.dedent(
    """
    import json, os, signal
    from pathlib import Path

    LOG, KILL_AT = os.environ["TUNETORCH_SPY_LOG"], os.environ.get("TUNETORCH_TEST_KILL_AT")

    def _log(what):
        with open(LOG, "a") as f:
            f.write(json.dumps({"what": what, "pid": os.getpid()}) + "\\n")

    def _kill(moment):
        if KILL_AT == moment:
            _log("killed " + moment)
            os.kill(os.getpid(), signal.SIGKILL)

    import tunetorch.journal as j
    _start, _complete = j.Journal.start_evaluation, j.Journal.complete_evaluation

    def start_evaluation(self, *a, **k):
        out = _start(self, *a, **k)
        _kill("after_start")
        return out

    def complete_evaluation(self, *a, **k):
        _kill("before_complete")
        return _complete(self, *a, **k)

    j.Journal.start_evaluation, j.Journal.complete_evaluation = start_evaluation, complete_evaluation

    import tunetorch.training.datasets as d
    _test = d.ImageData.test

    def test(self, *a, **k):
        _log("data.test")
        out = _test(self, *a, **k)
        _kill("after_split")
        return out

    d.ImageData.test = test

    import shutil
    _copyfile = shutil.copyfile

    def copyfile(src, dst, *a, **k):
        dst_ = Path(dst)
        if dst_.name == "best.pt.tmp" and (dst_.parent / "best.trial").exists():
            _kill("best_copy")
        return _copyfile(src, dst, *a, **k)

    shutil.copyfile = copyfile
    """
)


@pytest.fixture
def study(unevaluated_study, tmp_path) -> Path:
    """A copy of a finished study of 3 one-epoch trials, not evaluated yet (tests/conftest.py)."""
    d = tmp_path / "study"
    shutil.copytree(unevaluated_study, d)
    return d


@pytest.fixture
def spy(tmp_path):
    """spy.env(kill_at=None) -> the environment that loads the sitecustomize; spy.reads() -> log."""

    class Spy:
        log = tmp_path / "spy.jsonl"

        def env(self, kill_at: str | None = None) -> dict[str, str]:
            site = tmp_path / "site"
            site.mkdir(exist_ok=True)
            (site / "sitecustomize.py").write_text(SITE)
            env = {
                "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
                "TUNETORCH_SPY_LOG": str(self.log),
            }
            if kill_at:
                env["TUNETORCH_TEST_KILL_AT"] = kill_at
            return env

        def reads(self) -> list[str]:
            if not self.log.exists():
                return []
            return [json.loads(line)["what"] for line in self.log.read_text().splitlines()]

    return Spy()


def evaluate(d: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tunetorch.evaluate", f"study.dir={d}", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def evaluate_here(d: Path, *args: str) -> subprocess.CompletedProcess:
    """`evaluate(d, *args)` through the command's main() in this process (conftest.run_in_process),
    for the cases that need no spy and no kill: the same exit status, stdout and stderr."""
    return run_in_process("evaluate", f"study.dir={d}", *args)


def looks(d: Path) -> list[dict]:
    j = Journal(d / "journal.sqlite")
    try:
        return j.evaluations()
    finally:
        j.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(d: Path) -> dict[str, str]:
    """Every file's hash, but the lock file's: a killed tuner leaves study.lock behind (the OS
    released the lock itself), and the next holder removes it on release; it holds no study data."""
    return {
        str(p.relative_to(d)): sha256(p)
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name != "study.lock"
    }


def one_error_line(out: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == code and len(lines) == 1, out.stdout + out.stderr
    assert lines[0].startswith("error: ") and all(n in lines[0] for n in needles), lines[0]
    return lines[0]


# --- one look, recorded before and after -------------------------------------------------
def test_a_look_is_started_then_completed_and_a_second_is_forced(study, spy):
    out = evaluate(study, env=spy.env())
    assert out.returncode == 0, out.stderr
    [look] = looks(study)
    assert look["status"] == "completed" and look["forced"] is False
    assert look["weights_hash"] == sha256(study / "best.pt") and len(look["test_hash"]) == 64
    assert 0.0 <= look["accuracy"] <= 1.0 and look["loss"] > 0
    assert spy.reads() == ["data.test"]

    before = snapshot(study)
    one_error_line(evaluate(study, env=spy.env()), 2, "force:", "already evaluated", "pass force=true")
    assert snapshot(study) == before and spy.reads() == ["data.test"]  # refused: nothing read or written

    out = evaluate_here(study, "force=true")
    assert out.returncode == 0 and "FORCED" in out.stdout, out.stderr
    assert [(e["status"], e["forced"]) for e in looks(study)] == [("completed", False), ("completed", True)]
    summary = json.loads((study / "summary.json").read_text())
    assert summary["test_evaluations"] == 2 and summary["test_forced"] is True
    assert summary["test"]["forced"] is True and summary["test"]["status"] == "completed"


@pytest.mark.parametrize("moment", ["after_start", "after_split", "before_complete"])
def test_a_look_killed_half_way_still_counts(study, spy, moment):
    """SIGKILL after the start is journaled, after the split was read, after it was scored:
    each leaves a started look, so the next needs force=true and is flagged."""
    out = evaluate(study, env=spy.env(kill_at=moment))
    assert out.returncode == -9, out.stdout + out.stderr
    assert spy.reads()[-1] == f"killed {moment}"
    [look] = looks(study)
    assert look["status"] == "started" and look["forced"] is False and look["accuracy"] is None
    assert look["weights_hash"] == sha256(study / "best.pt")

    one_error_line(evaluate_here(study), 2, "started and never completed", "pass force=true")
    assert len(looks(study)) == 1

    out = evaluate_here(study, "force=true")
    assert out.returncode == 0 and "FORCED" in out.stdout, out.stderr
    assert [(e["status"], e["forced"]) for e in looks(study)] == [("started", False), ("completed", True)]
    summary = json.loads((study / "summary.json").read_text())
    assert summary["test_evaluations"] == 2 and summary["test_forced"] is True


# --- best.pt holds the best trial's weights ----------------------------------------------
@pytest.fixture(scope="module")
def killed_before_best_copy(tmp_path_factory) -> Path:
    """A tuner SIGKILLed after a new best trial was journaled and before best.pt was replaced:
    best.pt and best.trial still hold the previous best (of another depth, seed 1)."""
    tmp = tmp_path_factory.mktemp("killed")
    d = tmp / "study"
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE)
    env = {
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "TUNETORCH_SPY_LOG": str(tmp / "spy.jsonl"),
        "TUNETORCH_TEST_KILL_AT": "best_copy",
    }
    out = run_tune(*SHRINK, "study.seed=1", "study.evaluate=false", f"study.dir={d}", env=env)
    assert out.returncode == -9, "the best never changed, so the tuner was not killed:\n" + out.stdout
    return d


def _best_number(d: Path) -> int:
    from tunetorch.history import best_trial

    j = Journal(d / "journal.sqlite")
    try:
        return best_trial(j.trials(), j.get_meta("direction") or "maximize").number
    finally:
        j.close()


def test_best_pt_of_another_trial_is_restored_from_the_checkpoint(killed_before_best_copy, tmp_path):
    d = tmp_path / "study"
    shutil.copytree(killed_before_best_copy, d)
    best = _best_number(d)
    stale = int((d / "best.trial").read_text())
    checkpoint = d / "checkpoints" / f"trial_{best:04d}.pt"
    assert stale != best and checkpoint.is_file() and sha256(d / "best.pt") != sha256(checkpoint)

    out = evaluate_here(d)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"best.pt held trial {stale}'s weights; restored the best trial {best}'s" in out.stdout
    [look] = looks(d)
    assert look["trial"] == best and look["weights_hash"] == sha256(checkpoint) == sha256(d / "best.pt")
    assert (d / "best.trial").read_text().strip() == str(best)


def test_best_pt_of_another_trial_without_its_checkpoint_is_refused(killed_before_best_copy, tmp_path):
    d = tmp_path / "study"
    shutil.copytree(killed_before_best_copy, d)
    best = _best_number(d)
    (d / "checkpoints" / f"trial_{best:04d}.pt").unlink()
    stale = int((d / "best.trial").read_text())
    before = snapshot(d)
    one_error_line(
        evaluate_here(d), 2, f"holds the weights of trial {stale}, not of the best trial {best}", "is missing"
    )
    assert snapshot(d) == before and looks(d) == []


def test_a_truncated_best_pt_is_restored_or_refused(study):
    best_pt = study / "best.pt"
    checkpoints = list((study / "checkpoints").glob("trial_*.pt"))
    assert len(checkpoints) == 1 and sha256(checkpoints[0]) == sha256(best_pt)
    best_pt.write_bytes(best_pt.read_bytes()[:100])
    out = evaluate_here(study)
    assert out.returncode == 0 and "differed from the trial's checkpoint" in out.stdout, out.stderr
    assert sha256(best_pt) == sha256(checkpoints[0]) == looks(study)[0]["weights_hash"]

    # without the checkpoint to restore from: refused, and no look is spent
    shutil.rmtree(study / "checkpoints")
    best_pt.write_bytes(best_pt.read_bytes()[:100])
    one_error_line(evaluate_here(study, "force=true"), 2, f"study.dir: {best_pt} is unreadable (truncated")
    assert len(looks(study)) == 1


# --- bad input and an unwritable study: one line, nothing read ---------------------------
@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["device=foo"], 2, "device: 'foo' is not one of cpu, cuda, cuda:N"),
        (["device=cuda:0"], 2, "device: 'cuda:0' but no CUDA GPU is visible"),
        (["force=off"], 2, "force: 'off' must be true or false"),
        (["force=no"], 2, "force: 'no' must be true or false"),
        (["force='false'"], 2, "force: \"'false'\" must be true or false"),
        (["verbose"], 2, "'verbose': not an option; usage:"),
        (["seed=1"], 2, "seed: not an option; allowed: study.dir, force, device"),
    ],
)
def test_bad_options_are_one_line_and_read_nothing(study, monkeypatch, capsys, args, code, needle):
    from tunetorch import evaluate as entry
    from tunetorch.training.datasets import ImageData

    if args == ["device=cuda:0"]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA GPU is visible")
    monkeypatch.setattr(ImageData, "test", lambda *a, **k: pytest.fail("the test split was read"))
    before = snapshot(study)
    assert entry.main([f"study.dir={study}", *args]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert snapshot(study) == before


def test_an_empty_study_dir_is_refused_by_the_command(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tunetorch.evaluate", "study.dir=", "force=off"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    one_error_line(out, 2, "study.dir: missing or empty")
    assert list(tmp_path.iterdir()) == []


def _chattr(path: Path, flag: str) -> bool:
    if os.geteuid() != 0:
        path.chmod(0o555 if flag == "+i" else 0o755)
        return True
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.mark.parametrize("what", ["directory", "journal"])
def test_an_unwritable_study_is_an_environment_fault_and_the_split_is_not_read(study, spy, what):
    """The start of the look cannot be recorded: exit 1, one line, and the test split unread."""
    target = study if what == "directory" else study / "journal.sqlite"
    if not _chattr(target, "+i"):
        pytest.skip("cannot make files immutable here")
    try:
        out = evaluate(study, env=spy.env())
    finally:
        _chattr(target, "-i")
    needle = "is not writable: cannot create its lock file" if what == "directory" else "cannot be written"
    one_error_line(out, 1, f"study.dir: {study}", needle)
    assert spy.reads() == [] and looks(study) == []


# --- a stale evaluation: the best changed after the look ---------------------------------
def _trial(number: int, score: float) -> Trial:
    return Trial(number=number, params={"x": number}, state=TrialState.COMPLETE, score=score, epochs=1)


def test_an_evaluation_of_a_trial_that_is_no_longer_the_best_is_stale(tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    j.put_trial(_trial(0, 0.5))
    assert not evaluation_is_stale(j)
    look = j.start_evaluation(0, "w" * 64, forced=False)
    assert not evaluation_is_stale(j)  # only a completed look has a result that can be stale
    j.complete_evaluation(look, {"val_loss": 0.3, "val_accuracy": 0.9}, 0.9, "t" * 64)
    assert not evaluation_is_stale(j)
    j.put_trial(_trial(1, 0.8))  # the study was extended and found a better trial
    assert evaluation_is_stale(j)
    with pytest.raises(UsageError, match="the best is now trial 1, so that result belongs to a trial"):
        evaluate_best(tmp_path, j)
    j.set_meta("direction", "minimize")  # lower is better: trial 0 is the best again
    assert not evaluation_is_stale(j)
    with pytest.raises(ValueError):
        j.complete_evaluation(
            look, {"val_accuracy": 0.1}, 0.1, "t" * 64
        )  # a completed look is never rewritten


def test_a_folder_that_is_not_a_study_gets_nothing_written(tmp_path, capsys):
    from tunetorch import evaluate as entry

    assert entry.main([f"study.dir={tmp_path}"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: study.dir: {tmp_path} holds no journal.sqlite; is it a study directory?"
    )
    assert list(tmp_path.iterdir()) == []  # not even a lock file
    assert entry.main([f"study.dir={tmp_path / 'missing'}"]) == 2
    assert capsys.readouterr().err.strip() == f"error: study.dir: {tmp_path / 'missing'} does not exist"


# --- a data module whose test() raises ---------------------------------------------------
BROKEN = ["--config-dir", str(ROOT / "tests" / "_broken_conf"), "dataset=broken_test"]


def test_a_data_module_whose_test_raises_is_one_line_and_the_look_stays_started(tmp_path):
    """tests/_broken_data.py: the digits, with test() raising ValueError. The end of tune and a
    forced evaluate each say so in one line (exit 1), naming the module; each look stays
    journaled as started, never completed, and counts: the next evaluate needs force=true."""
    d = tmp_path / "study"
    shrink = [a for a in SHRINK if not a.startswith(("budget.n_trials=", "dataset="))]
    out = run_in_process("tune", *shrink, *BROKEN, "budget.n_trials=2", f"study.dir={d}")
    line = one_error_line(
        out,
        1,
        "error: dataset.test() raised ValueError: the test split's labels file is corrupt",
        "(data module tests._broken_data.BrokenTestDigits)",
        "stays journaled as started",
        f"study.dir={d} force=true",
    )
    assert "Traceback" not in out.stderr, line
    trials = Journal(d / "journal.sqlite").trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # the search's work is kept
    [look] = looks(d)
    assert look["status"] == "started" and look["forced"] is False and look["accuracy"] is None
    summary = json.loads((d / "summary.json").read_text())  # rewritten: it shows the look
    assert summary["test"] is None and summary["test_evaluations"] == 1 and summary["test_incomplete"] == 1

    one_error_line(evaluate_here(d), 2, "started and never completed", "pass force=true")
    assert len(looks(d)) == 1
    one_error_line(
        evaluate_here(d, "force=true"), 1, "error: dataset.test() raised ValueError", "BrokenTestDigits"
    )
    assert [(e["status"], e["forced"]) for e in looks(d)] == [("started", False), ("started", True)]
