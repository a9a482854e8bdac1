"""The built-in models: an MLP, a CNN and ResNet-18, built for the data module's shape.

Each is an ordinary `nn.Module` chosen by `_target_` in conf/model/, exactly as a user's own
model is: tunetorch passes `input_shape` and `n_classes` because the constructors take them.
Each refuses an argument it cannot take with a ValueError, as a user's model may: tunetorch
builds the model at the edges of the searched space before anything runs (training/build.py).
"""

from __future__ import annotations

from numbers import Integral, Real

import torch
from torch import nn


def _whole(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def _dropout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < 1:
        raise ValueError(f"dropout must be in [0, 1), got {value!r}")
    return float(value)


def _image_shape(input_shape: tuple[int, ...]) -> None:
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (channels, height, width), got {tuple(input_shape)!r}")


class MLP(nn.Module):
    """depth hidden layers of `width` units: Linear -> ReLU -> Dropout (depth 0: a linear classifier)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        depth: int = 2,
        width: int = 256,
        dropout: float = 0.1,
    ):
        depth, width, dropout = _whole("depth", depth, 0), _whole("width", width, 1), _dropout(dropout)
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
    then global average pooling, dropout and a linear classifier. Channels double per block up to 4x.
    depth >= 1: with no block the pool would leave one number per input channel."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        depth: int = 2,
        channels: int = 32,
        dropout: float = 0.1,
    ):
        depth, channels = _whole("depth", depth, 1), _whole("channels", channels, 1)
        dropout = _dropout(dropout)
        _image_shape(input_shape)
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


class ResNet18(nn.Module):
    """torchvision's ResNet-18 (constructed, never downloaded) adapted to small images: the
    7x7 stride-2 stem and its max-pool become one 3x3 stride-1 conv, the variant of He et al.
    (2016) for CIFAR-10, which keeps 32x32 inputs at 4x4 before the global pool; dropout
    before the classifier."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, dropout: float = 0.0):
        dropout = _dropout(dropout)
        _image_shape(input_shape)
        super().__init__()
        from tunetorch.training._torchvision_compat import import_torchvision

        net = import_torchvision().models.resnet18(weights=None, num_classes=n_classes)
        net.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(net.fc.in_features, n_classes))
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
