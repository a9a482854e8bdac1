"""Early stopping on real training: tunetorch's schedulers against Optuna's pruners (issue 12).

Every method drives tunetorch's own training function (`training.trainer.train_trial`) on
the same data split, search space, trainer and seeds, in this process, one trial at a time;
only the search differs. Compute is counted in epochs trained (noise-free) and in device
seconds (on the CPU: wall seconds of training, so noisy on a shared machine).

Methods (--methods, comma separated):
    random, bayes                   tunetorch without a scheduler
    random+asha, bayes+asha, bayes+hyperband, bayes+median
                                    tunetorch's Study with a scheduler (study.report after each epoch)
    optuna-tpe+hyperband, optuna-tpe+median
                                    Optuna 5 TPESampler with HyperbandPruner / MedianPruner, through
                                    trial.report / trial.should_prune (pip install -e ".[bench]")

Schedulers and pruners get the same settings: eta = 3, a minimum of 1 epoch, a maximum of
--epochs. Optuna is told the epochs trained as its step (epoch + 1), so that its rungs sit at
1, 3, 9, ... epochs trained as tunetorch's do (with the 0-based epoch as the step, Optuna's
first rung would come one epoch later).

One rule for "best" in every method: the best validation value any trial reached at an epoch
it trained (a pruned trial counts with its best epoch, as tunetorch scores it; Optuna's own
best_trial would ignore pruned trials). Each method runs until it has trained
--budget-trials x --epochs epochs (the trial in flight then finishes; the tables cut every
trace at the epoch counts they name).

    nice -n 5 .venv/bin/python scripts/bench_multifidelity.py --dataset mnist --model mlp \
        --epochs 8 --seeds 3 --budget-trials 30 --train-subset 4000 --out mnist.md
    nice -n 5 .venv/bin/python scripts/bench_multifidelity.py --dataset cifar10 --model cnn \
        --epochs 8 --seeds 3 --budget-trials 30 --train-subset 600 \
        model.channels=8 dataset.val_fraction=0.12 trainer.batch_size=64 --out cifar10.md

(the two side by side took 38.5 minutes on 2 shared cores; docs/bench_multifidelity.md has
the results and what the sizes are). Positional arguments are further Hydra overrides of the
tune config.

The trial each method would hand its user (issue 18's honest comparison): at every cut-off E
of the tables (budget/8, /4, /2 and the whole budget: 30, 60, 120, 240 epochs for 30 trials of
8), the trial holding the best validation value reached within E epochs trained (the same rule
as "best": a pruned trial counts with its best epoch; the earliest on a tie), with the weights
of that epoch. Had the method stopped at E, a trial in flight would have stopped there too, so
its weights are its best within the epochs it had trained by E. Only the best finished trial's
weights are kept as a run goes, plus one set per cut-off; after the run each selected trial's
weights are scored once on the test split, as the final evaluation (tunetorch.evaluate)
scores best.pt: the data module's test() and trainer.validate's accuracy. A trial in flight at a cut-off
whose own best came after it is re-trained (seeded, so the same weights on a CPU) for the
epochs it had by then; that re-training is not counted as the method's compute. A trial that
diverged is never handed over (a study marks it failed), though the epochs it reported before
diverging count towards "best".

Prints markdown: the best validation value after E epochs (median and range over seeds),
trials, pruned trials, device minutes and search overhead; the test accuracy of the trial
each method would hand over at E epochs; the epochs (and device minutes) each method needed
to reach the best that random search without a scheduler reached with the whole budget on
the same seed (issue 12's 1/4 target); bayes+asha against Optuna TPE + Hyperband at equal
epochs, in best validation value and in the selected trial's test accuracy; and the Spearman
rank correlation between the value after 1 epoch (rung 1) / 3 epochs (rung 2) and the
trial's final score, so a reader sees when early stopping is trustworthy.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METHODS = (
    "random",
    "bayes",
    "random+asha",
    "bayes+asha",
    "bayes+hyperband",
    "bayes+median",
    "optuna-tpe+hyperband",
    "optuna-tpe+median",
)
DEFAULT_METHODS = tuple(m for m in METHODS if m != "bayes+median")  # the seven
ETA = 3
RUNGS = (1, 3)  # epochs trained at ASHA's first two rungs (min_resource 1, eta 3)


@dataclass
class Pick:
    """A trial a method would hand over: the weights of its best epoch within `cut` epochs of it."""

    number: int
    params: dict[str, Any]
    value: float  # its best validation value (maximise form)
    weights: dict | None  # the state dict; None when it is to be re-trained for `cut` epochs
    cut: int | None = None  # the epochs of the trial it had trained at the cut-off; None: all it trained

    @property
    def key(self) -> tuple[int, int | None]:
        """Which weights: the same key, the same weights (scored once)."""
        return self.number, self.cut


@dataclass
class Run:
    """One method on one seed: a trace of (epochs spent, device seconds spent, best so far)."""

    method: str
    seed: int
    sign: float  # +1 maximise, -1 minimise: sign * value is "higher is better"
    epochs: int = 0
    device_seconds: float = 0.0  # of finished trials; the trace adds the trial in flight
    wall_seconds: float = 0.0  # the whole run: training plus the search's own work
    best: float = -math.inf  # in maximise form
    trials: int = 0
    pruned: int = 0
    trace: list[tuple[int, float, float]] = field(default_factory=list)  # after every epoch
    full: list[tuple[list[float], float]] = field(default_factory=list)  # (curve, score) ran to the end
    cutoffs: tuple[int, ...] = ()  # epochs spent at which the trial handed over is recorded
    kept: Pick | None = None  # the best finished trial so far, with its weights
    picks: dict[int, Pick | None] = field(default_factory=dict)  # cut-off -> the trial handed over
    test: dict[int, float | None] = field(default_factory=dict)  # cut-off -> that trial's test accuracy

    def epoch(self, value: float, device_seconds: float) -> None:
        self.epochs += 1
        if value is not None and math.isfinite(value):
            self.best = max(self.best, self.sign * value)
        self.trace.append((self.epochs, device_seconds, self.best))

    def settle(self, number: int, params: dict, start: int, curve: list[float], result: Any) -> None:
        """After a trial that started when `start` epochs were spent and reported `curve`
        (maximise form): the picks at the cut-offs it crossed, then the best finished trial."""
        kept = self.kept.value if self.kept is not None else -math.inf
        for cut in self.cutoffs:
            if not start < cut <= start + len(curve):
                continue
            within = cut - start  # the trial's epochs by the cut-off
            own = max(range(within), key=lambda e: (curve[e], -e))  # its best there, the earliest on a tie
            if result is not None and curve[own] > kept:
                # Its scored epoch is within the cut: those weights; otherwise re-train it to the cut.
                whole = result.epoch < within
                self.picks[cut] = Pick(
                    number,
                    params,
                    curve[own],
                    result.state_dict if whole else None,
                    None if whole else within,
                )
            else:
                self.picks[cut] = self.kept
        if result is not None and curve and max(curve) > kept:
            self.kept = Pick(number, params, max(curve), result.state_dict)

    def best_at(self, epochs: int) -> float:
        """Best (maximise form) after at most `epochs` epochs."""
        out = -math.inf
        for e, _, b in self.trace:
            if e > epochs:
                break
            out = b
        return out

    def reach(self, target: float) -> tuple[int, float] | None:
        """(epochs, device seconds) when the best first reached `target`; None if it never did."""
        return next(((e, s) for e, s, b in self.trace if b >= target), None)

    @property
    def search_seconds(self) -> float:
        return max(self.wall_seconds - self.device_seconds, 0.0)


def cutoffs(budget: int) -> list[int]:
    """The epoch counts the tables cut every trace at: 1/8, 1/4, 1/2 and all of the budget."""
    return sorted({m for m in (budget // 8, budget // 4, budget // 2, budget) if m > 0})


# --- the shared pieces: config, data, one trial of training -----------------------------------------
def setup(args, seed: int, device: str):
    """(cfg, plan, data): the real tune config composed with the benchmark's overrides, its
    search space, and the fit split on the device (loaded once per seed, shared by all methods)."""
    from tunetorch import cli, config
    from tunetorch.training import build

    overrides = [
        f"dataset={args.dataset}",
        *([] if args.dataset == "digits" else [f"dataset.root={args.root}"]),
        f"model={args.model}",
        f"trainer.epochs={args.epochs}",
        f"study.seed={seed}",
        f"study.dir={args.scratch}",
        "study.evaluate=false",
        *args.overrides,
    ]
    conf = cli.conf_dir()
    cfg = cli.compose("tune", overrides)
    plan = config.check(cfg, conf)
    data = build.data_module(cfg).fit(seed, device)
    if args.train_subset:
        data = train_subset(data, args.train_subset, seed)
    return cfg, plan, data


def train_subset(data, n: int, seed: int):
    """The fit data with a fixed training subset of `n` images (stratified, seeded by the seed):
    a smaller epoch, the same validation split."""
    import numpy as np
    import torch
    from sklearn.model_selection import train_test_split

    from tunetorch.training.datasets import Split

    y = data.train.y.cpu().numpy()
    if n >= len(y):
        return data
    keep, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    idx = torch.from_numpy(np.sort(keep)).to(data.train.y.device)
    return dataclasses.replace(data, train=Split(data.train.x[idx], data.train.y[idx]))


def train(cfg, data, device: str, params: dict, seed: int, number: int, report) -> tuple[Any, float]:
    """One trial of tunetorch's own training; returns (TrialResult or None if it diverged,
    synchronised device seconds)."""
    import torch

    from tunetorch.training import build
    from tunetorch.training.objective import trial_seed
    from tunetorch.training.trainer import Diverged, train_trial

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    try:
        result = train_trial(
            build.trial_config(cfg, params), data, device, seed=trial_seed(seed, number), report=report
        )
    except Diverged:
        result = None
    sync()
    return result, time.perf_counter() - t0


def epoch_reporter(run: Run, metric: str, decide):
    """report(epoch, metrics) for train_trial: counts the epoch in `run`, then asks `decide`."""
    started = time.perf_counter()
    curve: list[float] = []

    def report(epoch: int, metrics: dict) -> bool:
        value = metrics[metric]
        curve.append(run.sign * value if math.isfinite(value) else -math.inf)
        run.epoch(value, run.device_seconds + time.perf_counter() - started)
        return decide(epoch, value, metrics)

    return report, curve


# --- tunetorch --------------------------------------------------------------------------------------
def run_tunetorch(method: str, cfg, plan, data, device: str, seed: int, budget: int) -> Run:
    from tunetorch import Study

    strategy, _, scheduler = method.partition("+")
    strategy, strategy_options = method_options(strategy)
    scheduler = scheduler or "none"
    epochs = int(cfg.trainer.epochs)
    options = (
        {"max_resource": epochs, "min_resource": 1, "eta": ETA} if scheduler in ("asha", "hyperband") else {}
    )
    metric, direction = str(cfg.study.metric), str(cfg.study.direction)
    study = Study(
        plan.space,
        strategy=strategy,
        scheduler=scheduler,
        scheduler_options=options,
        seed=seed,
        direction=direction,
        metric=metric,
        strategy_options=strategy_options,
    )
    run = Run(method, seed, 1.0 if direction == "maximize" else -1.0, cutoffs=tuple(cutoffs(budget)))
    start = time.perf_counter()
    while run.epochs < budget:
        trial = study.ask()
        report, curve = epoch_reporter(
            run, metric, lambda epoch, value, metrics, trial=trial: study.report(trial, epoch, value, metrics)
        )
        started = run.epochs
        result, seconds = train(cfg, data, device, trial.params, seed, trial.number, report)
        run.settle(trial.number, trial.params, started, curve, result)
        run.device_seconds += seconds
        run.trials += 1
        if result is None:
            study.tell(trial, None, error="diverged", device_seconds=seconds)
            continue
        told = study.tell(
            trial, result.score, epochs=len(result.epochs), best_epoch=result.epoch, device_seconds=seconds
        )
        run.pruned += told.state.value == "PRUNED"
        if len(curve) == epochs:
            run.full.append((curve, run.sign * result.score))
    run.wall_seconds = time.perf_counter() - start
    return run


def method_options(strategy: str) -> tuple[str, dict[str, Any]]:
    """ "bayes@fidelity=joint@random_fraction=0.33" -> ("bayes", {"fidelity": "joint", ...})."""
    import yaml

    name, *pairs = strategy.split("@")
    return name, {k: yaml.safe_load(v) for k, _, v in (pair.partition("=") for pair in pairs)}


def base_method(method: str) -> str:
    """ "bayes@fidelity=joint+asha" -> "bayes+asha"."""
    strategy, plus, scheduler = method.partition("+")
    return strategy.split("@")[0] + plus + scheduler


def run_job(job: tuple) -> Run:
    """One method on one seed, in a process of its own (--jobs)."""
    import torch

    args, seed, method, device, budget = job
    torch.set_num_threads(args.threads)
    cfg, plan, data = setup(args, seed, device)
    return run_method(method, cfg, plan, data, device, seed, budget)


def run_method(method: str, cfg, plan, data, device: str, seed: int, budget: int) -> Run:
    go = run_optuna if method.startswith("optuna") else run_tunetorch
    run = go(method, cfg, plan, data, device, seed, budget)
    score_picks(run, cfg, data, device, seed)
    return run


# --- the trial handed over, scored once on the test split ------------------------------------------
def score_picks(run: Run, cfg, data, device: str, seed: int) -> None:
    """Each distinct pick's weights scored once on the test split (run.test); then the weights
    are dropped, so that a Run stays small (it crosses processes under --jobs)."""
    scored: dict[tuple[int, int | None], float] = {}
    for cut, pick in sorted(run.picks.items()):
        if pick is None:  # nothing finished without diverging by then
            run.test[cut] = None
            continue
        if pick.key not in scored:
            weights = pick.weights if pick.weights is not None else retrain(cfg, data, device, seed, pick)
            scored[pick.key] = test_accuracy(cfg, data, pick, weights, device, run)
        run.test[cut] = scored[pick.key]
    run.picks = {
        cut: None if p is None else dataclasses.replace(p, weights=None) for cut, p in run.picks.items()
    }
    run.kept = None


def retrain(cfg, data, device: str, seed: int, pick: Pick) -> dict:
    """The weights of a trial that a cut-off stopped after `pick.cut` of its epochs: the same
    seeded training, stopped there; its scored epoch is then its best within the cut."""
    result, _ = train(
        cfg, data, device, pick.params, seed, pick.number, lambda epoch, _: epoch + 1 >= pick.cut
    )
    if result is None:
        raise RuntimeError(f"trial {pick.number} diverged when re-trained for {pick.cut} epochs")
    return result.state_dict


def test_accuracy(cfg, data, pick: Pick, weights: dict, device: str, run: Run) -> float:
    """Test accuracy of the pick's `weights`, scored as the final evaluation (tunetorch/evaluate.py)
    scores best.pt: the model built from the trial's config, the data module's test split for
    cfg.study.seed, trainer.validate's accuracy. The pieces are called here rather than
    evaluate's private helpers, which journal a study's one look in a study directory; the
    bench has neither. First the weights are checked to be the pick's: on the validation split
    they must give the value it was picked for (a re-trained trial on a GPU may differ a little;
    then a note says so)."""
    from tunetorch.training import build
    from tunetorch.training.trainer import validate

    tcfg = build.trial_config(cfg, pick.params)
    module = build.data_module(tcfg)
    model = build.model(tcfg, module.input_shape, module.n_classes).to(device)
    model.load_state_dict(weights)
    metric = str(cfg.study.metric)
    val = validate(model, data.val, device).get(metric)
    if val is not None and abs(run.sign * val - pick.value) > 1e-6:
        print(
            f"note: {run.method} seed {run.seed}: trial {pick.number}'s weights give {metric} {val:.6f} on "
            f"the validation split, not the {run.sign * pick.value:.6f} it was picked for"
            + (f" (re-trained for {pick.cut} epochs)" if pick.cut else ""),
            file=sys.stderr,
            flush=True,
        )
    return float(validate(model, module.test(int(cfg.study.seed), device), device)["val_accuracy"])


# --- Optuna -----------------------------------------------------------------------------------------
def run_optuna(method: str, cfg, plan, data, device: str, seed: int, budget: int) -> Run:
    import optuna

    from tunetorch.space import Categorical, Float

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epochs = int(cfg.trainer.epochs)
    pruner = (
        optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=ETA)
        if method.endswith("hyperband")
        else optuna.pruners.MedianPruner()  # its defaults are tunetorch's median defaults
    )
    metric, direction = str(cfg.study.metric), str(cfg.study.direction)
    study = optuna.create_study(
        direction=direction, sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner
    )
    run = Run(method, seed, 1.0 if direction == "maximize" else -1.0, cutoffs=tuple(cutoffs(budget)))

    def suggest(ot, d) -> Any:
        if isinstance(d, Categorical):
            return ot.suggest_categorical(d.name, list(d.choices))
        if isinstance(d, Float):
            return ot.suggest_float(d.name, d.low, d.high, log=d.log)
        return ot.suggest_int(d.name, d.low, d.high, log=d.log)

    def objective(ot) -> float:
        params = {d.name: suggest(ot, d) for d in plan.space.dims}

        def decide(epoch: int, value: float, metrics: dict) -> bool:
            ot.report(value, epoch + 1)  # the step is the epochs trained: rungs at 1, 3, ... as tunetorch's
            return ot.should_prune()

        report, curve = epoch_reporter(run, metric, decide)
        started = run.epochs
        result, seconds = train(cfg, data, device, params, seed, ot.number, report)
        run.settle(ot.number, params, started, curve, result)
        run.device_seconds += seconds
        run.trials += 1
        if result is None:
            raise FloatingPointError("diverged")
        if result.stopped:
            run.pruned += 1
            raise optuna.TrialPruned()
        if len(curve) == epochs:
            run.full.append((curve, run.sign * result.score))
        return result.score

    start = time.perf_counter()
    while run.epochs < budget:
        study.optimize(objective, n_trials=1, catch=(FloatingPointError,))
    run.wall_seconds = time.perf_counter() - start
    return run


# --- the tables -------------------------------------------------------------------------------------
def spearman(pairs: list[tuple[float, float]]) -> float | None:
    if len(pairs) < 3:
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic)
    return rho if math.isfinite(rho) else None


def fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def spread(values: list[float | None], digits: int = 4, sign: float = 1.0) -> str:
    """median (min..max) over seeds; a None (never / undefined) counts as +inf in the median."""
    got = [math.inf if v is None else sign * v for v in values]
    if sign < 0:
        got = sorted(got, reverse=True)
    med = statistics.median(got)
    lo, hi = min(got), max(got)
    if len(got) == 1:
        return fmt(med, digits) if math.isfinite(med) else "never"
    cell = lambda x: fmt(x, digits) if math.isfinite(x) else "never"  # noqa: E731
    return f"{cell(med)} ({cell(lo)}..{cell(hi)})"


def test_spread(values: list[float | None]) -> str:
    """median (min..max) of the test accuracies there are; '-' where none was handed over."""
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    cell = spread(got)
    return cell if len(got) == len(values) else f"{cell} [{len(got)} of {len(values)} seeds]"


def comparison(runs: dict[str, list[Run]], marks: list[int], sign: float) -> list[str]:
    """bayes+asha against Optuna TPE + Hyperband at equal epochs: medians over seeds of the best
    validation value and of the selected trial's test accuracy."""
    ours, theirs = "bayes+asha", "optuna-tpe+hyperband"
    if ours not in runs or theirs not in runs:
        return []
    lines = [
        "",
        f"{ours} against {theirs} at equal epochs, median over seeds: the best validation value and the "
        "test accuracy of the trial each would hand over (difference: ours - theirs, in the metric's "
        "better-is-positive sense for validation):",
        "",
        f"| E | val {ours} | val {theirs} | val difference | test {ours} | test {theirs} | test difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in marks:
        val = [statistics.median(r.best_at(m) for r in runs[k]) for k in (ours, theirs)]  # maximise form
        test = [median_test(runs[k], m) for k in (ours, theirs)]
        test_diff = None if None in test else test[0] - test[1]
        lines.append(
            f"| {m} | {fmt(sign * val[0])} | {fmt(sign * val[1])} | {val[0] - val[1]:+.4f} | "
            f"{fmt(test[0])} | {fmt(test[1])} | {'-' if test_diff is None else f'{test_diff:+.4f}'} |"
        )
    return lines


def median_test(rs: list[Run], cut: int) -> float | None:
    got = [r.test.get(cut) for r in rs]
    got = [v for v in got if v is not None]
    return statistics.median(got) if got else None


def reach_target(runs: dict[str, list[Run]], budget: int) -> dict[str, list[tuple[int, float] | None]]:
    """Per method, per seed: (epochs, device seconds) to reach random's best of that seed."""
    targets = {r.seed: r.best_at(budget) for r in runs["random"]}
    return {m: [r.reach(targets[r.seed]) for r in rs] for m, rs in runs.items()}


def report_markdown(runs: dict[str, list[Run]], args, machine: str, budget: int, wall: float) -> str:
    sign = runs[next(iter(runs))][0].sign
    seeds = len(runs[next(iter(runs))])
    marks = cutoffs(budget)
    sizes = [
        f"{args.epochs} epochs a trial",
        f"budget {budget} epochs ({args.budget_trials} full trials) per method and seed",
        f"seeds 0..{seeds - 1}",
    ]
    if args.train_subset:
        sizes.append(f"training subset {args.train_subset} images")
    if args.overrides:
        sizes.append("overrides " + " ".join(f"`{o}`" for o in args.overrides))
    lines = [
        f"### {args.dataset}, {args.model}",
        "",
        f"{', '.join(sizes)}; {machine}, {args.threads} torch thread(s); wall {wall / 60:.1f} min.",
        "",
        "Best validation value after E epochs trained, median (min..max) over seeds; trials, pruned, "
        "device minutes (training) and search seconds (everything else: the strategy, the scheduler) "
        "per method and seed:",
        "",
        "| method | " + " | ".join(f"E={m}" for m in marks) + " | trials | pruned | device min | search s |",
        "|---" * (len(marks) + 5) + "|",
    ]
    for method, rs in runs.items():
        cells = [spread([r.best_at(m) for r in rs], sign=sign) for m in marks]
        lines.append(
            f"| {method} | "
            + " | ".join(cells)
            + f" | {spread([r.trials for r in rs], 0)} | {spread([r.pruned for r in rs], 0)}"
            + f" | {spread([r.device_seconds / 60 for r in rs], 2)}"
            + f" | {spread([r.search_seconds for r in rs], 0)} |"
        )
    lines += [
        "",
        "Test accuracy of the trial each method would hand over had it stopped at E epochs (the best by "
        "validation within E, at its best epoch; its weights scored once on the test split), median "
        "(min..max) over seeds:",
        "",
        "| method | " + " | ".join(f"test E={m}" for m in marks) + " |",
        "|---" * (len(marks) + 1) + "|",
    ]
    for method, rs in runs.items():
        lines.append(
            f"| {method} | " + " | ".join(test_spread([r.test.get(m) for r in rs]) for m in marks) + " |"
        )
    lines += comparison(runs, marks, sign)

    if "random" in runs:
        reached = reach_target(runs, budget)
        targets = ", ".join(fmt(sign * r.best_at(budget)) for r in runs["random"])
        lines += [
            "",
            f"Epochs and device minutes to reach the best that random search (no scheduler) reached with "
            f"the whole budget on the same seed ({targets}); never = not within the budget. "
            f"Median (min..max) over seeds:",
            "",
            "| method | epochs | per seed | device min |",
            "|---|---|---|---|",
        ]
        for method, got in reached.items():
            epochs = [None if g is None else g[0] for g in got]
            minutes = [None if g is None else g[1] / 60 for g in got]
            lines.append(
                f"| {method} | {spread(epochs, 0)} | "
                + ", ".join("never" if e is None else str(e) for e in epochs)
                + f" | {spread(minutes, 2)} |"
            )

    lines += [
        "",
        "Spearman rank correlation between a trial's value after 1 epoch (rung 1) or 3 epochs (rung 2) "
        "and its final score, over the trials that ran to the end; median (min..max) over seeds. Only "
        "the methods without a scheduler give an unselected sample; with one, the trials that ran to "
        "the end are the survivors of the rungs, a narrower range:",
        "",
        "| method | full-length trials | rung 1 vs final | rung 2 vs final |",
        "|---|---|---|---|",
    ]
    for method, rs in runs.items():
        cols = []
        for r_epochs in RUNGS:
            if r_epochs >= args.epochs:
                cols.append("-")
                continue
            rhos = [spearman([(c[r_epochs - 1], s) for c, s in r.full]) for r in rs]
            cols.append(spread(rhos, 2) if all(x is not None for x in rhos) else "-")
        lines.append(f"| {method} | {spread([len(r.full) for r in rs], 0)} | {cols[0]} | {cols[1]} |")

    lines += ["", *targets_met(runs, budget, marks, sign)]
    return "\n".join(lines)


def targets_met(runs: dict[str, list[Run]], budget: int, marks: list[int], sign: float) -> list[str]:
    """Issue 12's two targets, as measured here (the doc says what they mean)."""
    out = []
    if "random" in runs and "bayes+asha" in runs:
        got = reach_target(runs, budget)["bayes+asha"]
        epochs = statistics.median(math.inf if g is None else g[0] for g in got)
        verdict = "met" if epochs <= budget / 4 else "missed"
        out.append(
            f"- Target 1 (bayes+asha reaches random's whole-budget best within {budget // 4} epochs, "
            f"median over seeds): {verdict}, median {fmt(epochs, 0) if math.isfinite(epochs) else 'never'} "
            f"epochs = {epochs / budget:.2f} of the budget."
            if math.isfinite(epochs)
            else f"- Target 1 (bayes+asha reaches random's whole-budget best within {budget // 4} epochs, "
            f"median over seeds): missed, the median seed never reached it within {budget} epochs."
        )
    if "bayes+asha" in runs and "optuna-tpe+hyperband" in runs:
        val_ok, test_ok = [], []
        for m in marks:
            ours = statistics.median(r.best_at(m) for r in runs["bayes+asha"])  # maximise form
            theirs = statistics.median(r.best_at(m) for r in runs["optuna-tpe+hyperband"])
            val_ok.append(ours >= theirs)
            tests = [median_test(runs[k], m) for k in ("bayes+asha", "optuna-tpe+hyperband")]
            test_ok.append(None not in tests and tests[0] >= tests[1])
        at = ", ".join(map(str, marks))
        out.append(
            f"- Target 2 (bayes+asha's medians >= Optuna TPE + Hyperband's at E = {at}, in best validation "
            "value and in the selected trial's test accuracy): "
            f"{'met' if all(val_ok + test_ok) else 'missed'}; "
            f"validation at {sum(val_ok)} of {len(marks)} cut-offs, test at {sum(test_ok)} of {len(marks)} "
            "(the table above has the values)."
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "overrides", nargs="*", help="further Hydra overrides of the tune config, e.g. model.channels=8"
    )
    p.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help=f"comma separated, of {', '.join(METHODS)}"
    )
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8, help="trainer.epochs: a full trial")
    p.add_argument("--budget-trials", type=int, default=30, help="budget, in full trials' worth of epochs")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--root", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--model", default="mlp")
    p.add_argument("--train-subset", type=int, default=0, help="train on a fixed subset of N images (0: all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    p.add_argument("--device", default="auto", help="auto (cuda:0 when there is one) | cpu | cuda:N")
    p.add_argument("--scratch", default=str(ROOT / "runs" / "bench_multifidelity"), help="unused study.dir")
    p.add_argument("--out", type=Path, help="also write the markdown here")
    p.add_argument("--jobs", type=int, default=1, help="(method, seed) runs at once, each in its own process")
    args = p.parse_args()

    methods = args.methods.split(",")
    unknown = [m for m in methods if base_method(m) not in METHODS]
    if unknown:
        p.error(f"--methods: {', '.join(unknown)} not among {', '.join(METHODS)}")
    if any(m.startswith("optuna") for m in methods):
        try:
            import optuna  # noqa: F401
        except ImportError:
            p.error('--methods: the optuna-* methods need Optuna: pip install -e ".[bench]"')
    if args.seeds < 1 or args.epochs < 1 or args.budget_trials < 1:
        p.error("--seeds, --epochs and --budget-trials must be whole numbers >= 1")

    import torch

    from tunetorch.executors.device import device_name

    torch.set_num_threads(args.threads)
    device = ("cuda:0" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    budget = args.budget_trials * args.epochs

    t0 = time.perf_counter()
    runs: dict[str, list[Run]] = {m: [] for m in methods}

    def done(run: Run) -> None:
        print(
            f"{args.dataset} {run.method} seed {run.seed}: best {fmt(run.sign * run.best)} "
            f"after {run.epochs} epochs, {run.trials} trials ({run.pruned} pruned), "
            f"{run.device_seconds / 60:.2f} device min, "
            f"{run.search_seconds:.0f} search s; hands over "
            + (
                f"trial {run.picks[budget].number} (test accuracy {fmt(run.test[budget])})"
                if run.picks.get(budget) is not None
                else "nothing"
            ),
            file=sys.stderr,
            flush=True,
        )

    if args.jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        jobs = [(args, seed, m, device, budget) for seed in range(args.seeds) for m in methods]
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
            for run in ex.map(run_job, jobs):
                done(run)
                runs[run.method].append(run)
    else:
        for seed in range(args.seeds):
            cfg, plan, data = setup(args, seed, device)
            for m in methods:
                run = run_method(m, cfg, plan, data, device, seed, budget)
                done(run)
                runs[m].append(run)
            if args.out and seed < args.seeds - 1:  # the seeds so far, in case a long run is cut short
                args.out.write_text(
                    report_markdown(runs, args, device_name(device), budget, time.perf_counter() - t0)
                )
    text = report_markdown(runs, args, device_name(device), budget, time.perf_counter() - t0)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
