"""The race run: every entrant's search in turn, then race.png, race.gif, race.json and TensorBoard.

Each entrant is an ordinary study in <race dir>/<entrant>/ with its own journal, run by the one
search loop (tunetorch.search.run_search): through `tunetorch.tune.run` for real training, or
on the in-process executor for a synthetic landscape (tunetorch.race.synthetic). An existing
race directory is resumed: each entrant continues its own journal.

Exit status: 0 done, 1 an entrant stopped on failures, 2 bad input (one line, nothing
written), 130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tunetorch import cli
from tunetorch.budget import Budget
from tunetorch.errors import UsageError
from tunetorch.race.plan import (
    DEFAULT_STRATEGIES,
    LANDSCAPE_DIMS,
    Entrant,
    Plan,
    check_same_landscape,
    make_plan,
)
from tunetorch.words import count, trials_cost_unit


def main() -> None:
    cli.main("race", _run_unless_a_strategy_is_chosen)


def _run_unless_a_strategy_is_chosen(cfg: Any) -> int:
    """The race runs every entry of race.strategies, so a strategy or scheduler of tune.yaml's
    defaults list, null unless chosen (`strategy=grid`, `+scheduler=asha`, `+strategy.x=1`), is
    refused rather than silently left out."""
    for group in ("strategy", "scheduler"):
        if cfg.get(group) is not None:
            raise UsageError(
                f"{group}: the race runs every entry of race.strategies; choose them with "
                f"race.strategies={DEFAULT_STRATEGIES}, options with race.options.NAME.KEY=V"
            )
    return run(cfg)


def run(cfg: Any) -> int:
    from tunetorch.lock import StudyLock
    from tunetorch.reports.terminal import budget_text

    plan = make_plan(cfg)
    race_dir = Path(cfg.study.dir)
    synthetic = plan.landscape is not None
    objective = (
        f"the {plan.landscape['name']} landscape, {count(cfg.trainer.epochs, 'epoch')} a trial"
        if synthetic
        else f"{cfg.model._target_} on {cfg.dataset._target_}, {count(cfg.trainer.epochs, 'epoch')} a trial"
    )
    print(
        f"race {race_dir}: {', '.join(e.name for e in plan.entrants)} on {objective}; "
        f"dims {plan.dims[0]} x {plan.dims[1]}; "
        f"budget {budget_text(race_budget(cfg), 'simulated GPU minutes' if synthetic else 'GPU minutes')} "
        "per entrant; "
        f"seed {cfg.study.seed}",
        flush=True,
    )
    with StudyLock(race_dir, create=True):  # one race in a race directory at a time
        return _run_entrants(cfg, plan, race_dir, objective)


def _run_entrants(cfg: Any, plan: Plan, race_dir: Path, objective: str) -> int:
    from tunetorch.race.figure import race_figure, save_race_gif
    from tunetorch.reports.tensorboard import write_race_tensorboard

    synthetic = plan.landscape is not None
    results: dict[str, list] = {}
    codes: dict[str, int] = {}
    for entrant in plan.entrants:
        if not synthetic:
            print(f"--- {entrant.name} ---", flush=True)
        code, trials = _race_synthetic(entrant, plan) if synthetic else _race_training(entrant)
        results[entrant.name], codes[entrant.name] = trials, code
        if code == 130:
            break

    every = [t for ts in results.values() for t in ts]
    unit = "simulated GPU minutes" if synthetic else trials_cost_unit(every)
    kwargs = figure_kwargs(cfg, plan, unit, objective)
    fig = race_figure(plan.space, results, **kwargs)
    _save_png(fig, race_dir / "race.png")
    tmp = race_dir / "race.tmp.gif"  # Pillow reads the format from the suffix
    save_race_gif(tmp, plan.space, results, **kwargs)
    os.replace(tmp, race_dir / "race.gif")
    write_race_tensorboard(race_dir / "tb", results, fig, direction=str(cfg.study.direction))
    summary = _summary(cfg, plan, results, codes, unit, objective)
    (race_dir / "race.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_table(summary, unit)
    from tunetorch.race.page import write_race_page

    interrupted = any(c == 130 for c in codes.values())
    write_race_page(
        race_dir / "race.html",
        cfg,
        plan,
        results,
        make_study=make_study,
        figure_kwargs=figure_kwargs,
        unit=unit,
        objective=objective,
        other_landscapes=not interrupted,
    )
    print(
        f"results: {race_dir}/race.png, race.gif, race.json, race.html; tensorboard --logdir {race_dir}/tb",
        flush=True,
    )
    if any(c == 130 for c in codes.values()):
        print("interrupted: run the same command again to resume the race", file=sys.stderr)
        return 130
    return 1 if any(codes.values()) else 0


# --- one entrant -------------------------------------------------------------------------------
def _race_synthetic(entrant: Entrant, plan: Plan) -> tuple[int, list]:
    from tunetorch.lock import StudyLock

    with StudyLock(Path(entrant.cfg.study.dir), create=True):
        return _race_synthetic_locked(entrant, plan)


def _race_synthetic_locked(entrant: Entrant, plan: Plan) -> tuple[int, list]:
    from tunetorch.lifecycle import add_wall_seconds, open_study
    from tunetorch.race.synthetic import search_landscape

    cfg = entrant.cfg
    check_same_landscape(Path(cfg.study.dir), plan.landscape)  # as make_plan did, now under the lock
    opened = open_study(cfg, entrant.plan)
    journal = opened.journal
    try:
        wanted = json.dumps(plan.landscape, sort_keys=True)
        if journal.get_meta("landscape") != wanted:
            journal.set_meta("landscape", wanted)
        outcome = search_landscape(
            opened.study,
            plan.landscape,
            race_budget(cfg),
            seed=int(cfg.study.seed),
            epochs=int(cfg.trainer.epochs),
            slots=int(cfg.tuner.workers),
            max_retries=cfg.tuner.max_retries,
            max_consecutive_failures=cfg.tuner.max_consecutive_failures,
        )
        add_wall_seconds(journal, outcome.wall_seconds)
        trials = opened.study.trials
    finally:
        journal.close()
    print(f"  {entrant.name}: {_reason(outcome.reason, entrant.strategy)}", flush=True)
    if outcome.interrupted:
        return 130, trials
    return (0 if outcome.ok else 1), trials


def race_budget(cfg: Any) -> Budget:
    """Each entrant's budget, by the study's rule (tunetorch/budget.py); a trained entrant gets the
    same one through `tunetorch.tune.run`."""
    return Budget(cfg.budget.n_trials, cfg.budget.gpu_minutes)


def make_study(entrant: Entrant, journal: Any = None):
    """The entrant's Study, in memory or written through to `journal`, built from its checked config
    as every study is (tunetorch.lifecycle.new_study)."""
    from tunetorch.lifecycle import new_study

    return new_study(entrant.cfg, entrant.plan, journal)


def _reason(reason: str, strategy: str) -> str:
    """Why a search stopped, without the strategy's own prefix ("grid: all 25 ..." -> "all 25 ...")."""
    return reason.removeprefix(f"{strategy}: ")


