"""Data modules: where a study's data comes from, and the one door to its test split.

A data module is any object with

    fit(seed, device) -> FitData       # train + validation, for tuning
    test(seed, device) -> a split      # ONLY tunetorch/evaluate.py calls this
    prepare()                          # optional: download / check files, once, in the main process
    input_shape: tuple[int, ...]       # optional: one example's shape, e.g. (1, 28, 28)
    n_classes: int                     # optional: the number of classes

built from the `dataset` config group by `_target_` (a user's own module plugs in the same way).
`input_shape` and `n_classes` are given to the model's constructor where it takes them
(training/build.py); a module whose model takes neither need not state them.

A split (FitData's train and val, test()'s) is one of:
- a `Split`: (x, y) tensors on the device, the fast path (no per-sample Python work per step),
  batched by trainer.batch_size and shuffled by the trial's seeded generator;
- a `torch.utils.data.Dataset` of items of any structure (tensors, tuples, lists, dicts,
  nested), read through a DataLoader that tunetorch makes: trainer.batch_size,
  trainer.loader_workers, pinned memory on a GPU, shuffled (training only) from the trial's seed;
- a `torch.utils.data.DataLoader`, used as it is: its batch size, workers, collation and
  shuffling are the user's, seeded or not (a trial is reproducible only if the loader is). It
  needs a len().
The trainer moves every tensor inside a batch to the trial's device (training/steps.py); a
model without training_step (or validation_step) needs (x, y) batches, as does `augment`.
Validation (and the one look at the test split) reads a split in order, in batches of 1,024 (a
DataLoader: its own). `split_hash` fingerprints any of the three kinds (what the look saw).

The built-ins:
- MNIST, FashionMNIST, CIFAR10 (torchvision): the official test set is the test split;
  validation is carved from the official training set, stratified and seeded by the study seed.
  CIFAR10 can augment training batches on the device (random crop with padding, flips).
- Digits (scikit-learn's bundled 8x8 digits, offline): one seeded stratified
  train / validation / test split of the 1,797 images.
"""

from __future__ import annotations

import hashlib
import logging
import math
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from tunetorch import checks
from tunetorch.errors import UsageError
from tunetorch.training import steps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (n, *input_shape) float32, normalised
    y: torch.Tensor  # (n,) int64

    def __len__(self) -> int:
        return len(self.y)


# augment(x, generator) -> x: a batched transform of training inputs, on their device.
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class FitData:
    """What a trial sees: train and validation only, never the test split. Each split must hold
    at least one example; a Split one label per input, a Dataset readable items up to its len(),
    a DataLoader a len() (a UsageError names the split otherwise)."""

    train: Any  # Split | torch.utils.data.Dataset | torch.utils.data.DataLoader
    val: Any  # the same kinds
    input_shape: tuple[int, ...] | None = None  # given to a model constructor that takes it
    n_classes: int | None = None  # likewise
    augment: Augment | None = None  # applied to x of each (x, y) training batch

    def __post_init__(self) -> None:
        for name in ("train", "val"):
            _check_split(name, getattr(self, name))


def _check_split(name: str, split: Any) -> None:
    """A Split: as many inputs as labels. A DataLoader: a len() (its batches). A Dataset: its last
    item readable (its len() is true)."""
    where = f"dataset: the {name} split from fit()"
    if isinstance(split, Split):
        if len(split.x) != len(split.y):
            raise UsageError(
                f"{where} has {len(split.x)} inputs but {len(split.y)} labels; Split(x, y) needs one "
                "label per input"
            )
    elif isinstance(split, DataLoader):
        try:
            len(split)
        except TypeError:
            raise UsageError(
                f"{where} is a DataLoader without len() (over an IterableDataset?); tunetorch needs "
                "its number of batches (give the dataset a __len__)"
            ) from None
    elif not (hasattr(split, "__len__") and hasattr(split, "__getitem__")):
        raise UsageError(
            f"{where} is a {type(split).__name__}; give a Split, a torch Dataset (__len__ and "
            "__getitem__) or a DataLoader"
        )
    elif len(split):
        try:
            split[len(split) - 1]
        except (IndexError, KeyError) as e:
            raise UsageError(
                f"{where} has len() {len(split)} but item {len(split) - 1} cannot be read "
                f"({type(e).__name__}: {e}); every item up to len() - 1 must be readable"
            ) from None
    if len(split) == 0:
        raise UsageError(f"{where} is empty; it needs at least one example")


