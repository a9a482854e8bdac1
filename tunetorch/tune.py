"""`python -m tunetorch.tune +strategy=bayes`: config -> study -> executor -> final evaluation.

Every key of conf/tune.yaml can be overridden on the command line (Hydra), and a user's own
groups and options come in with `--config-dir DIR`. With no `+strategy=...` the study uses
random search and says so. An existing `study.dir` is resumed: completed trials are kept,
trials that were running are run again, and the strategy is rebuilt from the journal.

Exit status: 0 done, 1 stopped on failures (or a fault of the environment), 2 bad input (one
line, nothing written), 130 interrupted (the study can be resumed).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from tunetorch import cli, config, identity


def main() -> None:
    cli.main("tune", run)


def run(cfg: Any) -> int:
    # The config first, before torch is imported: bad input is refused in a fraction of a second.
    conf = cli.conf_dir()
    cfg, defaulted = config.fill_defaults(cfg, conf)
    plan = config.check(cfg, conf, defaulted)
    if cfg.tuner.backend == "local":  # (a Ray cluster's slots are known once it is reached)
        from tunetorch.executors.local import slot_devices

        config.check_cpu_workers(slot_devices(_devices(cfg), cfg.tuner.workers, cfg.tuner.trials_per_device))
    config.check_code(cfg, plan)  # imports the model's and data module's code

    from tunetorch.lock import StudyLock

    # One writer: the lock is held from before the journal is opened (or made) to the end of the
    # run, the evaluation included. A new study.dir is made by the lock and removed again if the
    # run stops before writing anything into it; the OS drops the lock if the process dies.
    with StudyLock(Path(cfg.study.dir), create=True):
        return _run_locked(cfg, plan, defaulted)


def _devices(cfg: Any) -> Any:
    return cfg.tuner.devices if isinstance(cfg.tuner.devices, str) else list(cfg.tuner.devices)


def _run_locked(cfg: Any, plan: Any, defaulted: bool) -> int:
    from omegaconf import OmegaConf

    from tunetorch.budget import Budget
    from tunetorch.checkpoints import bind_weights, keep_best
    from tunetorch.executors import open_executor
    from tunetorch.history import device_minutes, device_unit
    from tunetorch.progress import Progress
    from tunetorch.reports import TensorBoardLog, terminal, write_reports
    from tunetorch.search import run_search
    from tunetorch.strategies import make_strategy
    from tunetorch.study import Study
    from tunetorch.training.objective import run_training, setup_training

    study_dir = Path(cfg.study.dir)
    budget = Budget(cfg.budget.n_trials, cfg.budget.gpu_minutes)  # the rule, once (tunetorch/budget.py)
    metric, direction = str(cfg.study.metric), str(cfg.study.direction)
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

    setup = functools.partial(
        setup_training, cfg_yaml=OmegaConf.to_yaml(cfg, resolve=True), checkpoints=str(checkpoints)
    )
    # With a scheduler, each worker waits after every epoch for the study's decision to go on.
    pool = open_executor(
        cfg.tuner.backend,
        _devices(cfg),
        cfg.tuner.workers,
        cfg.tuner.trials_per_device,
        setup,
        run_training,
        decide=plan.scheduler != "none",
        ray_address=cfg.tuner.ray.address,
    )
    devices = [s.device for s in pool.slots]
    note = " (the default; choose with +strategy=bayes|grid|random)" if plan.strategy_defaulted else ""
    scheduler = f", scheduler {plan.scheduler}" if plan.scheduler != "none" else ""
    print(
        f"{'resuming' if resumed else 'study'} {study_dir}: strategy {plan.strategy}{note}{scheduler}; "
        f"{cfg.model._target_} on {cfg.dataset._target_}; {direction} {metric}; "
        f"budget {terminal.budget_text(budget, 'device minutes')}; "
        f"{len(devices)} slot(s) ({cfg.tuner.backend}): {', '.join(devices)}",
        flush=True,
    )
    if resumed:
        done = [t for t in study.trials if t.finished]
        print(
            f"  {len(done)} finished trials kept; "
            f"{len(study.trials) - len(done)} interrupted trial(s) will run again",
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

    try:
        outcome = run_search(
            study,
            pool,
            budget,
            max_retries=cfg.tuner.max_retries,
            max_consecutive_failures=cfg.tuner.max_consecutive_failures,
            on_trial=on_trial,
            on_start=progress.started if show else None,
            on_epoch=progress.epoch if show else None,
        )
    finally:
        pool.close()
    journal.set_meta("wall_seconds", str(float(journal.get_meta("wall_seconds") or 0) + outcome.wall_seconds))
    keep_best_weights()
    summary = write_reports(study_dir, journal, plan.strategy)
    tb.images(step=summary["n_trials"])
    unit = device_unit(study.trials)
    print(
        f"search ended: {outcome.reason}. {summary['n_trials']} trials finished ({summary['n_complete']} "
        f"complete, {summary['n_pruned']} pruned, {summary['n_failed']} failed), "
        f"{terminal.format_value(device_minutes(study.trials))} {unit}, "
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
            f"(trial {best.number}); python -m tunetorch.evaluate study.dir={study_dir} force=true "
            "evaluates the new best (flagged as forced)",
            file=sys.stderr,
        )
    elif cfg.study.evaluate:
        if journal.evaluations():
            print(
                "test split: already evaluated for this study "
                f"(python -m tunetorch.evaluate study.dir={study_dir} force=true to look again, flagged)"
            )
        else:
            result = evaluate_best(study_dir, journal, device=_eval_device(cfg, devices))
            summary = write_reports(study_dir, journal, plan.strategy)
            tb.test_result(
                result["accuracy"],
                result["loss"],
                result["trial"],
                val_accuracy=best.score if metric == "val_accuracy" else None,
                n_trials=len(study.trials),
            )
            tb.images(step=summary["n_trials"])
            print(
                f"test accuracy {terminal.format_score(result['accuracy'])} "
                f"(loss {terminal.format_value(result['loss'])}) on {result['n_test']} held-out examples, "
                "evaluated once"
            )
    for line in (
        terminal.optimism_line(summary.get("optimism")),
        terminal.importance_line(summary.get("importance")),
    ):
        if line:
            print(line)
    tb.close()
    print("\n".join(terminal.results_lines(study_dir)))
    return 0


def _eval_device(cfg: Any, devices: list[str]) -> str:
    """Where the final evaluation runs: in this process, so on this machine's GPU. Under Ray the
    slots' devices may be other machines' GPUs."""
    if cfg.tuner.backend == "ray":
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    return next((d for d in devices if d.startswith("cuda")), "cpu")


if __name__ == "__main__":
    main()
