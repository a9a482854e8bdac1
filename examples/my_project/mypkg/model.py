"""An ordinary nn.Module with arguments of its own. tunetorch passes `input_shape` and `n_classes`
because the constructor takes them; `hidden` and `slope` come from conf/model/my_net.yaml and
the search space (model.slope)."""

import torch
from torch import nn


class LeakyNet(nn.Module):
    def __init__(self, input_shape, n_classes, hidden=64, slope=0.01, dropout=0.0):
        super().__init__()
        n_in = 1
        for d in input_shape:
            n_in *= d
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_in, hidden),
            nn.LeakyReLU(slope),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def val_metrics(self, logits: torch.Tensor, target: torch.Tensor) -> dict:
        """Extra validation metrics (batch means): choose one with study.metric=val_top2_accuracy."""
        top2 = logits.topk(2, dim=1).indices
        return {"val_top2_accuracy": (top2 == target[:, None]).any(dim=1).float().mean()}
