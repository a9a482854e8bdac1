"""One trial: train on the train split, validate after every epoch, report.

Reads top to bottom: the data are already on the device, then the model, the
optimiser, the epoch loop and validation. The trial's score is the validation
accuracy of its best epoch (`trainer.score: best`, the default) or of its last
(`trainer.score: last`); the weights returned are those of the scored epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from tunetorch.training.datasets import Split, TuningData
from tunetorch.training.models import build_model

# The trial params train_trial reads are listed in names.TRAINER_PARAMS: keep the two in step.

NAN_CHECK_EVERY = 20  # steps between finiteness checks: each one waits for the device


class Diverged(Exception):
    """The training loss became NaN or infinite: the trial fails at once."""


@dataclass
class TrialResult:
    score: float  # validation accuracy of the scored epoch, in [0, 1]
    epoch: int  # the scored epoch (0-based)
    epochs: list[dict[str, float]] = field(default_factory=list)
    state_dict: dict[str, torch.Tensor] | None = None  # weights of the scored epoch, on the CPU


def train_trial(
    params: dict[str, Any],
    cfg: Any,
    data: TuningData,
    device: str | torch.device,
    seed: int,
    report: Callable[[int, dict[str, float]], None] | None = None,
) -> TrialResult:
    """Train one model with `params`; `cfg` is the whole config (model, trainer)."""
    tcfg = cfg.trainer
    lr = float(params.get("lr", tcfg.lr))
    weight_decay = float(params.get("weight_decay", tcfg.weight_decay))
    batch_size = int(params.get("batch_size", tcfg.batch_size))

    torch.manual_seed(seed)
    model = build_model(cfg.model, params, data.input_shape, data.n_classes).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    order = torch.Generator(device=device).manual_seed(seed)

    x, y = data.train.x, data.train.y
    result = TrialResult(score=-math.inf, epoch=-1)
    for epoch in range(int(tcfg.epochs)):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(len(y), device=device, generator=order)
        loss_sum = torch.zeros((), device=device)
        n_steps = 0
        for i in range(0, len(y), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            n_steps += 1
            if n_steps % NAN_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
                raise Diverged(f"training loss is {loss_sum.item()} at epoch {epoch}, step {n_steps}")
        train_loss = (loss_sum / n_steps).item()
        if not math.isfinite(train_loss):
            raise Diverged(f"training loss is {train_loss} at epoch {epoch}")

        val_loss, val_accuracy = evaluate(model, data.val, batch_size=1024)
        metrics = {
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "seconds": time.perf_counter() - start,
        }
        result.epochs.append({"epoch": epoch, **metrics})
        if report is not None:
            report(epoch, metrics)
        if tcfg.score == "last" or val_accuracy > result.score:
            result.score, result.epoch = val_accuracy, epoch
            result.state_dict = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return result


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: Split, batch_size: int = 1024) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on `split`."""
    model.eval()
    loss_sum = torch.zeros((), device=split.x.device)
    correct = torch.zeros((), device=split.x.device, dtype=torch.long)
    for i in range(0, len(split), batch_size):
        logits = model(split.x[i : i + batch_size])
        target = split.y[i : i + batch_size]
        loss_sum += F.cross_entropy(logits, target, reduction="sum")
        correct += (logits.argmax(dim=1) == target).sum()
    return (loss_sum / len(split)).item(), (correct.float() / len(split)).item()
