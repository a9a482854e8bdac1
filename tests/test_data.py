import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import SHARED_DATA, needs_shared_data
from tunetorch import UsageError
from tunetorch.training.datasets import (
    TuningData,
    _digits_test_idx,
    _split_fit,
    load_test_split,
    load_tuning_data,
)


def test_digits_splits_are_disjoint_stratified_and_seeded(compose):
    cfg = compose().dataset
    y = np.asarray(__import__("sklearn.datasets").datasets.load_digits().target)
    test = _digits_test_idx(cfg, y)
    train, val = _split_fit(cfg, y, seed=0)
    assert not (set(train) & set(val)) and not (set(train) & set(test)) and not (set(val) & set(test))
    assert len(train) + len(val) + len(test) == len(y)
    for part in (train, val, test):  # stratified: every class near its overall share
        share = np.bincount(y[part], minlength=10) / len(part)
        assert np.abs(share - np.bincount(y) / len(y)).max() < 0.02
    assert np.array_equal(_split_fit(cfg, y, seed=0)[1], val)
    assert not np.array_equal(_split_fit(cfg, y, seed=1)[1], val)
    # the test split does not move with the study seed
    assert np.array_equal(_digits_test_idx(cfg, y), test)


def test_tuning_data_is_device_tensors_without_a_test_split(compose):
    data = load_tuning_data(compose().dataset, seed=0, device="cpu")
    assert isinstance(data, TuningData)
    assert set(vars(data)) == {"name", "train", "val", "input_shape", "n_classes"}
    assert data.train.x.dtype == torch.float32 and data.train.x.shape[1:] == (1, 8, 8)
    assert data.train.y.dtype == torch.int64 and data.n_classes == 10
    assert abs(float(data.train.x.mean())) < 0.3  # normalised


@needs_shared_data
def test_mnist_from_shared_data(compose):
    cfg = compose("dataset=mnist", f"dataset.root={SHARED_DATA}").dataset
    data = load_tuning_data(cfg, seed=0)
    assert len(data.train) + len(data.val) == 17000 and data.train.x.shape[1:] == (1, 28, 28)
    assert len(data.val) == 1700
    assert len(load_test_split(cfg, seed=0)) == 10000


@needs_shared_data
def test_cifar10_subset_reads_despite_its_checksums(compose):
    cfg = compose("dataset=cifar10", f"dataset.root={SHARED_DATA}").dataset
    data = load_tuning_data(cfg, seed=0)
    assert len(data.train) + len(data.val) == 5000 and data.train.x.shape[1:] == (3, 32, 32)
    assert len(load_test_split(cfg, seed=0)) == 1000


def test_missing_dataset_offline_is_one_line_naming_the_path(compose, tmp_path):
    cfg = compose("dataset=fashion_mnist", f"dataset.root={tmp_path}", "dataset.download=false").dataset
    with pytest.raises(UsageError) as e:
        load_tuning_data(cfg, seed=0)
    msg = str(e.value)
    assert str(tmp_path) in msg and "dataset=digits" in msg and "\n" not in msg


def test_torchvision_imports_on_this_torch():
    """The compat module makes the dataset classes importable even when torchvision's
    compiled extension cannot load (CUDA torchvision wheel on a CPU torch)."""
    code = (
        "from tunetorch.training._torchvision_compat import import_torchvision, extension_loads\n"
        "loads = extension_loads()\n"
        "tv = import_torchvision()\n"
        "assert tv.datasets.MNIST and tv.datasets.CIFAR10 and tv.datasets.FashionMNIST\n"
        "import torch\n"
        "boxes = torch.tensor([[0., 0., 1., 1.]]); scores = torch.tensor([1.])\n"
        "try:\n"
        "    out = tv.ops.nms(boxes, scores, 0.5)\n"
        "    print('nms-ok' if loads else 'nms-ran-without-kernel')\n"
        "except Exception as e:\n"
        "    print('nms-raises' if not loads else 'nms-broken', type(e).__name__)\n"
        "print('extension', loads)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if "extension False" in out.stdout:
        assert "nms-raises" in out.stdout  # no silent wrong answers from an op with no kernel
    else:
        assert "nms-ok" in out.stdout


def test_plain_import_of_torchvision_is_what_fails_here():
    """Documents why the compat module exists; skips where torchvision loads on its own."""
    out = subprocess.run(
        [sys.executable, "-c", "import torchvision"], capture_output=True, text=True, timeout=120
    )
    if out.returncode == 0:
        pytest.skip("torchvision's extension loads with this torch; the workaround is idle here")
    assert "torchvision::nms does not exist" in out.stderr


def test_dataset_config_shapes(compose):
    for name in ("digits", "mnist", "fashion_mnist", "cifar10"):
        cfg = compose(f"dataset={name}").dataset
        assert OmegaConf.select(cfg, "n_classes") == 10
        assert len(cfg.mean) == len(cfg.std) == (3 if name == "cifar10" else 1)


def test_a_tampered_cifar_file_is_not_executed(compose, tmp_path):
    """CIFAR-10 batches are pickles: a file that asks for anything but numpy is refused."""
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for name in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
        "batches.meta",
    ]:
        (folder / name).write_bytes(pickle.dumps({"data": Evil(), "labels": [0]}))
    cfg = compose("dataset=cifar10", f"dataset.root={tmp_path}", "dataset.download=false").dataset
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        load_tuning_data(cfg, seed=0)
    assert not marker.exists()
