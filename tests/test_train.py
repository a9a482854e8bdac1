"""The trainer, the built-in models and the build path from config to objects."""

import math

import pytest
import torch

from tunetorch.training import build
from tunetorch.training.augment import crop_and_flip
from tunetorch.training.datasets import FitData, Split
from tunetorch.training.models import CNN, MLP, ResNet18
from tunetorch.training.trainer import Diverged, train_trial

PARAMS = {"optimizer.lr": 3e-3, "optimizer.weight_decay": 1e-4, "model.dropout": 0.1, "model.depth": 2}


def fit_data(cfg):
    return build.data_module(cfg).fit(0, "cpu")


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("depth", [1, 4])
def test_models_fit_every_dataset_shape(shape, depth):
    x = torch.randn(5, *shape)
    for model in (MLP(shape, 10, depth, 32, 0.1), CNN(shape, 10, depth, 8, 0.1)):
        assert model(x).shape == (5, 10)
    mlp = MLP(shape, 10, depth, 32, 0.1)
    assert sum(isinstance(m, torch.nn.Linear) for m in mlp.modules()) == depth + 1


def test_resnet18_is_torchvisions_adapted_to_small_images():
    model = ResNet18((3, 32, 32), 10, dropout=0.2)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    stem = model.net.conv1
    assert (
        stem.kernel_size == (3, 3)
        and stem.stride == (1, 1)
        and isinstance(model.net.maxpool, torch.nn.Identity)
    )
    assert 11_000_000 < sum(p.numel() for p in model.parameters()) < 11_300_000  # ResNet-18's size


def test_params_are_set_on_their_config_paths_and_built(compose):
    cfg = build.trial_config(
        compose("model=cnn"), {"model.depth": 3, "model.dropout": 0.5, "optimizer.lr": 0.02}
    )
    model = build.model(cfg, (1, 8, 8), 10)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 3
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in model.modules())
    opt = build.optimizer(cfg, model)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == 0.02


def test_sgd_cosine_onecycle_and_label_smoothing_are_built_from_config(compose):
    cfg = build.trial_config(
        compose("optimizer=sgd", "lr_scheduler=onecycle", "loss.label_smoothing=0.1"),
        {"optimizer.momentum": 0.8},
    )
    model = build.model(cfg, (1, 8, 8), 10)
    opt = build.optimizer(cfg, model)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.8
    schedule, interval = build.lr_schedule(cfg, opt, steps_per_epoch=7)
    assert isinstance(schedule, torch.optim.lr_scheduler.OneCycleLR) and interval == "step"
    assert schedule.total_steps == 7 * cfg.trainer.epochs
    assert build.loss(cfg).label_smoothing == 0.1
    cos = compose("lr_scheduler=cosine", "trainer.epochs=4")
    schedule, interval = build.lr_schedule(cos, build.optimizer(cos, model), steps_per_epoch=5)
    assert schedule.T_max == 20 and interval == "step"
    assert build.lr_schedule(compose(), opt, 5) is None  # lr_scheduler=none


def test_training_learns_digits_and_is_reproducible(compose):
    cfg = build.trial_config(compose("trainer.epochs=3"), PARAMS)
    data = fit_data(cfg)
    seen = []
    a = train_trial(cfg, data, "cpu", seed=1, report=lambda e, m: seen.append((e, m)))
    assert a.score > 0.85  # chance is 0.1
    assert [e for e, _ in seen] == [0, 1, 2] and all(math.isfinite(m["val_loss"]) for _, m in seen)
    assert a.score == max(m["val_accuracy"] for _, m in seen)
    b = train_trial(cfg, data, "cpu", seed=1)
    assert b.score == a.score and [e["train_loss"] for e in b.epochs] == [e["train_loss"] for e in a.epochs]
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_a_minimised_metric_scores_the_lowest_epoch(compose):
    cfg = build.trial_config(
        compose("trainer.epochs=3", "study.metric=val_loss", "study.direction=minimize"), PARAMS
    )
    r = train_trial(cfg, fit_data(cfg), "cpu", seed=0)
    assert r.score == min(e["val_loss"] for e in r.epochs)
    assert r.epochs[r.epoch]["val_loss"] == r.score


