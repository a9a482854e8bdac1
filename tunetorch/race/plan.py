"""The race's plan: every entrant's config built and checked before anything runs.

    plan = make_plan(cfg)    # UsageError naming the key on any bad input; nothing written

The race's budget is equal for every entrant. When the config gives none (budget.n_trials and
budget.gpu_minutes both null, as conf/race.yaml has them), make_plan sets budget.gpu_minutes to
race.default_gpu_minutes in `cfg` itself, so that everything after it (each entrant's study, the
header, race.json, the figure, race.html) reads the one budget that applies. Equal minutes, not
equal trials: under a trials budget what early stopping saves is never spent, and a race reads
as if stopping early only cost score. `budget.n_trials=30` races on trials, as before.

An entrant is an entry of `race.strategies`: a strategy (`bayes`) or a strategy with an early-stopping
scheduler (`bayes+asha`). Each becomes an ordinary study config: `strategy` and `scheduler` set
from conf/strategy/<name>.yaml and conf/scheduler/<name>.yaml with `race.options.<name>` over
them, `space` cut to the two race dimensions, `study.dir` <race dir>/<entrant>/.

Over 350 lines: every check of the race's input is here, so that all of them pass before
anything runs or is written.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunetorch import checks, cli, config, identity
from tunetorch.budget import Budget
from tunetorch.errors import UsageError

DEFAULT_GRID_RESOLUTION = 5  # grid points per race dimension when only budget.gpu_minutes is given
# The synthetic landscapes are formulas of the learning rate and the weight decay.
LANDSCAPE_DIMS = ("optimizer.lr", "optimizer.weight_decay")
DEFAULT_STRATEGIES = "[grid,random,bayes,bayes+asha]"  # as conf/race.yaml has it; for messages
RACE_KEYS = (  # conf/race.yaml's race section
    "dims",
    "strategies",
    "options",
    "heatmap_resolution",
    "default_gpu_minutes",
)
# conf/landscape/*.yaml: a key -> its sub-keys (None: a value)
LANDSCAPE_KEYS: dict[str, tuple[str, ...] | None] = {
    "name": None,
    "noise": None,
    "cost": ("base_seconds", "lr_exponent"),
    "curve": ("start", "rate", "noise"),
}


@dataclass
class Entrant:
    name: str  # the entry of race.strategies: "bayes", "bayes+asha"
    strategy: str  # "bayes"
    scheduler: str  # "asha", or "none"
    cfg: Any  # the race config with strategy and scheduler set, space cut to the race dims, its own study.dir
    options: dict  # the strategy's options (conf/strategy/<strategy>.yaml, then race.options.<strategy>)
    scheduler_options: (
        dict  # the scheduler's (conf/scheduler/<scheduler>.yaml, then race.options.<scheduler>)
    )
    plan: Any  # its checked config.Plan


@dataclass
class Plan:
    space: Any  # the 2-D SearchSpace, x = race.dims[0], y = race.dims[1]
    dims: tuple[str, str]
    entrants: list[Entrant]
    landscape: dict | None  # {name, noise, cost: {...}, curve: {...}}, or None to train
    heatmap_resolution: int


def make_plan(cfg: Any) -> Plan:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    race = cfg.get("race")
    if not isinstance(race, DictConfig):
        raise UsageError(f"race: {_plain(race)!r} must be a mapping with keys {', '.join(RACE_KEYS)}")
    for key in race:
        if key not in RACE_KEYS:
            raise UsageError(f"race.{key}: not a key of race; have {', '.join(RACE_KEYS)}")
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
            f"race.strategies: {_plain(names)!r} must be a non-empty list of different entries "
            f"STRATEGY or STRATEGY+SCHEDULER, e.g. {DEFAULT_STRATEGIES}"
        )
    pairs = [_entry(name) for name in names]
    seen: dict[tuple[str, str], str] = {}
    for name, pair in zip(names, pairs, strict=True):
        if pair in seen:  # bayes and bayes+none: one study raced twice
            raise UsageError(
                f"race.strategies: {name!r} is the same entrant as {seen[pair]!r} "
                f"({pair[0]} with scheduler {pair[1]}); list each once"
            )
        seen[pair] = name
    if race.options is not None and not isinstance(race.options, DictConfig):
        raise UsageError(f"race.options: {race.options!r} must be a mapping strategy or scheduler -> options")
    from tunetorch.schedulers import REGISTRY as SCHEDULERS
    from tunetorch.strategies import REGISTRY as STRATEGIES

    for key in race.options or {}:  # options for an entrant not in this race are kept for when it is
        if key not in STRATEGIES and key not in SCHEDULERS:
            raise UsageError(
                f"race.options.{key}: not a strategy or scheduler; "
                f"have {', '.join(sorted({*STRATEGIES, *SCHEDULERS}))}"
            )
    _apply_default_budget(cfg)
    res = checks.under("race").whole("heatmap_resolution", race.heatmap_resolution, low=10, high=1000)
    landscape = _check_landscape(cfg, dims, flat)

    entrants = [
        _entrant(cfg, name, strategy, scheduler, dims, flat, landscape)
        for name, (strategy, scheduler) in zip(names, pairs, strict=True)
    ]
    _check_unraced_options(cfg, entrants)
    if landscape is None and entrants:
        config.check_code(entrants[0].cfg, entrants[0].plan)  # the model and data, once, before any runs
    return Plan(entrants[0].plan.space, (dims[0], dims[1]), entrants, landscape, res)


def _apply_default_budget(cfg: Any) -> None:
    """budget.gpu_minutes = race.default_gpu_minutes when the budget gives neither key (see the
    module's docstring); the budget keys themselves are checked with each entrant's study."""
    minutes = cfg.race.get("default_gpu_minutes")
    if minutes is not None:  # null: the race has no default budget
        checks.under("race").number("default_gpu_minutes", minutes, above=0.0)
    if minutes is not None and cfg.budget.n_trials is None and cfg.budget.gpu_minutes is None:
        cfg.budget.gpu_minutes = minutes


def _entry(name: Any) -> tuple[str, str]:
    """'bayes' -> (bayes, none); 'bayes+asha' -> (bayes, asha); anything else refused, naming it."""
    from tunetorch.schedulers import REGISTRY as SCHEDULERS
    from tunetorch.strategies import REGISTRY as STRATEGIES

    strategy, _, scheduler = str(name).partition("+")
    if not isinstance(name, str) or strategy not in STRATEGIES:
        raise UsageError(
            f"race.strategies: {name!r} is not one of {', '.join(sorted(STRATEGIES))} "
            f"(optionally +SCHEDULER, e.g. bayes+asha)"
        )
    if "+" in name and scheduler not in SCHEDULERS:
        raise UsageError(
            f"race.strategies: {name!r}: scheduler {scheduler!r} is not one of "
            f"{', '.join(sorted(SCHEDULERS))}"
        )
    return strategy, scheduler or "none"


def _entrant(
    cfg: Any, name: str, strategy: str, scheduler: str, dims, flat: dict, landscape: dict | None = None
) -> Entrant:
    from omegaconf import OmegaConf, open_dict

    options = _options(cfg, "strategy", strategy)
    auto = strategy == "grid" and options.get("resolution") == "auto"
    if auto:
        n = Budget(cfg.budget.n_trials, cfg.budget.gpu_minutes).n_trials  # the trial cap as it applies
        fits = isinstance(n, int) and not isinstance(n, bool) and n >= 1
        # The largest square lattice the trial budget can finish: a bigger one would be cut short.
        options["resolution"] = max(1, math.isqrt(n)) if fits else DEFAULT_GRID_RESOLUTION
    sub = copy.deepcopy(cfg)
    with open_dict(sub):
        sub.strategy = {"name": strategy, **options}
        # Loaded into the config, so that `max_resource: ${trainer.epochs}` resolves against it.
        sub.scheduler = _group_file("scheduler", scheduler) or {"name": scheduler}
        sub.scheduler.name = scheduler
        extra = _extra(cfg, scheduler)
        if extra:
            sub.scheduler = OmegaConf.merge(sub.scheduler, extra)
        sub.space = _nested({d: flat[d] for d in dims})
        sub.study.dir = str(Path(cfg.study.dir) / name)
        sub.study.evaluate = False
        sub.pop("race")  # each entrant is an ordinary study: tune's keys only
        sub.pop("landscape", None)
    sub_plan = config.check(sub, cli.conf_dir())
    # The options first: a bad value is named as the race's key, before any journal is read.
    _check_strategy(cfg, strategy, sub_plan.space, options)
    _check_scheduler(cfg, scheduler, sub_plan.scheduler_options)
    # A changed re-run is refused before any entrant runs (reads only).
    study_dir = Path(sub.study.dir)
    try:
        identity.check_resumable(study_dir, sub)
    except UsageError:
        if auto:
            _refuse_a_changed_auto_grid(study_dir, options["resolution"], cfg)
        raise
    check_same_landscape(study_dir, landscape, Path(cfg.study.dir))
    return Entrant(name, strategy, scheduler, sub, options, sub_plan.scheduler_options, sub_plan)


def _check_strategy(cfg: Any, strategy: str, space: Any, options: dict, raced: bool = True) -> None:
    """The strategy with these options, built once; UsageError naming race.options.<strategy>.KEY.
    One that cannot be imported is refused when it races, and its options left unchecked when not."""
    from tunetorch.strategies import make_strategy

    try:
        make_strategy(strategy, space, seed=cfg.study.seed, **options)
    except UsageError as e:
        raise UsageError(str(e).replace("strategy.", f"race.options.{strategy}.", 1)) from None
    except ImportError as e:
        if not raced:
            return
        raise UsageError(
            f"race.strategies: {strategy!r} cannot be loaded ({e}); "
            "leave it out, e.g. race.strategies=[grid,random]"
        ) from None


def _check_scheduler(cfg: Any, scheduler: str, options: dict) -> None:
    """The scheduler with these options, built once, its max_resource within trainer.epochs;
    UsageError naming race.options.<scheduler>.KEY."""
    from tunetorch.schedulers import check_epochs, make_scheduler

    try:
        check_epochs(make_scheduler(scheduler, seed=cfg.study.seed, **options), int(cfg.trainer.epochs))
    except UsageError as e:
        raise UsageError(str(e).replace("scheduler.", f"race.options.{scheduler}.", 1)) from None


def _check_unraced_options(cfg: Any, entrants: list[Entrant]) -> None:
    """race.options of a strategy or scheduler that is not in this race are kept for a race that
    has it, but checked now: a bad value is refused today, not when it is first raced."""
    from omegaconf import OmegaConf

    from tunetorch.strategies import REGISTRY as STRATEGIES

    raced = {e.strategy for e in entrants} | {e.scheduler for e in entrants}
    for key in cfg.race.options or {}:
        if key in raced:
            continue
        if key in STRATEGIES:
            options = _options(cfg, "strategy", key)
            if key == "grid" and options.get("resolution") == "auto":
                options["resolution"] = DEFAULT_GRID_RESOLUTION
            _check_strategy(cfg, key, entrants[0].plan.space, options, raced=False)
        else:
            base = _group_file("scheduler", key) or OmegaConf.create({})
            # resolved against the race config, as an entrant's (max_resource: ${trainer.epochs})
            extra = _extra(cfg, key)
            merged = OmegaConf.merge(
                {"trainer": cfg.trainer}, {"scheduler": base}, {"scheduler": extra or {}}
            )
            options = OmegaConf.to_container(merged.scheduler, resolve=True)
            options.pop("name", None)
            _check_scheduler(cfg, key, options)


def _refuse_a_changed_auto_grid(study_dir: Path, resolution: int, cfg: Any) -> None:
    """grid's `auto` resolution follows budget.n_trials: a resumed race with another trial budget
    would be another lattice. Say so, naming the key to pin, instead of strategy.resolution."""
    from tunetorch.journal import read_meta

    stored = json.loads(read_meta(study_dir / "journal.sqlite", "identity") or "{}").get("strategy") or {}
    if stored.get("name") == "grid" and stored.get("resolution") not in (None, resolution):
        raise UsageError(
            f"race.options.grid.resolution: auto is {resolution} for budget.n_trials={cfg.budget.n_trials}, "
            f"but {study_dir} holds a grid of resolution {stored['resolution']}; resume it with "
            f"race.options.grid.resolution={stored['resolution']}, or use a new study.dir"
        )


def check_same_landscape(study_dir: Path, landscape: dict | None, race_dir: Path | None = None) -> None:
    """Refuse an entrant's journal of a race on another landscape (or of real training when
    `landscape` is a dict, of a landscape when it is None), naming the first key that differs.
    Reads only. A journal of a landscape race killed before its landscape was recorded holds
    no trials, and is taken as this race's."""
    from tunetorch.journal import holds_trials, read_meta

    path = study_dir / "journal.sqlite"
    if not path.exists():
        return
    race_dir = race_dir or study_dir.parent
    text = read_meta(path, "landscape")
    stored = json.loads(text) if text is not None else None
    wanted = json.loads(json.dumps(landscape)) if landscape is not None else None  # as stored
    if stored == wanted or (stored is None and not holds_trials(path)):
        return
    if stored is None:
        raise UsageError(
            f"study.dir: {race_dir} holds a race in real training ({study_dir.name}), not on the "
            f"{wanted['name']} landscape; leave out landscape=, or use a new study.dir"
        )
    if wanted is None:
        raise UsageError(
            f"study.dir: {race_dir} holds a race on the {stored.get('name')} landscape ({study_dir.name}), "
            f"not in real training; add landscape={stored.get('name')}, or use a new study.dir"
        )
    diff = identity.first_difference(stored, wanted, "landscape")
    raise UsageError(
        f"study.dir: {race_dir} holds a race on a different landscape ({diff}); use a new study.dir"
    )


