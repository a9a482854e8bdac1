"""From a config to objects: a trial's params set on their config paths, then `_target_` built.

    trial_config(cfg, params)           -> the config with every searched path set to the trial's value
    data_module(cfg)                    -> the `dataset` group's object (fit / test, optionally
                                           input_shape / n_classes: `model_inputs`)
    model(cfg, input_shape, n_classes)  -> nn.Module (either may be None: the data module states none)
    optimizers(cfg, model, steps_per_epoch) -> ([Optimizer, ...], [(scheduler, "step" | "epoch"), ...])
        the config's optimizer and lr_scheduler; or, when the config names no optimiser
        (`~optimizer` on the command line, or an optimizer option without `_target_`), the
        model's configure_optimizers() (training/steps.py)
    optimizer(cfg, model)               -> the config's torch.optim.Optimizer
    lr_schedule(cfg, optimizer, steps_per_epoch) -> (scheduler, "step" | "epoch") or None
    loss(cfg)                           -> a callable (logits, target) -> scalar tensor

The groups whose options are code (`PLUGGABLE`) are built with `hydra.utils.instantiate`, the
built-ins exactly as a user's own option: what tunetorch supplies at run time (the model's
`input_shape` / `n_classes`, the optimiser's parameters, the schedule's optimiser and length) is
passed only where the constructor's signature takes it and the config does not set it (the model's
two only where the data module states them: a constructor that needs one it does not state is one
line).
`check(cfg)` validates all of it before anything runs: the `_target_` imports, every key of a
group is an argument its constructor accepts, and every searched path is a key of the config.
Then `dry_build` builds the model, optimiser, schedule and loss once, as configured, and
`check_edges` builds each searched group again at the edges of each of its dimensions, so a
value a constructor refuses is one line before anything runs, never a study of failed trials.

A config may come from a study directory someone else made, so nothing it names is called before
it is checked (`_target`, on every path that builds): a group's `_target_` must be a class of the
group's kind (`KINDS`), and a `_target_` nested inside a group's arguments is refused, never
instantiated.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from tunetorch.errors import UsageError, did_you_mean

# The config groups whose options are code, built by `_target_`.
PLUGGABLE = ("model", "dataset", "optimizer", "lr_scheduler", "loss")
# Keys tunetorch reads itself inside those groups; never passed to the constructor.
OWN_KEYS = {"lr_scheduler": ("interval",)}
# Arguments tunetorch supplies at run time, per group (passed only when the constructor takes them).
SUPPLIED = {
    "model": ("input_shape", "n_classes"),
    "dataset": (),
    "optimizer": ("params",),
    "lr_scheduler": ("optimizer", "total_steps", "T_max"),
    "loss": (),
}
_HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
# What each group's `_target_` must be: (base class, or None for the data module's duck type; what
# the group builds, for the message).
KINDS = {
    "model": ("torch.nn.Module", "an nn.Module class"),
    "dataset": (None, "a data module: a class with fit() and test()"),
    "optimizer": ("torch.optim.Optimizer", "an optimiser class"),
    "lr_scheduler": ("torch.optim.lr_scheduler.LRScheduler", "a learning-rate scheduler class"),
    "loss": ("torch.nn.Module", "an nn.Module class called as (logits, target) -> loss"),
}
# Arguments a torch class checks only when it is called, not when it is built: checked as it is
# built instead (by the class's canonical path), so a value it cannot take is refused up front.
DOMAINS = {"torch.nn.modules.loss.CrossEntropyLoss": {"label_smoothing": (0.0, 1.0)}}
# How a constructor refuses a value (as configured, or at an edge of the space); anything else it
# raises is a bug in it, and keeps its traceback.
REFUSALS = (ValueError, TypeError, AssertionError)
# The groups built at the edges of the space (not the data module: building it loads data).
EDGE_BUILT = ("model", "optimizer", "lr_scheduler", "loss")
# Sections of tunetorch's own whose keys may be searched (besides the pluggable groups).
SEARCHABLE_SECTIONS = ("trainer",)
SEARCHABLE_TRAINER_KEYS = ("batch_size", "grad_clip", "epochs")


# --- a trial's config ------------------------------------------------------------------
def trial_config(cfg: Any, params: dict[str, Any]) -> Any:
    """A copy of `cfg` with each param (a config path such as "optimizer.lr") set to its value."""
    from omegaconf import OmegaConf

    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for path, value in params.items():
        OmegaConf.update(out, path, value, merge=False)
    return out


# --- building --------------------------------------------------------------------------
def data_module(cfg: Any) -> Any:
    return _instantiate(cfg, "dataset")


def model_inputs(data: Any) -> tuple[tuple[int, ...] | None, int | None]:
    """(input_shape, n_classes) as a data module (or its FitData) states them; None where it does not."""
    return getattr(data, "input_shape", None), getattr(data, "n_classes", None)


def model(cfg: Any, input_shape: tuple[int, ...] | None = None, n_classes: int | None = None) -> Any:
    given = {}
    if input_shape is not None:
        given["input_shape"] = tuple(input_shape)
    if n_classes is not None:
        given["n_classes"] = int(n_classes)
    fn = _target(cfg.model, "model")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    for name in SUPPLIED["model"]:
        p = params.get(name)
        if p is not None and p.default is p.empty and name not in given and name not in cfg.model:
            raise UsageError(
                f"model: {cfg.model._target_} takes {name}, and the data module "
                f"({cfg.dataset.get('_target_')}) states none; give the data module an {name!r} "
                f"attribute, or set model.{name}"
            )
    return _instantiate(cfg, "model", **given)


def names_no_optimizer(cfg: Any) -> bool:
    """True when the config names no optimiser (the model's configure_optimizers() is used)."""
    from omegaconf import OmegaConf

    node = cfg.get("optimizer")
    return node is None or not OmegaConf.is_dict(node) or node.get("_target_") is None


def optimizers(cfg: Any, net: Any, steps_per_epoch: int) -> tuple[list[Any], list[tuple[Any, str]]]:
    """A trial's optimisers and learning-rate schedules (with when each steps)."""
    if names_no_optimizer(cfg):
        from tunetorch.training import steps

        return steps.optimizers_of(net)
    opt = optimizer(cfg, net)
    schedule = lr_schedule(cfg, opt, steps_per_epoch)
    return [opt], [schedule] if schedule is not None else []


def optimizer(cfg: Any, net: Any) -> Any:
    built = _instantiate(cfg, "optimizer")
    if hasattr(built, "step"):
        return built
    return _call(built, "optimizer", cfg.optimizer.get("_target_"), net.parameters())


def lr_schedule(cfg: Any, opt: Any, steps_per_epoch: int) -> tuple[Any, str] | None:
    """The learning-rate schedule and when to step it ("step": every batch, "epoch": every epoch)."""
    node = cfg.get("lr_scheduler")
    if not node or node.get("_target_") is None:
        return None
    interval = str(node.get("interval", "epoch"))
    epochs = int(cfg.trainer.epochs)
    length = epochs * steps_per_epoch if interval == "step" else epochs
    built = _instantiate(cfg, "lr_scheduler")
    supplied = {"total_steps": length, "T_max": length}
    accepted = _accepted(_target(node, "lr_scheduler"))
    kwargs = {k: v for k, v in supplied.items() if (accepted is None or k in accepted) and k not in node}
    return _call(built, "lr_scheduler", node.get("_target_"), opt, **kwargs), interval


def loss(cfg: Any) -> Callable:
    node = cfg.get("loss")
    if not node or node.get("_target_") is None:
        import torch.nn.functional as F

        return F.cross_entropy
    return _instantiate(cfg, "loss")


def _instantiate(cfg: Any, group: str, **supplied: Any) -> Any:
    from omegaconf import OmegaConf

    node = cfg[group]
    fn = _target(node, group)
    accepted = _accepted(fn)
    plain = OmegaConf.to_container(node, resolve=True)
    _no_nested_targets(plain, group)
    for key in OWN_KEYS.get(group, ()):
        plain.pop(key, None)
    kwargs = {k: v for k, v in supplied.items() if (accepted is None or k in accepted) and k not in plain}
    return _call(_construct, group, plain["_target_"], fn, plain, **kwargs)


def _construct(fn: Callable, plain: dict[str, Any], **kwargs: Any) -> Any:
    """Hydra's instantiate, after the arguments `DOMAINS` declares for `fn` are checked."""
    import hydra.utils

    for key, (low, high) in DOMAINS.get(f"{fn.__module__}.{fn.__qualname__}", {}).items():
        value = plain.get(key, low)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ValueError(f"{key} must be in [{low:g}, {high:g}], got {value!r}")
    return hydra.utils.instantiate(plain, _convert_="all", **kwargs)


def _call(fn: Callable, group: str, target: str, *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs). A constructor that refuses a value (`REFUSALS`: arguments that do not
    bind, a ValueError or an AssertionError) is bad input, named by group, with the constructor's
    own exception kept as the UsageError's __cause__. Anything else raised inside it is a bug in
    the constructor and keeps its own traceback (exit 1)."""
    try:
        return fn(*args, **kwargs)
    except UsageError:
        raise
    except Exception as e:
        cause = e.__cause__ or e  # Hydra's InstantiationException wraps the constructor's own
        if isinstance(cause, UsageError):
            raise cause from None
        if not isinstance(cause, REFUSALS):
            raise cause from None
        raise UsageError(f"{group}: {target} refused its arguments ({_one_line(cause)})") from cause


# --- building once, before anything runs ------------------------------------------------
def dry_build(cfg: Any, input_shape: tuple[int, ...] | None, n_classes: int | None) -> Any:
    """The model, optimisers, schedules and loss built once as configured; returns the model."""
    net = model(cfg, input_shape, n_classes)
    optimizers(cfg, net, steps_per_epoch=1)
    loss(cfg)
    return net


def check_edges(
    cfg: Any, space: Any, input_shape: tuple[int, ...] | None, n_classes: int | None, net: Any
) -> None:
    """Build each searched group of `EDGE_BUILT` at every edge of each of its dimensions (low and
    high, or every choice), one dimension at a time, the others as configured: an edge its
    constructor refuses (`REFUSALS`) is bad input naming the dimension. `net`: the dry-built model,
    whose parameters an optimiser at an edge is given."""
    for dim in space.dims:
        group = dim.name.partition(".")[0]
        if group not in EDGE_BUILT:
            continue
        for edge, value in dim.edges():
            at = trial_config(cfg, {dim.name: value})
            try:
                if group == "model":
                    model(at, input_shape, n_classes)
                elif group == "loss":
                    loss(at)
                else:
                    optimizers(at, net, steps_per_epoch=1)
            except UsageError as e:
                cause = e.__cause__
                if cause is None:
                    raise  # the constructor's own UsageError, or a check's
                raise UsageError(
                    f"space.{dim.name}: {edge} {value!r} is refused by the {group}, "
                    f"{at[group]._target_} ({_one_line(cause)})"
                ) from None


# --- checking, before anything runs -------------------------------------------------------
def check(cfg: Any, searched: Iterable[str]) -> None:
    """Refuse a config that could not be built: one line naming the key and what is allowed."""
    from omegaconf import OmegaConf

    for group in PLUGGABLE:
        node = cfg.get(group)
        if node is None or not OmegaConf.is_dict(node) or node.get("_target_") is None:
            if group == "optimizer":
                _no_optimizer(cfg)
            elif group in ("model", "dataset"):
                raise UsageError(f"{group}._target_: missing; the {group} group needs a class to build")
            continue
        accepted = _accepted(_target(node, group))
        _no_nested_targets(OmegaConf.to_container(node, resolve=False), group)
        if accepted is None:
            continue
        allowed = sorted(accepted - set(SUPPLIED[group]))
        for key in node:
            if key in _HYDRA_KEYS or key in OWN_KEYS.get(group, ()):
                continue
            if key not in accepted:
                hint = did_you_mean(key, allowed, prefix=f"{group}.")
                raise UsageError(
                    f"{group}.{key}: {node['_target_']} takes no argument {key!r}"
                    f"{hint}; it takes {', '.join(allowed) or 'nothing'}"
                )
    for path in searched:
        root, _, rest = path.partition(".")
        if root in PLUGGABLE:
            node = cfg.get(root)
            if not rest or "." in rest:
                raise UsageError(f"space.{path}: search a constructor argument, like {root}.<argument>")
            if node is None or rest not in node:
                accepted = _accepted(_target(node, root)) if node is not None else set()
                allowed = sorted((accepted or set(node or ())) - set(SUPPLIED[root]) - set(_HYDRA_KEYS))
                raise UsageError(
                    f"space.{path}: {path} is not in the composed config"
                    f"{did_you_mean(rest, [a for a in allowed if a != rest], prefix=root + '.')}; "
                    f"set it in the {root} config (e.g. +{path}=VALUE) or search one of: "
                    + ", ".join(f"{root}.{a}" for a in allowed)
                )
        elif root in SEARCHABLE_SECTIONS:
            if rest not in SEARCHABLE_TRAINER_KEYS:
                raise UsageError(
                    f"space.{path}: not searchable; the trainer's searchable keys are "
                    + ", ".join(f"trainer.{k}" for k in SEARCHABLE_TRAINER_KEYS)
                )
        else:
            raise UsageError(
                f"space.{path}: {root!r} is not a searchable part of the config; search a path under "
                + ", ".join((*PLUGGABLE, *SEARCHABLE_SECTIONS))
            )


def _no_optimizer(cfg: Any) -> None:
    """A config that names no optimiser: the model's configure_optimizers() gives them, and any
    schedule with them (the config's lr_scheduler would have no optimiser to take)."""
    from tunetorch.training import steps

    target = cfg.model._target_
    if not steps.defines(_target(cfg.model, "model"), "configure_optimizers"):
        raise UsageError(
            f"optimizer: none is named, and the model ({target}) has no configure_optimizers(); "
            "choose one (optimizer=NAME) or define configure_optimizers() on the model"
        )
    schedule = cfg.get("lr_scheduler")
    if schedule is not None and schedule.get("_target_") is not None:
        raise UsageError(
            f"lr_scheduler: {schedule._target_} needs the config's optimizer, and none is named (the "
            f"model's configure_optimizers() gives them); return the schedule from it, or lr_scheduler=none"
        )


def _target(node: Any, group: str) -> Callable:
    """The group's `_target_`, imported and checked to be a class of the group's kind; never called."""
    path = node.get("_target_") if node is not None else None
    if not isinstance(path, str) or "." not in path:
        raise UsageError(f"{group}._target_: {path!r} is not a dotted path to a class or function")
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"{group}._target_: {path!r} cannot be imported ({_one_line(e)})") from None
    fn = getattr(module, attr, None)
    if fn is None:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise UsageError(
            f"{group}._target_: {path!r} cannot be imported (module {module_name} has no {attr!r})"
            f"{did_you_mean(attr, names, prefix=module_name + '.')}"
        )
    _check_kind(fn, group, path)
    return fn


def _check_kind(fn: Any, group: str, path: str) -> None:
    base_path, what = KINDS[group]
    if base_path is None:
        ok = inspect.isclass(fn) and all(callable(getattr(fn, m, None)) for m in ("fit", "test"))
        if not ok:
            raise UsageError(f"{group}._target_: {path!r} is not {what}")
        return
    module_name, _, name = base_path.rpartition(".")
    base = getattr(importlib.import_module(module_name), name)
    if not (inspect.isclass(fn) and issubclass(fn, base)):
        raise UsageError(
            f"{group}._target_: {path!r} is not a subclass of {base_path}; the {group} is {what}"
        )


def _no_nested_targets(node: Any, where: str) -> None:
    """A `_target_` inside a group's arguments would be built by Hydra unchecked: refused."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        inner = f"{where}.{key}"
        if isinstance(value, dict) and "_target_" in value:
            raise UsageError(
                f"{inner}._target_: {value['_target_']!r} is not built; only a group's own _target_ is "
                "(give plain values as its arguments)"
            )
        _no_nested_targets(value, inner)


def _accepted(fn: Callable) -> set[str] | None:
    """The keyword arguments `fn` takes; None when it takes any (**kwargs)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    names = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
            names.add(p.name)
    return names


def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return text.splitlines()[0] if text else type(e).__name__
