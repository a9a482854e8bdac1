"""A study directory is untrusted input (issue 19).

- Nothing named by a stored config is called before it is checked: each group's `_target_` must
  be a class of the kind the group expects, or evaluate refuses in one line, exit 2, having
  called nothing and journaled no look.
- A trial's weights are bound to the journal by their sha256: evaluate scores only weights the
  journal recorded for the best trial.
- The Study owns its identity: direction, metric, space, strategy and scheduler are written to
  its journal by the Study itself, so a study made through the Python API reports as it ran.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import SHRINK, run_in_process, run_tune
from tests.test_evaluate import evaluate, evaluate_here, looks, one_error_line
from tunetorch.errors import UsageError
from tunetorch.journal import Journal


@pytest.fixture
def study(unevaluated_study, tmp_path) -> Path:
    """A copy of a finished study of 3 one-epoch trials, not evaluated yet (tests/conftest.py)."""
    d = tmp_path / "study"
    shutil.copytree(unevaluated_study, d)
    return d


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit_stored_config(d: Path, group: str, node: dict) -> None:
    """What a hostile study directory holds: its journal's config changed behind tunetorch's back."""
    import yaml

    db = sqlite3.connect(d / "journal.sqlite")
    try:
        cfg = yaml.safe_load(db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
        cfg[group] = node
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (yaml.safe_dump(cfg),))
        db.commit()
    finally:
        db.close()


# --- 1. nothing from a study directory is called before it is checked ----------------------------
MLP = "tunetorch.training.models.MLP"


@pytest.mark.parametrize(
    "group, node, needle",
    [
        ("dataset", {"_target_": "os.makedirs", "name": "MARKER", "exist_ok": True}, "a data module"),
        ("model", {"_target_": "os.makedirs", "name": "MARKER", "exist_ok": True}, "torch.nn.Module"),
        ("model", {"_target_": "os.getcwd"}, "torch.nn.Module"),
        ("model", {"_target_": "builtins.print"}, "torch.nn.Module"),
        ("loss", {"_target_": "os.makedirs", "name": "MARKER", "exist_ok": True}, "torch.nn.Module"),
        (
            "optimizer",
            {"_target_": "os.makedirs", "_partial_": True, "name": "MARKER", "exist_ok": True},
            "torch.optim.Optimizer",
        ),
        (
            "lr_scheduler",
            {"_target_": "os.makedirs", "_partial_": True, "name": "MARKER", "exist_ok": True},
            "LRScheduler",
        ),
        # a function hidden one level down, where Hydra's recursive instantiation would reach it
        (
            "model",
            {"_target_": MLP, "hidden": {"_target_": "os.makedirs", "name": "MARKER", "exist_ok": True}},
            "model.hidden._target_",
        ),
    ],
)
def test_a_stored_target_that_is_not_its_groups_kind_is_never_called(study, tmp_path, group, node, needle):
    marker = tmp_path / "made-by-the-study-dir"
    node = {k: (str(marker) if v == "MARKER" else v) for k, v in node.items()}
    if isinstance(node.get("hidden"), dict):
        node["hidden"] = {k: (str(marker) if v == "MARKER" else v) for k, v in node["hidden"].items()}
    _edit_stored_config(study, group, node)
    # The first case as the command, in a process of its own; the rest through its main(), here.
    out = (evaluate if group == "dataset" else evaluate_here)(study, "force=true")
    line = one_error_line(out, 2, needle)
    target = node["hidden"]["_target_"] if isinstance(node.get("hidden"), dict) else node["_target_"]
    assert target in line and line.startswith(f"error: {group}.")
    assert not marker.exists(), "the study directory's target was called"
    assert out.stdout == ""  # builtins.print was not called either
    assert looks(study) == []


# --- 2. each trial's weights are bound to the journal ---------------------------------------------
def _recorded(d: Path) -> dict[int, str]:
    j = Journal(d / "journal.sqlite")
    try:
        return {t.number: j.weights_hash(t.number) for t in j.trials()}
    finally:
        j.close()


def test_every_trials_weights_are_recorded_with_their_sha256(study):
    recorded = _recorded(study)
    best = int((study / "best.trial").read_text())
    assert set(recorded) == {0, 1, 2} and all(h and len(h) == 64 for h in recorded.values())
    assert recorded[best] == sha256(study / "best.pt")


def _other_weights(path: Path) -> None:
    """Loadable weights of the right shapes that are not the trial's: every tensor moved by 1."""
    import torch

    state = torch.load(path, weights_only=True)
    torch.save({k: (v + 1 if v.is_floating_point() else v) for k, v in state.items()}, path)


def test_weights_the_journal_did_not_record_are_refused_and_no_look_is_spent(study):
    shutil.rmtree(study / "checkpoints")
    _other_weights(study / "best.pt")
    out = evaluate_here(study, "force=true")
    one_error_line(out, 2, f"study.dir: {study / 'best.pt'}", "sha256", "journal")
    assert looks(study) == [] and "test accuracy" not in out.stdout


def test_weights_are_restored_only_from_a_checkpoint_the_journal_recorded(study):
    best = int((study / "best.trial").read_text())
    checkpoint = study / "checkpoints" / f"trial_{best:04d}.pt"
    recorded = _recorded(study)[best]
    _other_weights(study / "best.pt")
    out = evaluate_here(study)  # the checkpoint is the trial's own: best.pt is restored from it
    assert out.returncode == 0 and "restored the best trial" in out.stdout, out.stdout + out.stderr
    assert sha256(study / "best.pt") == recorded == looks(study)[0]["weights_hash"]

    _other_weights(study / "best.pt")
    _other_weights(checkpoint)  # neither file is the trial's now: refused
    one_error_line(evaluate_here(study, "force=true"), 2, "sha256", "journal")
    assert len(looks(study)) == 1