def _group_file(group: str, option: str):
    from omegaconf import OmegaConf

    path = cli.conf_dir() / group / f"{option}.yaml"
    return OmegaConf.load(path) if path.exists() else None


def _extra(cfg: Any, name: str):
    """race.options.<name>: a mapping of options, or None."""
    from omegaconf import DictConfig

    extra = cfg.race.options.get(name) if cfg.race.options is not None else None
    if extra is not None and not isinstance(extra, DictConfig):
        raise UsageError(f"race.options.{name}: {_plain(extra)!r} must be a mapping of options")
    return extra


def _options(cfg: Any, group: str, name: str) -> dict:
    """conf/<group>/<name>.yaml with race.options.<name> over it, less `name`."""
    from omegaconf import OmegaConf

    base = _group_file(group, name)
    options = OmegaConf.to_container(base, resolve=True) if base is not None else {}
    extra = _extra(cfg, name)
    options.update(OmegaConf.to_container(extra, resolve=True) if extra is not None else {})
    options.pop("name", None)
    return options


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

    from tunetorch.race.landscapes import LANDSCAPES

    if cfg.get("landscape") is None:
        return None
    land = OmegaConf.to_container(cfg.landscape, resolve=True) if OmegaConf.is_config(cfg.landscape) else None
    if not isinstance(land, dict):
        raise UsageError(f"landscape: {_plain(cfg.landscape)!r} must be one of {', '.join(LANDSCAPES)}")
    for key, value in land.items():
        if key not in LANDSCAPE_KEYS:
            raise UsageError(f"landscape.{key}: not a key of a landscape; have {', '.join(LANDSCAPE_KEYS)}")
        subkeys = LANDSCAPE_KEYS[key]
        if subkeys is None or value is None:
            continue
        if not isinstance(value, dict):
            raise UsageError(f"landscape.{key}: {value!r} must be a mapping with keys {', '.join(subkeys)}")
        for sub in value:
            if sub not in subkeys:
                raise UsageError(
                    f"landscape.{key}.{sub}: not a key of landscape.{key}; have {', '.join(subkeys)}"
                )
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
    if cfg.study.direction != "maximize":
        raise UsageError(
            f"study.direction: {cfg.study.direction!r}; a landscape's score is higher-is-better: use maximize"
        )
    keys = checks.under("landscape")
    keys.number("noise", land.get("noise"), at_least=0.0)
    cost = land.get("cost") or {}
    keys.number("cost.base_seconds", cost.get("base_seconds"), above=0.0)
    keys.number("cost.lr_exponent", cost.get("lr_exponent"), at_least=0.0)
    curve = land.get("curve") or {}
    keys.number("curve.start", curve.get("start"), at_least=0.0)
    if curve["start"] >= 0.4:  # below every landscape's floor, so that every curve rises
        raise UsageError(
            f"landscape.curve.start: {curve['start']!r} must be below 0.4 (the landscapes' floor)"
        )
    keys.number("curve.rate", curve.get("rate"), above=0.0)
    keys.number("curve.noise", curve.get("noise"), at_least=0.0)
    return land


def _plain(value: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
