"""One trial: train on the train split, validate after every epoch, report.

Reads top to bottom: the data are already on the device (or behind a DataLoader), then the
model, the optimiser, the schedule and the loss (all built from the trial's config), the
epoch loop and validation. The trial's score is `study.metric` at its best epoch
(`trainer.score: best`, in the direction of `study.direction`) or at its last
(`trainer.score: last`); the weights returned are those of the scored epoch. After each
epoch `report(epoch, metrics)` may return True: the trial then stops there (a scheduler's
early stop) and is scored on the epochs it trained.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from tunetorch.training import build
from tunetorch.training.datasets import FitData, Split

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
    optimizer = build.optimizer(cfg, model)
    criterion = build.loss(cfg)
    steps_per_epoch = _n_batches(data.train, batch_size)
    schedule = build.lr_schedule(cfg, optimizer, steps_per_epoch)
    step_model = torch.compile(model) if tcfg.compile else model
    autocast = _autocast(str(tcfg.precision), device_type)
    order = torch.Generator(device=device).manual_seed(seed)
    grad_clip = tcfg.grad_clip

    result = TrialResult(score=-math.inf if maximize else math.inf, epoch=-1)
    for epoch in range(int(tcfg.epochs)):
        start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        n_steps = 0
        for x, y in _batches(
            data.train, batch_size, device, shuffle=order, loader_workers=tcfg.loader_workers
        ):
            if data.augment is not None:
                x = data.augment(x, order)
            with autocast():
                loss = criterion(step_model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
            optimizer.step()
            if schedule is not None and schedule[1] == "step":
                schedule[0].step()
            loss_sum += loss.detach().float()
            n_steps += 1
            if n_steps % NAN_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
                raise Diverged(f"training loss is {loss_sum.item()} at epoch {epoch}, step {n_steps}")
        if schedule is not None and schedule[1] == "epoch":
            schedule[0].step()
        train_loss = (loss_sum / max(n_steps, 1)).item()
        if not math.isfinite(train_loss):
            raise Diverged(f"training loss is {train_loss} at epoch {epoch}")

        metrics = {"train_loss": train_loss, **validate(step_model, data.val, device, autocast, tcfg)}
        metrics["seconds"] = time.perf_counter() - start
        if metric not in metrics:
            raise KeyError(f"study.metric {metric!r} is not among this trial's metrics {sorted(metrics)}")
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
    """val_loss (mean cross-entropy), val_accuracy, and whatever the model's `val_metrics(logits,
    target) -> {name: batch mean}` returns (averaged over examples), on `split`."""
    import torch.nn.functional as F

    model.eval()
    autocast = autocast or contextlib.nullcontext
    extra = getattr(model, "val_metrics", None) or getattr(
        getattr(model, "_orig_mod", None), "val_metrics", None
    )
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    sums: dict[str, torch.Tensor] = {}
    n = 0
    workers = tcfg.loader_workers if tcfg is not None else 0
    for x, y in _batches(split, EVAL_BATCH, device, shuffle=None, loader_workers=workers):
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


def _n_batches(split: Any, batch_size: int) -> int:
    return math.ceil(len(split) / batch_size)


def _batches(
    split: Any, batch_size: int, device: Any, shuffle: torch.Generator | None, loader_workers: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) batches on `device`: indexed straight from device tensors (a Split), or read
    through a DataLoader (a Dataset) with pinned memory and `loader_workers` processes."""
    if isinstance(split, Split):
        n = len(split)
        if shuffle is not None:
            idx = torch.randperm(n, device=split.y.device, generator=shuffle)
            for i in range(0, n, batch_size):
                j = idx[i : i + batch_size]
                yield split.x[j], split.y[j]
        else:
            for i in range(0, n, batch_size):
                yield split.x[i : i + batch_size], split.y[i : i + batch_size]
        return
    from torch.utils.data import DataLoader

    cuda = torch.device(device).type == "cuda"
    generator = None
    if shuffle is not None:  # the loader shuffles on the CPU: seed it from the trial's generator
        generator = torch.Generator().manual_seed(
            int(torch.randint(2**62, (1,), generator=shuffle, device=shuffle.device))
        )
    loader = DataLoader(
        split,
        batch_size=batch_size,
        shuffle=shuffle is not None,
        generator=generator,
        num_workers=int(loader_workers),
        pin_memory=cuda,
    )
    for x, y in loader:
        yield x.to(device, non_blocking=cuda), torch.as_tensor(y).to(device, non_blocking=cuda).long()