def _race_training(entrant: Entrant) -> tuple[int, list]:
    from tunetorch.journal import Journal
    from tunetorch.tune import run as run_study

    code = run_study(entrant.cfg)
    path = Path(entrant.cfg.study.dir) / "journal.sqlite"
    if not path.exists():
        return code, []
    journal = Journal(path)
    trials = journal.trials()
    journal.close()
    return code, trials


# --- what the race leaves behind ------------------------------------------------------------------
def figure_kwargs(cfg: Any, plan: Plan, unit: str, objective: str) -> dict[str, Any]:
    """race_figure's (and save_race_gif's) keyword arguments for this race."""
    from tunetorch.reports.terminal import budget_text
    from tunetorch.words import validation_name

    surface = optimum = None
    if plan.landscape is not None:
        from tunetorch.race.landscapes import optimum as landscape_optimum
        from tunetorch.race.landscapes import score

        name = plan.landscape["name"]
        lr_name, wd_name = LANDSCAPE_DIMS
        lr_first = plan.dims[0] == lr_name
        surface = (lambda X, Y: score(name, X, Y)) if lr_first else (lambda X, Y: score(name, Y, X))
        lr_dim, wd_dim = plan.space[lr_name], plan.space[wd_name]
        lr, wd, best = landscape_optimum(name, (lr_dim.low, lr_dim.high), (wd_dim.low, wd_dim.high))
        optimum = ({lr_name: lr, wd_name: wd}, best)
    budget = race_budget(cfg)
    return {
        "surface": surface,
        "optimum": optimum,
        "budget_minutes": budget.gpu_minutes,
        "budget_trials": budget.n_trials,
        "max_epochs": int(cfg.trainer.epochs),
        "direction": str(cfg.study.direction),  # the best ring and the best-so-far curves
        "unit": unit,
        # the study's metric as every report reads it (words.validation_name: "validation accuracy")
        "score_label": "score" if plan.landscape is not None else validation_name(str(cfg.study.metric)),
        "title": f"Race on {objective}: budget "
        f"{budget_text(budget, unit)} per entrant, "
        f"seed {cfg.study.seed}",
        "resolution": plan.heatmap_resolution,
    }


