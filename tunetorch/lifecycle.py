"""A study's life, written once for tune, race and evaluate: open it, run it, finish it.

    opened = open_study(cfg, plan)                  # journal (new or resumed), strategy, scheduler, Study
    with running(opened, cfg, plan) as tb:          # TensorBoard, closed on every way out
        outcome = run_search(opened.study, ...)
        summary = finish(opened, tb, outcome, plan.strategy)   # wall seconds, best weights, reports
        summary = evaluate_when_asked(cfg, opened, tb, device, summary, plan.strategy)

`new_study` is the one place a Study is built from a checked config (tune's study and each race
entrant's, in memory or journaled). The look at the test split itself, and what it rewrites
afterwards, is tunetorch.evaluate's (`look`), shared with `python -m tunetorch.evaluate`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunetorch.errors import EnvironmentFault, UsageError

# What a new study writes into its directory; removed again when it cannot be written whole or is
# refused before any trial finished, so the command can be run again as if for the first time.
NEW_STUDY_FILES = (
    "journal.sqlite",
    "journal.sqlite-wal",
    "journal.sqlite-shm",
    "config.yaml",
    "checkpoints",
    "tb",
)


@dataclass
class Opened:
    """An open study: its directory, journal and Study; whether it was resumed; and, for a new
    one, what was in its directory before (`there`), which is never removed."""

    study_dir: Path
    journal: Any
    study: Any
    resumed: bool
    there: set[str] = field(default_factory=set)

    def discard(self) -> None:
        """What this new study wrote (its journal, config.yaml, checkpoints/, tb/), but what was
        there before it: the lock then removes the folder if it made it."""
        if not self.resumed:
            remove_new_study(self.study_dir, keep=self.there)


def new_study(cfg: Any, plan: Any, journal: Any = None):
    """The Study a checked config (`plan`: config.Plan) asks for: its space, strategy and options,
    scheduler and options, seed, direction and metric; written through to `journal` if given."""
    from tunetorch.strategies import make_strategy
    from tunetorch.study import Study

    return Study(
        plan.space,
        make_strategy(plan.strategy, plan.space, seed=cfg.study.seed, **plan.strategy_options),
        seed=int(cfg.study.seed),
        journal=journal,
        direction=str(cfg.study.direction),
        scheduler=plan.scheduler,
        scheduler_options=plan.scheduler_options,
        metric=str(cfg.study.metric),
    )


def open_study(cfg: Any, plan: Any, folders: tuple[str, ...] = ()) -> Opened:
    """cfg.study.dir's study: a new one, or the same one resumed (identity.open_journal refuses a
    different one), with `folders` made in it. The caller holds the study's lock. On any failure the
    journal is closed; a new study that cannot be written whole (a full disk) leaves nothing."""
    from tunetorch import identity

    study_dir = Path(cfg.study.dir)
    fresh = not (study_dir / "journal.sqlite").exists()
    there = {name for name in NEW_STUDY_FILES if (study_dir / name).exists()}  # not ours to remove
    journal = None
    try:
        journal, resumed = identity.open_journal(study_dir, cfg, plan)
        study = new_study(cfg, plan, journal)
        for name in folders:
            (study_dir / name).mkdir(exist_ok=True)
    except BaseException as e:
        if journal is not None:
            with suppress(Exception):  # the fault being raised is the one to report, not the close's
                journal.close()
        if fresh and isinstance(e, (EnvironmentFault, OSError)):
            remove_new_study(study_dir, keep=there)
        raise
    return Opened(study_dir, journal, study, resumed, there)


def remove_new_study(study_dir: Path, keep: set[str]) -> None:
    for name in NEW_STUDY_FILES:
        path = study_dir / name
        if name in keep:
            continue
        try:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        except OSError:
            pass


def add_wall_seconds(journal: Any, seconds: float) -> None:
    """The study's wall time, summed over its runs (a resumed study adds this run's)."""
    journal.set_meta("wall_seconds", str(float(journal.get_meta("wall_seconds") or 0) + seconds))


@contextmanager
def running(opened: Opened, cfg: Any, plan: Any) -> Iterator[Any]:
    """The study's TensorBoard while it runs and finishes, closed on every way out (a trial still
    open keeps what it wrote). A new study refused before any trial finished (a worker's setup
    refused its device) then leaves nothing, as any refusal; its TensorBoard is closed first."""
    from tunetorch.reports import TensorBoardLog

    tb = TensorBoardLog(
        opened.study_dir,
        space=plan.space,
        metric=str(cfg.study.metric),
        direction=str(cfg.study.direction),
        strategy_internals=bool(cfg.report.strategy_internals),
    )
    refused = False
    try:
        yield tb
    except UsageError:
        refused = not any(t.finished for t in opened.study.trials)
        raise
    finally:
        tb.close()
        if refused:
            opened.discard()


def keep_best_weights(opened: Opened) -> None:
    """best.pt holds the best trial's weights; the checkpoints of other finished trials go."""
    from tunetorch.checkpoints import keep_best

    best = opened.study.best
    running_now = {t.number for t in opened.study.trials if not t.finished}
    keep_best(opened.study_dir, best.number if best else None, running_now)


def trial_finished(opened: Opened, tb: Any, trial: Any) -> None:
    """A trial has ended: its weights' sha256 journaled (before keep_best may drop the file), the
    best weights kept, its TensorBoard run ended."""
    from tunetorch.checkpoints import bind_weights

    bind_weights(opened.study_dir, opened.journal, trial)
    keep_best_weights(opened)
    tb.trial(trial, opened.journal.epochs(trial.number), opened.study.trials)


def finish(opened: Opened, tb: Any, outcome: Any, strategy: str) -> dict[str, Any]:
    """After the search: this run's wall time journaled, the best weights kept, the reports
    rewritten and their pictures on TensorBoard. Returns summary.json's dict."""
    from tunetorch.reports import write_reports

    add_wall_seconds(opened.journal, outcome.wall_seconds)
    keep_best_weights(opened)
    summary = write_reports(opened.study_dir, opened.journal, strategy)
    tb.images(step=summary["n_trials"])
    return summary


def evaluate_when_asked(
    cfg: Any, opened: Opened, tb: Any, device: str, summary: dict[str, Any], strategy: str
) -> dict[str, Any]:
    """The one look at the test split, when study.evaluate asks and none was taken; a warning
    instead when the result on record is of a trial no longer the best. Returns the summary."""
    import sys

    from tunetorch.evaluate import evaluation_is_stale, look
    from tunetorch.history import completed_looks
    from tunetorch.reports import terminal

    journal, study_dir, best = opened.journal, opened.study_dir, opened.study.best
    if evaluation_is_stale(journal):
        last = completed_looks(journal.evaluations())[-1]
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
            result, summary = look(
                study_dir, journal, tb, device=device, strategy=strategy, n_trials=len(opened.study.trials)
            )
            print(terminal.test_line(summary["test"], summary.get("optimism"), n_test=result["n_test"]))
    return summary
