"""The step contract: a model's own training and validation steps, with Lightning's names.

A model (a plain nn.Module, or a LightningModule as it is; Lightning is never imported) may
define any of these; tunetorch calls them, and only them, as follows:

    training_step(batch, batch_idx) -> loss | {"loss": loss, name: value, ...}
        once per training batch, in train mode, after every optimiser's zero_grad; tunetorch
        then calls loss.backward(), clips (trainer.grad_clip), steps every optimiser and a
        per-step schedule. `loss`: a scalar tensor with a graph; a NaN or infinite epoch mean
        fails the trial. The dict's other values (numbers or one-element tensors) are averaged
        over the epoch's batches and journaled with the epoch's metrics under their own names.
    validation_step(batch, batch_idx) -> {name: value, ...}
        once per validation batch after each epoch, in eval mode under torch.no_grad(); also on
        the test split, by the one evaluation. Each value (a number or a one-element tensor) is
        averaged over the split, weighted by the batch's size (`batch_size`); the names are the
        trial's validation metrics, one of which is `study.metric`.
    configure_optimizers() -> Optimizer | [Optimizer, ...] | {"optimizer": ..., "lr_scheduler": ...}
        once per trial, only when the config names no optimiser. "lr_scheduler" is a schedule,
        or {"scheduler": schedule, "interval": "epoch" | "step"} (default "epoch").

`batch` is what the split yields, moved to the trial's device: tensors anywhere inside tuples,
lists and dicts are moved, any other value passes as it is. `batch_idx` counts from 0 in each
pass over a split. A model without training_step is trained by the default step (the
configured loss on `model(x)` against `y`, which needs (x, y) batches); one without
validation_step is scored by the classifier's validation (val_loss, val_accuracy, val_metrics).

Every bad output is one line (`BadStep`, a UsageError) naming the method and what it returned:
before anything runs (`sanity_check`, from config.check_code, on the first batches) and in the
trial itself (its error). A step that raises fails its trial with its own message, as any
exception in a trial does.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch

from tunetorch.errors import UsageError

# The names of an epoch's metrics that tunetorch writes itself: a step's value may not take them.
RESERVED = ("epoch", "seconds", "train_loss")
STEPS = ("training_step", "validation_step")
LOSS_HELP = "return the loss (a scalar tensor) or a dict with 'loss'"
METRIC_HELP = "each metric must be a number or a one-element tensor"


class BadStep(UsageError):
    """A step (or configure_optimizers) returned something outside the contract."""


# --- the model's methods ------------------------------------------------------------------
def find(model: Any, name: str) -> Callable | None:
    """The model's bound method `name`, or None; through torch.compile's wrapper too."""
    for obj in (model, getattr(model, "_orig_mod", None)):
        if obj is None:
            continue
        own = getattr(obj, "__dict__", {}).get(name)  # set on the instance
        if callable(own):
            return own
        if defines(type(obj), name):
            return getattr(obj, name)
    return None


def defines(cls: type, name: str) -> bool:
    """Whether class `cls` has method `name` of its own: a LightningModule's placeholders (the
    base class's training_step, validation_step, configure_optimizers) do not count."""
    owner = next((c for c in cls.__mro__ if name in vars(c)), None)
    if owner is None or not callable(vars(owner)[name]):
        return False
    lightning = owner.__name__ == "LightningModule" and owner.__module__.startswith(
        ("lightning.", "pytorch_lightning.")
    )
    return not lightning


def defines_steps(model: Any) -> bool:
    return any(find(model, name) is not None for name in STEPS)


# --- batches ------------------------------------------------------------------------------
def to_device(batch: Any, device: Any, non_blocking: bool = False) -> Any:
    """`batch` with every tensor inside it (tuples, lists, dicts, nested) on `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return type(batch)({k: to_device(v, device, non_blocking) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch


def leaves(batch: Any) -> Iterator[Any]:
    """Every value inside `batch` that is not a tuple, list or dict, in order (dicts in theirs)."""
    if isinstance(batch, Mapping):
        for v in batch.values():
            yield from leaves(v)
    elif isinstance(batch, (list, tuple)):
        for v in batch:
            yield from leaves(v)
    else:
        yield batch


def batch_size(batch: Any) -> int:
    """The leading dimension of the first tensor in `batch` (1 when it holds none, or a 0-d one)."""
    for leaf in leaves(batch):
        if isinstance(leaf, torch.Tensor):
            return int(leaf.shape[0]) if leaf.dim() else 1
    return 1


def inputs_and_labels(batch: Any, split: str, method: str) -> tuple[Any, Any]:
    """(x, y) of a batch for the default steps, which need that shape; `method` is the step the
    model lacks (which would take any batch)."""
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    raise UsageError(
        f"dataset: the {split} split gives batches of {describe(batch)}; a model without {method} "
        f"needs (inputs, labels) batches (define {method} to take any batch)"
    )


def augmented(batch: Any, augment: Callable, generator: torch.Generator) -> Any:
    """An (x, y) batch with the data module's augment applied to x."""
    if not (isinstance(batch, (list, tuple)) and len(batch) == 2):
        raise UsageError(
            f"dataset: the data module's augment takes the x of (x, y) batches, and the train split "
            f"gives batches of {describe(batch)}"
        )
    return type(batch)((augment(batch[0], generator), batch[1]))


