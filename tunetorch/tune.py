"""`python -m tunetorch.tune +strategy=bayes`: config -> study -> executor -> final evaluation.

Every key of conf/tune.yaml can be overridden on the command line (Hydra), and a user's own
groups and options come in with `--config-dir DIR`. With no `+strategy=...` the study uses
random search and says so. An existing `study.dir` is resumed: completed trials are kept,
trials that were running are run again, and the strategy is rebuilt from the journal.

Exit status: 0 done, 1 stopped on failures (or a fault of the environment), 2 bad input (one
line, nothing written), 130 interrupted (the study can be resumed).

Faults of the environment are one line, exit 1, and lose nothing that completed: an unwritable
or read-only study.dir (refused before anything is written), a full disk (the journal's, a
worker's checkpoint, a report's or TensorBoard's write), a damaged journal (left as it is).
Trials that were running stay unfinished in the journal; once the fault is gone the same command
resumes the study. Every check of the backend (a Ray cluster's address and GPUs) is made before
the study directory is made.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from tunetorch import cli, config, executors, identity
from tunetorch.errors import EnvironmentFault, UsageError


def main() -> None:
    cli.main("tune", run)


def run(cfg: Any) -> int:
    # The config first, before torch is imported: bad input is refused in a fraction of a second.
    conf = cli.conf_dir()
    plan = config.check(cfg, conf)  # a strategy or scheduler not chosen is filled in: random, none
    config.check_code(cfg, plan)  # imports the model's and data module's code
    executors.preflight(cfg.tuner)  # the slots on the devices there are (a Ray cluster reached)

    from tunetorch.lock import StudyLock

    # One writer: the lock is held from before the journal is opened (or made) to the end of the
    # run, the evaluation included. A new study.dir is made by the lock and removed again if the
    # run stops before writing anything into it; the OS drops the lock if the process dies.
    study_dir = Path(cfg.study.dir)
    try:
        with StudyLock(study_dir, create=True):
            return _run_locked(cfg, plan)
    except OSError as e:  # a full disk, a folder made read-only mid-run: the environment's
        if os.environ.get("TUNETORCH_DEBUG") == "1":
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        raise EnvironmentFault(f"study.dir: {study_dir}: {e.strerror or e}{where}; {RESUME}") from None


RESUME = (
    "completed trials are kept in the journal: once the fault is gone (space freed, the folder "
    "writable) the same command resumes the study"
)


def _run_locked(cfg: Any, plan: Any) -> int:
    from omegaconf import OmegaConf

    from tunetorch.budget import Budget
    from tunetorch.checkpoints import bind_weights, keep_best
    from tunetorch.history import device_minutes
    from tunetorch.progress import Progress
    from tunetorch.reports import TensorBoardLog, terminal, write_reports
    from tunetorch.search import run_search
    from tunetorch.strategies import make_strategy
    from tunetorch.study import Study
    from tunetorch.training.objective import run_training, setup_training
    from tunetorch.words import cost_unit, count, minutes, trials_cost_unit

    study_dir = Path(cfg.study.dir)
    budget = Budget(cfg.budget.n_trials, cfg.budget.gpu_minutes)  # the rule, once (tunetorch/budget.py)
    metric, direction = str(cfg.study.metric), str(cfg.study.direction)
    fresh = not (study_dir / "journal.sqlite").exists()
    there = {name for name in NEW_STUDY_FILES if (study_dir / name).exists()}  # not ours to remove
    try:
        journal, resumed = identity.open_journal(study_dir, cfg, plan)
        strategy = make_strategy(plan.strategy, plan.space, seed=cfg.study.seed, **plan.strategy_options)
        study = Study(
            plan.space,
            strategy,
            seed=int(cfg.study.seed),
            journal=journal,
            direction=direction,
            scheduler=plan.scheduler,
            scheduler_options=plan.scheduler_options,
            metric=metric,
        )
        checkpoints = study_dir / "checkpoints"
        checkpoints.mkdir(exist_ok=True)
    except (EnvironmentFault, OSError):
        if fresh:  # a new study that could not be written whole (a full disk): none at all
            _remove_new_study(study_dir, keep=there)
        raise
    if resumed:
        backfill_weights(study_dir, journal, study.trials)

    setup = functools.partial(
        setup_training, cfg_yaml=OmegaConf.to_yaml(cfg, resolve=True), checkpoints=str(checkpoints)
    )
    # With a scheduler, each worker waits after every epoch for the study's decision to go on.
    pool = executors.open_executor(cfg.tuner, setup, run_training, decide=plan.scheduler != "none")
    devices = [s.device for s in pool.slots]
    note = " (the default; choose with +strategy=bayes|grid|random)" if plan.strategy_defaulted else ""
    scheduler = f", scheduler {plan.scheduler}" if plan.scheduler != "none" else ""
    print(
        f"{'resuming' if resumed else 'study'} {study_dir}: strategy {plan.strategy}{note}{scheduler}; "
        f"{cfg.model._target_} on {cfg.dataset._target_}; {direction} {metric}; "
        f"budget {terminal.budget_text(budget, cost_unit(devices))}; "
        f"{count(len(devices), 'slot')} ({cfg.tuner.backend}): {', '.join(devices)}",
        flush=True,
    )
    if resumed:
        done = [t for t in study.trials if t.finished]
        print(
            f"  {count(len(done), 'finished trial')} kept; "
            f"{count(len(study.trials) - len(done), 'interrupted trial')} will run again",
            flush=True,
        )

    tb = TensorBoardLog(
        study_dir,
        space=plan.space,
        metric=metric,
        direction=direction,
        strategy_internals=bool(cfg.report.strategy_internals),
    )
    progress = Progress(study, budget, metric, len(devices), int(cfg.trainer.epochs))
    show = bool(cfg.tuner.progress)

    def keep_best_weights() -> None:
        best = study.best
        running = {t.number for t in study.trials if not t.finished}
        keep_best(study_dir, best.number if best else None, running)

    def on_trial(trial) -> None:
        bind_weights(study_dir, journal, trial)  # before keep_best may drop the file
        keep_best_weights()
        tb.trial(trial, journal.epochs(trial.number), study.trials)
        if show:
            progress.finished(trial)

    def on_epoch(number: int, metrics: dict) -> None:
        tb.epoch(study.trial(number), metrics)  # stamped as the event reaches the tuner: live curves
        if show:
            progress.epoch(number, metrics)

    try:
        outcome = run_search(
            study,
            pool,
            budget,
            max_retries=cfg.tuner.max_retries,
            max_consecutive_failures=cfg.tuner.max_consecutive_failures,
            on_trial=on_trial,
            on_start=progress.started if show else None,
            on_epoch=on_epoch,
        )
    except UsageError:  # a worker's setup refused its device: a new study leaves nothing, as any refusal
        tb.close()
        if fresh:
            _remove_new_study(study_dir, keep=there)
        raise
    finally:
        pool.close()
    journal.set_meta("wall_seconds", str(float(journal.get_meta("wall_seconds") or 0) + outcome.wall_seconds))
    keep_best_weights()
    summary = write_reports(study_dir, journal, plan.strategy)
    tb.images(step=summary["n_trials"])
    print(
        f"search ended: {outcome.reason}. {count(summary['n_trials'], 'trial')} finished "
        f"({summary['n_complete']} complete, {summary['n_pruned']} pruned, {summary['n_failed']} failed), "
        f"{minutes(device_minutes(study.trials), trials_cost_unit(study.trials))}, "
        f"{terminal.format_duration(outcome.wall_seconds)} wall",
        flush=True,
    )
    best = study.best
    if not outcome.ok:
        print(
            ("interrupted: run the same command again to resume. " if outcome.interrupted else "")
            + f"results so far in {study_dir}",
            file=sys.stderr,
        )
        tb.close()
        return 130 if outcome.interrupted else 1
    if best is None:
        tb.close()
        print(
            f"error: no trial completed ({summary['n_failed']} failed; the last: "
            f"{study.trials[-1].error if study.trials else 'none ran'}); see {study_dir}/trials.csv",
            file=sys.stderr,
        )
        return 1
    print(terminal.best_line(best, metric))
    print(terminal.top_table(study.trials, direction, k=5, metric=metric))
    from tunetorch.evaluate import evaluate_best, evaluation_is_stale

    if evaluation_is_stale(journal):
        last = [e for e in journal.evaluations() if e["status"] == "completed"][-1]
        print(
            f"warning: the test result on record is of trial {last['trial']}, no longer the best "
            f"(trial {best.number}); {terminal.evaluate_command(study_dir, force=True)} "
            "evaluates the new best (flagged as forced)",
            file=sys.stderr,
        )
    elif cfg.study.evaluate:
        if journal.evaluations():
            print(
                "test split: already evaluated for this study "
                f"({terminal.evaluate_command(study_dir, force=True)} to look again, flagged)"
            )
            if summary.get("test"):
                print(terminal.test_line(summary["test"], summary.get("optimism")))
        else:
            from tunetorch.evaluate import rewrite_reports_after_a_failed_look

            try:
                result = evaluate_best(study_dir, journal, device=pool.driver_device())
            except (EnvironmentFault, UsageError):  # its test() raised: one line, the look counts
                rewrite_reports_after_a_failed_look(study_dir, journal, 0)
                tb.close()
                raise
            summary = write_reports(study_dir, journal, plan.strategy)
            tb.test_result(
                result["accuracy"],
                result["loss"],
                result["trial"],
                val_accuracy=best.score if metric == "val_accuracy" else None,
                n_trials=len(study.trials),
            )
            tb.images(step=summary["n_trials"])
            print(terminal.test_line(summary["test"], summary.get("optimism"), n_test=result["n_test"]))
    line = terminal.importance_line(summary.get("importance"))
    if line:
        print(line)
    tb.close()
    print("\n".join(terminal.results_lines(study_dir)))
    return 0


NEW_STUDY_FILES = (
    "journal.sqlite",
    "journal.sqlite-wal",
    "journal.sqlite-shm",
    "config.yaml",
    "checkpoints",
    "tb",
)


def _remove_new_study(study_dir: Path, keep: set[str]) -> None:
    """What a new study wrote before it failed (its journal, config.yaml, checkpoints/, tb/), but
    what was there before it (`keep`): the lock then removes the folder if it made it, so the
    command can be run again as if for the first time."""
    for name in NEW_STUDY_FILES:
        path = study_dir / name
        if name in keep:
            continue
        try:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        except OSError:
            pass


def backfill_weights(study_dir: Path, journal: Any, trials: list) -> list[int]:
    """The rule for a finished trial whose weights the journal holds no sha256 of (the tuner died
    after journaling the trial and before its hash, or a pruned trial's worker wrote its file
    after the tuner had stopped): on resume its hash is recorded from checkpoints/trial_NNNN.pt,
    the file its worker wrote, when that file is there; without the file it stays unrecorded and
    evaluate refuses it (should it be the best). Returns the trials back-filled."""
    from tunetorch.checkpoints import bind_weights

    done = []
    for trial in trials:
        if trial.finished and journal.weights_hash(trial.number) is None:
            bind_weights(study_dir, journal, trial)
            if journal.weights_hash(trial.number) is not None:
                done.append(trial.number)
    return done


if __name__ == "__main__":
    main()
