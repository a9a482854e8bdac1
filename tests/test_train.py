import math

import pytest
import torch

from tunetorch.training.datasets import load_tuning_data
from tunetorch.training.models import CNN, MLP, build_model
from tunetorch.training.trainer import Diverged, train_trial


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("depth", [1, 4])
def test_models_fit_every_dataset_shape(shape, depth):
    x = torch.randn(5, *shape)
    for model in (MLP(shape, 10, depth, 32, 0.1), CNN(shape, 10, depth, 8, 0.1)):
        assert model(x).shape == (5, 10)
    mlp = MLP(shape, 10, depth, 32, 0.1)
    assert sum(isinstance(m, torch.nn.Linear) for m in mlp.modules()) == depth + 1


def test_params_override_the_model_config(compose):
    cfg = compose("model=cnn").model
    model = build_model(cfg, {"depth": 3, "dropout": 0.5}, (1, 8, 8), 10)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 3
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in model.modules())


def test_training_learns_digits_and_is_reproducible(compose):
    cfg = compose("trainer.epochs=3")
    data = load_tuning_data(cfg.dataset, seed=0)
    params = {"lr": 3e-3, "weight_decay": 1e-4, "dropout": 0.1, "depth": 2}
    seen = []
    a = train_trial(params, cfg, data, "cpu", seed=1, report=lambda e, m: seen.append((e, m)))
    assert a.score > 0.85  # chance is 0.1
    assert [e for e, _ in seen] == [0, 1, 2] and all(math.isfinite(m["val_loss"]) for _, m in seen)
    assert a.score == max(m["val_accuracy"] for _, m in seen)
    b = train_trial(params, cfg, data, "cpu", seed=1)
    assert b.score == a.score and [e["train_loss"] for e in b.epochs] == [e["train_loss"] for e in a.epochs]
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_last_epoch_scoring(compose):
    cfg = compose("trainer.epochs=2", "trainer.score=last")
    data = load_tuning_data(cfg.dataset, seed=0)
    r = train_trial({"lr": 1e-3, "weight_decay": 1e-4, "dropout": 0.0, "depth": 1}, cfg, data, "cpu", seed=0)
    assert r.epoch == 1 and r.score == r.epochs[-1]["val_accuracy"]


def test_an_exploding_loss_stops_the_trial_early(compose):
    cfg = compose("trainer.epochs=50", "trainer.batch_size=32")
    data = load_tuning_data(cfg.dataset, seed=0)
    epochs = []
    with pytest.raises(Diverged, match="training loss is"):
        train_trial(
            {"lr": 1e6, "weight_decay": 0.0, "dropout": 0.0, "depth": 4},
            cfg,
            data,
            "cpu",
            seed=0,
            report=lambda e, m: epochs.append(e),
        )
    assert len(epochs) < 5  # stopped long before its 50 epochs