def carve_validation(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: a stratified, seeded split of labels `y`. For users' data modules too."""
    return _stratified(np.asarray(y), fraction, seed)


def batches(
    split: Any,
    batch_size: int,
    shuffle: torch.Generator | None = None,
    loader_workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[Any]:
    """A split's batches as it gives them, not yet moved to a device: a Split's (x, y) slices (in a
    permutation drawn from `shuffle`, or in order); a Dataset's through a DataLoader of
    `batch_size` (shuffled by a CPU generator seeded from `shuffle`); a DataLoader's as it yields
    them (its own batch size and shuffling)."""
    if isinstance(split, Split):
        n = len(split)
        if shuffle is not None:
            idx = torch.randperm(n, device=split.y.device, generator=shuffle)
            for i in range(0, n, batch_size):
                j = idx[i : i + batch_size]
                yield split.x[j], split.y[j]
        else:
            for i in range(0, n, batch_size):
                yield split.x[i : i + batch_size], split.y[i : i + batch_size]
        return
    if isinstance(split, DataLoader):
        yield from split
        return
    generator = None
    if shuffle is not None:  # the loader shuffles on the CPU: seed it from the trial's generator
        generator = torch.Generator().manual_seed(
            int(torch.randint(2**62, (1,), generator=shuffle, device=shuffle.device))
        )
    yield from DataLoader(
        split,
        batch_size=batch_size,
        shuffle=shuffle is not None,
        generator=generator,
        num_workers=int(loader_workers),
        pin_memory=pin_memory,
    )


def n_batches(split: Any, batch_size: int) -> int:
    """How many batches `batches(split, batch_size)` yields."""
    if isinstance(split, DataLoader):
        return len(split)
    return math.ceil(len(split) / batch_size)


def n_examples(split: Any) -> int:
    """How many examples a split holds (a DataLoader's len() counts batches: its dataset's, else
    the leading dimensions of what it yields, counted by reading it once)."""
    if not isinstance(split, DataLoader):
        return len(split)
    try:
        return len(split.dataset)
    except TypeError:
        return sum(steps.batch_size(batch) for batch in split)


def split_hash(split: Any) -> str:
    """sha256 over every value a split yields, in order: which test split an evaluation saw. A
    Split: its inputs, then its labels. A Dataset: read in order in batches of 1024, each batch's
    tensors (and other values) in their order. A DataLoader: its batches as it yields them, with
    torch's global random state seeded (0) for the pass and restored after, so a loader that
    shuffles without a generator of its own hashes the same each time; one with its own
    generator hashes the same on a fresh loader (each test() call)."""
    h = hashlib.sha256()

    def read(parts: Any) -> None:
        for batch in parts:
            for leaf in steps.leaves(batch):
                h.update(_leaf_bytes(leaf))

    if isinstance(split, Split):
        read([(split.x, split.y)])
    elif isinstance(split, DataLoader):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            read(split)
    else:
        read(batches(split, 1024))
    return h.hexdigest()


def _leaf_bytes(leaf: Any) -> bytes:
    if isinstance(leaf, torch.Tensor):
        # the raw bytes in logical order; through uint8, as numpy has no bfloat16
        return leaf.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    if isinstance(leaf, np.ndarray):
        return np.ascontiguousarray(leaf).tobytes()
    if isinstance(leaf, str):
        return leaf.encode()
    return repr(leaf).encode()


class ImageData:
    """Shared by the built-ins: normalisation, shape and class checks, device tensors."""

    def __init__(
        self,
        n_classes: int,
        input_shape: Sequence[int],
        val_fraction: float,
        mean: Sequence[float],
        std: Sequence[float],
    ):
        checks.under("dataset").number("val_fraction", val_fraction, above=0.0, below=1.0)
        self.n_classes = int(n_classes)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.val_fraction = float(val_fraction)
        self.mean, self.std = list(mean), list(std)

    def _read(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        """Images scaled to [0, 1] as (n, C, H, W) float32, and labels (n,) int64."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Read the training side once in the main process: a missing data set, or a shape or
        class count that disagrees with the config, is refused before any worker starts."""
        x, y = self._read(train=True)
        self._check(x, y)

    def fit(self, seed: int, device: str | torch.device = "cpu") -> FitData:
        x, y = self._read(train=True)
        self._check(x, y)
        train_idx, val_idx = _stratified(y, self.val_fraction, seed)
        x = self._normalise(x)
        return FitData(
            train=_to_device(x[train_idx], y[train_idx], device),
            val=_to_device(x[val_idx], y[val_idx], device),
            input_shape=self.input_shape,
            n_classes=self.n_classes,
            augment=self._augment(),
        )

    def test(self, seed: int, device: str | torch.device = "cpu") -> Split:
        """The sealed test split. Only tunetorch/evaluate.py calls this."""
        x, y = self._read(train=False)
        return _to_device(self._normalise(x), y, device)

    def _augment(self) -> Augment | None:
        return None

    def _check(self, x: np.ndarray, y: np.ndarray) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise UsageError(
                f"dataset.input_shape: {list(self.input_shape)} disagrees with the data {list(x.shape[1:])}"
            )
        found = int(y.max()) + 1 if len(y) else 0
        if found != self.n_classes:
            raise UsageError(f"dataset.n_classes: {self.n_classes} disagrees with the data ({found} classes)")

    def _normalise(self, x: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, -1, 1, 1)
        return (x - mean) / std


class Digits(ImageData):
    """scikit-learn's 8x8 digits: test, train and validation carved from the 1,797 images."""

    def __init__(self, test_fraction: float = 0.2, split_seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        checks.under("dataset").number("test_fraction", test_fraction, above=0.0, below=1.0)
        self.test_fraction, self.split_seed = float(test_fraction), int(split_seed)

    def _read(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        images, target = _load_digits()
        x, y = (images[:, None] / 16.0).astype(np.float32), target.astype(np.int64)
        # The test split depends on the data set's own seed, not the study's: every study on
        # digits is scored on the same held-out images.
        rest, test = _stratified(y, self.test_fraction, self.split_seed)
        keep = rest if train else test
        return x[keep], y[keep]


class _Torchvision(ImageData):
    name = ""  # torchvision's data set, by tunetorch's name for it
    folder = ""  # a file of the training set under root: present means no download

    def __init__(self, root: str = "data", download: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.root, self.download = Path(str(root)).expanduser(), bool(download)

    def _read(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        return _read_torchvision(self.name, self.root, train, self.download)

    def prepare(self) -> None:
        if not (self.root / self.folder).exists() and not (self.root / (self.folder + ".gz")).exists():
            for train in (True, False):  # download both sides once, here, before workers start
                self._read(train)
        super().prepare()


class MNIST(_Torchvision):
    name, folder = "mnist", "MNIST/raw/train-images-idx3-ubyte"


class FashionMNIST(_Torchvision):
    name, folder = "fashion_mnist", "FashionMNIST/raw/train-images-idx3-ubyte"


class CIFAR10(_Torchvision):
    name, folder = "cifar10", "cifar-10-batches-py/data_batch_1"

    def __init__(self, augment: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.augment = bool(augment)

    def _augment(self) -> Augment | None:
        from tunetorch.training.augment import crop_and_flip

        return crop_and_flip if self.augment else None


# --- splits ----------------------------------------------------------------------------
def _stratified(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from tunetorch.training.split import stratified

    return stratified(y, fraction, seed)


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as `load_digits()` gives them, images (1797, 8, 8) and labels, read
    from the file it ships (sklearn/datasets/data/digits.csv.gz) without importing sklearn.datasets
    (about a second of start-up in every worker); load_digits itself when the file is elsewhere."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0]) / "datasets" / "data" / "digits.csv.gz" if folders else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    with gzip.open(path, mode="rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


# --- reading -----------------------------------------------------------------------------
def _to_device(x: np.ndarray, y: np.ndarray, device: str | torch.device) -> Split:
    return Split(torch.from_numpy(np.ascontiguousarray(x)).to(device), torch.from_numpy(y).long().to(device))


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
