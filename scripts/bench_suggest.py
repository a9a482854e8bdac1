"""Seconds for one suggestion against the number of finished trials (issue 18's scale target).

    nice -n 5 .venv/bin/python scripts/bench_suggest.py [--n 50,100,400,1000,10000] [--reps 5]
        [--max-seconds 300] [--no-optuna] [--out docs/bench_suggest.md]

Columns (each a median over --reps suggestions, in seconds):
    bayes               tunetorch's bayes, no scheduler: n COMPLETE trials, no curves
    bayes + ASHA        tunetorch's bayes with its default `fidelity: rank` model (and `joint`), on a history
                        that ASHA made: n finished trials, most of them PRUNED after 1 or 3 of
                        their 8 epochs, each with its per-epoch curve
    Optuna GPSampler,   Optuna's samplers (`study.ask` with the six distributions), the same n
    Optuna TPE          points added with create_trial / add_trials (--no-optuna leaves them out)

The space is 6 floats in [0, 1] or log-scaled ranges, the objective a sum of sines over a
quadratic bowl (multimodal, maximised), the n history points uniform in the unit cube from
--seed. Under ASHA each trial is a learning curve over 8 epochs whose final value is the
objective, and ASHA (eta 3, rungs at 1 and 3 epochs trained) stops it as tunetorch's
scheduler does (`tunetorch.schedulers.asha`; the rule is re-implemented here with sorted rung
lists, since replaying 10,000 trials through the scheduler is quadratic), so the trials and
curves are what `Study(scheduler="asha")` would hold, without training or running a Study.

How one cell is timed, the same for every column: the history holds n - 1 trials; one
suggestion is made and not timed (a warm-up: imports, caches, a strategy that reuses its
previous fit finds one, as it would in a running study); then --reps suggestions are timed,
each one evaluated and added to the history before the next (so they see n, n + 1, ...
finished trials and each asks for the next trial number, as a study does). tunetorch's
strategy is called as the Study calls it (`suggest(number, snapshot)`), without the
Study's own bookkeeping. One thread for BLAS and torch (OMP_NUM_THREADS=1 unless set), one
process; on a shared machine the times are noisy, so read medians, not single cells.

A cell is printed "skipped (>N s)", and so is every larger n of that column, when its warm-up
and one timed suggestion would already take more than --max-seconds by the estimate (the
previous n's median scaled by the growth seen between the last two n, at least linear, at most
cubic; cubic after one point); a cell that runs over --max-seconds stops after the suggestion
in progress and says how many it timed.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import bisect  # noqa: E402
import importlib.util  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_N = (50, 100, 400, 1000, 10000)
EPOCHS = 8  # a full trial under ASHA, as scripts/bench_multifidelity.py trains
ETA = 3
COLUMNS = {
    "bayes": "bayes",
    "bayes+asha": "bayes + ASHA (rank, the default)",
    "bayes+asha-joint": "bayes + ASHA (fidelity=joint)",
    "optuna-gp": "Optuna GPSampler",
    "optuna-tpe": "Optuna TPE",
}
# The space: 6 floats, two of them log-scaled (a learning rate and a weight decay, as the default space).
SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99},
    "x4": {"type": "float", "low": -5.0, "high": 5.0},
    "x5": {"type": "float", "low": 0.0, "high": 1.0},
}
_CENTRE = np.array([0.3, 0.7, 0.2, 0.55, 0.8, 0.4])


def objective(u: np.ndarray) -> float:
    """The score (maximised) of a unit-cube point u (6,): sines over a bowl, several local optima."""
    return float(np.sum(0.5 * np.sin(9.0 * u + np.arange(len(u))) - 2.0 * (u - _CENTRE) ** 2))


def curve(u: np.ndarray, seed: int, number: int) -> list[float]:
    """The validation values after epochs 0..EPOCHS-1: rises to objective(u) at a speed that
    depends on the point (so early ranks are not final ranks), plus a little seeded noise."""
    rng = np.random.default_rng([seed, number, 7])
    tau = 0.5 + 3.0 * u[2]  # slow starters exist: ASHA may stop a good point early
    final = objective(u)
    return [final - 1.5 * math.exp(-(e + 1) / tau) + 0.02 * float(rng.normal()) for e in range(EPOCHS)]


RUNGS = (1, 3)  # epochs trained at ASHA's rungs: min_resource 1 x eta**k below EPOCHS


# --- histories ------------------------------------------------------------------------------------
@dataclass
class History:
    """The trials (and, under ASHA, the curves) a study would hold after the trials added so far."""

    space: Any
    seed: int
    asha: bool
    trials: list = field(default_factory=list)
    curves: dict[int, dict[int, float]] = field(default_factory=dict)
    rung_values: dict[int, list[float]] = field(default_factory=dict)  # epochs trained -> sorted values

    def add(self, params: dict[str, Any]) -> None:
        """Evaluate `params` as trial len(trials) and record it, as the study would."""
        from tunetorch import Trial, TrialState

        number = len(self.trials)
        u = self.space.to_unit(params)
        if not self.asha:
            self.trials.append(Trial(number, params, TrialState.COMPLETE, score=objective(u)))
            return
        values = curve(u, self.seed, number)
        trained = EPOCHS
        for e, v in enumerate(values):
            if self._stop(e, v):
                trained = e + 1
                break
        own = values[:trained]
        best_epoch = max(range(trained), key=lambda e: (own[e], -e))  # the earliest on a tie, as the study
        state = TrialState.COMPLETE if trained == EPOCHS else TrialState.PRUNED
        self.trials.append(
            Trial(number, params, state, score=own[best_epoch], epochs=trained, best_epoch=best_epoch)
        )
        self.curves[number] = dict(enumerate(own))

    def _stop(self, epoch: int, value: float) -> bool:
        """ASHA's decision after `epoch` (tunetorch.schedulers.asha.stop_at_rung, Optuna's rule): at a
        rung, go on only if in the top 1/eta of every value recorded there, this one included."""
        if epoch + 1 not in RUNGS:
            return False
        recorded = self.rung_values.setdefault(epoch + 1, [])
        bisect.insort(recorded, value)
        k = max(1, len(recorded) // ETA)
        return value < recorded[len(recorded) - k]

    def snapshot(self):
        """What the strategy sees, as the study would hand it (`Study.snapshot`)."""
        from tunetorch.snapshot import Snapshot

        return Snapshot(tuple(self.trials), self.curves)

    def pruned_share(self) -> dict[int, float]:
        """epochs trained -> share of the trials that stopped there."""
        n = len(self.trials) or 1
        out: dict[int, float] = {}
        for t in self.trials:
            out[t.epochs] = out.get(t.epochs, 0.0) + 1.0 / n
        return dict(sorted(out.items()))


def start_points(space, seed: int, n: int) -> list[dict[str, Any]]:
    """The n history points, uniform in the unit cube (log dimensions log-uniform); a prefix of
    one seeded sequence, so a smaller n's history is the start of a larger one's."""
    rng = np.random.default_rng(seed)
    return [space.from_unit(u) for u in rng.random((n, len(space)))]


# --- one cell ---------------------------------------------------------------------------------------
@dataclass
class Cell:
    seconds: list[float] = field(default_factory=list)  # the timed suggestions
    warmup: float = 0.0
    wall: float = 0.0  # the whole cell, history included
    skipped: str | None = None  # why it was not measured
    not_model: int = 0  # timed suggestions that were not model-based (start-up design, random)
    estimated: float | None = None  # seconds a suggestion was expected to take, when skipped for it
    history: History | None = None  # what the last suggestion saw (bayes + ASHA: the pruned shares)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_tunetorch(column: str, n: int, reps: int, seed: int, max_seconds: float) -> Cell:
    from tunetorch import SearchSpace, make_strategy

    space = SearchSpace.from_dict(SPACE)
    started = time.perf_counter()
    history = History(space, seed, asha=column.startswith("bayes+asha"))
    for params in start_points(space, seed, n - 1):
        history.add(params)
    options = {"fidelity": "joint"} if column == "bayes+asha-joint" else {}
    strategy = make_strategy("bayes", space, seed=seed, **options)
    cell = Cell()
    for rep in range(reps + 1):  # the first is the warm-up
        number = len(history.trials)
        snapshot = history.snapshot()
        t0 = time.perf_counter()
        params = strategy.suggest(number, snapshot)
        seconds = time.perf_counter() - t0
        history.add(params)
        if rep == 0:
            cell.warmup = seconds
        else:
            cell.seconds.append(seconds)
            cell.not_model += strategy.last_info.get("phase", "gp") != "gp"
        if time.perf_counter() - started > max_seconds:
            break
    cell.wall = time.perf_counter() - started
    cell.history = history
    return cell


def time_optuna(column: str, n: int, reps: int, seed: int, max_seconds: float) -> Cell:
    import optuna

    from tunetorch import SearchSpace

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace.from_dict(SPACE)
    dists = {d.name: optuna.distributions.FloatDistribution(d.low, d.high, log=d.log) for d in space.dims}
    sampler = {"optuna-gp": optuna.samplers.GPSampler, "optuna-tpe": optuna.samplers.TPESampler}[column]
    started = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=sampler(seed=seed))
    study.add_trials(
        [
            optuna.trial.create_trial(params=p, distributions=dists, value=objective(space.to_unit(p)))
            for p in start_points(space, seed, n - 1)
        ]
    )
    cell = Cell()
    for rep in range(reps + 1):
        t0 = time.perf_counter()
        trial = study.ask(dists)  # the sampler runs here: relative and independent sampling
        seconds = time.perf_counter() - t0
        study.tell(trial, objective(space.to_unit(trial.params)))
        if rep == 0:
            cell.warmup = seconds
        else:
            cell.seconds.append(seconds)
        if time.perf_counter() - started > max_seconds:
            break
    cell.wall = time.perf_counter() - started
    return cell


def estimate(measured: list[tuple[int, float]], n: int) -> float:
    """The median seconds expected at n from the cells measured so far (n, median): the growth
    between the last two, at least linear and at most cubic; cubic after one."""
    (n1, s1) = measured[-1]
    power = 3.0
    if len(measured) >= 2:
        (n0, s0) = measured[-2]
        if s0 > 0 and s1 > 0 and n1 > n0:
            power = min(max(math.log(s1 / s0) / math.log(n1 / n0), 1.0), 3.0)
    return s1 * (n / n1) ** power


# --- the report -------------------------------------------------------------------------------------
def fmt_seconds(x: float) -> str:
    return f"{x:.2f}" if x >= 1 else f"{x:.3g}" if x >= 1e-4 else f"{x:.1e}"


def cell_text(cell: Cell, reps: int) -> str:
    if cell.skipped:
        return cell.skipped
    text = fmt_seconds(cell.median)
    if len(cell.seconds) < reps:
        text += f" ({len(cell.seconds)} of {reps} reps)"
    return text


def machine() -> str:
    from _machine import machine

    return machine()


def versions(with_optuna: bool) -> str:
    import scipy

    out = f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}"
    if with_optuna:
        import optuna
        import torch

        out += f", optuna {optuna.__version__}, torch {torch.__version__} (GPSampler)"
        if importlib.util.find_spec("greenlet") is None:
            out += "; without greenlet, so GPSampler's L-BFGS-B runs sequentially (Optuna's own note)"
    return out


def report(
    cells: dict[str, dict[int, Cell]], ns: list[int], args, optuna_note: str | None, wall: float
) -> str:
    columns = list(cells)
    command = " ".join(["python scripts/bench_suggest.py", *sys.argv[1:]])
    lines = [
        "### Seconds for one suggestion",
        "",
        f"Machine: {machine()}, shared with other work; one process, "
        f"{os.environ.get('OMP_NUM_THREADS', '?')} BLAS/torch thread(s).  ",
        f"{versions(optuna_note is None)}.  ",
        f"Command: `{command}`; wall {wall / 60:.1f} min.  ",
        f"6 float dimensions (2 log-scaled), seed {args.seed}; each cell the median of {args.reps} "
        f"suggestion{'s' if args.reps > 1 else ''} after one untimed warm-up, the history growing by "
        "one trial per suggestion.",
        "",
        "| n finished | " + " | ".join(COLUMNS[c] for c in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for n in ns:
        lines.append(f"| {n} | " + " | ".join(cell_text(cells[c][n], args.reps) for c in columns) + " |")
    if optuna_note:
        lines += ["", optuna_note]
    notes = []
    for c in columns:
        for n in ns:
            cell = cells[c][n]
            if cell.seconds and len(cell.seconds) > 1:
                notes.append(
                    f"{COLUMNS[c]} at {n}: min {fmt_seconds(min(cell.seconds))}, "
                    f"max {fmt_seconds(max(cell.seconds))}, warm-up {fmt_seconds(cell.warmup)}"
                )
            if cell.not_model:
                notes.append(
                    f"{COLUMNS[c]} at {n}: {cell.not_model} of {len(cell.seconds)} timed suggestions were "
                    "not model-based (start-up design or random): too few trials for the GP"
                )
            if cell.estimated is not None:
                notes.append(f"{COLUMNS[c]} at {n}: estimated {fmt_seconds(cell.estimated)} s a suggestion")
    asha = next(
        (
            cells["bayes+asha"][n]
            for n in reversed(ns)
            if cells.get("bayes+asha", {}).get(n) and cells["bayes+asha"][n].history is not None
        ),
        None,
    )
    if asha is not None:
        shares = ", ".join(
            f"{share:.0%} after {e} epoch{'s' if e > 1 else ''}"
            for e, share in asha.history.pruned_share().items()
        )
        notes.append(
            f"The ASHA history ({len(asha.history.trials)} trials): stopped or ended {shares} "
            f"({EPOCHS} epochs is a full trial)"
        )
    if notes:
        lines += ["", *(f"- {x}" for x in notes)]
    lines += ["", *targets(cells, ns)]
    return "\n".join(lines)


def targets(cells: dict[str, dict[int, Cell]], ns: list[int]) -> list[str]:
    """Issue 18: median <= 0.1 s at 1,000 finished trials and <= 1 s at 10,000, with and without ASHA."""
    out = []
    for c in ("bayes", "bayes+asha", "bayes+asha-joint"):
        if c not in cells:
            continue
        parts = []
        for n, limit in ((1000, 0.1), (10000, 1.0)):
            cell = cells[c].get(n)
            if cell is None:
                parts.append(f"{n}: not measured (not in --n)")
            elif not cell.seconds and cell.estimated is not None:
                parts.append(
                    f"{n}: not measured ({cell.skipped}; estimated about {fmt_seconds(cell.estimated)} s "
                    "a suggestion)"
                )
            elif not cell.seconds:
                parts.append(f"{n}: not measured ({cell.skipped})")
            else:
                verdict = "met" if cell.median <= limit else "missed"
                parts.append(f"{n}: {verdict}, {fmt_seconds(cell.median)} s against {limit:g} s")
        out.append(
            f"- Target ({COLUMNS[c]}, median <= 0.1 s at 1000 and <= 1 s at 10000): " + "; ".join(parts)
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default=",".join(map(str, DEFAULT_N)), help="finished trials, comma separated")
    ap.add_argument("--reps", type=int, default=5, help="timed suggestions per cell")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=300.0, help="the longest a cell may take")
    ap.add_argument("--no-optuna", action="store_true", help="leave out Optuna's columns")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    args = ap.parse_args()
    try:
        ns = sorted({int(x) for x in args.n.split(",") if x.strip()})
    except ValueError:
        ap.error(f"--n: {args.n!r} must be whole numbers separated by commas, e.g. 50,100,1000")
    if not ns or ns[0] < 2:
        ap.error(f"--n: {args.n!r}: every n must be at least 2")
    if args.reps < 1 or args.max_seconds <= 0:
        ap.error("--reps must be >= 1 and --max-seconds > 0")

    columns = ["bayes", "bayes+asha", "bayes+asha-joint"]
    optuna_note = None
    if args.no_optuna:
        optuna_note = "Optuna's columns left out (--no-optuna)."
    else:
        try:
            import optuna  # noqa: F401
        except ImportError:
            optuna_note = 'Optuna\'s columns skipped: optuna is not installed (pip install -e ".[bench]").'
        else:
            columns += ["optuna-gp", "optuna-tpe"]
    warnings.simplefilter("ignore")  # Optuna's experimental warnings; nothing here is a warning to act on

    t0 = time.perf_counter()
    cells: dict[str, dict[int, Cell]] = {c: {} for c in columns}
    for c in columns:
        measured: list[tuple[int, float]] = []
        give_up = False
        for n in ns:
            if give_up:
                cells[c][n] = Cell(skipped=f"skipped (>{args.max_seconds:g} s)")
                continue
            if measured:
                # The warm-up and one timed suggestion must fit; the cell stops early if the rest do not.
                guess = estimate(measured, n)
                if 2 * guess > args.max_seconds:
                    cells[c][n] = Cell(skipped=f"skipped (>{args.max_seconds:g} s)", estimated=guess)
                    give_up = True
                    continue
            go = time_optuna if c.startswith("optuna") else time_tunetorch
            cell = go(c, n, args.reps, args.seed, args.max_seconds)
            if not cell.seconds:  # the warm-up alone ran over
                cell.skipped = f"skipped (>{args.max_seconds:g} s)"
                give_up = True
            else:
                measured.append((n, cell.median))
                give_up = len(cell.seconds) < args.reps
            cells[c][n] = cell
            print(
                f"{COLUMNS[c]} n={n}: {cell_text(cell, args.reps)} ({cell.wall:.1f} s for the cell)",
                file=sys.stderr,
                flush=True,
            )
    text = report(cells, ns, args, optuna_note, time.perf_counter() - t0)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
