"""The composed config, checked before anything is written.

    plan = check(cfg)            # every value a user can set, by type and range; UsageError names the key

`check` reads tunetorch's own sections (trainer, budget, tuner, study) against the schema of
conf/tune.yaml, so a key nothing reads (`+trainer.epoch=3`) is refused with the nearest known
key; the pluggable groups (model, dataset, optimizer, lr_scheduler, loss) against their
constructors' signatures (training/build.py); strategy and scheduler options against their
classes. The cheap checks come first, before torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunetorch import checks
from tunetorch.errors import EnvironmentFault, UsageError, nearest
from tunetorch.executors import BACKENDS

DEFAULT_STRATEGY = "random"
DEFAULT_SCHEDULER = "none"
# The metrics of a model without validation_step (one with it reports what its steps return).
BUILTIN_METRICS = ("val_accuracy", "val_loss", "train_loss")
# The sections of the primary config that tunetorch reads itself (their schema is conf/tune.yaml).
OWN_SECTIONS = ("trainer", "budget", "tuner", "study", "report")
GROUP_SECTIONS = ("space", "model", "dataset", "optimizer", "lr_scheduler", "loss", "strategy", "scheduler")
OTHER_SECTIONS = ("race", "landscape")  # the race's own (checked by the race)


@dataclass
class Plan:
    """What a checked config asks for."""

    space: Any  # SearchSpace
    space_spec: dict[str, dict[str, Any]]  # flat: config path -> dimension spec
    strategy: str
    strategy_options: dict[str, Any] = field(default_factory=dict)
    strategy_defaulted: bool = False
    scheduler: str = DEFAULT_SCHEDULER
    scheduler_options: dict[str, Any] = field(default_factory=dict)


def check(cfg: Any, conf: Path, extra_sections: tuple[str, ...] = ()) -> Plan:
    """Check the whole config; returns the plan. Raises UsageError naming the first bad key.

    `strategy` and `scheduler` are null in the defaults list (conf/tune.yaml) until one is chosen;
    a null one is filled in here with what runs (random search, said to be the default; no early
    stopping), so that the study's record (its identity, config.yaml) names them."""
    from omegaconf import OmegaConf

    defaulted = _fill_unchosen(cfg, conf)
    _known_keys(cfg, conf, extra_sections)
    trainer, budget, tuner, study = (checks.under(s) for s in ("trainer", "budget", "tuner", "study"))
    trainer.whole("epochs", cfg.trainer.get("epochs"), low=1)
    trainer.whole("batch_size", cfg.trainer.get("batch_size"), low=1)
    trainer.one_of("score", cfg.trainer.get("score"), ("best", "last"))
    trainer.one_of("precision", cfg.trainer.get("precision"), ("32", "bf16"))
    trainer.number("grad_clip", cfg.trainer.get("grad_clip"), above=0, optional=True)
    trainer.boolean("compile", cfg.trainer.get("compile"))
    trainer.whole("loader_workers", cfg.trainer.get("loader_workers"), low=0)
    budget.whole("n_trials", cfg.budget.get("n_trials"), low=1, optional=True)
    # both budget keys null: the default budget (tunetorch/budget.py)
    budget.number("gpu_minutes", cfg.budget.get("gpu_minutes"), above=0, optional=True)
    tuner.whole("max_consecutive_failures", cfg.tuner.get("max_consecutive_failures"), low=1)
    tuner.whole("max_retries", cfg.tuner.get("max_retries"), low=0)
    tuner.whole("workers", cfg.tuner.get("workers"), low=1)
    tuner.whole("trials_per_device", cfg.tuner.get("trials_per_device"), low=1)
    tuner.boolean("progress", cfg.tuner.get("progress"))
    tuner.one_of("backend", cfg.tuner.get("backend"), tuple(BACKENDS))
    checks.under("report").boolean("strategy_internals", cfg.report.get("strategy_internals"))
    address = _get(cfg, "tuner.ray.address")
    if address is not None and (not isinstance(address, str) or not address):
        raise UsageError(f"tuner.ray.address: {address!r} must be null, auto or HOST:PORT")
    study.seed("seed", cfg.study.get("seed"))
    study.boolean("evaluate", cfg.study.get("evaluate"))
    study.one_of("direction", cfg.study.get("direction"), ("maximize", "minimize"))
    metric = _get(cfg, "study.metric")
    if not isinstance(metric, str) or not metric:
        raise UsageError(f"study.metric: {metric!r} must be a metric name, e.g. {', '.join(BUILTIN_METRICS)}")
    study_dir = _get(cfg, "study.dir")
    if not isinstance(study_dir, str) or not study_dir.strip():
        raise UsageError(f"study.dir: {study_dir!r} must be a folder path (a new or an existing study)")
    _study_dir_usable(Path(study_dir))

    from tunetorch.space import SearchSpace
    from tunetorch.strategies import REGISTRY

    name = checks.under("strategy").one_of("name", cfg.strategy.get("name"), sorted(REGISTRY))
    space_node = cfg.get("space")  # None when the command line left the group out (space=null)
    spec = flatten_space(None if space_node is None else OmegaConf.to_container(space_node, resolve=True))
    space = SearchSpace.from_dict(spec)
    strategy_options = {k: v for k, v in OmegaConf.to_container(cfg.strategy).items() if k != "name"}
    plan = Plan(space, spec, name, strategy_options, defaulted)
    if cfg.get("scheduler") is not None:
        options = OmegaConf.to_container(cfg.scheduler, resolve=True)
        plan.scheduler = options.pop("name", DEFAULT_SCHEDULER)
        plan.scheduler_options = options
    return plan


