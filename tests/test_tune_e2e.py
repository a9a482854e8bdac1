"""End to end: `python -m tunetorch.tune` and `python -m tunetorch.evaluate` as subprocesses."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._report_studies import REAL_ARGS, REAL_TRIALS, real_study
from tests.conftest import ROOT, SHRINK, run_in_process, run_tune
from tests.test_race import largest_pile


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One small real study (no +strategy: the default; 6 trials of 2 epochs), made once for the
    session and read by the report tests too: the checks below copy it before changing it."""
    return real_study(tmp_path_factory)


def test_the_study_directory(study):
    d, stdout = study
    assert "strategy random (the default" in stdout
    assert "test accuracy" in stdout
    summary = json.loads((d / "summary.json").read_text())
    assert summary["strategy"] == "random" and summary["n_trials"] == REAL_TRIALS and summary["n_failed"] == 0
    assert {"params", "val_score", "trial", "epochs", "best_epoch"} <= set(summary["best"]) and 0 < summary[
        "best"
    ]["val_score"] <= 1
    assert summary["gpu_minutes"] > 0 and summary["device_unit"] == "CPU minutes"
    assert 0.5 < summary["test"]["accuracy"] <= 1 and summary["test"]["loss"] > 0
    assert summary["test_evaluations"] == 1 and summary["test_forced"] is False
    rows = list(csv.DictReader((d / "trials.csv").open()))
    assert [r["number"] for r in rows] == [str(n) for n in range(REAL_TRIALS)]
    assert {
        "optimizer.lr",
        "optimizer.weight_decay",
        "model.dropout",
        "model.depth",
        "state",
        "val_score",
        "device",
        "device_seconds",
    } <= set(rows[0])
    assert all(r["state"] == "COMPLETE" and r["device"] == "cpu" for r in rows)
    for name in ("journal.sqlite", "best.pt", "config.yaml", "progress.png", "params.png"):
        assert (d / name).is_file(), name
    assert not (ROOT / "outputs").exists() and not (d / ".hydra").exists()
    for n in range(REAL_TRIALS):
        assert list((d / "tb" / f"trial_{n:04d}").glob("events.out.tfevents.*"))
    assert list((d / "tb" / "study").glob("events.out.tfevents.*"))


