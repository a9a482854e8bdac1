"""The training task that runs inside worker processes: one trial of `trainer.train_trial`.

setup_training(device, cfg_yaml, checkpoints) -> TrainingWorker   (once per worker)
run_training(worker, number, params, emit) -> {"score", "epoch", "epochs"}   (per trial)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def trial_seed(study_seed: int, number: int) -> int:
    """Each trial's training seed: fixed by the study seed and the trial number alone."""
    return int(np.random.SeedSequence([study_seed, number]).generate_state(1)[0])


@dataclass
class TrainingWorker:
    """Per-worker state: the config and the data set, loaded onto the worker's device once."""

    cfg: Any
    data: Any
    device: str
    checkpoints: Path


def setup_training(device: str, cfg_yaml: str, checkpoints: str) -> TrainingWorker:
    from omegaconf import OmegaConf

    from tunetorch.training.datasets import load_tuning_data

    cfg = OmegaConf.create(cfg_yaml)
    data = load_tuning_data(cfg.dataset, int(cfg.study.seed), device)
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
    import torch

    from tunetorch.training.trainer import train_trial

    result = train_trial(
        params,
        state.cfg,
        state.data,
        state.device,
        seed=trial_seed(int(state.cfg.study.seed), number),
        report=lambda epoch, metrics: emit("epoch", {"epoch": epoch, **metrics}),
    )
    # Weights of the scored epoch, written atomically: a crash leaves the old file or the new one.
    path = state.checkpoints / f"trial_{number:04d}.pt"
    tmp = path.with_suffix(".pt.tmp")
    torch.save(result.state_dict, tmp)
    os.replace(tmp, path)
    return {"score": result.score, "epoch": result.epoch, "epochs": len(result.epochs)}
