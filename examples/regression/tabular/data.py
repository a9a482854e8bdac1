"""scikit-learn's diabetes data (442 patients, 10 baseline measurements; the target is a measure
of disease progression one year later). It ships with scikit-learn: nothing is downloaded.

The data-module contract tunetorch reads: `input_shape`, `fit(seed, device)` -> train and
validation, `test(seed, device)` -> the test split, which only tunetorch's final evaluation calls.
Here each split is a torch Dataset whose items are dicts ({"features", "target"}); tunetorch
batches them with a DataLoader and moves every tensor of a batch to the trial's device. There is
no `n_classes`: the model's constructor does not ask for one.

Features and target are standardised with the mean and spread of the non-test rows, so the
validation MSE reads as a share of the target's variance (1.0: no better than predicting the mean).
"""

import numpy as np
import torch
from torch.utils.data import Dataset

from tunetorch.training.datasets import FitData


class Rows(Dataset):
    """One patient per item: {"features": (10,) float32, "target": () float32}."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"features": self.x[i], "target": self.y[i]}


class Diabetes:
    input_shape = (10,)

    def __init__(self, val_fraction=0.2, test_fraction=0.2, split_seed=0):
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed

    def _rows(self):
        """(x, y, rest, test): standardised rows; the test rows are fixed by split_seed alone."""
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True)
        order = np.random.default_rng(self.split_seed).permutation(len(y))
        n_test = round(self.test_fraction * len(y))
        test, rest = order[:n_test], order[n_test:]
        x = (x - x[rest].mean(0)) / x[rest].std(0)
        y = (y - y[rest].mean()) / y[rest].std()
        return x.astype(np.float32), y.astype(np.float32), rest, test

    def fit(self, seed, device="cpu"):
        x, y, rest, _ = self._rows()
        order = np.random.default_rng(seed).permutation(rest)  # the validation rows follow study.seed
        n_val = round(self.val_fraction * len(order))
        val, train = order[:n_val], order[n_val:]
        return FitData(train=Rows(x[train], y[train]), val=Rows(x[val], y[val]), input_shape=self.input_shape)

    def test(self, seed, device="cpu"):
        x, y, _, test = self._rows()
        return Rows(x[test], y[test])
