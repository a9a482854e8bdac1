"""The step contract (training/steps.py): a model's own training_step, validation_step and
configure_optimizers, batches of any structure, and one line for each bad step output, both
before anything runs (config.check_code's sanity check) and in the trial itself."""

import collections
import hashlib
import math
import types

import pytest
import torch
from omegaconf import open_dict
from torch import nn

from tunetorch import UsageError, config
from tunetorch.cli import conf_dir
from tunetorch.training import build, steps
from tunetorch.training.datasets import FitData, Split, n_examples, split_hash
from tunetorch.training.trainer import Diverged, train_trial, validate

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, needs_cuda])]
LR = {"optimizer.lr": 0.1}
SEEN: list = []  # what the steps were given: ("train" | "val", batch_idx, batch)
MADE: list = []  # what configure_optimizers returned


# --- a user's code: a regression with its own steps ------------------------------------------------
def series(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)


class Rows(torch.utils.data.Dataset):
    """Items as (x, y), {"x", "y"}, or nested: {"inputs": (x, [zeros]), "target": {"y"}, "tag": str}."""

    def __init__(self, x, y, shape):
        self.x, self.y, self.shape = x, y, shape

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if self.shape == "dict":
            return {"x": self.x[i], "y": self.y[i]}
        if self.shape == "nested":
            return {"inputs": (self.x[i], [self.x[i] * 0]), "target": {"y": self.y[i]}, "tag": "row"}
        return self.x[i], self.y[i]


class Series:
    """A data module that states neither input_shape nor n_classes; its splits are Splits, Datasets
    or DataLoaders (batches of 16, the user's), of items shaped as `shape`."""

    def __init__(self, kind="split", shape="pair", n_train=64, n_val=32):
        self.kind, self.shape, self.n_train, self.n_val = kind, shape, n_train, n_val

    def _split(self, x, y, device):
        if self.kind == "split":
            return Split(x.to(device), y.to(device))
        rows = Rows(x, y, self.shape)
        return torch.utils.data.DataLoader(rows, batch_size=16) if self.kind == "loader" else rows

    def fit(self, seed, device="cpu"):
        x, y = series(self.n_train + self.n_val, seed)
        n = self.n_train
        return FitData(self._split(x[:n], y[:n], device), self._split(x[n:], y[n:], device))

    def test(self, seed, device="cpu"):
        return self._split(*series(32, 999), device)


def unpack(batch):
    if isinstance(batch, dict) and "inputs" in batch:
        return batch["inputs"][0], batch["target"]["y"]
    if isinstance(batch, dict):
        return batch["x"], batch["y"]
    return batch


# fault -> what the step returns instead of its good output
FAULTS = {
    "training_step:none": lambda out: None,
    "training_step:no_loss": lambda out: {"train_mae": out["train_mae"]},
    "training_step:vector": lambda out: {"loss": out["loss"].repeat(3)},
    "training_step:float": lambda out: out["loss"].item(),
    "training_step:detached": lambda out: out["loss"].detach(),
    "training_step:reserved": lambda out: {**out, "seconds": 1.0},
    "training_step:clash": lambda out: {**out, "val_mae": 1.0},
    "training_step:nan": lambda out: out["loss"] * math.nan,
    "validation_step:list": lambda out: list(out.values()),
    "validation_step:text": lambda out: {**out, "val_mae": "low"},
    "validation_step:vector": lambda out: {**out, "val_mse": torch.ones(3)},
    "validation_step:reserved": lambda out: {**out, "epoch": 1},
    "validation_step:missing": lambda out: {"val_mae": out["val_mae"]},
}