def test_tensorboard_holds_live_curves_hparams_and_the_study_cards(study):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    d, _ = study
    summary = json.loads((d / "summary.json").read_text())
    for n in range(REAL_TRIALS):
        run = EventAccumulator(str(d / "tb" / f"trial_{n:04d}"), size_guidance={"tensors": 0}).Reload()
        scalars = set(run.Tags()["scalars"])
        curves = {"trial/train_loss", "trial/val_loss", "trial/val_accuracy"}
        assert curves | {"trials/device_seconds"} <= scalars
        assert {"_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(run.Tags()["tensors"])
        assert not [t for t in scalars if "test" in t]  # the test result is a text card of the study
    study_tb = EventAccumulator(str(d / "tb" / "study"), size_guidance={"tensors": 0}).Reload()
    assert study_tb.Tags()["scalars"] == ["study/trial_val_accuracy"]  # no smoothed best-so-far staircase
    assert {"_hparams_/experiment", "study/test_result/text_summary"} <= set(study_tb.Tags()["tensors"])
    assert {"study/progress", "study/params"} <= set(study_tb.Tags()["images"])
    scores = [e.value for e in study_tb.Scalars("study/trial_val_accuracy")]
    assert len(scores) == REAL_TRIALS and max(scores) == pytest.approx(summary["best"]["val_score"])


def test_weights_are_the_best_trials(study):
    """best.pt, loaded into the best trial's model, scores exactly the best trial's validation
    accuracy on its validation split: they are that trial's weights of its scored epoch."""
    import torch
    from omegaconf import OmegaConf

    from tunetorch.training import build
    from tunetorch.training.trainer import validate

    d, _ = study
    summary = json.loads((d / "summary.json").read_text())
    best = summary["best"]
    assert (d / "best.trial").read_text().strip() == str(best["trial"])
    cfg = build.trial_config(OmegaConf.load(d / "config.yaml"), best["params"])
    data = build.data_module(cfg).fit(int(cfg.study.seed), "cpu")
    model = build.model(cfg, data.input_shape, data.n_classes)
    model.load_state_dict(torch.load(d / "best.pt", weights_only=True))
    assert validate(model, data.val, "cpu")["val_accuracy"] == pytest.approx(best["val_score"], abs=1e-9)


def test_evaluate_again_is_refused_unless_forced(study, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(study[0], d)
    cmd = [sys.executable, "-m", "tunetorch.evaluate", f"study.dir={d}"]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "already evaluated" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    forced = subprocess.run([*cmd, "force=true"], capture_output=True, text=True, timeout=120)
    assert forced.returncode == 0, forced.stderr
    assert "FORCED" in forced.stdout
    summary = json.loads((d / "summary.json").read_text())
    assert summary["test_forced"] is True and summary["test_evaluations"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["model=transformer"], "model: 'transformer' is not one of cnn, mlp, resnet18"),
        (["+strategy=hill"], "strategy: 'hill' is not one of bayes, grid, random"),
        (["space.optimizer.lr.low=1.0"], "space.optimizer.lr.low: 1.0 must be below high (0.1)"),
        (
            ["space.optimizer.lr.low=0", "space.optimizer.lr.log=true"],
            "space.optimizer.lr.low: 0 must be > 0 when log is true",
        ),
        (["+space.model.width2={type:int,low:1,high:3}"], "space.model.width2: model.width2 is not in the"),
        (["+space.study.seed={type:int,low:1,high:3}"], "space.study.seed: 'study' is not a searchable part"),
        (["model._target_=tunetorch.training.models.MPL"], "did you mean tunetorch.training.models.MLP?"),
        (["model._target_=nowhere.Net"], "model._target_: 'nowhere.Net' cannot be imported"),
        (["model._target_=os.getcwd"], "model._target_: 'os.getcwd' is not a subclass of torch.nn.Module"),
        (["model._target_=builtins.print"], "model._target_: 'builtins.print' is not a subclass of torch.nn"),
        (
            ["optimizer._target_=os.getcwd"],
            "optimizer._target_: 'os.getcwd' is not a subclass of torch.optim",
        ),
        (["+model.slope=0.1"], "model.slope: tunetorch.training.models.MLP takes no argument 'slope'"),
        (
            ["+model.dropuot=0.1"],
            "model.dropuot: tunetorch.training.models.MLP takes no argument 'dropuot' "
            "(did you mean model.dropout?)",
        ),
        (
            ["optimizer=sgd", "+space.optimizer.betas={type:float,low:0.1,high:0.9}"],
            "space.optimizer.betas: optimizer.betas is not in the composed config",
        ),
        (["+trainer.epoch=3"], "trainer.epoch: not a key tunetorch reads; did you mean trainer.epochs?"),
        (["+budget.n_trial=5"], "budget.n_trial: not a key tunetorch reads; did you mean budget.n_trials?"),
        (["+foo=1"], "foo: not a key tunetorch reads"),
        (["trainer.epoch=3"], "trainer.epoch: no such key in the config (did you mean trainer.epochs?)"),
        (["study.metric=val_f1"], "study.metric: 'val_f1' is not one of val_accuracy, val_loss, train_loss"),
        (["study.direction=up"], "study.direction: 'up' is not one of maximize, minimize"),
        (["scheduler=onecycle"], "lr_scheduler=onecycle"),
        (["budget.n_trials=0"], "budget.n_trials: 0 must be a whole number >= 1"),
        (["trainer.epochs=-1"], "trainer.epochs: -1 must be a whole number >= 1"),
        (["budget.gpu_minutes=-2"], "budget.gpu_minutes: -2 must be a number > 0"),
        (["dataset=mnist", "dataset.root=/nonexistent/data", "dataset.download=false"], "/nonexistent/data"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, message, tmp_path):
    d = tmp_path / "new-study"
    out = run_in_process("tune", *SHRINK, f"study.dir={d}", *args)
    assert out.returncode == 2, out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not d.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["model=transformer"], "model: 'transformer' is not one of cnn, mlp, resnet18"),
        # refused once torch and the model's code are imported: nothing they print on import shows
        (["model._target_=os.getcwd"], "model._target_: 'os.getcwd' is not a subclass of torch.nn.Module"),
    ],
)
def test_the_command_itself_refuses_bad_input_in_one_line_with_exit_2(args, message, tmp_path):
    """The table above runs in this process; two of its cases as the command, in a new interpreter."""
    d = tmp_path / "new-study"
    out = run_tune(*SHRINK, f"study.dir={d}", *args)
    assert out.returncode == 2, out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and not out.stdout, out.stderr
    assert not d.exists()


