"""Does bayes beat grid and random on the bumpy landscape? Median best score over seeds.

    .venv/bin/python scripts/race_check.py [--seeds 10] [--trials 30] [--landscape bumpy]
        [--strategies grid,random,bayes]     # bayes+asha too: --strategies grid,random,bayes,bayes+asha

Each seed composes the race config exactly as `python -m tunetorch.race landscape=bumpy
budget.n_trials=30 study.seed=S` would (the same strategy and scheduler options, grid
resolution, space and epochs), then runs every entrant in memory (no journal, nothing written)
through the study's search loop on the in-process executor, as the race does. Besides the
median best score it prints the simulated GPU minutes and the epochs each entrant spent.
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
    from tunetorch.race.runner import make_study
    from tunetorch.race.synthetic import search_landscape
    from tunetorch.search import Budget

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--landscape", default="bumpy")
    ap.add_argument("--strategies", default="grid,random,bayes")
    args = ap.parse_args()
    names = args.strategies.split(",")

    best: dict[str, list[float]] = {n: [] for n in names}
    minutes: dict[str, list[float]] = {n: [] for n in names}
    epochs: dict[str, list[int]] = {n: [] for n in names}
    seconds: dict[str, float] = {n: 0.0 for n in names}
    optimum = None
    for seed in range(args.seeds):
        cfg = compose(
            "race",
            [
                f"landscape={args.landscape}",
                f"budget.n_trials={args.trials}",
                f"study.seed={seed}",
                "study.dir=unused",
                f"race.strategies=[{','.join(names)}]",
            ],
        )
        plan = make_plan(cfg)
        if optimum is None:
            lr, wd = (plan.space[d] for d in LANDSCAPE_DIMS)
            optimum = landscape_optimum(args.landscape, (lr.low, lr.high), (wd.low, wd.high))[2]
        for e in plan.entrants:
            study = make_study(e, plan)
            start = time.perf_counter()
            search_landscape(
                study,
                plan.landscape,
                Budget(cfg.budget.n_trials, cfg.budget.gpu_minutes),
                seed=seed,
                epochs=int(cfg.trainer.epochs),
            )
            seconds[e.name] += time.perf_counter() - start
            best[e.name].append(study.best.score)
            minutes[e.name].append(device_minutes(study.trials))
            epochs[e.name].append(sum(t.epochs or 0 for t in study.trials if t.finished))
        print(f"seed {seed}: " + "  ".join(f"{n} {best[n][-1]:.4f}" for n in names), flush=True)

    print(
        f"\n{args.landscape} landscape, {args.trials} trials per entrant, seeds 0..{args.seeds - 1}; "
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