class CountingSGD(torch.optim.SGD):
    """SGD that counts its zero_grad and step calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.zeroed = self.stepped = 0

    def zero_grad(self, set_to_none=True):
        self.zeroed += 1
        super().zero_grad(set_to_none)

    def step(self, closure=None):
        self.stepped += 1
        return super().step(closure)


class Regressor(nn.Module):
    """Linear regression with its own steps; `fault` spoils one step's output from `from_batch` on."""

    def __init__(self, fault: str = "", from_batch: int = 0, optimizers: str = ""):
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.fault, self.from_batch, self.optimizers = fault, from_batch, optimizers

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        SEEN.append(("train", batch_idx, batch))
        x, y = unpack(batch)
        if self.fault == "training_step:raise" and batch_idx >= self.from_batch:
            raise ZeroDivisionError("the user's own bug")
        error = self(x) - y
        return self._spoiled(
            "training_step", {"loss": (error**2).mean(), "train_mae": error.abs().mean()}, batch_idx
        )

    def validation_step(self, batch, batch_idx):
        SEEN.append(("val", batch_idx, batch))
        x, y = unpack(batch)
        error = self(x) - y
        return self._spoiled(
            "validation_step", {"val_mse": (error**2).mean(), "val_mae": error.abs().mean().item()}, batch_idx
        )

    def _spoiled(self, method, out, batch_idx):
        if self.fault.startswith(method) and batch_idx >= self.from_batch:
            return FAULTS[self.fault](out)
        return out

    def configure_optimizers(self):
        weight, bias = self.net.weight, self.net.bias
        if self.optimizers == "two":
            out = [CountingSGD([weight], lr=0.05), CountingSGD([bias], lr=0.05)]
        elif self.optimizers in ("step", "epoch"):
            opt = torch.optim.SGD(self.parameters(), lr=0.05)
            schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
            out = {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": self.optimizers}}
        else:
            out = {
                "none": None,
                "monitor": {"optimizer": torch.optim.SGD(self.parameters()), "monitor": "val_mse"},
                "plateau": {
                    "optimizer": (opt := torch.optim.SGD(self.parameters())),
                    "lr_scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(opt),
                },
            }[self.optimizers]
        MADE.append((out, weight.detach().clone(), bias.detach().clone()))
        return out


class Plain(nn.Module):
    """No steps of its own: the default (classifier) path."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 3)

    def forward(self, x):
        return self.net(x)


def setup(compose, model=None, data=None, *overrides, metric="val_mse", params=LR):
    cfg = compose(
        f"study.metric={metric}", "study.direction=minimize", "trainer.batch_size=16", "trainer.epochs=2",
        *overrides,
    )  # fmt: skip
    with open_dict(cfg):
        cfg.model = {"_target_": f"{__name__}.Regressor", "from_batch": 0, **(model or {})}
        cfg.dataset = {"_target_": f"{__name__}.Series", **(data or {})}
        cfg.space = {"model": {"from_batch": {"type": "int", "low": 0, "high": 1}}}
    return build.trial_config(cfg, params)


def fit(cfg, device="cpu"):
    return build.data_module(cfg).fit(0, device)


def check_code(cfg):
    config.check_code(cfg, config.check(cfg, conf_dir()))


@pytest.fixture(autouse=True)
def _clear():
    SEEN.clear()
    MADE.clear()


# --- the steps train ------------------------------------------------------------------------------
def test_a_regression_with_its_own_steps_trains_and_its_val_metrics_decrease(compose):
    cfg = setup(compose, None, None, "trainer.epochs=5")
    r = train_trial(cfg, fit(cfg), "cpu", seed=0)
    mse = [e["val_mse"] for e in r.epochs]
    assert mse[-1] < mse[0] / 4 and r.score == min(mse) and r.epochs[r.epoch]["val_mse"] == r.score
    assert list(r.epochs[0]) == ["epoch", "train_loss", "train_mae", "val_mse", "val_mae", "seconds"]
    # 64 rows in batches of 16: four training steps an epoch, one validation batch (of 1024 at most)
    assert [i for s, i, _ in SEEN[:5]] == [0, 1, 2, 3, 0] and [s for s, *_ in SEEN[:5]] == ["train"] * 4 + [
        "val"
    ]
    check_code(cfg)  # the sanity check lets good steps through


def test_validation_means_are_weighted_by_the_batch_size(compose):
    """A DataLoader's last batch is smaller: its metric counts for its rows, not as one batch."""
    cfg = setup(compose)
    model = build.model(cfg)
    val = torch.utils.data.DataLoader(Rows(*series(20, 0), "pair"), batch_size=16)  # 16 + 4
    x, y = series(20, 0)
    with torch.no_grad():
        error = model(x) - y
    got = validate(model, val, "cpu")
    assert got["val_mse"] == pytest.approx(float((error**2).mean()), rel=1e-6)
    assert got["val_mae"] == pytest.approx(float(error.abs().mean()), rel=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind, shape", [("dataset", "dict"), ("loader", "nested"), ("dataset", "nested")])
def test_dict_and_nested_batches_reach_the_steps_whole_on_the_device(compose, device, kind, shape):
    cfg = setup(compose, None, {"kind": kind, "shape": shape})
    r = train_trial(cfg, fit(cfg), device, seed=0)
    assert r.epochs[-1]["val_mse"] < r.epochs[0]["val_mse"]
    for _, _, batch in SEEN:
        assert isinstance(batch, dict) and set(batch) == (
            {"x", "y"} if shape == "dict" else {"inputs", "target", "tag"}
        )
        if shape == "nested":
            assert isinstance(batch["inputs"], (tuple, list)) and isinstance(batch["inputs"][1], list)
            assert batch["tag"] == ["row"] * len(batch["target"]["y"])  # a string passes as it is (collated)
        tensors = [leaf for leaf in steps.leaves(batch) if isinstance(leaf, torch.Tensor)]
        assert tensors and all(t.device.type == device for t in tensors)
    # the user's DataLoader is used as it is (batches of 16); a Dataset is batched by trainer.batch_size
    assert {len(unpack(b)[1]) for s, _, b in SEEN if s == "train"} == {16}


def test_every_tensor_in_a_batch_is_moved_and_the_rest_passes_as_it_is():
    Pair = collections.namedtuple("Pair", "a b")
    batch = {
        "x": torch.ones(2),
        "more": (torch.zeros(1), [torch.ones(3), "text", 7]),
        "p": Pair(torch.ones(1), None),
    }
    moved = steps.to_device(batch, "meta")
    assert moved["x"].is_meta and moved["more"][0].is_meta and moved["more"][1][0].is_meta
    assert moved["more"][1][1:] == ["text", 7] and isinstance(moved["more"], tuple)
    assert isinstance(moved["p"], Pair) and moved["p"].a.is_meta and moved["p"].b is None
    assert steps.batch_size(batch) == 2 and steps.batch_size(["no tensors"]) == 1


def test_augment_runs_on_x_of_pair_batches_for_the_models_own_steps_too(compose):
    cfg = setup(compose)
    data = fit(cfg)
    sizes = []

    def augment(x, generator):
        sizes.append(len(x))
        return x

    train_trial(cfg, FitData(data.train, data.val, augment=augment), "cpu", seed=0)
    assert sum(sizes) == 2 * len(data.train)
    dicts = fit(setup(compose, None, {"kind": "dataset", "shape": "dict"}))
    with pytest.raises(
        UsageError, match=r"^dataset: the data module's augment takes the x of \(x, y\) batches"
    ):
        train_trial(cfg, FitData(dicts.train, dicts.val, augment=augment), "cpu", seed=0)


# --- configure_optimizers ------------------------------------------------------------------------
def test_configure_optimizers_with_two_optimisers_steps_both(compose):
    cfg = setup(compose, {"optimizers": "two"}, None, "~optimizer", params={})
    assert build.names_no_optimizer(cfg)
    check_code(cfg)  # the config names none, and the model configures its own
    MADE.clear()
    train_trial(cfg, fit(cfg), "cpu", seed=0)
    ((opts, weight, bias),) = MADE
    assert [(o.zeroed, o.stepped) for o in opts] == [(8, 8), (8, 8)]  # 2 epochs of 4 batches, each
    assert not torch.equal(opts[0].param_groups[0]["params"][0], weight)
    assert not torch.equal(opts[1].param_groups[0]["params"][0], bias)


@pytest.mark.parametrize("interval, steps_taken", [("step", 8), ("epoch", 2)])
def test_configure_optimizers_schedule_steps_at_its_interval(compose, interval, steps_taken):
    cfg = setup(compose, {"optimizers": interval}, None, "~optimizer", params={})
    train_trial(cfg, fit(cfg), "cpu", seed=0)
    ((out, *_),) = MADE
    schedule = out["lr_scheduler"]["scheduler"]
    assert schedule.last_epoch == steps_taken  # 2 epochs of 4 batches
    assert out["optimizer"].param_groups[0]["lr"] == pytest.approx(0.05 * 0.5**steps_taken)


@pytest.mark.parametrize(
    "form, message",
    [
        ("none", "configure_optimizers returned None as its optimiser; return an Optimizer, a list of them"),
        ("monitor", "configure_optimizers returned a dict with keys monitor; return an Optimizer"),
        (
            "plateau",
            "configure_optimizers returned a ReduceLROnPlateau as its lr_scheduler (it steps on a metric",
        ),
    ],
)
def test_a_bad_configure_optimizers_is_one_line_before_anything_runs(compose, form, message):
    cfg = setup(compose, {"optimizers": form}, None, "~optimizer", params={})
    with pytest.raises(UsageError) as e:
        check_code(cfg)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_config_without_an_optimiser_needs_configure_optimizers(compose):
    cfg = setup(compose, None, None, "~optimizer", params={})
    with open_dict(cfg):
        cfg.model = {"_target_": f"{__name__}.Plain"}
    with pytest.raises(
        UsageError,
        match=rf"^optimizer: none is named, and the model \({__name__}.Plain\) has no configure_optimizers",
    ):
        build.check(cfg, [])
    scheduled = setup(compose, None, None, "~optimizer", "lr_scheduler=cosine", params={})
    with pytest.raises(
        UsageError,
        match=r"^lr_scheduler: torch.optim.lr_scheduler.CosineAnnealingLR needs the config's optimizer",
    ):
        build.check(scheduled, [])


# --- bad step output: one line, before anything runs and in the trial ------------------------------------
BAD = [
    ("training_step:none", "training_step returned None{}; return the loss (a scalar tensor) or a dict"),
    ("training_step:no_loss", "training_step returned a dict with keys train_mae, without 'loss'{}; return"),
    ("training_step:vector", "training_step returned a loss of shape (3,){}; the loss must be a scalar"),
    ("training_step:float", "training_step returned float "),
    ("training_step:detached", "training_step returned a loss that does not require grad{}"),
    ("training_step:reserved", "training_step returned 'seconds'{}, a name tunetorch writes itself (epoch,"),
    ("training_step:clash", "training_step and validation_step both returned 'val_mae'; an epoch's metrics"),
    ("validation_step:list", "validation_step returned a list of 2{}; return a dict of metric name -> value"),
    ("validation_step:text", "validation_step returned 'val_mae': str 'low'{}; each metric must be a number"),
    ("validation_step:vector", "validation_step returned 'val_mse': a tensor of shape (3,){}; each metric"),
    ("validation_step:reserved", "validation_step returned 'epoch'{}, a name tunetorch writes itself"),
    (
        "validation_step:missing",
        "study.metric: 'val_mse' is not among the metrics the trial's steps returned "
        "(train_loss, train_mae, val_mae); set study.metric to one of them",
    ),
]  # fmt: skip


@pytest.mark.parametrize("fault, message", BAD, ids=[f for f, _ in BAD])
def test_bad_step_output_is_one_line_before_anything_runs(compose, fault, message):
    side = "train" if fault.startswith("training") else "validation"
    with pytest.raises(UsageError) as e:
        check_code(setup(compose, {"fault": fault}))
    assert str(e.value).startswith(message.format(f" (sanity check, on the first {side} batch)"))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("fault, message", BAD, ids=[f for f, _ in BAD])
def test_bad_step_output_on_a_later_batch_fails_the_trial_in_one_line(compose, fault, message):
    """From the second batch on (the sanity check saw a good first one): a DataLoader of 16s gives
    four training and two validation batches. A missing metric fails on the first."""
    from_batch = 0 if fault.endswith("missing") else 1
    cfg = setup(compose, {"fault": fault, "from_batch": from_batch}, {"kind": "loader"})
    if from_batch:
        check_code(cfg)
    with pytest.raises(steps.BadStep) as e:
        train_trial(cfg, fit(cfg), "cpu", seed=0)
    where = " (epoch 1, batch_idx 1)" if fault.startswith("training") else " (batch_idx 1)"
    assert str(e.value).startswith(message.format(where)) and "\n" not in str(e.value)


def test_a_nan_loss_from_the_models_step_is_a_diverged_trial(compose):
    cfg = setup(compose, {"fault": "training_step:nan", "from_batch": 2})
    with pytest.raises(Diverged, match="training loss is nan at epoch 0"):
        train_trial(cfg, fit(cfg), "cpu", seed=0)


@pytest.mark.parametrize(
    "fault, error",
    [
        ("training_step:raise", "ZeroDivisionError: the user's own bug"),
        (
            "training_step:none",
            "BadStep: training_step returned None (epoch 1, batch_idx 1); return the loss",
        ),
    ],
)
def test_a_step_that_raises_or_returns_badly_fails_its_trial_with_its_one_line(
    compose, tmp_path, fault, error
):
    """Through the task runner every worker uses: the trial's error is the step's own line."""
    from tunetorch.executors.device import run_task
    from tunetorch.executors.ledger import DeviceLedger

    cfg = setup(compose, {"fault": fault, "from_batch": 1})
    data = fit(cfg)
    done = run_task(
        lambda state, number, params, emit: train_trial(cfg, data, "cpu", seed=0),
        None, 0, {}, None, "cpu", DeviceLedger(tmp_path, "node", "cpu"), "key", None,
    )  # fmt: skip
    assert done.result is None and done.error.startswith(error) and "\n" not in done.error


# --- data of any kind --------------------------------------------------------------------------
def test_the_model_takes_input_shape_and_n_classes_only_where_the_data_module_states_them(compose):
    cfg = setup(compose)
    assert isinstance(build.model(cfg, None, None), Regressor)
    with open_dict(cfg):
        cfg.model = {"_target_": "tunetorch.training.models.MLP"}
    with pytest.raises(
        UsageError,
        match=rf"^model: tunetorch.training.models.MLP takes input_shape, and the data module \({__name__}",
    ):
        build.model(cfg, None, 3)
    assert build.model(cfg, (4,), 3)(torch.zeros(2, 4)).shape == (2, 3)


def test_a_model_without_steps_needs_pair_batches_and_says_so(compose):
    cfg = setup(compose, None, {"kind": "dataset", "shape": "dict"}, metric="val_loss")
    with open_dict(cfg):
        cfg.model = {"_target_": f"{__name__}.Plain"}
    with pytest.raises(
        UsageError,
        match=r"^dataset: the train split gives batches of a dict with keys x, y; a model without train",
    ):
        train_trial(cfg, fit(cfg), "cpu", seed=0)


def test_splits_of_every_kind_are_checked_in_one_line():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield torch.zeros(1)

    rows = Rows(*series(8, 0), "pair")
    FitData(torch.utils.data.DataLoader(rows, batch_size=4), rows)  # accepted
    with pytest.raises(
        UsageError, match=r"^dataset: the train split from fit\(\) is a DataLoader without len\(\)"
    ):
        FitData(torch.utils.data.DataLoader(Stream()), rows)
    with pytest.raises(
        UsageError, match=r"^dataset: the val split from fit\(\) is a object; give a Split, a torch Dataset"
    ):
        FitData(rows, object())
    with pytest.raises(UsageError, match=r"^dataset: the val split from fit\(\) is empty"):
        FitData(rows, torch.utils.data.DataLoader(Rows(*series(0, 0), "pair")))


def test_split_hash_reads_every_kind_in_order_and_a_loader_deterministically():
    x, y = series(40, 0)
    old_rule = hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()  # the journal's
    assert split_hash(Split(x, y)) == old_rule == split_hash(torch.utils.data.TensorDataset(x, y))
    shuffled = torch.utils.data.DataLoader(Rows(x, y, "nested"), batch_size=8, shuffle=True)
    first = split_hash(shuffled)
    torch.rand(3)  # whatever ran before, the loader's unseeded shuffle is seeded for the hash
    state = torch.get_rng_state()
    assert split_hash(shuffled) == first
    assert torch.equal(torch.get_rng_state(), state)  # and the caller's random state is untouched
    ordered = torch.utils.data.DataLoader(Rows(x, y, "nested"), batch_size=8)
    assert n_examples(ordered) == n_examples(Split(x, y)) == 40 and len(ordered) == 5  # len(): batches
    assert split_hash(ordered) != split_hash(shuffled)
    assert split_hash(ordered) != split_hash(
        torch.utils.data.DataLoader(Rows(x, y + 1, "nested"), batch_size=8)
    )


# --- the default path is unchanged -------------------------------------------------------------------
# Recorded at the commit before the step contract (cdeae12): an MLP of width 16 on digits, seed 7.
BEFORE = {
    "split": [(2.24565052986145, 2.086280345916748, 0.3125), (1.9917572736740112, 1.8194612264633179, 0.625)],
    "dataset": [
        (2.2440969944000244, 2.093956232070923, 0.28125),
        (1.9880646467208862, 1.8156942129135132, 0.6284722089767456),
    ],
}


@pytest.mark.parametrize("kind", ["split", "dataset"])
def test_the_classifier_path_gives_the_same_numbers_as_before(compose, kind):
    cfg = build.trial_config(
        compose("trainer.epochs=2", "model.width=16"),
        {"optimizer.lr": 3e-3, "optimizer.weight_decay": 1e-4, "model.dropout": 0.1, "model.depth": 1},
    )
    data = build.data_module(cfg).fit(0, "cpu")
    if kind == "dataset":
        data = FitData(
            torch.utils.data.TensorDataset(data.train.x, data.train.y),
            torch.utils.data.TensorDataset(data.val.x, data.val.y),
            data.input_shape,
            data.n_classes,
        )
    r = train_trial(cfg, data, "cpu", seed=7)
    assert [(e["train_loss"], e["val_loss"], e["val_accuracy"]) for e in r.epochs] == BEFORE[kind]
    assert list(r.epochs[0]) == ["epoch", "train_loss", "val_loss", "val_accuracy", "seconds"]


def test_a_lightning_modules_placeholder_steps_do_not_count():
    """LightningModule defines training_step, validation_step and configure_optimizers as
    placeholders; only a subclass's own are the model's (Lightning itself is never imported)."""

    class LightningModule(nn.Module):
        def training_step(self, batch, batch_idx):
            return None

        def validation_step(self, batch, batch_idx):
            return None

        def configure_optimizers(self):
            return None

    LightningModule.__module__ = "lightning.pytorch.core.module"

    class OnlyTrains(LightningModule):
        def training_step(self, batch, batch_idx):
            return torch.zeros((), requires_grad=True)

    model = OnlyTrains()
    assert steps.find(model, "training_step") is not None and steps.defines_steps(model)
    assert steps.find(model, "validation_step") is None and not steps.defines(
        OnlyTrains, "configure_optimizers"
    )
    compiled = types.SimpleNamespace(_orig_mod=model)  # what torch.compile's wrapper holds
    assert steps.find(compiled, "training_step") is not None
