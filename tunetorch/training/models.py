"""The models a study tunes: an MLP and a CNN, built for the data set's shape."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# The trial params each model reads are listed in names.MODEL_PARAMS: keep the two in step.


class MLP(nn.Module):
    """depth hidden layers of `width` units: Linear -> ReLU -> Dropout."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, depth: int, width: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        n_in = int(torch.tensor(input_shape).prod())
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), nn.ReLU(), nn.Dropout(dropout)]
            n_in = width
        layers.append(nn.Linear(n_in, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    """depth conv blocks (3x3 conv -> BatchNorm -> ReLU, 2x2 max-pool while the map is >= 4 wide),
    then global average pooling, dropout and a linear classifier. Channels double per block up to 4x."""

    def __init__(
        self, input_shape: tuple[int, ...], n_classes: int, depth: int, channels: int, dropout: float
    ):
        super().__init__()
        c_in, size = input_shape[0], input_shape[-1]
        blocks: list[nn.Module] = []
        for i in range(depth):
            c_out = channels * 2 ** min(i, 2)
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            if size >= 4:  # small inputs (8x8 digits) run out of pixels to pool after a few blocks
                blocks.append(nn.MaxPool2d(2))
                size //= 2
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(
    model_cfg: Any, params: dict[str, Any], input_shape: tuple[int, ...], n_classes: int
) -> nn.Module:
    """The model named by `model_cfg.name`, with searched params overriding the config."""

    def get(key: str) -> Any:
        return params[key] if key in params else model_cfg[key]

    if model_cfg.name == "mlp":
        return MLP(input_shape, n_classes, int(get("depth")), int(get("width")), float(get("dropout")))
    if model_cfg.name == "cnn":
        return CNN(input_shape, n_classes, int(get("depth")), int(get("channels")), float(get("dropout")))
    raise ValueError(f"unknown model {model_cfg.name!r}")  # validated at start-up; a bug if reached
