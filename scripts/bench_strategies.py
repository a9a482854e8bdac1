"""Benchmark tunetorch's strategies against Optuna's samplers on standard test functions.

    nice -n 10 .venv/bin/python scripts/bench_strategies.py [--seeds 10] [--budget 60]
        [--functions branin,hartmann3,hartmann6,styblinski_tang4,ackley5,rosenbrock4]
        [--samplers bayes,random,grid,optuna-gp,optuna-tpe,optuna-random] [--workers 2]
        [--out docs/bench_strategies.md]

Every sampler runs through its public ask/tell API (tunetorch.Study, optuna.Study) with the
same budget and seeds. The functions are minimised; tunetorch maximises, so it is told -f(x).
Simple regret after n evaluations = min f over the first n - f*. Printed as a markdown table:
median [25%, 75%] of log10 regret after 20, 40, 60 and 100 evaluations (those within the
budget), median seconds per suggestion, and the Wilcoxon signed-rank p-value (paired by seed)
of bayes against each Optuna sampler at 40 evaluations. Then the targets: Branin regret at
30, Hartmann6 best at 50, and the suggestion time of bayes with 100 observations in 6-D.

Optuna is a benchmark-only extra (`pip install -e .[bench]`); tunetorch does not import it.
One thread per process (set before numpy loads): the workers share a 2-core machine.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pickle  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHECKPOINTS = (20, 40, 60, 100)
OPTUNA = ("optuna-gp", "optuna-tpe", "optuna-random")
MARKER = "<!-- Everything below is written by scripts/bench_strategies.py --out; edit above this line. -->"


# --- test functions (minimised): name -> (bounds, f, f*) -------------------------------------------
def branin(x):
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * math.cos(x[0]) + s


_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann(A, P):
    return lambda x: -float(_H_ALPHA @ np.exp(-(A * (np.asarray(x) - P) ** 2).sum(1)))


def styblinski_tang(x):
    x = np.asarray(x)
    return float(0.5 * (x**4 - 16 * x**2 + 5 * x).sum())


def ackley(x):
    x = np.asarray(x)
    d = len(x)
    return float(
        -20 * math.exp(-0.2 * math.sqrt((x**2).sum() / d))
        - math.exp(np.cos(2 * math.pi * x).sum() / d)
        + 20
        + math.e
    )


def log_rosenbrock(x):
    # Rosenbrock spans ~8 decades over the box; log(1 + f) keeps the standardised GP sane
    # for every sampler alike (and leaves the minimiser where it was, with f* = 0).
    x = np.asarray(x)
    return float(math.log1p((100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()))


# Multimodal: many local minima of nearly the global's value, where a model that trusts one
# basin too early stalls (TPE's strength).
def rastrigin(x):
    x = np.asarray(x)
    return float(10 * len(x) + (x**2 - 10 * np.cos(2 * math.pi * x)).sum())


def levy(x):
    w = 1 + (np.asarray(x) - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    body = ((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2)).sum()
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return float(head + body + tail)


_SHEKEL_C = 0.1 * np.array([1, 2, 2, 4, 4, 6, 3, 7, 5, 5])
_SHEKEL_A = np.array(
    [
        [4, 4, 4, 4],
        [1, 1, 1, 1],
        [8, 8, 8, 8],
        [6, 6, 6, 6],
        [3, 7, 3, 7],
        [2, 9, 2, 9],
        [5, 5, 3, 3],
        [8, 1, 8, 1],
        [6, 2, 6, 2],
        [7, 3.6, 7, 3.6],
    ],
    dtype=float,
)


def shekel10(x):
    return -float((1 / (((np.asarray(x) - _SHEKEL_A) ** 2).sum(1) + _SHEKEL_C)).sum())


def schwefel(x):
    x = np.asarray(x)
    return float(418.9828872724338 * len(x) - (x * np.sin(np.sqrt(np.abs(x)))).sum())


def michalewicz(x):
    # m = 10: steep narrow valleys; separable, so f* is the sum of five 1-D minima.
    x = np.asarray(x)
    i = np.arange(1, len(x) + 1)
    return -float((np.sin(x) * np.sin(i * x**2 / math.pi) ** 20).sum())


def griewank(x):
    x = np.asarray(x)
    return float(1 + (x**2).sum() / 4000 - np.prod(np.cos(x / np.sqrt(np.arange(1, len(x) + 1)))))


def eggholder(x):
    x1, x2 = x
    y = x2 + 47
    return float(-y * math.sin(math.sqrt(abs(y + x1 / 2))) - x1 * math.sin(math.sqrt(abs(x1 - y))))


FUNCTIONS = {
    "branin": ([(-5.0, 10.0), (0.0, 15.0)], branin, 0.397887357729739),
    "hartmann3": ([(0.0, 1.0)] * 3, hartmann(_H3_A, _H3_P), -3.86278214782076),
    "hartmann6": ([(0.0, 1.0)] * 6, hartmann(_H6_A, _H6_P), -3.32236801141551),
    "styblinski_tang4": ([(-5.0, 5.0)] * 4, styblinski_tang, -39.166165703771 * 4),
    # Not the usual symmetric box: that puts the optimum at the centre, which a grid with an odd
    # resolution (or any centre-biased design) hits by luck on its first point.
    "ackley5": ([(-11.0, 29.0)] * 5, ackley, 0.0),
    "rosenbrock4": ([(-5.0, 10.0)] * 4, log_rosenbrock, 0.0),
    # Off-centre boxes, as for Ackley: the optimum is not the box's centre.
    "rastrigin4": ([(-3.0, 7.0)] * 4, rastrigin, 0.0),
    "levy4": ([(-10.0, 10.0)] * 4, levy, 0.0),  # optimum at x = 1
    "shekel10": ([(0.0, 10.0)] * 4, shekel10, -10.536409816692),  # ten basins; optimum near 4
    "schwefel4": ([(-500.0, 500.0)] * 4, schwefel, 0.0),  # optimum at 420.97, far from the next basin
    # The usual box; its centre (pi/2)^5 scores -1.00. Optimum near (2.203, 1.571, 1.285, 1.923, 1.721).
    "michalewicz5": ([(0.0, math.pi)] * 5, michalewicz, -4.687658179088),
    # The usual [-600, 600]^d is a bowl at 100 evaluations' resolution; on this box the cosine
    # ripples (about 2000 basins) dominate it. Optimum at 0.
    "griewank4": ([(-20.0, 40.0)] * 4, griewank, 0.0),
    "eggholder2": ([(-512.0, 512.0)] * 2, eggholder, -959.640662720851),  # optimum at (512, 404.23)
}


# --- one run: (function, sampler, seed) -> best-so-far values and seconds per suggestion ------
def run_one(job):
    fname, sampler, seed, budget, bayes_options = job
    bounds, f, _ = FUNCTIONS[fname]
    names = [f"x{i}" for i in range(len(bounds))]
    values, seconds = [], []
    if sampler in OPTUNA:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        make = {
            "optuna-gp": optuna.samplers.GPSampler,
            "optuna-tpe": optuna.samplers.TPESampler,
            "optuna-random": optuna.samplers.RandomSampler,
        }[sampler]
        study = optuna.create_study(direction="minimize", sampler=make(seed=seed))
        dists = {
            n: optuna.distributions.FloatDistribution(lo, hi)
            for n, (lo, hi) in zip(names, bounds, strict=True)
        }
        for _ in range(budget):
            t0 = time.perf_counter()
            trial = study.ask(dists)
            seconds.append(time.perf_counter() - t0)
            value = f([trial.params[n] for n in names])
            study.tell(trial, value)
            values.append(value)
    else:
        import warnings

        from tunetorch import SearchSpace, Study

        warnings.simplefilter("ignore")
        space = SearchSpace.from_dict(
            {n: {"type": "float", "low": lo, "high": hi} for n, (lo, hi) in zip(names, bounds, strict=True)}
        )
        options = {"resolution": math.ceil(budget ** (1 / len(bounds)))} if sampler == "grid" else {}
        options = bayes_options if sampler == "bayes" else options
        study = Study(space, strategy=sampler, seed=seed, strategy_options=options)
        for _ in range(budget):
            t0 = time.perf_counter()
            trial = study.ask()
            seconds.append(time.perf_counter() - t0)
            value = f([trial.params[n] for n in names])
            study.tell(trial, -value)
            values.append(value)
    return fname, sampler, seed, np.minimum.accumulate(values), float(np.median(seconds))


def timing_check(n_obs=100, n_dims=6, repeats=7):
    """Median seconds of one bayes suggestion with n_obs completed trials in n_dims dimensions."""
    import warnings

    from tunetorch import SearchSpace, Trial, TrialState, make_strategy
    from tunetorch.snapshot import Snapshot

    warnings.simplefilter("ignore")
    _, f, _ = FUNCTIONS["hartmann6"]
    space = SearchSpace.from_dict(
        {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(n_dims)}
    )
    rng = np.random.default_rng(0)
    trials = []
    for k in range(n_obs):
        p = space.sample(rng)
        trials.append(Trial(k, p, TrialState.COMPLETE, score=-f([p[n] for n in space.names][:6])))
    strategy = make_strategy("bayes", space, seed=0)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        strategy.suggest(n_obs + i, Snapshot(tuple(trials)))
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times)), float(np.max(times))


# --- report -----------------------------------------------------------------------------------
def fmt(values):
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return f"{q50:.2f} [{q25:.2f}, {q75:.2f}]"


def wilcoxon_p(a, b):
    from scipy.stats import wilcoxon

    if np.allclose(a, b):
        return float("nan")
    return float(wilcoxon(a, b).pvalue)


def report(results, functions, samplers, budget, seeds):
    lines = []
    checks = [c for c in CHECKPOINTS if c <= budget]
    others = [s for s in OPTUNA if s in samplers] if "bayes" in samplers else []
    head = ["function", "sampler", *[f"log10 regret @{c}" for c in checks], "s / suggest"]
    head += [f"p (bayes vs {o}) @40" for o in others]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    wins = {}
    for fname in functions:
        fstar = FUNCTIONS[fname][2]
        logreg = {
            s: {
                c: np.array(
                    [math.log10(max(results[(fname, s, k)][0][c - 1] - fstar, 1e-12)) for k in range(seeds)]
                )
                for c in checks
            }
            for s in samplers
        }
        for s in samplers:
            secs = np.median([results[(fname, s, k)][1] for k in range(seeds)])
            row = [fname, s, *[fmt(logreg[s][c]) for c in checks], f"{secs:.3f}"]
            if s == "bayes" and 40 in checks:
                row += [f"{wilcoxon_p(logreg['bayes'][40], logreg[o][40]):.3g}" for o in others]
            else:
                row += [""] * len(others)
            lines.append("| " + " | ".join(row) + " |")
        if "bayes" in samplers and checks:
            for c in sorted({40, checks[-1]} & set(checks)):
                mb = np.median(logreg["bayes"][c])
                wins.setdefault(c, {})[fname] = {
                    o: mb <= np.median(logreg[o][c]) for o in samplers if o != "bayes"
                }
    lines.append("")
    for c, won_at in wins.items():
        lines.append(f"bayes median regret @{c} at or below the other sampler's (functions won / run):")
        for o in [s for s in samplers if s != "bayes"]:
            won = [fn for fn in won_at if won_at[fn][o]]
            lines.append(
                f"- vs {o}: {len(won)} / {len(won_at)}"
                + (f" (lost: {', '.join(sorted(set(won_at) - set(won)))})" if len(won) < len(won_at) else "")
            )
        lines.append("")
    if "bayes" in samplers and "branin" in functions and budget >= 30:
        reg = [results[("branin", "bayes", s)][0][29] - FUNCTIONS["branin"][2] for s in range(seeds)]
        lines.append(
            f"- Branin, bayes: median regret after 30 evaluations {np.median(reg):.2e} (target < 1e-2)"
        )
    if "bayes" in samplers and "hartmann6" in functions and budget >= 50:
        best = [results[("hartmann6", "bayes", s)][0][49] for s in range(seeds)]
        lines.append(
            f"- Hartmann6, bayes: median best after 50 evaluations {np.median(best):.3f} (target <= -3.20)"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--functions", default=",".join(FUNCTIONS))
    ap.add_argument("--samplers", default="bayes,random,grid," + ",".join(OPTUNA))
    ap.add_argument("--workers", type=int, default=2, help="processes (at most 2 on the shared machine)")
    ap.add_argument("--no-timing", action="store_true", help="skip the 100-observation timing check")
    ap.add_argument("--bayes-options", default="{}", help="JSON: options for the bayes strategy")
    ap.add_argument(
        "--raw", default=None, help="pickle of runs: read if it exists (runs in it are skipped), then written"
    )
    ap.add_argument("--out", default=None, help="also write the report (markdown) here")
    args = ap.parse_args(argv)
    functions, samplers = args.functions.split(","), args.samplers.split(",")
    for fn in functions:
        if fn not in FUNCTIONS:
            ap.error(f"--functions: {fn!r} is not one of {', '.join(FUNCTIONS)}")
    bayes_options = json.loads(args.bayes_options)
    jobs = [
        (fn, s, seed, args.budget, bayes_options)
        for fn in functions
        for s in samplers
        for seed in range(args.seeds)
    ]
    # Slow samplers first, so that the two workers finish together.
    jobs.sort(key=lambda j: j[1] not in ("bayes", "optuna-gp"))
    t0 = time.time()
    results = {}
    if args.raw and Path(args.raw).exists():  # re-use the runs of an earlier call (report only)
        results = pickle.loads(Path(args.raw).read_bytes())
        jobs = [j for j in jobs if j[:3] not in results]
    with Pool(min(max(args.workers, 1), 2)) as pool:
        for i, (fn, s, seed, best, secs) in enumerate(pool.imap_unordered(run_one, jobs), 1):
            results[(fn, s, seed)] = (best, secs)
            if i % 20 == 0 or i == len(jobs):
                print(f"  {i}/{len(jobs)} runs, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    if args.raw:
        Path(args.raw).write_bytes(pickle.dumps(results))
    text = report(results, functions, samplers, args.budget, args.seeds)
    if not args.no_timing and "bayes" in samplers:
        med, lo, hi = timing_check()
        text += (
            f"\n- bayes suggestion with 100 observations in 6-D: median {med:.3f} s "
            f"(min {lo:.3f}, max {hi:.3f}; target <= 0.3 s)"
        )
    wall = time.time() - t0
    args_text = " ".join(argv if argv is not None else sys.argv[1:])
    header = (
        f"Machine: {os.cpu_count()}-core CPU ({_cpu_model()}), shared with other work; "
        f"{min(args.workers, 2)} worker processes, one BLAS thread each; "
        f"Python {platform.python_version()}.  \n"
        f"Command: `nice -n 10 .venv/bin/python scripts/bench_strategies.py {args_text}`; "
        f"wall time {wall / 60:.1f} min.  \n"
        f"{args.seeds} seeds, {args.budget} evaluations per run, the same for every sampler. Regret is "
        f"log10(min f - f*), clipped at 1e-12; cells are median [25%, 75%] over seeds.\n"
    )
    print(header + "\n" + text)
    if args.out:
        # Keep the hand-written notes above the marker; replace the output below it.
        out = Path(args.out)
        old = out.read_text() if out.exists() else "# Strategy benchmark\n\n"
        notes = old.split(MARKER)[0] if MARKER in old else old
        out.write_text(notes + MARKER + "\n\n" + header + "\n" + text + "\n")


def _cpu_model() -> str:
    from _machine import cpu_model

    return cpu_model()


if __name__ == "__main__":
    main()