def test_a_journal_of_the_layout_without_weight_hashes_is_refused_in_one_line(study):
    db = sqlite3.connect(study / "journal.sqlite")
    db.execute("UPDATE meta SET value = 'tunetorch-journal/2' WHERE key = 'format'")
    db.commit()
    db.close()
    one_error_line(evaluate_here(study, "force=true"), 2, "older tunetorch layout (tunetorch-journal/2)")


# --- 3. the study owns its identity ----------------------------------------------------------------
SPACE = {"x": {"type": "float", "low": 0.0, "high": 10.0}}


def test_a_python_api_study_that_minimises_reports_its_lowest_score_as_best(tmp_path):
    from tunetorch import SearchSpace, Study
    from tunetorch.reports import write_reports

    journal = Journal(tmp_path / "journal.sqlite")
    study = Study(SearchSpace.from_dict(SPACE), seed=0, journal=journal, direction="minimize", metric="loss")
    for score in (3.0, 0.137, 31.49, 1.5):
        study.tell(study.ask(), score)
    summary = write_reports(tmp_path, journal)
    journal.close()
    assert study.best.number == 1
    assert summary["best"]["trial"] == 1 and summary["best"]["val_score"] == pytest.approx(0.137)
    assert summary["direction"] == "minimize" and summary["metric"] == "loss"
    assert summary["strategy"] == "random"


def test_a_study_reopened_with_another_identity_is_refused_naming_the_key(tmp_path):
    from tunetorch import SearchSpace, Study

    journal = Journal(tmp_path / "journal.sqlite")
    space = SearchSpace.from_dict(SPACE)
    study = Study(space, seed=0, journal=journal, direction="minimize")
    study.tell(study.ask(), 1.0)
    again = Study(space, seed=0, journal=journal, direction="minimize")  # the same study: resumed
    assert [t.score for t in again.trials] == [1.0]
    for kwargs, key in (
        ({"direction": "maximize"}, "direction: 'minimize' -> 'maximize'"),
        ({"direction": "minimize", "metric": "loss"}, "metric: 'score' -> 'loss'"),
        ({"direction": "minimize", "strategy": "grid"}, "strategy: 'random' -> 'grid'"),
        ({"direction": "minimize", "scheduler": "median"}, "scheduler: 'none' -> 'median'"),
    ):
        with pytest.raises(UsageError, match=key):
            Study(space, seed=0, journal=journal, **kwargs)
    other = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 5.0}})
    with pytest.raises(UsageError, match="space"):
        Study(other, seed=0, journal=journal, direction="minimize")
    assert json.loads(journal.get_meta("space")) == space.to_dict()
    journal.close()


# --- 4. a finished trial whose hash was never journaled: back-filled on resume ----------------------
KILL_BEFORE_HASH = """
import os, signal
import tunetorch.journal as j
_record = j.Journal.record_weights

def record_weights(self, trial, sha256):
    if trial == int(os.environ["TUNETORCH_TEST_KILL_BEFORE_HASH"]):
        os.kill(os.getpid(), signal.SIGKILL)  # the trial is journaled COMPLETE; its hash is not
    return _record(self, trial, sha256)

j.Journal.record_weights = record_weights
"""
TWO_TRIALS = [*(a for a in SHRINK if not a.startswith("budget.n_trials=")), "budget.n_trials=2"]


@pytest.fixture(scope="module")
def killed_before_hash(tmp_path_factory) -> Path:
    """A tuner SIGKILLed after trial 0 (the best, seed 0) was journaled as complete and before the
    sha256 of its weights was: checkpoints/trial_0000.pt is there, its hash is not."""
    tmp = tmp_path_factory.mktemp("killed_before_hash")
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(KILL_BEFORE_HASH)
    env = {"PYTHONPATH": str(site), "TUNETORCH_TEST_KILL_BEFORE_HASH": "0"}
    d = tmp / "study"
    out = run_tune(*TWO_TRIALS, f"study.dir={d}", env=env)
    assert out.returncode == -9, out.stdout + out.stderr
    return d


@pytest.mark.parametrize("checkpoint", ["kept", "lost"])
def test_a_trial_journaled_without_its_weights_hash_is_back_filled_from_its_own_file(
    checkpoint, killed_before_hash, tmp_path
):
    """The rule (tune.backfill_weights): on resume, a finished trial without a recorded sha256 gets
    that of checkpoints/trial_NNNN.pt, the file its worker wrote; without the file it stays
    unrecorded, and evaluating it is refused (one line, no look spent)."""
    d = tmp_path / "study"
    shutil.copytree(killed_before_hash, d)
    file = d / "checkpoints" / "trial_0000.pt"
    assert _recorded(d) == {0: None} and file.is_file()
    written = sha256(file)
    if checkpoint == "lost":
        file.unlink()

    out = run_in_process("tune", *TWO_TRIALS, f"study.dir={d}")  # the resume (the kill needed a process)
    recorded = _recorded(d)
    if checkpoint == "kept":
        assert out.returncode == 0 and "test accuracy" in out.stdout, out.stdout + out.stderr
        assert recorded[0] == written == looks(d)[0]["weights_hash"] == sha256(d / "best.pt")
        assert recorded[1] is not None
    else:
        one_error_line(out, 2, "the journal records no sha256 of the best trial 0's weights")
        assert recorded[0] is None and looks(d) == []
