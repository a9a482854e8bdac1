"""Does bayes beat grid and random on the bumpy landscape? Median best score over seeds.

    .venv/bin/python scripts/race_check.py [--seeds 10] [--trials 30] [--landscape bumpy]
        [--strategies grid,random,bayes]

Each seed composes the race config exactly as `python -m tunetorch.race landscape=bumpy
budget.n_trials=30 study.seed=S` would (the same strategy options, grid resolution and
space), then runs every strategy in memory (no journal, nothing written). Exit status 0
when bayes's median best score is above both grid's and random's, else 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main() -> int:
    from hydra import compose, initialize_config_dir

    from tunetorch.race import make_plan, run_synthetic
    from tunetorch.search import Budget
    from tunetorch.strategies import make_strategy
    from tunetorch.study import Study
    from tunetorch.tune import CONF_DIR

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--landscape", default="bumpy")
    ap.add_argument("--strategies", default="grid,random,bayes")
    args = ap.parse_args()
    names = args.strategies.split(",")

    best: dict[str, list[float]] = {n: [] for n in names}
    seconds: dict[str, float] = {n: 0.0 for n in names}
    optimum = None
    for seed in range(args.seeds):
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "race",
                overrides=[
                    f"landscape={args.landscape}",
                    f"budget.n_trials={args.trials}",
                    f"study.seed={seed}",
                    "study.dir=unused",
                    f"race.strategies=[{','.join(names)}]",
                ],
            )
        plan = make_plan(cfg)
        if optimum is None:
            from tunetorch.landscapes import optimum as landscape_optimum

            lr, wd = plan.space["lr"], plan.space["weight_decay"]
            optimum = landscape_optimum(args.landscape, (lr.low, lr.high), (wd.low, wd.high))[2]
        for e in plan.entrants:
            study = Study(plan.space, make_strategy(e.name, plan.space, seed=seed, **e.options))
            start = time.perf_counter()
            run_synthetic(
                study, plan.landscape, Budget(cfg.budget.n_trials, cfg.budget.gpu_minutes), seed=seed
            )
            seconds[e.name] += time.perf_counter() - start
            best[e.name].append(study.best.score)
        print(f"seed {seed}: " + "  ".join(f"{n} {best[n][-1]:.4f}" for n in names), flush=True)

    print(
        f"\n{args.landscape} landscape, {args.trials} trials per strategy, seeds 0..{args.seeds - 1}; "
        f"optimum {optimum:.4f}"
    )
    print(f"{'strategy':<10} {'median best':>12} {'min':>8} {'max':>8} {'wins':>5} {'s / run':>8}")
    for n in names:
        wins = sum(best[n][i] >= max(best[m][i] for m in names) for i in range(args.seeds))
        print(
            f"{n:<10} {statistics.median(best[n]):>12.4f} {min(best[n]):>8.4f} {max(best[n]):>8.4f} "
            f"{wins:>5} {seconds[n] / args.seeds:>8.2f}"
        )
    if "bayes" not in names:
        return 0
    med = {n: statistics.median(best[n]) for n in names}
    ok = all(med["bayes"] > med[n] for n in names if n != "bayes")
    print(
        f"\nbayes's median best is {'above' if ok else 'NOT above'} "
        + " and ".join(f"{n}'s" for n in names if n != "bayes")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