def test_bad_input_and_a_different_config_leave_an_existing_study_untouched(study, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(study[0], d)
    before = snapshot(d)
    for args in (["space.optimizer.lr.low=1.0"], ["model.width=512"], ["+strategy=grid"]):
        out = run_in_process("tune", *REAL_ARGS, f"study.dir={d}", *args)  # as a command: test_faults.py
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    assert "holds a different study (strategy.name: 'random' -> 'grid')" in out.stderr
    assert snapshot(d) == before


def test_bayes_end_to_end_logs_its_internals(tmp_path):
    """`+strategy=bayes` on the default config: the GP takes over after the startup design,
    and the EI of each chosen point, the fit time and the length scales reach TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    d = tmp_path / "bayes"
    out = run_in_process(
        "tune",
        "+strategy=bayes",
        "strategy.n_startup=2",
        "report.strategy_internals=true",
        *SHRINK,
        "budget.n_trials=4",
        f"study.dir={d}",
    )
    assert out.returncode == 0, out.stderr + out.stdout
    summary = json.loads((d / "summary.json").read_text())
    assert summary["strategy"] == "bayes" and summary["n_trials"] == 4 and summary["test"] is not None
    tags = set(EventAccumulator(str(d / "tb" / "strategy")).Reload().Tags()["scalars"])
    assert {"strategy/log_ei", "strategy/gp_fit_seconds", "strategy/length_scales/optimizer.lr"} <= tags
    assert "strategy/best_epoch" not in tags  # the trainer's, not the strategy's


def test_an_installed_package_finds_its_configs_and_runs_grid_without_the_plus_on_two_workers(tmp_path):
    """`pip install .` (not editable), run from another folder: the configs ship inside the package.
    The study it runs also checks `strategy=grid` (no +) and two CPU workers."""
    from tests.test_packaging import _source_copy

    src = _source_copy(tmp_path)
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(site), str(src)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import tunetorch; print(tunetorch.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(site))  # the installed copy, not the source tree
    grid = ["strategy=grid", "strategy.resolution=2", "tuner.workers=2", "budget.n_trials=4"]
    grid.append("study.evaluate=false")
    out = run_tune(*SHRINK, *grid, "study.dir=study", cwd=elsewhere, env={"PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    assert "; 2 slots (local): cpu, cpu" in out.stdout
    summary = json.loads((elsewhere / "study" / "summary.json").read_text())
    assert summary["strategy"] == "grid" and summary["n_trials"] == 4 and summary["test"] is None
    assert (site / "tunetorch" / "conf" / "model" / "mlp.yaml").is_file()


def test_an_editable_install_finds_the_top_level_configs(tmp_path):
    """The environment ./scripts/test makes holds tunetorch as an editable install: run from
    another folder, with no PYTHONPATH, it imports the source tree and reads conf/ at the top."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [sys.executable, "-c", "import tunetorch.cli as c; print(c.__file__); print(c.conf_dir())"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    module, conf = where.stdout.split()
    assert module.startswith(str(ROOT / "tunetorch")) and conf == str(ROOT / "conf")
    out = subprocess.run(
        [sys.executable, "-m", "tunetorch.tune", "--cfg"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "_target_: tunetorch.training.models.MLP" in out.stdout, out.stderr


# Makes every trial "long" so the terminal's epoch ticks show in a short test run.
TICK_NOW = "import tunetorch.reports.terminal as t\nt.EPOCH_TICK_AFTER_SECONDS = 0.0\n"
# Logs, in every worker, how many epochs each trial really trained.
TRAINED = """
import json, os
import tunetorch.training.objective as o
_run = o.run_training
def run_training(state, number, params, emit):
    result = _run(state, number, params, emit)
    with open(os.environ["TRAINED_LOG"], "a") as f:
        f.write(json.dumps([number, result["epochs"]]) + "\\n")
    return result
o.run_training = run_training
"""


def test_epochs_counted_from_one_everywhere_and_commands_that_run_as_printed(tmp_path):
    """One epoch numbering for people: trials.csv and summary.json's best_epoch are the journal's
    + 1, and index.html, the best line and the epoch ticks say that same number. Run without the
    virtual environment on PATH (as ./scripts/tune runs it), the TensorBoard command in the results
    list runs as printed; the test result is one line."""
    from tunetorch.journal import Journal

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(TICK_NOW)
    venv_bin = Path(sys.executable).parent
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != venv_bin)
    d = tmp_path / "study"
    shrink = [a for a in SHRINK if not a.startswith(("budget.n_trials=", "trainer.epochs="))]
    out = run_tune(
        *shrink,
        "budget.n_trials=2",
        "trainer.epochs=3",
        f"study.dir={d}",
        # ROOT too: sitecustomize imports tunetorch before `-m` puts the working folder on sys.path
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)]), "PATH": path},
    )
    assert out.returncode == 0, out.stderr + out.stdout
    journal = Journal(d / "journal.sqlite")
    rows = {int(r["number"]): r for r in csv.DictReader((d / "trials.csv").open())}
    for t in journal.trials():
        assert rows[t.number]["best_epoch"] == str(t.best_epoch + 1)
    summary = json.loads((d / "summary.json").read_text())
    best = next(t for t in journal.trials() if t.number == summary["best"]["trial"])
    shown = best.best_epoch + 1
    assert summary["best"]["best_epoch"] == shown
    assert f"at epoch {shown} of 3 " in (d / "index.html").read_text()
    assert f"best: trial {best.number}, val_accuracy {best.score:.4f} at epoch {shown} of 3," in out.stdout
    assert f"  trial {best.number} epoch {shown}/3: val_accuracy {best.score:.4f}" in out.stdout
    lines = out.stdout.splitlines()
    test = [ln for ln in lines if ln.startswith("test accuracy")]
    assert len(test) == 1 and "; validation accuracy " in test[0], test

    tb = next(ln for ln in lines if ln.strip().startswith("tb/")).split("TensorBoard: ", 1)[1]
    assert tb.endswith(f"--logdir {d}/tb") and not tb.startswith("tensorboard ")  # not on PATH here
    ran = subprocess.run(
        [*shlex.split(tb), "--version_tb"],
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]


