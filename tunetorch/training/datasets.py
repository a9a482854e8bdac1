"""Data sets as device tensors, with seeded stratified splits.

Every split is loaded once, normalised, and moved to the device as two tensors
(x: (n, C, H, W) float32, y: (n,) int64); training indexes them directly, with no
per-sample Python work per step.

The splits:
- mnist, fashion_mnist, cifar10: the official test set is the test split; validation is
  carved from the official training set, stratified and seeded.
- digits (scikit-learn's bundled 8x8 digits, offline): one seeded stratified
  train / validation / test split of the 1,797 images.

`load_tuning_data` returns train and validation only. The test split is read by
`load_test_split`, whose one caller is tunetorch/evaluate.py.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunetorch.errors import UsageError
from tunetorch.names import DATASETS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (n, C, H, W) float32, normalised
    y: torch.Tensor  # (n,) int64

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class TuningData:
    """What a trial sees: train and validation only, never the test split."""

    name: str
    train: Split
    val: Split
    input_shape: tuple[int, int, int]  # (C, H, W)
    n_classes: int


def load_tuning_data(cfg: Any, seed: int, device: str | torch.device = "cpu") -> TuningData:
    x, y = _read(cfg, train=True)
    train_idx, val_idx = _split_fit(cfg, y, seed)
    x = _normalise(x, cfg)
    return TuningData(
        name=cfg.name,
        train=_to_device(x[train_idx], y[train_idx], device),
        val=_to_device(x[val_idx], y[val_idx], device),
        input_shape=tuple(x.shape[1:]),
        n_classes=int(cfg.n_classes),
    )


def load_test_split(cfg: Any, seed: int, device: str | torch.device = "cpu") -> Split:
    """The sealed test split. Only tunetorch/evaluate.py calls this."""
    if cfg.name == "digits":
        x, y = _read(cfg, train=True)
        idx = _digits_test_idx(cfg, y)
        x, y = x[idx], y[idx]
    else:
        x, y = _read(cfg, train=False)
    return _to_device(_normalise(x, cfg), y, device)


def ensure_available(cfg: Any) -> None:
    """Make sure the data set is on disk before workers start: download it once, here, if
    it is missing and allowed; otherwise raise the one-line error."""
    if cfg.name == "digits":
        return
    if cfg.name not in DATASETS:
        raise UsageError(f"dataset.name: {cfg.name!r} is not one of {', '.join(DATASETS)}")
    root = Path(str(cfg.root)).expanduser()
    needed = {
        "mnist": "MNIST/raw/train-images-idx3-ubyte",
        "fashion_mnist": "FashionMNIST/raw/train-images-idx3-ubyte",
        "cifar10": "cifar-10-batches-py/data_batch_1",
    }[cfg.name]
    if not (root / needed).exists() and not (root / (needed + ".gz")).exists():
        for train in (True, False):
            _read_torchvision(cfg.name, root, train, bool(cfg.download))


def split_hash(split: Split) -> str:
    """sha256 over a split's images and labels: which test split an evaluation saw."""
    h = hashlib.sha256()
    h.update(split.x.detach().cpu().numpy().tobytes())
    h.update(split.y.detach().cpu().numpy().tobytes())
    return h.hexdigest()


# --- splits ----------------------------------------------------------------------------
def _stratified(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    rest, held = train_test_split(idx, test_size=fraction, stratify=y, random_state=seed)
    return np.sort(rest), np.sort(held)


def _digits_test_idx(cfg: Any, y: np.ndarray) -> np.ndarray:
    # The test split of digits depends on the data set's own seed, not the study's:
    # every study on digits is scored on the same held-out images.
    return _stratified(y, float(cfg.test_fraction), int(cfg.split_seed))[1]


def _split_fit(cfg: Any, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into the training-side data."""
    if cfg.name == "digits":
        fit = _stratified(y, float(cfg.test_fraction), int(cfg.split_seed))[0]
        tr, va = _stratified(y[fit], float(cfg.val_fraction), seed)
        return fit[tr], fit[va]
    return _stratified(y, float(cfg.val_fraction), seed)


# --- reading -----------------------------------------------------------------------------
def _normalise(x: np.ndarray, cfg: Any) -> np.ndarray:
    mean = np.asarray(cfg.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(cfg.std, dtype=np.float32).reshape(1, -1, 1, 1)
    return (x - mean) / std


def _to_device(x: np.ndarray, y: np.ndarray, device: str | torch.device) -> Split:
    return Split(torch.from_numpy(np.ascontiguousarray(x)).to(device), torch.from_numpy(y).long().to(device))


def _read(cfg: Any, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Raw images scaled to [0, 1] as (n, C, H, W) float32, and labels (n,) int64."""
    if cfg.name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.images[:, None] / 16.0).astype(np.float32), digits.target.astype(np.int64)
    if cfg.name not in DATASETS:
        raise UsageError(f"dataset.name: {cfg.name!r} is not one of {', '.join(DATASETS)}")
    return _read_torchvision(cfg.name, Path(str(cfg.root)).expanduser(), train, bool(cfg.download))


def _read_torchvision(name: str, root: Path, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
    from tunetorch.training._torchvision_compat import import_torchvision

    datasets = import_torchvision().datasets
    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST, "cifar10": _Cifar10(datasets)}[
        name
    ]
    try:
        ds = cls(str(root), train=train, download=False)
    except RuntimeError:
        if not download:
            raise _missing(name, root, "download is off") from None
        try:
            ds = cls(str(root), train=train, download=True)
        except Exception as e:  # no network, DNS failure, HTTP error: all mean "not here"
            raise _missing(name, root, f"download failed: {type(e).__name__}") from None
    data = ds.data if isinstance(ds.data, np.ndarray) else ds.data.numpy()
    x = data.astype(np.float32) / 255.0
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # grey (n,H,W) or RGB (n,H,W,C) -> NCHW
    return np.ascontiguousarray(x), np.asarray(ds.targets, dtype=np.int64)


def _missing(name: str, root: Path, why: str) -> UsageError:
    return UsageError(
        f"dataset.root: {name} not found under {root.resolve()} ({why}); "
        f"point dataset.root at it, or use dataset=digits (offline)"
    )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10's batch files and nothing else: numpy arrays, dicts, lists, bytes.

    The python-format CIFAR-10 is pickled, and torchvision reads it with pickle.load, which
    runs whatever a tampered file asks for. This refuses every global but numpy's own.
    """

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data set file")
        return super().find_class(module, name)


class _SafePickle:
    """Stands in for the `pickle` module inside torchvision.datasets.cifar."""

    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, encoding: str = "ASCII"):
        return _NumpyOnlyUnpickler(file, encoding=encoding).load()


def _Cifar10(datasets):
    import torchvision.datasets.cifar as cifar_module

    cifar_module.pickle = _SafePickle  # torchvision's loader, our unpickler

    class Cifar10(datasets.CIFAR10):
        """CIFAR-10 that reads subsets too.

        torchvision checks each batch file's MD5 against the official release; a subset
        (like the one in ../shared/data) fails that check though its files are sound. When
        the files are all there but the sums differ, read them as they are, and say so.
        """

        def _check_integrity(self) -> bool:
            if super()._check_integrity():
                return True
            folder = Path(self.root) / self.base_folder
            files = [f for f, _ in self.train_list + self.test_list]
            if all((folder / f).is_file() for f in files):
                log.warning(
                    "cifar10: %s differs from the official files' checksums (a subset?); reading it as is",
                    folder,
                )
                return True
            return False

    return Cifar10
