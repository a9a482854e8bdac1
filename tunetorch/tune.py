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
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from tunetorch import cli, config, executors
from tunetorch.errors import EnvironmentFault


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
    """Open the study, start the executor, search, finish (tunetorch/lifecycle.py), print the results."""
    from tunetorch import lifecycle
    from tunetorch.budget import Budget

    budget = Budget(cfg.budget.n_trials, cfg.budget.gpu_minutes)  # the rule, once (tunetorch/budget.py)
    opened = lifecycle.open_study(cfg, plan, folders=("checkpoints",))
    with closing(opened.journal):  # closed on every way out, not only when the process ends
        if opened.resumed:
            backfill_weights(opened.study_dir, opened.journal, opened.study.trials)
        pool = _open_executor(cfg, plan, opened.study_dir / "checkpoints")
        _print_opening(cfg, plan, opened, budget, [s.device for s in pool.slots])
        with lifecycle.running(opened, cfg, plan) as tb:
            outcome = _search(cfg, opened, pool, tb, budget)
            summary = lifecycle.finish(opened, tb, outcome, plan.strategy)
            _print_search_ended(opened, outcome, summary)
            if not outcome.ok:
                return _stopped(opened, outcome)
            if opened.study.best is None:
                return _none_completed(opened, summary)
            _print_best(cfg, opened)
            summary = lifecycle.evaluate_when_asked(
                cfg, opened, tb, pool.driver_device(), summary, plan.strategy
            )
            _print_importance(summary)
        _print_results(opened)
        return 0


def _open_executor(cfg: Any, plan: Any, checkpoints: Path) -> Any:
    """The slots that run trials, each worker set up once with the study's config."""
    from omegaconf import OmegaConf

    from tunetorch.training.objective import run_training, setup_training

    setup = functools.partial(
        setup_training, cfg_yaml=OmegaConf.to_yaml(cfg, resolve=True), checkpoints=str(checkpoints)
    )
    # With a scheduler, each worker waits after every epoch for the study's decision to go on.
    return executors.open_executor(cfg.tuner, setup, run_training, decide=plan.scheduler != "none")


def _search(cfg: Any, opened: Any, pool: Any, tb: Any, budget: Any) -> Any:
    """The search, live: each trial's end and each epoch reach the journal's checkpoints, TensorBoard
    and the terminal as they arrive. Returns run_search's Outcome; the pool is closed after it."""
    from tunetorch import lifecycle
    from tunetorch.progress import Progress
    from tunetorch.search import run_search

    study = opened.study
    progress = Progress(study, budget, str(cfg.study.metric), len(pool.slots), int(cfg.trainer.epochs))
    show = bool(cfg.tuner.progress)

    def on_trial(trial) -> None:
        lifecycle.trial_finished(opened, tb, trial)
        if show:
            progress.finished(trial)

    def on_epoch(number: int, metrics: dict) -> None:
        tb.epoch(study.trial(number), metrics)  # stamped as the event reaches the tuner: live curves
        if show:
            progress.epoch(number, metrics)

    try:
        return run_search(
            study,
            pool,
            budget,
            max_retries=cfg.tuner.max_retries,
            max_consecutive_failures=cfg.tuner.max_consecutive_failures,
            on_trial=on_trial,
            on_start=progress.started if show else None,
            on_epoch=on_epoch,
        )
    finally:
        pool.close()


# --- what the terminal shows ------------------------------------------------------------------
def _print_opening(cfg: Any, plan: Any, opened: Any, budget: Any, devices: list[str]) -> None:
    from tunetorch.reports import terminal
    from tunetorch.words import cost_unit, count

    note = " (the default; choose with +strategy=bayes|grid|random)" if plan.strategy_defaulted else ""
    scheduler = f", scheduler {plan.scheduler}" if plan.scheduler != "none" else ""
    print(
        f"{'resuming' if opened.resumed else 'study'} {opened.study_dir}: strategy {plan.strategy}{note}"
        f"{scheduler}; {cfg.model._target_} on {cfg.dataset._target_}; "
        f"{cfg.study.direction} {cfg.study.metric}; "
        f"budget {terminal.budget_text(budget, cost_unit(devices))}; "
        f"{count(len(devices), 'slot')} ({cfg.tuner.backend}): {', '.join(devices)}",
        flush=True,
    )
    if opened.resumed:
        trials = opened.study.trials
        done = [t for t in trials if t.finished]
        print(
            f"  {count(len(done), 'finished trial')} kept; "
            f"{count(len(trials) - len(done), 'interrupted trial')} will run again",
            flush=True,
        )


def _print_search_ended(opened: Any, outcome: Any, summary: dict[str, Any]) -> None:
    from tunetorch.history import device_minutes
    from tunetorch.reports import terminal
    from tunetorch.words import count, minutes, trials_cost_unit

    trials = opened.study.trials
    print(
        f"search ended: {outcome.reason}. {count(summary['n_trials'], 'trial')} finished "
        f"({summary['n_complete']} complete, {summary['n_pruned']} pruned, {summary['n_failed']} failed), "
        f"{minutes(device_minutes(trials), trials_cost_unit(trials))}, "
        f"{terminal.format_duration(outcome.wall_seconds)} wall",
        flush=True,
    )


def _stopped(opened: Any, outcome: Any) -> int:
    """Interrupted (130) or stopped on failures (1): what was done is kept."""
    print(
        ("interrupted: run the same command again to resume. " if outcome.interrupted else "")
        + f"results so far in {opened.study_dir}",
        file=sys.stderr,
    )
    return 130 if outcome.interrupted else 1


def _none_completed(opened: Any, summary: dict[str, Any]) -> int:
    trials = opened.study.trials
    print(
        f"error: no trial completed ({summary['n_failed']} failed; the last: "
        f"{trials[-1].error if trials else 'none ran'}); see {opened.study_dir}/trials.csv",
        file=sys.stderr,
    )
    return 1


def _print_best(cfg: Any, opened: Any) -> None:
    from tunetorch.reports import terminal

    metric = str(cfg.study.metric)
    print(terminal.best_line(opened.study.best, metric))
    print(terminal.top_table(opened.study.trials, str(cfg.study.direction), k=5, metric=metric))


def _print_importance(summary: dict[str, Any]) -> None:
    from tunetorch.reports import terminal

    line = terminal.importance_line(summary.get("importance"))
    if line:
        print(line)


def _print_results(opened: Any) -> None:
    from tunetorch.reports import terminal

    print("\n".join(terminal.results_lines(opened.study_dir)))


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
