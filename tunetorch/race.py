"""`python -m tunetorch.race [landscape=bumpy]`: grid, random and bayes race on one objective.

Every strategy in `race.strategies` searches the same two dimensions (`race.dims`, default
lr and weight_decay) with the same budget (`budget.n_trials` and/or `budget.gpu_minutes`,
each per strategy) and the same seed (`study.seed`), one after another; the race writes
race.png, race.json and TensorBoard curves into the race directory (`study.dir`, default
runs/race-<timestamp>).

The objective:
- real training (no landscape): each strategy is an ordinary tunetorch study, run by
  `tunetorch.tune.run` (the pool, its worker processes, device seconds measured), in
  <race dir>/<strategy>/ with its own journal. The search space is *restricted* to the two
  race dimensions, taken from `space`; every other hyperparameter stays at its config value
  (trainer.*, model.*). Every strategy's trial k trains with the same seed, as in a study.
  The test split is never touched.
- a synthetic landscape (`landscape=smooth|bumpy`, see tunetorch.landscapes): the score is a
  formula of (lr, weight_decay), computed in this process with no workers; each trial is
  told the landscape's simulated cost as its device seconds, so the budget and the curves
  read in simulated GPU minutes. Journals are kept in <race dir>/<strategy>/ all the same.

An existing race directory is resumed: each strategy continues its own journal.

Exit status: 0 done, 1 a strategy stopped on failures, 2 bad input (one line, nothing
written), 130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunetorch import cli, config, identity
from tunetorch.errors import UsageError

DEFAULT_GRID_RESOLUTION = 5  # grid points per race dimension when only budget.gpu_minutes is given
# The synthetic landscapes are formulas of the learning rate and the weight decay.
LANDSCAPE_DIMS = ("optimizer.lr", "optimizer.weight_decay")


def main() -> None:
    argv = sys.argv[1:]
    for arg in argv:
        m = re.fullmatch(r"\+{0,2}landscape=(.*)", arg)
        if m:  # an optional group: Hydra would silently train for real on a misspelt landscape
            options = sorted(p.stem for p in (cli.conf_dir() / "landscape").glob("*.yaml"))
            if m.group(1) not in (*options, "null"):
                cli.fail(
                    f"landscape: {m.group(1)!r} is not one of {', '.join(options)}, null (train for real)"
                )
        if re.fullmatch(r"[+~]{0,2}strategy([.=].*)?", arg):
            cli.fail(
                f"{arg.split('=')[0].lstrip('+~')}: the race runs every strategy in race.strategies; "
                "choose them with race.strategies=[grid,random,bayes], options with race.options.NAME.KEY=V"
            )
    cli.main("race", run, argv)


# --- the plan: every config checked before anything runs ------------------------------------
@dataclass
class Entrant:
    name: str  # the strategy
    cfg: Any  # the race config with `strategy` set, `space` cut to the race dims, study.dir <race>/<name>
    options: dict  # the strategy's options (conf/strategy/<name>.yaml, then race.options.<name>)
    plan: Any  # its checked config.Plan


@dataclass
class Plan:
    space: Any  # the 2-D SearchSpace, x = race.dims[0], y = race.dims[1]
    dims: tuple[str, str]
    entrants: list[Entrant]
    landscape: dict | None  # {name, noise, cost: {base_seconds, lr_exponent}}, or None to train
    heatmap_resolution: int


def make_plan(cfg: Any) -> Plan:
    from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

    from tunetorch.strategies import REGISTRY, make_strategy

    race = cfg.race
    dims = race.dims
    flat = config.flatten_space(OmegaConf.to_container(cfg.space, resolve=True))
    if not isinstance(dims, ListConfig) or len(dims) != 2 or len(set(dims)) != 2:
        raise UsageError(
            f"race.dims: {_plain(dims)!r} must be a list of two different dimensions of space, "
            "e.g. [optimizer.lr, optimizer.weight_decay]"
        )
    for d in dims:
        if d not in flat:
            raise UsageError(f"race.dims: {d!r} is not a dimension of space; have {', '.join(flat)}")
        if flat[d].get("type") not in ("float", "int"):
            raise UsageError(
                f"race.dims: {d!r} is a {flat[d].get('type')} dimension; "
                "the race draws two numeric (float or int) dimensions"
            )
    names = race.strategies
    if not isinstance(names, ListConfig) or not names or len(set(names)) != len(names):
        raise UsageError(
            f"race.strategies: {_plain(names)!r} must be a non-empty list of different strategies, "
            f"from {', '.join(sorted(REGISTRY))}"
        )
    for name in names:
        if name not in REGISTRY:
            raise UsageError(f"race.strategies: {name!r} is not one of {', '.join(sorted(REGISTRY))}")
    if race.options is not None and not isinstance(race.options, DictConfig):
        raise UsageError(f"race.options: {race.options!r} must be a mapping strategy -> options")
    res = race.heatmap_resolution
    if isinstance(res, bool) or not isinstance(res, int) or not 10 <= res <= 1000:
        raise UsageError(f"race.heatmap_resolution: {res!r} must be a whole number from 10 to 1000")
    landscape = _check_landscape(cfg, dims, flat)

    race_dir = Path(cfg.study.dir)
    entrants, space = [], None
    for name in names:
        base_file = cli.conf_dir() / "strategy" / f"{name}.yaml"
        options = (
            OmegaConf.to_container(OmegaConf.load(base_file), resolve=True) if base_file.exists() else {}
        )
        extra = race.options.get(name) if race.options is not None else None
        if extra is not None and not isinstance(extra, DictConfig):
            raise UsageError(f"race.options.{name}: {extra!r} must be a mapping of options")
        options.update(OmegaConf.to_container(extra, resolve=True) if extra is not None else {})
        options.pop("name", None)
        if name == "grid" and options.get("resolution") == "auto":
            n = cfg.budget.n_trials
            fits = isinstance(n, int) and not isinstance(n, bool) and n >= 1
            # The largest square lattice the trial budget can finish: a bigger one would be cut short.
            options["resolution"] = max(1, math.isqrt(n)) if fits else DEFAULT_GRID_RESOLUTION
        sub = copy.deepcopy(cfg)
        with open_dict(sub):
            sub.strategy = {"name": name, **options}
            sub.space = _nested({d: flat[d] for d in dims})
            sub.study.dir = str(race_dir / name)
            sub.study.evaluate = False
            sub.pop("race")  # each entrant is an ordinary study: tune's keys only
            sub.pop("landscape", None)
        sub_plan = config.check(sub, cli.conf_dir())
        identity.check_resumable(Path(sub.study.dir), sub)  # a changed re-run is refused before any runs
        space = sub_plan.space
        try:
            make_strategy(name, space, seed=cfg.study.seed, **options)
        except UsageError as e:
            raise UsageError(str(e).replace("strategy.", f"race.options.{name}.", 1)) from None
        except ImportError as e:
            raise UsageError(
                f"race.strategies: {name!r} cannot be loaded ({e}); "
                "leave it out, e.g. race.strategies=[grid,random]"
            ) from None
        entrants.append(Entrant(name, sub, options, sub_plan))
    if landscape is None and entrants:
        config.check_code(entrants[0].cfg, entrants[0].plan)  # the model and data, once, before any runs
    return Plan(space, (dims[0], dims[1]), entrants, landscape, res)


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """{"optimizer.lr": spec} -> {"optimizer": {"lr": spec}}: the space as its YAML is written."""
    out: dict[str, Any] = {}
    for path, spec in flat.items():
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = spec
    return out


def _check_landscape(cfg: Any, dims, flat: dict) -> dict | None:
    from omegaconf import OmegaConf

    from tunetorch.landscapes import LANDSCAPES

    if cfg.get("landscape") is None:
        return None
    land = OmegaConf.to_container(cfg.landscape, resolve=True)
    if land.get("name") not in LANDSCAPES:
        raise UsageError(f"landscape.name: {land.get('name')!r} is not one of {', '.join(LANDSCAPES)}")
    if set(dims) != set(LANDSCAPE_DIMS):
        raise UsageError(
            f"race.dims: {list(dims)!r}; the synthetic landscapes are over [{', '.join(LANDSCAPE_DIMS)}]"
        )
    for d in dims:
        if flat[d].get("low", 0) <= 0:
            raise UsageError(
                f"space.{d}.low: {flat[d].get('low')!r} must be > 0 on a landscape (log10 scale)"
            )
    noise = land.get("noise")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise UsageError(f"landscape.noise: {noise!r} must be a number >= 0")
    cost = land.get("cost") or {}
    for key, low in (("base_seconds", 0.0), ("lr_exponent", None)):
        v = cost.get(key)
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or (low is not None and not v > low)
            or (low is None and v < 0)
        ):
            raise UsageError(
                f"landscape.cost.{key}: {v!r} must be a number {'> 0' if low is not None else '>= 0'}"
            )
    return land


def _plain(value: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


# --- the synthetic objective, in process ------------------------------------------------------
def run_synthetic(study, landscape: dict, budget, seed: int = 0) -> str:
    """Ask, score on the landscape, tell with the simulated cost, until the budget is spent.

    Same budget rules as the tuner (finished trials count; GPU minutes are the finished
    trials' device seconds). Noise, when asked for, is seeded by (seed, trial number), like
    a training run. Returns why the search stopped.
    """
    import numpy as np

    from tunetorch.errors import SpaceExhausted
    from tunetorch.history import device_minutes
    from tunetorch.landscapes import cost_seconds, score
    from tunetorch.training.objective import trial_seed

    cost = landscape.get("cost") or {}

    def evaluate(trial) -> None:
        lr, wd = (trial.params[d] for d in LANDSCAPE_DIMS)
        value = float(score(landscape["name"], lr, wd))
        if landscape.get("noise"):
            value += float(
                np.random.default_rng(trial_seed(seed, trial.number)).normal(0.0, landscape["noise"])
            )
        seconds = float(cost_seconds(lr, cost.get("base_seconds", 20.0), cost.get("lr_exponent", 0.4)))
        study.tell(
            trial,
            value,
            device="simulated",
            device_name=f"landscape {landscape['name']}",
            device_seconds=seconds,
            attempts=trial.attempts + 1,
        )

    for trial in [t for t in study.trials if not t.finished]:  # left unfinished by a crash: score them now
        evaluate(trial)
    while True:
        done = [t for t in study.trials if t.finished]
        if budget.n_trials is not None and len(done) >= budget.n_trials:
            return f"budget: {budget.n_trials} trials"
        if budget.gpu_minutes is not None and device_minutes(done) >= budget.gpu_minutes:
            return f"budget: {budget.gpu_minutes} simulated GPU minutes"
        try:
            trial = study.ask()
        except SpaceExhausted as e:
            return str(e)
        evaluate(trial)


def _race_synthetic(entrant: Entrant, plan: Plan, budget) -> tuple[int, list]:

    from tunetorch.lock import StudyLock

    cfg = entrant.cfg
    with StudyLock(Path(cfg.study.dir), create=True):
        return _race_synthetic_locked(entrant, plan, budget)


def _race_synthetic_locked(entrant: Entrant, plan: Plan, budget) -> tuple[int, list]:
    from tunetorch.strategies import make_strategy
    from tunetorch.study import Study

    cfg = entrant.cfg
    journal, resumed = identity.open_journal(Path(cfg.study.dir), cfg, entrant.plan)
    stored = journal.get_meta("landscape")
    wanted = json.dumps(plan.landscape, sort_keys=True)
    if stored is not None and stored != wanted:
        journal.close()
        raise UsageError(
            f"study.dir: {Path(cfg.study.dir).parent} holds a race on landscape {stored}, not {wanted}; "
            "use a new study.dir"
        )
    journal.set_meta("landscape", wanted)
    strategy = make_strategy(entrant.name, plan.space, seed=cfg.study.seed, **entrant.options)
    study = Study(plan.space, strategy, journal=journal)
    reason = run_synthetic(study, plan.landscape, budget, seed=cfg.study.seed)
    trials = study.trials
    journal.close()
    print(f"  {entrant.name}: {reason}", flush=True)
    return 0, trials


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


# --- the race -----------------------------------------------------------------------------
def run(cfg: Any) -> int:
    from tunetorch.search import Budget

    plan = make_plan(cfg)
    race_dir = Path(cfg.study.dir)
    budget = Budget(cfg.budget.n_trials, cfg.budget.gpu_minutes)
    synthetic = plan.landscape is not None
    objective = (
        f"the {plan.landscape['name']} landscape"
        if synthetic
        else f"{cfg.model._target_} on {cfg.dataset._target_}, {cfg.trainer.epochs} epoch(s) a trial"
    )
    print(
        f"race {race_dir}: {', '.join(e.name for e in plan.entrants)} on {objective}; "
        f"dims {plan.dims[0]} x {plan.dims[1]}; budget {_budget_text(cfg, 'GPU minutes')} per strategy; "
        f"seed {cfg.study.seed}",
        flush=True,
    )
    from tunetorch.lock import StudyLock

    with StudyLock(race_dir, create=True):  # one race in a race directory at a time
        return _run_entrants(cfg, plan, race_dir, budget, synthetic, objective)


def _run_entrants(cfg: Any, plan: Plan, race_dir: Path, budget, synthetic: bool, objective: str) -> int:
    from tunetorch.history import device_unit

    results: dict[str, list] = {}
    codes: dict[str, int] = {}
    for entrant in plan.entrants:
        if not synthetic:
            print(f"--- {entrant.name} ---", flush=True)
        code, trials = _race_synthetic(entrant, plan, budget) if synthetic else _race_training(entrant)
        results[entrant.name], codes[entrant.name] = trials, code
        if code == 130:
            break

    unit = "simulated GPU minutes" if synthetic else device_unit([t for ts in results.values() for t in ts])
    fig = figure(cfg, plan, results, unit, objective)
    _save_png(fig, race_dir / "race.png")
    write_tensorboard(race_dir / "tb", results, fig)
    summary = _summary(cfg, plan, results, codes, unit, objective)
    (race_dir / "race.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_table(summary, unit)
    print(f"results: {race_dir}/race.png, race.json; tensorboard --logdir {race_dir}/tb", flush=True)
    if any(c == 130 for c in codes.values()):
        print("interrupted: run the same command again to resume the race", file=sys.stderr)
        return 130
    return 1 if any(codes.values()) else 0


def figure(cfg: Any, plan: Plan, results: dict[str, list], unit: str, objective: str):
    """The race figure for this race (see tunetorch.race_plot.race_figure)."""
    from tunetorch.race_plot import race_figure

    surface = optimum = None
    if plan.landscape is not None:
        from tunetorch.landscapes import optimum as landscape_optimum
        from tunetorch.landscapes import score

        name = plan.landscape["name"]
        lr_name, wd_name = LANDSCAPE_DIMS
        lr_first = plan.dims[0] == lr_name
        surface = (lambda X, Y: score(name, X, Y)) if lr_first else (lambda X, Y: score(name, Y, X))
        lr_dim, wd_dim = plan.space[lr_name], plan.space[wd_name]
        lr, wd, best = landscape_optimum(name, (lr_dim.low, lr_dim.high), (wd_dim.low, wd_dim.high))
        optimum = ({lr_name: lr, wd_name: wd}, best)
    return race_figure(
        plan.space,
        results,
        surface=surface,
        optimum=optimum,
        budget_minutes=cfg.budget.gpu_minutes,
        budget_trials=cfg.budget.n_trials,
        unit=unit,
        score_label="score" if plan.landscape is not None else "validation accuracy",
        title=f"Race on {objective}: budget {_budget_text(cfg, unit)} per strategy, seed {cfg.study.seed}",
        resolution=plan.heatmap_resolution,
    )


def _budget_text(cfg: Any, unit: str) -> str:
    """'30 trials', '5 GPU minutes' or '30 trials / 5 GPU minutes': each strategy's budget."""
    parts = []
    if cfg.budget.n_trials:
        parts.append(f"{cfg.budget.n_trials} trials")
    if cfg.budget.gpu_minutes:
        parts.append(f"{cfg.budget.gpu_minutes:g} {unit}")
    return " / ".join(parts)


def _save_png(fig, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=100, format="png")
    os.replace(tmp, path)


def write_tensorboard(root: Path, results: dict[str, list], fig) -> None:
    """tb/<strategy>: best score so far under one tag (race/best_score), step = device seconds
    (TensorBoard steps are integers), so the strategies overlay in one chart; tb/figure: race.png.

    Rebuilt from the trials each time, so a resumed race does not log its curves twice.
    """
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter

    from tunetorch.history import best_so_far

    for name, trials in results.items():
        shutil.rmtree(root / name, ignore_errors=True)
        with SummaryWriter(str(root / name)) as w:
            for minutes, best, _ in best_so_far(trials):
                w.add_scalar("race/best_score", best, int(round(minutes * 60)))
    shutil.rmtree(root / "figure", ignore_errors=True)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    with SummaryWriter(str(root / "figure")) as w:
        w.add_image("race/figure", image, dataformats="HWC")


def _summary(
    cfg: Any, plan: Plan, results: dict[str, list], codes: dict[str, int], unit: str, objective: str
) -> dict[str, Any]:
    from tunetorch.history import best_trial, device_minutes

    out: dict[str, Any] = {
        "objective": objective,
        "landscape": plan.landscape,
        "dims": list(plan.dims),
        "budget": {"n_trials": cfg.budget.n_trials, "gpu_minutes": cfg.budget.gpu_minutes},
        "seed": cfg.study.seed,
        "unit": unit,
        "strategies": {},
    }
    for name, trials in results.items():
        best = best_trial(trials)
        finished = [t for t in trials if t.finished]
        out["strategies"][name] = {
            "n_trials": len(finished),
            "n_failed": sum(t.state.value == "FAIL" for t in trials),
            "gpu_minutes": device_minutes(trials),
            "best": None
            if best is None
            else {"params": best.params, "score": best.score, "trial": best.number},
            "exit": codes.get(name),
            "options": next(e.options for e in plan.entrants if e.name == name),
        }
    return out


def _print_table(summary: dict[str, Any], unit: str) -> None:
    print(f"{'strategy':<10} {'trials':>6} {'best':>7} {unit:>22}  best params")
    for name, s in summary["strategies"].items():
        best = s["best"]
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in (best["params"] if best else {}).items()
        )
        score = f"{best['score']:.4f}" if best else "-"
        print(f"{name:<10} {s['n_trials']:>6} {score:>7} {s['gpu_minutes']:>22.2f}  {params}")


if __name__ == "__main__":
    main()