def test_asha_on_two_workers_prunes_records_and_reports_it(tmp_path):
    """+scheduler=asha with two workers: decisions reach the workers (curves stop at a rung),
    PRUNED trials are in the journal, trials.csv and summary.json, and the terminal shows every
    trial start, epoch ticks, 0-based trial numbers beside a 1-based count, and the top table."""
    from tunetorch.journal import Journal

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(TICK_NOW + TRAINED)
    log = tmp_path / "trained.jsonl"
    d = tmp_path / "asha"
    out = run_tune(
        *SHRINK,
        "+strategy=random",
        "+scheduler=asha",
        "tuner.workers=2",
        "budget.n_trials=8",
        "trainer.epochs=4",
        f"study.dir={d}",
        env={"PYTHONPATH": str(tmp_path / "site"), "TRAINED_LOG": str(log)},
    )
    assert out.returncode == 0, out.stderr + out.stdout
    journal = Journal(d / "journal.sqlite")
    trained = dict(json.loads(line) for line in log.read_text().splitlines())
    trials = journal.trials()
    pruned = [t for t in trials if t.state.value == "PRUNED"]
    assert pruned and all(t.epochs in (1, 3) for t in pruned)  # ASHA's rungs below 4 epochs
    for t in trials:  # the worker stopped where the study decided: no epoch beyond it
        assert [e["epoch"] for e in journal.epochs(t.number)] == list(range(t.epochs))
        assert trained[t.number] == t.epochs
    summary = json.loads((d / "summary.json").read_text())
    assert summary["n_pruned"] == len(pruned) and sum(summary["pruned_by_epochs"].values()) == len(pruned)
    rows = list(csv.DictReader((d / "trials.csv").open()))
    assert sum(r["state"] == "PRUNED" for r in rows) == len(pruned)
    assert summary["gpu_minutes"] * 60 == pytest.approx(sum(t.device_seconds for t in trials))
    text = out.stdout
    assert "scheduler asha" in text.splitlines()[0]
    for n in range(8):
        assert f"trial {n} started on cpu: optimizer.lr=" in text
    assert "trial 0 epoch 1/4: val_accuracy" in text
    assert " | 8 of 8 finished | " in text and "(pruned after 1 epoch)" in text
    assert "top 5 of 8 finished trials (maximize val_accuracy):" in text
    # an estimate from the first finished trial on, from trials' own run times: never negative
    finished_lines = [ln for ln in text.splitlines() if " finished | " in ln]
    assert len(finished_lines) == 8 and all(" left" in ln for ln in finished_lines[:-1])
    assert not any("about -" in ln for ln in finished_lines)
    assert f"results in {d}/:" in text and "index.html" in text and "params.png" in text


