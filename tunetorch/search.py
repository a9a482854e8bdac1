"""The tune loop: ask the strategy, run the trial on a free slot, record it, until the budget is spent.

    study.ask() -> pool.submit(slot) -> worker trains -> event "done" -> study.tell() -> journal

While every slot is busy the next suggestion is prepared on a thread (tunetorch/prefetch.py),
so a slot that frees is refilled at once and workers' epochs are answered meanwhile.

Budget (tunetorch/budget.py, the rule: a trial count only when given, or by default when no
minutes are): `n_trials` counts finished trials (completed, pruned or failed); `gpu_minutes`
counts the device seconds of finished trials. Once either is spent no new trial starts;
trials already in flight run to their end and are recorded, so a study can overshoot its GPU
minutes by at most one trial per slot.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunetorch.budget import Budget
from tunetorch.errors import SpaceExhausted, UsageError
from tunetorch.executors.base import Done, Event, Executor
from tunetorch.history import consecutive_failures, device_minutes
from tunetorch.prefetch import Prefetch
from tunetorch.study import Study
from tunetorch.trial import Trial, TrialState


@dataclass
class Outcome:
    reason: str  # why the search stopped
    ok: bool  # False when it stopped on failures or an interruption
    wall_seconds: float
    interrupted: bool = False


REPLACEMENT_WAIT_SECONDS = 300.0  # how long trials to retry wait for a lost worker's replacement


class _Stop(Exception):
    pass


def run_search(
    study: Study,
    pool: Executor,
    budget: Budget,
    max_retries: int = 1,
    max_consecutive_failures: int = 10,
    on_trial: Callable[[Trial], None] | None = None,
    on_start: Callable[[Trial, str], None] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> Outcome:
    """Run trials until the budget is spent. The callbacks only watch (the terminal, TensorBoard):
    on_start(trial, device) as a trial starts, on_epoch(number, metrics) after each of its epochs,
    on_trial(trial) once it has finished and is recorded."""
    start = time.monotonic()
    # A trial is PRUNED at the scheduler's decision, and its worker's "done" brings its device
    # seconds after: an earlier run that stopped between the two (a SIGKILL) left it without its
    # cost. It runs again, as a trial left RUNNING does: the same params, the same decision, and
    # its minutes counted, as in a run that was never stopped.
    for t in study.trials:
        if t.state == TrialState.PRUNED and t.device_seconds is None:
            unfinished = "pruned, but its end (its device seconds) was not recorded; run again"
            study.update(
                t.replace(
                    state=TrialState.INTERRUPTED, score=None, epochs=None, best_epoch=None, error=unfinished
                )
            )
    # Trials left RUNNING or INTERRUPTED by an earlier run of this study run again first.
    rerun = [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.INTERRUPTED)]
    exhausted = False
    reason = ""

    def finished() -> list[Trial]:
        return [t for t in study.trials if t.finished]

    def spent() -> str | None:
        done = finished()
        # A pruned trial is finished for the study before its worker reports back: count it once.
        done_numbers = {t.number for t in done}
        running = [n for n in pool.in_flight() if n not in done_numbers]
        return budget.spent(len(done) + len(running), device_minutes(done))

    def start_trial(slot: int, trial: Trial) -> None:
        device = pool.submit(slot, trial.number, trial.params)
        study.update(
            trial.replace(state=TrialState.RUNNING, device=device, attempts=trial.attempts + 1, error=None)
        )
        if on_start is not None:
            on_start(trial, device)

    # With more than one slot of workers that train while this loop computes, the next
    # suggestion is prepared while every slot is busy (tunetorch/prefetch.py). With one slot
    # each suggestion waits for the trial before it: the strategy sees every result.
    ahead = Prefetch(study) if pool.trains_meanwhile and len(pool.slots) > 1 else None
    last_progress = time.monotonic()
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while True:
            for slot in pool.idle_slots():
                if rerun:
                    start_trial(slot, rerun.pop(0))
                    continue
                why = spent()
                if why or exhausted:
                    reason = reason or why or "the space is exhausted"
                    break
                try:
                    start_trial(slot, ahead.take() if ahead else study.ask())
                except SpaceExhausted as e:
                    exhausted, reason = True, str(e)
                    break
            if ahead and not ahead.pending and not (pool.idle_slots() or rerun or exhausted or spent()):
                ahead.start()
            ending = False
            if pool.in_flight():
                last_progress = time.monotonic()
            elif not (rerun and pool.pending_slots()):
                # Nothing runs and nothing is coming back: hear out what the executor still holds
                # (a setup that failed or refused before any trial ran, as Ray's may), then end.
                ending = True
            elif time.monotonic() - last_progress >= REPLACEMENT_WAIT_SECONDS:
                # Trials to retry while every slot's worker is being replaced (a lost Ray node):
                # wait for a replacement, but not for ever.
                raise _Stop(f"no worker came back within {REPLACEMENT_WAIT_SECONDS:.0f} s to retry trials")
            event = pool.next_event(timeout=0.0 if ending else 0.5)
            if event is None:
                if ending:
                    break
                continue
            trial = _handle(event, study, pool, max_retries, rerun)
            if event.kind == "epoch" and on_epoch is not None:
                on_epoch(event.number, event.payload)
            if trial is None:
                continue
            if on_trial is not None:
                on_trial(trial)
            failures = consecutive_failures(study.trials)
            if failures >= max_consecutive_failures:
                raise _Stop(f"stopped after {failures} failed trials in a row; the last: {trial.error}")
    except _Stop as e:
        _interrupt_in_flight(study, pool, "the study stopped on failures")
        return Outcome(str(e), ok=False, wall_seconds=time.monotonic() - start)
    except UsageError:  # a worker's setup refused its device: bad input, the caller's one line
        _interrupt_in_flight(study, pool, "the study stopped: a worker refused its setup")
        raise
    except KeyboardInterrupt:
        _interrupt_in_flight(study, pool, "interrupted (Ctrl-C or SIGTERM); re-run on resume")
        return Outcome("interrupted", ok=False, wall_seconds=time.monotonic() - start, interrupted=True)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    return Outcome(reason or "done", ok=True, wall_seconds=time.monotonic() - start)


def _handle(event: Event, study: Study, pool: Executor, max_retries: int, rerun: list) -> Trial | None:
    """Record one event; returns the trial if it has just finished."""
    if event.kind == "setup_failed":
        raise _Stop(f"a worker could not start: {event.payload.splitlines()[0]}\n{event.payload}")
    if event.kind == "setup_refused":  # e.g. the data module's fit() refuses the worker's device
        raise UsageError(
            f"{event.payload} (refused in the setup of the worker on {pool.slots[event.slot].device})"
        )
    trial = study.trial(event.number)
    if event.kind == "epoch":
        # The study records the epoch (the journal's one writer) and its scheduler decides; the
        # worker waits for the answer when the pool decides, so every epoch gets one.
        stop = True  # not a running trial of this study (pruned, failed, unknown): end it
        if trial is not None and not trial.finished:
            metrics = dict(event.payload)
            stop = study.report(trial, metrics.pop("epoch"), metrics[study.metric], metrics)
        pool.decide(event.slot, stop)
        return None
    # A pruned trial is finished for the study, but its "done" still brings its device seconds.
    late = (
        trial is not None
        and trial.finished
        and not (event.kind == "done" and trial.state == TrialState.PRUNED)
    )
    if trial is None or late:  # not a trial of this study, or a late word on a finished one
        return None
    if event.kind == "died":
        if trial.attempts <= max_retries:
            rerun.append(trial.replace(error=event.payload))
            return None
        return study.tell(trial, None, error=f"{event.payload} (after {trial.attempts} attempts)")
    if event.kind == "done":
        p: Done = event.payload
        fields: dict[str, Any] = {
            "device_seconds": p.device_seconds,
            "wall_seconds": p.wall_seconds,  # raw time on the slot
            "node": p.node,
            "device_name": pool.slots[event.slot].device_name,
        }
        if p.error is not None:
            return study.tell(trial, None, error=p.error, **fields)
        result = p.result
        return study.tell(
            trial, result["score"], best_epoch=result.get("epoch"), epochs=result.get("epochs"), **fields
        )
    return None


def _interrupt_in_flight(study: Study, pool: Executor, why: str) -> None:
    running = pool.in_flight()
    pool.close(timeout=5.0)
    for t in study.trials:
        if t.number in running or t.state == TrialState.RUNNING:
            study.update(t.replace(state=TrialState.INTERRUPTED, error=why))


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