def test_report_returning_true_stops_after_that_epoch(compose):
    cfg = build.trial_config(compose("trainer.epochs=5"), PARAMS)
    r = train_trial(cfg, fit_data(cfg), "cpu", seed=0, report=lambda e, m: e == 1)
    assert len(r.epochs) == 2 and r.stopped


def test_bf16_grad_clip_and_schedules_train(compose):
    cfg = build.trial_config(
        compose("trainer.epochs=2", "trainer.precision=bf16", "trainer.grad_clip=1.0", "lr_scheduler=cosine"),
        PARAMS,
    )
    r = train_trial(cfg, fit_data(cfg), "cpu", seed=0)
    assert r.score > 0.5 and all(math.isfinite(e["train_loss"]) for e in r.epochs)


def test_the_dataloader_path_gives_the_same_kind_of_result(compose):
    """A data module that returns Datasets (not device tensors) trains through a DataLoader."""
    cfg = build.trial_config(compose("trainer.epochs=2"), PARAMS)
    tensors = fit_data(cfg)
    as_datasets = FitData(
        train=torch.utils.data.TensorDataset(tensors.train.x, tensors.train.y),
        val=torch.utils.data.TensorDataset(tensors.val.x, tensors.val.y),
        input_shape=tensors.input_shape,
        n_classes=tensors.n_classes,
    )
    r = train_trial(cfg, as_datasets, "cpu", seed=0)
    assert r.score > 0.8 and len(r.epochs) == 2


def test_last_epoch_scoring(compose):
    cfg = build.trial_config(compose("trainer.epochs=2", "trainer.score=last"), PARAMS)
    r = train_trial(cfg, fit_data(cfg), "cpu", seed=0)
    assert r.epoch == 1 and r.score == r.epochs[-1]["val_accuracy"]


def test_an_exploding_loss_stops_the_trial_early(compose):
    cfg = build.trial_config(
        compose("trainer.epochs=50", "trainer.batch_size=32"),
        {"optimizer.lr": 1e6, "optimizer.weight_decay": 0.0, "model.dropout": 0.0, "model.depth": 4},
    )
    epochs = []
    with pytest.raises(Diverged, match="training loss is"):
        train_trial(cfg, fit_data(cfg), "cpu", seed=0, report=lambda e, m: epochs.append(e))
    assert len(epochs) < 5  # stopped long before its 50 epochs


def test_crop_and_flip_moves_pixels_within_the_padding_and_is_seeded():
    x = torch.arange(4 * 3 * 32 * 32, dtype=torch.float32).reshape(4, 3, 32, 32)
    a = crop_and_flip(x, torch.Generator().manual_seed(0))
    b = crop_and_flip(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)
    for i in range(4):  # each output row is a (possibly flipped) shifted window of one input row, or padding
        row = a[i, 0, 16]
        values = row[row != 0]
        src = x[i, 0]
        assert all(((src == v).any()) for v in values.tolist())


def test_the_data_modules_augment_runs_on_every_training_batch_only(compose):
    cfg = build.trial_config(compose("trainer.epochs=2", "trainer.batch_size=256"), PARAMS)
    data = fit_data(cfg)
    sizes = []

    def augment(x, generator):
        sizes.append(len(x))
        return x

    aug = FitData(data.train, data.val, data.input_shape, data.n_classes, augment=augment)
    train_trial(cfg, aug, "cpu", seed=0)
    assert sum(sizes) == 2 * len(data.train)  # every training example, each epoch; never validation


def test_split_is_the_device_tensor_path(compose):
    data = fit_data(compose())
    assert isinstance(data.train, Split) and data.train.x.dtype == torch.float32