def _save_png(fig, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=100, format="png")
    os.replace(tmp, path)


def _summary(
    cfg: Any, plan: Plan, results: dict[str, list], codes: dict[str, int], unit: str, objective: str
) -> dict[str, Any]:
    from tunetorch.history import best_trial, count_state, device_minutes, pruned_per_rung
    from tunetorch.trial import TrialState

    budget = race_budget(cfg)
    out: dict[str, Any] = {
        "objective": objective,
        "landscape": plan.landscape,
        "dims": list(plan.dims),
        "budget": {"n_trials": budget.n_trials, "gpu_minutes": budget.gpu_minutes},
        "epochs": cfg.trainer.epochs,
        "seed": cfg.study.seed,
        "unit": unit,
        "strategies": {},
    }
    for name, trials in results.items():
        entrant = next(e for e in plan.entrants if e.name == name)
        best = best_trial(trials, str(cfg.study.direction))
        finished = [t for t in trials if t.finished]
        out["strategies"][name] = {
            "n_trials": len(finished),
            "n_failed": count_state(trials, TrialState.FAIL),
            "n_pruned": count_state(trials, TrialState.PRUNED),
            "pruned_per_rung": {str(k): v for k, v in pruned_per_rung(trials).items()},
            "epochs_trained": sum(t.epochs or 0 for t in finished),
            "gpu_minutes": device_minutes(trials),
            "best": None
            if best is None
            else {"params": best.params, "score": best.score, "trial": best.number, "epochs": best.epochs},
            "exit": codes.get(name),
            "strategy": entrant.strategy,
            "options": entrant.options,
            "scheduler": entrant.scheduler,
            "scheduler_options": entrant.scheduler_options,
        }
    return out


def _print_table(summary: dict[str, Any], unit: str) -> None:
    width = max([10, *(len(n) for n in summary["strategies"])])
    print(f"{'entrant':<{width}} {'trials':>6} {'pruned':>6} {'best':>7} {unit:>22}  best params")
    for name, s in summary["strategies"].items():
        best = s["best"]
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in (best["params"] if best else {}).items()
        )
        score = f"{best['score']:.4f}" if best else "-"
        print(
            f"{name:<{width}} {s['n_trials']:>6} {s['n_pruned']:>6} {score:>7} "
            f"{s['gpu_minutes']:>22.2f}  {params}"
        )
