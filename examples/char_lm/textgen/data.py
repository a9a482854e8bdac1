"""Python's own documentation as training text: pydoc_data.topics (the language reference's
topics that `help()` shows, about 460,000 characters of English and code), shipped with every
CPython, so nothing is downloaded.

The text is read as UTF-8 bytes (a vocabulary of 256, fixed in advance, so nothing about the test
text leaks into the model's shape) and cut into blocks of `context + 1` bytes: a block's first
`context` bytes are the input, and the same block shifted by one is the target. The last
`test_fraction` of the text is the sealed test split (a contiguous stretch: text the model never
saw, not blocks interleaved with its training text); validation blocks are drawn from the rest
by study.seed. Each split is a TensorDataset of (input, target) pairs; tunetorch batches them and
moves them to the trial's device.
"""

import numpy as np
import torch
from torch.utils.data import TensorDataset

from tunetorch.training.datasets import FitData


class PythonDocs:
    n_classes = 256  # byte values: the model's vocabulary

    def __init__(self, context=64, max_chars=100_000, val_fraction=0.1, test_fraction=0.1):
        self.context, self.max_chars = context, max_chars
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.input_shape = (context,)

    def _bytes(self) -> tuple[np.ndarray, np.ndarray]:
        """(rest, test): the text's bytes before and after the test cut."""
        from pydoc_data.topics import topics

        text = "\n\n".join(topics[k] for k in sorted(topics))[: self.max_chars]
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
        cut = round(len(data) * (1 - self.test_fraction))
        return data[:cut], data[cut:]

    def _blocks(self, data: np.ndarray) -> TensorDataset:
        n = (len(data) - 1) // self.context
        x = data[: n * self.context].reshape(n, self.context)
        y = data[1 : n * self.context + 1].reshape(n, self.context)
        return TensorDataset(torch.from_numpy(x.copy()), torch.from_numpy(y.copy()))

    def fit(self, seed, device="cpu"):
        rest, _ = self._bytes()
        blocks = self._blocks(rest)
        order = np.random.default_rng(seed).permutation(len(blocks))
        n_val = round(self.val_fraction * len(blocks))
        x, y = blocks.tensors
        val, train = torch.from_numpy(order[:n_val]), torch.from_numpy(order[n_val:])
        return FitData(
            train=TensorDataset(x[train], y[train]),
            val=TensorDataset(x[val], y[val]),
            input_shape=self.input_shape,
            n_classes=self.n_classes,
        )

    def test(self, seed, device="cpu"):
        _, test = self._bytes()
        return self._blocks(test)