# --- step outputs ---------------------------------------------------------------------------
def loss_of(out: Any, where: str = "") -> tuple[torch.Tensor, dict[str, Any]]:
    """training_step's output -> (the loss, its other values). `where`: " (epoch 1, batch_idx 4)"."""
    extras: dict[str, Any] = {}
    loss = out
    if isinstance(out, Mapping):
        if "loss" not in out:
            raise BadStep(f"training_step returned {describe(out)}, without 'loss'{where}; {LOSS_HELP}")
        loss = out["loss"]
        extras = _values("training_step", {k: v for k, v in out.items() if k != "loss"}, where)
    if not isinstance(loss, torch.Tensor):
        what = describe(out) if loss is out else f"a 'loss' of {describe(loss)}"
        raise BadStep(f"training_step returned {what}{where}; {LOSS_HELP}")
    if loss.numel() != 1:
        raise BadStep(
            f"training_step returned a loss of shape {tuple(loss.shape)}{where}; the loss must be a "
            "scalar tensor (reduce it, e.g. .mean())"
        )
    if torch.is_grad_enabled() and not loss.requires_grad:
        raise BadStep(
            f"training_step returned a loss that does not require grad{where} (detached, or computed "
            "without the model's parameters); tunetorch calls loss.backward()"
        )
    return loss.reshape(()), extras


def metrics_of(out: Any, where: str = "") -> dict[str, Any]:
    """validation_step's output, checked: a dict of metric name -> number or one-element tensor."""
    if not isinstance(out, Mapping):
        raise BadStep(
            f"validation_step returned {describe(out)}{where}; return a dict of metric name -> value "
            f"({METRIC_HELP})"
        )
    return _values("validation_step", out, where)


def _values(method: str, out: Mapping, where: str) -> dict[str, Any]:
    for name, value in out.items():
        if not isinstance(name, str):
            raise BadStep(f"{method} returned a dict with key {name!r}{where}; metric names are strings")
        if name in RESERVED:
            raise BadStep(
                f"{method} returned {name!r}{where}, a name tunetorch writes itself "
                f"({', '.join(RESERVED)}); rename it"
            )
        bad = isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor))
        if not bad and isinstance(value, torch.Tensor):
            bad = value.numel() != 1 or value.is_complex()
        if bad:
            raise BadStep(f"{method} returned {name!r}: {describe(value)}{where}; {METRIC_HELP}")
    return dict(out)


