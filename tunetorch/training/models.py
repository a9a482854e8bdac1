"""The built-in models: an MLP, a CNN and ResNet-18, built for the data module's shape.

Each is an ordinary `nn.Module` chosen by `_target_` in conf/model/, exactly as a user's own
model is: tunetorch passes `input_shape` and `n_classes` because the constructors take them.
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """depth hidden layers of `width` units: Linear -> ReLU -> Dropout."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        depth: int = 2,
        width: int = 256,
        dropout: float = 0.1,
    ):
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
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        depth: int = 2,
        channels: int = 32,
        dropout: float = 0.1,
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


class ResNet18(nn.Module):
    """torchvision's ResNet-18 (constructed, never downloaded) adapted to small images: the
    7x7 stride-2 stem and its max-pool become one 3x3 stride-1 conv, the variant of He et al.
    (2016) for CIFAR-10, which keeps 32x32 inputs at 4x4 before the global pool; dropout
    before the classifier."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, dropout: float = 0.0):
        super().__init__()
        from tunetorch.training._torchvision_compat import import_torchvision

        net = import_torchvision().models.resnet18(weights=None, num_classes=n_classes)
        net.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(net.fc.in_features, n_classes))
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
