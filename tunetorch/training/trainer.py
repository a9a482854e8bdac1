"""One trial: train on the train split, validate after every epoch, report.

Reads top to bottom: the data are already on the device (or read batch by batch), then the
model, the optimiser(s), the schedule(s) and the loss (all built from the trial's config), the
epoch loop and validation. The trial's score is `study.metric` at its best epoch
(`trainer.score: best`, in the direction of `study.direction`) or at its last
(`trainer.score: last`); the weights returned are those of the scored epoch. After each
epoch `report(epoch, metrics)` may return True: the trial then stops there (a scheduler's
early stop) and is scored on the epochs it trained.

What tunetorch calls on the model (the contract in full: training/steps.py):
- once per trial: the constructor (build.model); `configure_optimizers()` only when the config
  names no optimiser;
- per training batch, in train mode: every optimiser's zero_grad, then `training_step(batch,
  batch_idx)` (the loss, or {"loss": ..., name: value}); without one, the configured loss (default
  cross-entropy) of `model(x)` against `y` of an (x, y) batch. Then loss.backward(), gradient
  clipping, every optimiser's step, a per-step schedule's step; a per-epoch schedule after the
  epoch. train_loss is the epoch's mean loss (NaN or infinite: the trial fails, `Diverged`); a
  training_step dict's other values are the epoch's means, under their own names;
- per validation batch, after each epoch, in eval mode under torch.no_grad():
  `validation_step(batch, batch_idx)` -> {name: value}, each averaged over the split weighted
  by batch size; without one, val_loss (mean cross-entropy), val_accuracy and what the model's
  `val_metrics(logits, y)` returns. `validate` is the one function that scores a split (the
  evaluation scores the test split with it).
A batch reaches the model with every tensor in it on the trial's device.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from tunetorch.training import build, steps
from tunetorch.training.datasets import FitData, Split, batches, n_batches
from tunetorch.words import shown_epoch

NAN_CHECK_EVERY = 20  # steps between finiteness checks: each one waits for the device
EVAL_BATCH = 1024


class Diverged(Exception):
    """The training loss became NaN or infinite: the trial fails at once."""


@dataclass
class TrialResult:
    score: float  # study.metric at the scored epoch
    epoch: int  # the scored epoch (0-based)
    epochs: list[dict[str, float]] = field(default_factory=list)  # every epoch's metrics
    state_dict: dict[str, torch.Tensor] | None = None  # weights of the scored epoch, on the CPU
    stopped: bool = False  # True when `report` asked it to stop before its last epoch


def train_trial(
    cfg: Any,
    data: FitData,
    device: str | torch.device,
    seed: int,
    report: Callable[[int, dict[str, float]], bool | None] | None = None,
) -> TrialResult:
    """Train the model of `cfg` (a trial's config: its params already set, build.trial_config)."""
    tcfg = cfg.trainer
    metric, maximize = str(cfg.study.metric), cfg.study.direction == "maximize"
    batch_size = int(tcfg.batch_size)
    device_type = torch.device(device).type

    torch.manual_seed(seed)
    model = build.model(cfg, data.input_shape, data.n_classes).to(device)
    training_step = steps.find(model, "training_step")
    optimizers, schedules = build.optimizers(cfg, model, n_batches(data.train, batch_size))
    criterion = build.loss(cfg)
    step_model = model
    if tcfg.compile and steps.defines_steps(model):
        model.compile()  # in place: the model's own steps call self(x), never the wrapper
    elif tcfg.compile:
        step_model = torch.compile(model)
    autocast = _autocast(str(tcfg.precision), device_type)
    order = torch.Generator(device=device).manual_seed(seed)
    grad_clip = tcfg.grad_clip

    result = TrialResult(score=-math.inf if maximize else math.inf, epoch=-1)
    for epoch in range(int(tcfg.epochs)):
        start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        logged = steps.Means()
        n_steps = 0
        train = _batches(data.train, batch_size, device, shuffle=order, loader_workers=tcfg.loader_workers)
        for batch_idx, batch in enumerate(train):
            if data.augment is not None:
                batch = steps.augmented(batch, data.augment, order)
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            with autocast():
                if training_step is None:
                    x, y = _inputs_and_labels(batch, data.train, "train", "training_step")
                    loss = criterion(step_model(x), y)
                else:
                    where = f" (epoch {shown_epoch(epoch)}, batch_idx {batch_idx})"
                    loss, extras = steps.loss_of(training_step(batch, batch_idx), where)
                    logged.add(extras)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
            for optimizer in optimizers:
                optimizer.step()
            for schedule, interval in schedules:
                if interval == "step":
                    schedule.step()
            loss_sum += loss.detach().float()
            n_steps += 1
            if n_steps % NAN_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
                raise Diverged(f"training loss is {loss_sum.item()} at epoch {epoch}, step {n_steps}")
        for schedule, interval in schedules:
            if interval == "epoch":
                schedule.step()
        train_loss = (loss_sum / max(n_steps, 1)).item()
        if not math.isfinite(train_loss):
            raise Diverged(f"training loss is {train_loss} at epoch {epoch}")

        trained = {"train_loss": train_loss, **logged.result()}
        metrics = steps.merged(trained, validate(step_model, data.val, device, autocast, tcfg))
        metrics["seconds"] = time.perf_counter() - start
        steps.check_metric(metric, metrics)
        result.epochs.append({"epoch": epoch, **metrics})
        value = metrics[metric]
        better = value > result.score if maximize else value < result.score
        if tcfg.score == "last" or better:
            result.score, result.epoch = value, epoch
            result.state_dict = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if report is not None and report(epoch, metrics) and epoch < int(tcfg.epochs) - 1:
            result.stopped = True
            break
    return result


@torch.no_grad()
def validate(
    model: torch.nn.Module, split: Any, device: Any, autocast=None, tcfg: Any = None
) -> dict[str, float]:
    """The model's metrics on `split`, in eval mode: the means of what its validation_step returns
    (weighted by batch size); without one, val_loss (mean cross-entropy), val_accuracy, and
    whatever the model's `val_metrics(logits, target) -> {name: batch mean}` returns (averaged
    over examples)."""
    import torch.nn.functional as F

    model.eval()
    autocast = autocast or contextlib.nullcontext
    workers = tcfg.loader_workers if tcfg is not None else 0
    validation_step = steps.find(model, "validation_step")
    if validation_step is not None:
        means = steps.Means()
        for batch_idx, batch in enumerate(_batches(split, EVAL_BATCH, device, None, workers)):
            with autocast():
                out = validation_step(batch, batch_idx)
            means.add(steps.metrics_of(out, f" (batch_idx {batch_idx})"), steps.batch_size(batch))
        return means.result()

    extra = steps.find(model, "val_metrics")
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    sums: dict[str, torch.Tensor] = {}
    n = 0
    for batch in _batches(split, EVAL_BATCH, device, shuffle=None, loader_workers=workers):
        x, y = _inputs_and_labels(batch, split, "val", "validation_step")
        with autocast():
            logits = model(x)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(dim=1) == y).sum()
        if extra is not None:
            for k, v in extra(logits, y).items():
                sums[k] = sums.get(k, 0.0) + torch.as_tensor(v, device=device).float() * len(y)
        n += len(y)
    out = {"val_loss": (loss_sum / n).item(), "val_accuracy": (correct.float() / n).item()}
    out.update({k: (v / n).item() for k, v in sums.items()})
    return out


def _autocast(precision: str, device_type: str) -> Callable[[], Any]:
    if precision == "bf16":
        return lambda: torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _batches(
    split: Any, batch_size: int, device: Any, shuffle: torch.Generator | None, loader_workers: int = 0
) -> Iterator[Any]:
    """The split's batches (datasets.batches) with every tensor in them on `device`."""
    cuda = torch.device(device).type == "cuda"
    for batch in batches(split, batch_size, shuffle, loader_workers, pin_memory=cuda):
        yield steps.to_device(batch, device, non_blocking=cuda)


def _inputs_and_labels(batch: Any, split: Any, name: str, method: str) -> tuple[Any, Any]:
    """(x, y) for the default steps. Collated labels become int64, as cross-entropy takes them; a
    Split's are int64 already (and a user's float labels for a configured loss are kept)."""
    x, y = steps.inputs_and_labels(batch, name, method)
    return (x, y) if isinstance(split, Split) else (x, torch.as_tensor(y).long())
