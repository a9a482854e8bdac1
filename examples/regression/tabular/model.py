"""A regressor with its own steps (Lightning's names; no Lightning needed). tunetorch calls
`training_step` for each training batch (and backpropagates the loss it returns) and
`validation_step` for each validation batch (and averages what it returns over the split, weighted
by batch size); the study's score is one of those metrics: study.metric=val_mse."""

import torch
import torch.nn.functional as F
from torch import nn


class Regressor(nn.Module):
    def __init__(self, input_shape, hidden=64, depth=2, dropout=0.0):
        super().__init__()
        layers, width = [], input_shape[0]
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)

    def training_step(self, batch, batch_idx):
        return F.mse_loss(self(batch["features"]), batch["target"])

    def validation_step(self, batch, batch_idx):
        error = self(batch["features"]) - batch["target"]
        return {"val_mse": error.pow(2).mean(), "val_mae": error.abs().mean()}
