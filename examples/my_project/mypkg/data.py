"""A data module of the user's own: scikit-learn's digits with Gaussian pixel noise.

The contract tunetorch reads: `input_shape`, `n_classes`, `fit(seed, device)` -> train and
validation (here device tensors; a torch Dataset works too), `test(seed, device)` -> the test
split, which only tunetorch's final evaluation calls.
"""

import numpy as np
import torch

from tunetorch.training.datasets import FitData, Split, carve_validation


class NoisyDigits:
    input_shape = (1, 8, 8)
    n_classes = 10

    def __init__(self, noise=0.1, val_fraction=0.2, test_fraction=0.2):
        self.noise, self.val_fraction, self.test_fraction = noise, val_fraction, test_fraction

    def _all(self):
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.images[:, None] / 16.0).astype(np.float32)
        x = x + np.random.default_rng(0).normal(0.0, self.noise, x.shape).astype(np.float32)
        y = digits.target.astype(np.int64)
        rest, test = carve_validation(y, self.test_fraction, seed=0)  # a fixed test split
        return x, y, rest, test

    def fit(self, seed, device="cpu"):
        x, y, rest, _ = self._all()
        train, val = carve_validation(y[rest], self.val_fraction, seed)
        return FitData(
            train=_split(x[rest][train], y[rest][train], device),
            val=_split(x[rest][val], y[rest][val], device),
            input_shape=self.input_shape,
            n_classes=self.n_classes,
        )

    def test(self, seed, device="cpu"):
        x, y, _, test = self._all()
        return _split(x[test], y[test], device)


def _split(x, y, device):
    return Split(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