class Means:
    """Weighted means of named values, each over the batches that gave it. Tensors are summed on
    their device (no wait per batch); `result` reads them once."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.weights: dict[str, float] = {}

    def add(self, values: Mapping[str, Any], weight: float = 1.0) -> None:
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                # float64: a mean over many batches of a float32 or bf16 value keeps its digits
                value = value.detach().reshape(()).to(torch.float64)
            else:
                value = float(value)
            self.sums[name] = self.sums.get(name, 0.0) + value * weight
            self.weights[name] = self.weights.get(name, 0.0) + weight

    def result(self) -> dict[str, float]:
        return {name: float(total) / self.weights[name] for name, total in self.sums.items()}


def merged(train: Mapping[str, float], val: Mapping[str, float]) -> dict[str, float]:
    """An epoch's metrics: the training values, then validation's; a name in both is refused."""
    both = sorted(set(train) & set(val))
    if both:
        raise BadStep(
            f"training_step and validation_step both returned {', '.join(map(repr, both))}; an epoch's "
            "metrics need one name each (rename one, e.g. train_... and val_...)"
        )
    return {**train, **val}


def check_metric(metric: str, names: Iterable[str]) -> None:
    """study.metric among the names a trial reports; one line listing them otherwise."""
    names = [n for n in names if n not in ("epoch", "seconds")]
    if metric not in names:
        raise BadStep(
            f"study.metric: {metric!r} is not among the metrics the trial's steps returned "
            f"({', '.join(names)}); set study.metric to one of them"
        )


# --- configure_optimizers -----------------------------------------------------------------------
def optimizers_of(model: Any) -> tuple[list[torch.optim.Optimizer], list[tuple[Any, str]]]:
    """The model's configure_optimizers(), read: (its optimisers, [(schedule, "epoch" | "step")])."""
    method = find(model, "configure_optimizers")
    if method is None:
        raise BadStep(f"configure_optimizers: {type(model).__name__} has none")
    out = method()
    help_ = "return an Optimizer, a list of them, or {'optimizer': ..., 'lr_scheduler': ...}"
    if isinstance(out, Mapping):
        unknown = sorted(set(map(str, out)) - {"optimizer", "lr_scheduler"})
        if "optimizer" not in out or unknown:
            what = f"keys {', '.join(unknown)}" if unknown else "no 'optimizer'"
            raise BadStep(f"configure_optimizers returned a dict with {what}; {help_}")
        return _optimizers(out["optimizer"], help_), _schedules(out.get("lr_scheduler"))
    return _optimizers(out, help_), []


def _optimizers(out: Any, help_: str) -> list[torch.optim.Optimizer]:
    many = list(out) if isinstance(out, (list, tuple)) else [out]
    if not many or not all(isinstance(o, torch.optim.Optimizer) for o in many):
        raise BadStep(f"configure_optimizers returned {describe(out)} as its optimiser; {help_}")
    return many


def _schedules(node: Any) -> list[tuple[Any, str]]:
    if node is None:
        return []
    schedule, interval = node, "epoch"
    if isinstance(node, Mapping):
        unknown = sorted(set(map(str, node)) - {"scheduler", "interval"})
        if unknown or "scheduler" not in node:
            what = f"keys {', '.join(unknown)}" if unknown else "no 'scheduler'"
            raise BadStep(
                f"configure_optimizers returned an lr_scheduler dict with {what}; give "
                "{'scheduler': schedule, 'interval': 'epoch' | 'step'}"
            )
        schedule, interval = node["scheduler"], node.get("interval", "epoch")
    if interval not in ("epoch", "step"):
        raise BadStep(f"configure_optimizers returned interval {interval!r}; it is 'epoch' or 'step'")
    plateau = isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau or not isinstance(schedule, torch.optim.lr_scheduler.LRScheduler):
        why = "it steps on a metric, which tunetorch does not pass" if plateau else "not a schedule"
        raise BadStep(
            f"configure_optimizers returned {describe(schedule)} as its lr_scheduler ({why}); give a "
            "torch.optim.lr_scheduler.LRScheduler"
        )
    return [(schedule, interval)]


# --- before anything runs -------------------------------------------------------------------------
def sanity_check(
    model: Any, train_batch: Any, val_batch: Any, metric: str, default_metrics: Iterable[str]
) -> None:
    """Lightning's sanity check, both ways: training_step on the first train batch and
    validation_step on the first validation batch (each only where the model defines it; no
    backward, no optimiser step), so a bad output is one line before anything is written. Then
    study.metric among what a trial would report (`default_metrics` stand for the default
    validation's; a model with val_metrics may name more)."""
    where = " (sanity check, on the first {} batch)"
    names = ["train_loss"]
    training_step = find(model, "training_step")
    if training_step is not None:
        model.train()
        names += list(loss_of(training_step(train_batch, 0), where.format("train"))[1])
    else:
        inputs_and_labels(train_batch, "train", "training_step")
    validation_step = find(model, "validation_step")
    if validation_step is None:
        inputs_and_labels(val_batch, "val", "validation_step")
        if find(model, "val_metrics") is not None:
            return
        val = [n for n in default_metrics if n not in names]
    else:
        model.eval()
        with torch.no_grad():
            val = list(metrics_of(validation_step(val_batch, 0), where.format("validation")))
        merged(dict.fromkeys(names, 0.0), dict.fromkeys(val, 0.0))
    check_metric(metric, [*names, *val])


def describe(value: Any) -> str:
    """A short account of what a step returned, for its one line."""
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        keys = [str(k) for k in value]
        shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
        return f"a dict with keys {shown}" if keys else "an empty dict"
    if isinstance(value, (bool, numbers.Number, str)):
        return f"{type(value).__name__} {value!r}"[:80]
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"
