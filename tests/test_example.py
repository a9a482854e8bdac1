"""The example user project (examples/my_project): its own model, data module and configs,
tuned by `python -m tunetorch.tune --config-dir conf ...` from its own folder, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT, run_in_process

PROJECT = ROOT / "examples" / "my_project"
ARGS = ["--config-dir", "conf", "model=my_net", "dataset=my_digits", "space=my_space", "tuner.devices=cpu"]

# Logs every call of the user's data module's test(), with the calling file, in every process.
SPY = textwrap.dedent(
    """
    import inspect, json, os
    import mypkg.data as d
    _test = d.NoisyDigits.test

    def test(self, *a, **k):
        with open(os.environ["TUNETORCH_SPY_LOG"], "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "caller": inspect.stack()[1].filename}) + "\\n")
        return _test(self, *a, **k)

    d.NoisyDigits.test = test
    """
)


def run_in_project(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tunetorch.tune", *ARGS, *args],
        cwd=PROJECT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_here(monkeypatch, *args: str) -> subprocess.CompletedProcess:
    """`run_in_project(*args)` through tune's main() in this process (conftest.run_in_process), with
    the project's folder on sys.path as `python -m` puts it there (and so on its workers')."""
    monkeypatch.syspath_prepend(str(PROJECT))
    return run_in_process("tune", *ARGS, *args, cwd=PROJECT)


def test_the_example_project_tunes_its_own_model_and_data_and_tests_once(tmp_path):
    (tmp_path / "spy").mkdir()
    (tmp_path / "spy" / "sitecustomize.py").write_text(SPY)
    log = tmp_path / "reads.jsonl"
    env = {
        "PYTHONPATH": os.pathsep.join([str(PROJECT), str(tmp_path / "spy")]),
        "TUNETORCH_SPY_LOG": str(log),
    }
    d = tmp_path / "study"
    out = run_in_project(
        "+strategy=bayes",
        "strategy.n_startup=2",
        "budget.n_trials=4",
        "trainer.epochs=2",
        "tuner.workers=2",
        f"study.dir={d}",
        env=env,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "mypkg.model.LeakyNet on mypkg.data.NoisyDigits" in out.stdout
    summary = json.loads((d / "summary.json").read_text())
    assert summary["n_trials"] == 4 and summary["n_failed"] == 0
    assert set(summary["best"]["params"]) == {
        "optimizer.lr",
        "model.slope",
        "model.hidden",
        "loss.label_smoothing",
    }
    assert summary["test_evaluations"] == 1 and 0.5 < summary["test"]["accuracy"] <= 1
    reads = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(reads) == 1 and reads[0]["caller"].endswith("tunetorch/evaluate.py"), reads


def test_a_metric_the_users_model_returns_can_be_the_score(tmp_path, monkeypatch):
    d = tmp_path / "study"
    out = run_here(
        monkeypatch,
        "study.metric=val_top2_accuracy",
        "budget.n_trials=2",
        "trainer.epochs=2",
        "study.evaluate=false",
        f"study.dir={d}",
    )
    assert out.returncode == 0, out.stderr + out.stdout
    from tunetorch.journal import Journal

    journal = Journal(d / "journal.sqlite")
    for t in journal.trials():
        epochs = journal.epochs(t.number)
        assert t.score == max(e["val_top2_accuracy"] for e in epochs)
        assert all(e["val_top2_accuracy"] >= e["val_accuracy"] for e in epochs)  # top-2 >= top-1


def test_the_users_options_compose_beside_tunetorchs_and_bad_ones_are_one_line(tmp_path, monkeypatch):
    d = tmp_path / "study"
    for args, message in [
        (["model=my_nett"], "model: 'my_nett' is not one of cnn, mlp, my_net, resnet18"),
        (["model._target_=mypkg.model.LeakyNett"], "did you mean mypkg.model.LeakyNet?"),
        (["+space.model.slopes={type:float,low:0.1,high:0.2}"], "space.model.slopes: model.slopes is not in"),
        (["+model.width=3"], "model.width: mypkg.model.LeakyNet takes no argument 'width'"),
    ]:
        out = run_here(monkeypatch, *args, f"study.dir={d}")  # the command's refusals: test_refusals.py
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and not d.exists()
