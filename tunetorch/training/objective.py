"""The training task that runs inside worker processes: one trial of `trainer.train_trial`.

setup_training(device, cfg_yaml, checkpoints) -> TrainingWorker   (once per worker)
run_training(worker, number, params, emit) -> {"score", "epoch", "epochs"}   (per trial)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def trial_seed(study_seed: int, number: int) -> int:
    """Each trial's training seed: fixed by the study seed and the trial number alone."""
    return int(np.random.SeedSequence([study_seed, number]).generate_state(1)[0])


@dataclass
class TrainingWorker:
    """Per-worker state: the study's config and its fit data, loaded onto the worker's device once."""

    cfg: Any
    data: Any  # FitData
    device: str
    checkpoints: Path


def setup_training(device: str, cfg_yaml: str, checkpoints: str) -> TrainingWorker:
    from omegaconf import OmegaConf

    from tunetorch.training import build

    cfg = OmegaConf.create(cfg_yaml)
    data = build.data_module(cfg).fit(int(cfg.study.seed), device)
    _warm_up(device)
    return TrainingWorker(cfg, data, device, Path(checkpoints))


def _warm_up(device: str) -> None:
    """One AdamW step on a scalar: its first use imports torch._dynamo (about a second), a
    one-off cost of the worker that would otherwise be charged to its first trial's minutes."""
    import torch

    weight = torch.zeros(1, device=device, requires_grad=True)
    optimizer = torch.optim.AdamW([weight])
    weight.sum().backward()
    optimizer.step()


def run_training(state: TrainingWorker, number: int, params: dict, emit) -> dict:
    """Train trial `number`; every epoch's metrics go to the driver as they happen, and the
    driver's answer (stop or not, when a scheduler is on) ends the trial after that epoch."""
    from tunetorch.checkpoints import save_trial_weights
    from tunetorch.training import build
    from tunetorch.training.trainer import train_trial

    result = train_trial(
        build.trial_config(state.cfg, params),
        state.data,
        state.device,
        seed=trial_seed(int(state.cfg.study.seed), number),
        report=lambda epoch, metrics: emit("epoch", {"epoch": epoch, **metrics}),
    )
    save_trial_weights(state.checkpoints, number, result.state_dict)
    return {
        "score": result.score,
        "epoch": result.epoch,
        "epochs": len(result.epochs),
    }
