"""On-device augmentation of a training batch: batched tensor ops, no per-sample Python.

crop_and_flip(x, generator) -> x
    x: (n, C, H, W) on any device. Each image is padded by 4 pixels (zeros, i.e. the mean after
    normalisation), cropped back to H x W at a random offset, and flipped left-right with
    probability 1/2: the standard CIFAR-10 recipe (He et al. 2016), drawn from `generator`
    so that a trial's augmentation is seeded like the rest of its training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD = 4


def crop_and_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    padded = F.pad(x, (PAD, PAD, PAD, PAD))
    dy = torch.randint(0, 2 * PAD + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * PAD + 1, (n,), device=x.device, generator=generator)
    # Gather rows then columns with per-image offsets: index (n, 1, h, 1) and (n, 1, 1, w).
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    c = x.shape[1]
    out = padded.gather(2, rows.expand(n, c, h, padded.shape[3]))
    out = out.gather(3, cols.expand(n, c, h, w))
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)
