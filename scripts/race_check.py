"""Does bayes beat grid and random on the bumpy landscape? Median best score over seeds.

    .venv/bin/python scripts/race_check.py [--seeds 10] [--trials 30 | --minutes M | --race-budget]
        [--landscape bumpy] [--strategies grid,random,bayes]   # bayes+asha too: ...,bayes,bayes+asha

The budget is always given explicitly, so the documented results stay reproducible whatever
conf/race.yaml's default: `--trials 30` (the default here: docs/race.md's medians and issue 18's
target were measured on 30 trials per entrant), `--minutes M` (an equal budget of M simulated
GPU minutes, no trial cap), or `--race-budget` (the race's own default, race.default_gpu_minutes).
Each seed composes the race config exactly as `python -m tunetorch.race landscape=bumpy
budget.n_trials=30 budget.gpu_minutes=null study.seed=S` would (the same strategy and scheduler
options, grid resolution, space and epochs), then runs every entrant in memory (no journal,
nothing written) through the study's search loop on the in-process executor, as the race does.
Besides the median best score it prints the simulated GPU minutes and the epochs each entrant spent.
Exit status 0 when bayes's median best score is above grid's and random's, else 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main() -> int:
    from tunetorch.cli import compose
    from tunetorch.history import device_minutes
    from tunetorch.race.landscapes import optimum as landscape_optimum
    from tunetorch.race.plan import LANDSCAPE_DIMS, make_plan
    from tunetorch.race.runner import make_study, race_budget
    from tunetorch.race.synthetic import search_landscape
    from tunetorch.reports.terminal import budget_text

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--trials", type=int, help="a trials budget per entrant (default 30)")
    budget.add_argument("--minutes", type=float, help="an equal budget of simulated GPU minutes per entrant")
    budget.add_argument("--race-budget", action="store_true", help="the race's default budget")
    ap.add_argument("--landscape", default="bumpy")
    ap.add_argument("--strategies", default="grid,random,bayes")
    args = ap.parse_args()
    names = args.strategies.split(",")
    if args.race_budget:
        budget_args = ["budget.n_trials=null", "budget.gpu_minutes=null"]  # make_plan applies the default
    elif args.minutes is not None:
        budget_args = ["budget.n_trials=null", f"budget.gpu_minutes={args.minutes}"]
    else:
        budget_args = [
            f"budget.n_trials={30 if args.trials is None else args.trials}",
            "budget.gpu_minutes=null",
        ]

    best: dict[str, list[float]] = {n: [] for n in names}
    minutes: dict[str, list[float]] = {n: [] for n in names}
    epochs: dict[str, list[int]] = {n: [] for n in names}
    seconds: dict[str, float] = {n: 0.0 for n in names}
    optimum = budget_words = None
    for seed in range(args.seeds):
        cfg = compose(
            "race",
            [
                f"landscape={args.landscape}",
                *budget_args,
                f"study.seed={seed}",
                "study.dir=unused",
                f"race.strategies=[{','.join(names)}]",
            ],
        )
        plan = make_plan(cfg)  # applies the race's default budget when none is given
        budget_words = budget_text(race_budget(cfg), "simulated GPU minutes")
        if optimum is None:
            lr, wd = (plan.space[d] for d in LANDSCAPE_DIMS)
            optimum = landscape_optimum(args.landscape, (lr.low, lr.high), (wd.low, wd.high))[2]
        for e in plan.entrants:
            study = make_study(e)
            start = time.perf_counter()
            search_landscape(
                study,
                plan.landscape,
                race_budget(cfg),
                seed=seed,
                epochs=int(cfg.trainer.epochs),
            )
            seconds[e.name] += time.perf_counter() - start
            best[e.name].append(study.best.score)
            minutes[e.name].append(device_minutes(study.trials))
            epochs[e.name].append(sum(t.epochs or 0 for t in study.trials if t.finished))
        print(f"seed {seed}: " + "  ".join(f"{n} {best[n][-1]:.4f}" for n in names), flush=True)

    print(
        f"\n{args.landscape} landscape, budget {budget_words} per entrant, seeds 0..{args.seeds - 1}; "
        f"optimum {optimum:.4f}"
    )
    width = max([10, *(len(n) for n in names)])
    print(
        f"{'entrant':<{width}} {'median best':>12} {'min':>8} {'max':>8} {'wins':>5} "
        f"{'sim. GPU min':>12} {'epochs':>7} {'s / run':>8}"
    )
    for n in names:
        wins = sum(best[n][i] >= max(best[m][i] for m in names) for i in range(args.seeds))
        print(
            f"{n:<{width}} {statistics.median(best[n]):>12.4f} {min(best[n]):>8.4f} {max(best[n]):>8.4f} "
            f"{wins:>5} {statistics.median(minutes[n]):>12.1f} {statistics.median(epochs[n]):>7.0f} "
            f"{seconds[n] / args.seeds:>8.2f}"
        )
    if "bayes" not in names:
        return 0
    med = {n: statistics.median(best[n]) for n in names}
    rivals = [n for n in names if n in ("grid", "random")]
    ok = all(med["bayes"] > med[n] for n in rivals)
    print(
        f"\nbayes's median best is {'above' if ok else 'NOT above'} " + " and ".join(f"{n}'s" for n in rivals)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