def check_code(cfg: Any, plan: Plan) -> None:
    """The checks that import the user's code (and torch): every `_target_` imports, every key
    is an argument its constructor takes, every searched path is a key of the config; then the
    strategy and scheduler options; a dry build of the model, optimiser(s), schedule and loss, and
    another at each edge of the space; the metric; last the data: prepared, and fitted once on
    the CPU (FitData checks its splits). A model with its own training_step or validation_step
    then runs each once on the first batch of its split, on the CPU (steps.sanity_check): a bad
    output, or a study.metric the steps do not return, is one line here, before anything runs."""
    from tunetorch.schedulers import check_epochs, make_scheduler
    from tunetorch.strategies import make_strategy
    from tunetorch.training import build, steps
    from tunetorch.training.datasets import batches

    build.check(cfg, plan.space.names)
    make_strategy(plan.strategy, plan.space, seed=int(cfg.study.seed), **plan.strategy_options)
    scheduler = make_scheduler(plan.scheduler, seed=int(cfg.study.seed), **plan.scheduler_options)
    check_epochs(scheduler, int(cfg.trainer.epochs))
    data = build.data_module(cfg)
    shape, n_classes = build.model_inputs(data)
    net = build.dry_build(cfg, shape, n_classes)
    build.check_edges(cfg, plan.space, shape, n_classes, net)
    metric = str(cfg.study.metric)
    own_steps = steps.defines_steps(net)
    if not own_steps and metric not in BUILTIN_METRICS and not hasattr(net, "val_metrics"):
        raise UsageError(
            f"study.metric: {metric!r} is not one of {', '.join(BUILTIN_METRICS)}, and the model "
            f"({cfg.model._target_}) has no val_metrics(logits, target) that could return it"
        )
    if callable(getattr(data, "prepare", None)):
        data.prepare()
    fit = data.fit(int(cfg.study.seed), "cpu")
    if own_steps:
        first = [
            steps.to_device(next(iter(batches(split, int(cfg.trainer.batch_size)))), "cpu")
            for split in (fit.train, fit.val)
        ]
        steps.sanity_check(net, *first, metric, BUILTIN_METRICS)


def flatten_space(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested YAML -> {config path: dimension}: a mapping with a `type` key is a dimension."""
    if not isinstance(node, dict) or not node:
        raise UsageError(
            f"space{'.' + prefix.rstrip('.') if prefix else ''}: {node!r} is not a mapping of dimensions; "
            "give path: {type: float | int | categorical, ...}"
        )
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and "type" in value:
            out[path] = value
        elif isinstance(value, dict):
            out.update(flatten_space(value, path + "."))
        else:
            raise UsageError(
                f"space.{path}: {value!r} is not a dimension; give {{type: float | int | categorical, ...}}"
            )
    return out


def _fill_unchosen(cfg: Any, conf: Path) -> bool:
    """strategy and scheduler where none was chosen; True when no strategy was."""
    from omegaconf import OmegaConf, open_dict

    defaulted = cfg.get("strategy") is None
    with open_dict(cfg):
        if defaulted:
            cfg.strategy = OmegaConf.load(conf / "strategy" / f"{DEFAULT_STRATEGY}.yaml")
        if cfg.get("scheduler") is None and (conf / "scheduler" / f"{DEFAULT_SCHEDULER}.yaml").is_file():
            cfg.scheduler = OmegaConf.load(conf / "scheduler" / f"{DEFAULT_SCHEDULER}.yaml")
    return defaulted


# --- tunetorch's own keys -------------------------------------------------------------------
def _known_keys(cfg: Any, conf: Path, extra_sections: tuple[str, ...]) -> None:
    from omegaconf import OmegaConf

    schema = OmegaConf.to_container(OmegaConf.load(conf / "tune.yaml"))
    allowed_top = (*OWN_SECTIONS, *GROUP_SECTIONS, *extra_sections)
    for key in cfg:
        if key not in allowed_top:
            raise UsageError(f"{key}: not a key tunetorch reads{_nearest(key, allowed_top)}")
    for section in OWN_SECTIONS:
        known = schema.get(section) or {}
        node = cfg.get(section)
        if node is None or not OmegaConf.is_dict(node):
            raise UsageError(f"{section}: {node!r} must be a mapping of {', '.join(known)}")
        for key in node:
            if key not in known:
                raise UsageError(
                    f"{section}.{key}: not a key tunetorch reads{_nearest(key, list(known), section + '.')}"
                )


def _nearest(word: str, options: Any, prefix: str = "") -> str:
    close = nearest(word, options)
    return (
        f"; did you mean {prefix}{close}?" if close else f"; known: {', '.join(prefix + o for o in options)}"
    )


def _get(cfg: Any, key: str) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key)


def _study_dir_usable(target: Path) -> None:
    target = target.expanduser().absolute()
    for part in target.parts:
        if len(part.encode()) > 255:
            raise UsageError(
                f"study.dir: a path component is {len(part.encode())} bytes long; the limit is 255"
            )
    if target.exists() and not target.is_dir():
        raise UsageError(f"study.dir: {target} is a file, not a folder")
    parent = target
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"study.dir: {target} cannot be made ({parent} is a file)")
    import os

    if not os.access(parent, os.W_OK | os.X_OK):  # the environment's fault, not the input's: exit 1
        read_only = bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
        why = "on a read-only file system" if read_only else "not writable (permissions, or immutable)"
        raise EnvironmentFault(
            f"study.dir: {target} cannot be written: {parent} is {why}; make it writable and run the "
            "same command again"
        )