def test_a_minutes_budget_under_asha_is_spent_past_the_old_default_of_20_trials(tmp_path):
    """Issue 18: `+scheduler=asha budget.gpu_minutes=1` ended on the default budget.n_trials=20 with
    0.37 of its minute spent. Given minutes and no trial count, a study runs until the minutes are
    spent (tunetorch/budget.py), and its first line says so."""
    d = tmp_path / "study"
    shrink = [a for a in SHRINK if not a.startswith(("budget.n_trials=", "trainer.epochs="))]
    # Cheap trials (a 16-unit MLP, 2 epochs of batches of 512: a trial's device time is mostly its
    # fixed costs) against 0.05 device minutes: about 140 trials on an idle 2-core CPU (410 in 0.15
    # minutes), so still about 45 when other processes slow each trial threefold.
    args = [
        *shrink,
        "+strategy=random",
        "+scheduler=asha",
        "trainer.epochs=2",
        "trainer.batch_size=512",
        "model.width=16",
    ]
    out = run_tune(
        *args, "budget.gpu_minutes=0.05", "study.evaluate=false", "tuner.progress=false", f"study.dir={d}"
    )
    assert out.returncode == 0, out.stderr + out.stdout
    first = out.stdout.splitlines()[0]
    assert first.startswith(f"study {d}: strategy random, scheduler asha;"), first
    assert "; budget 0.05 CPU minutes (no trial cap); " in first, first
    assert "search ended: budget: budget.gpu_minutes=0.05 spent." in out.stdout
    summary = json.loads((d / "summary.json").read_text())
    assert summary["n_trials"] > 20 and summary["n_pruned"] > 0 and summary["gpu_minutes"] >= 0.05

    # The budget may change on resume: it is not the study's identity (tunetorch/identity.py), so a
    # study stored under the old default (n_trials: 20) resumes too. Here a trial count is added;
    # both are already spent, so nothing runs. The resume's logic, in this process (the run above
    # is the command).
    again = run_in_process(
        "tune",
        *args,
        "budget.gpu_minutes=0.05",
        "budget.n_trials=20",
        "study.evaluate=false",
        f"study.dir={d}",
    )
    assert again.returncode == 0, again.stderr + again.stdout
    first = again.stdout.splitlines()[0]
    assert first.startswith(f"resuming {d}:") and "; budget 20 trials or 0.05 CPU minutes, whichever" in first
    assert json.loads((d / "summary.json").read_text())["n_trials"] == summary["n_trials"]  # nothing ran


def test_bayes_with_asha_on_digits_does_not_pile_onto_one_point(tmp_path):
    """Issue 18: under the joint model, trials 9-19 of this study all sat at weight_decay = 1e-6 (the
    lower bound) with lr 0.0036-0.0052, nearly all stopped after one epoch."""
    d = tmp_path / "study"
    args = ["+strategy=bayes", "+scheduler=asha", "budget.n_trials=20", "study.evaluate=false"]
    out = run_in_process("tune", *args, f"study.dir={d}")  # the study, not the command: in this process
    assert out.returncode == 0, out.stderr + out.stdout
    rows = list(csv.DictReader((d / "trials.csv").open()))
    assert len(rows) == 20 and sum(r["state"] == "PRUNED" for r in rows) >= 8
    model = [{k: float(r[k]) for k in ("optimizer.lr", "optimizer.weight_decay")} for r in rows[10:]]
    for bound in (1e-6, 1e-2):  # the GP proposes these, well past the start-up design
        assert sum(p["optimizer.weight_decay"] == bound for p in model) <= len(model) // 2, model
    assert largest_pile(model) <= len(model) // 2, model
