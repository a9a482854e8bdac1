"""Bad input that used to get past the checks: one line naming the key and the value, exit
status 2, and no study directory.

- a group option that YAML reads as a number, a boolean or null (`model=nan`, `+strategy=1`)
- a loss argument torch checks only when the loss is called (`loss.label_smoothing=2`)
- a value the model refuses (`model.depth=-1`): the built-in models check their own arguments
- an edge of the space a constructor refuses (`space.model.dropout` up to 1.5): every searched
  model, optimiser and loss argument is built at its low and high (or each choice) first
- a user's data module whose splits have more inputs than labels, or a Dataset whose len()
  overstates it
- a mistyped key in any section (`model.dropuot=0.2`): the nearest key of the config as composed
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tests.conftest import SHRINK, run_in_process, run_tune

MLP, CNN, RESNET = (f"tunetorch.training.models.{m}" for m in ("MLP", "CNN", "ResNet18"))


def assert_refused(out, study_dir: Path, message: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert message in lines[0], lines[0]
    assert not study_dir.exists()


# --- built-in options ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        # 1. a group option is a file name, whatever YAML would make of it
        pytest.param(["model=nan"], "model: 'nan' is not one of cnn, mlp, resnet18", id="model=nan"),
        pytest.param(
            ["dataset=1"], "dataset: '1' is not one of cifar10, digits, fashion_mnist, mnist", id="dataset=1"
        ),
        pytest.param(["optimizer=3"], "optimizer: '3' is not one of adamw, sgd", id="optimizer=3"),
        pytest.param(
            ["lr_scheduler=true"],
            "lr_scheduler: 'true' is not one of cosine, none, onecycle",
            id="lr_scheduler=true",
        ),
        # group=null leaves the group out (~group): allowed where the model or a default takes over
        pytest.param(
            ["optimizer=null"],
            "optimizer: none is named, and the model (tunetorch.training.models.MLP) has no "
            "configure_optimizers()",
            id="optimizer=null",
        ),
        pytest.param(["space=null"], "space: None is not a mapping of dimensions", id="space=null"),
        pytest.param(["model=null"], "model._target_: missing", id="model=null"),
        pytest.param(["+strategy=1"], "strategy: '1' is not one of bayes, grid, random", id="+strategy=1"),
        pytest.param(
            ["+scheduler=nan"],
            "scheduler: 'nan' is not one of asha, hyperband, median, none",
            id="+scheduler=nan",
        ),
        # a list for a group that takes one option; an override Hydra cannot parse, named
        pytest.param(
            ["+scheduler=[]"], "scheduler: [] must be one option, one of asha, hyperband", id="+scheduler=[]"
        ),
        pytest.param(["model=[mlp,cnn]"], "model: [mlp,cnn] must be one option, one of cnn", id="model=[..]"),
        pytest.param(
            ["optimizer.lr+x=2"], "optimizer.lr+x=2: cannot be read (", id="unparsable override named"
        ),
        # 2. the loss's arguments, before anything runs
        pytest.param(
            ["loss=cross_entropy", "loss.label_smoothing=2"],
            "loss: torch.nn.CrossEntropyLoss refused its arguments "
            "(ValueError: label_smoothing must be in [0, 1], got 2)",
            id="loss.label_smoothing=2",
        ),
        # 3. the built-in models check their arguments
        pytest.param(
            ["model.depth=-1"],
            f"model: {MLP} refused its arguments (ValueError: depth must be a whole number >= 0, got -1)",
            id="model.depth=-1",
        ),
        pytest.param(
            ["model.dropout=1.0"],
            f"model: {MLP} refused its arguments (ValueError: dropout must be in [0, 1), got 1.0)",
            id="model.dropout=1.0",
        ),
        pytest.param(
            ["model=cnn", "model.depth=0"],
            f"model: {CNN} refused its arguments (ValueError: depth must be a whole number >= 1, got 0)",
            id="cnn.depth=0",
        ),
        # ... and every searched argument is built at the edges of its dimension
        pytest.param(
            ["+space.model.dropout={type: float, low: 0.9, high: 1.5}"],
            f"space.model.dropout: high 1.5 is refused by the model, {MLP} "
            "(ValueError: dropout must be in [0, 1), got 1.5)",
            id="edge:mlp.dropout.high",
        ),
        pytest.param(
            ["space.model.depth={type: int, low: -2, high: 0}"],
            f"space.model.depth: low -2 is refused by the model, {MLP} "
            "(ValueError: depth must be a whole number >= 0, got -2)",
            id="edge:mlp.depth.low",
        ),
        pytest.param(
            ["model=cnn", "space.model.depth.low=0"],
            f"space.model.depth: low 0 is refused by the model, {CNN} (ValueError: depth must be a whole",
            id="edge:cnn.depth.low",
        ),
        pytest.param(
            ["model=cnn", "~space.model.depth", "+space.model.depth={type: categorical, choices: [2, 0]}"],
            f"space.model.depth: choice 0 is refused by the model, {CNN}",
            id="edge:cnn.depth.choice",
        ),
        pytest.param(
            ["model=resnet18", "space.model.dropout.high=1.0"],
            f"space.model.dropout: high 1.0 is refused by the model, {RESNET} "
            "(ValueError: dropout must be in [0, 1), got 1.0)",
            id="edge:resnet18.dropout.high",
        ),
        pytest.param(
            ["+space.loss.label_smoothing={type: float, low: 0.0, high: 1.5}"],
            "space.loss.label_smoothing: high 1.5 is refused by the loss, torch.nn.CrossEntropyLoss "
            "(ValueError: label_smoothing must be in [0, 1], got 1.5)",
            id="edge:loss.label_smoothing.high",
        ),
        pytest.param(
            [
                "~space.optimizer.weight_decay",
                "+space.optimizer.weight_decay={type: float, low: -0.1, high: 0.1}",
            ],
            "space.optimizer.weight_decay: low -0.1 is refused by the optimizer, torch.optim.AdamW "
            "(ValueError: Invalid weight_decay value: -0.1)",
            id="edge:adamw.weight_decay.low",
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(args, message, tmp_path):
    study_dir = tmp_path / "study"  # the command's own refusal in a new interpreter: tests/test_tune_e2e.py
    assert_refused(run_in_process("tune", *SHRINK, f"study.dir={study_dir}", *args), study_dir, message)


# --- a user's own code -----------------------------------------------------------------------
USER_CODE = textwrap.dedent(
    """
    import torch
    from torch import nn
    from tunetorch.training.datasets import FitData, Split


    class Picky(nn.Module):
        '''Refuses a width over 64 as bad input; a width over `bug_above` hits a bug in __init__.'''

        def __init__(self, input_shape, n_classes, width=8, bug_above=1000):
            super().__init__()
            if width > 64:
                raise ValueError(f"width must be at most 64, got {width}")
            if width > bug_above:
                1 / 0
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.Linear(width, n_classes))

        def forward(self, x):
            return self.net(x)


    class Rows(torch.utils.data.Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i], self.y[i]


    class Uneven:
        '''8x8 noise in 2 classes; `extra` rows of inputs (negative: fewer) in split `where`.'''

        input_shape, n_classes = (1, 8, 8), 2

        def __init__(self, where="train", extra=0, as_dataset=False):
            self.where, self.extra, self.as_dataset = where, extra, as_dataset

        def _split(self, name, n, g):
            x = torch.randn(n + (self.extra if name == self.where else 0), 1, 8, 8, generator=g)
            y = torch.arange(n) % 2
            return Rows(x, y) if self.as_dataset else Split(x, y)

        def fit(self, seed, device="cpu"):
            g = torch.Generator().manual_seed(seed)
            return FitData(self._split("train", 32, g), self._split("val", 16, g), self.input_shape, 2)

        def test(self, seed, device="cpu"):
            return self._split("test", 16, torch.Generator().manual_seed(0))
    """
)


@pytest.fixture(scope="module")
def user_project(tmp_path_factory) -> Path:
    """A user's project: a module of their own code and a conf/ of options naming it."""
    root = tmp_path_factory.mktemp("user_project")
    (root / "refusal_toys.py").write_text(USER_CODE)
    for group, option, text in [
        ("model", "picky", "_target_: refusal_toys.Picky\nwidth: 8\n"),
        ("dataset", "uneven", "_target_: refusal_toys.Uneven\nwhere: train\nextra: 0\n"),
        ("space", "picky", "model:\n  width: {type: int, low: 4, high: 32}\n"),
    ]:
        (root / "conf" / group).mkdir(parents=True, exist_ok=True)
        (root / "conf" / group / f"{option}.yaml").write_text(text)
    return root


def user_args(project: Path, study_dir: Path, *args: str) -> list[str]:
    user = ["--config-dir", str(project / "conf"), "model=picky", "dataset=uneven", "space=picky"]
    return [*SHRINK, *user, f"study.dir={study_dir}", *args]


def run_user(project: Path, study_dir: Path, *args: str):
    env = {"PYTHONPATH": os.pathsep.join([str(project), os.environ.get("PYTHONPATH", "")])}
    return run_tune(*user_args(project, study_dir, *args), env=env)


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(
            ["space.model.width.high=128"],
            "space.model.width: high 128 is refused by the model, refusal_toys.Picky "
            "(ValueError: width must be at most 64, got 128)",
            id="edge:user.width.high",
        ),
        pytest.param(
            ["dataset.extra=3"],
            "dataset: the train split from fit() has 35 inputs but 32 labels; "
            "Split(x, y) needs one label per input",
            id="data:train.inputs>labels",
        ),
        pytest.param(
            ["dataset.where=val", "dataset.extra=-2"],
            "dataset: the val split from fit() has 14 inputs but 16 labels",
            id="data:val.inputs<labels",
        ),
        pytest.param(
            ["+dataset.as_dataset=true", "dataset.extra=3"],
            "dataset: the train split from fit() has len() 35 but item 34 cannot be read (IndexError",
            id="data:dataset.len>labels",
        ),
    ],
)
def test_a_users_code_refusing_is_one_line_and_writes_nothing(
    user_project, args, message, tmp_path, monkeypatch
):
    """In this process, the user's module on sys.path as PYTHONPATH puts it there for the command
    (run_user: the command itself, in the two tests below)."""
    study_dir = tmp_path / "study"
    monkeypatch.syspath_prepend(str(user_project))
    assert_refused(run_in_process("tune", *user_args(user_project, study_dir, *args)), study_dir, message)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["+model.bug_above=16"], id="at an edge of the space"),
        pytest.param(["+model.bug_above=4"], id="as configured"),
    ],
)
def test_a_bug_in_a_users_constructor_keeps_its_traceback(user_project, args, tmp_path):
    """Only ValueError, TypeError and AssertionError are a constructor refusing a value; anything
    else is a bug in it, not bad input, whether it shows at an edge of the space or in the build
    as configured (still nothing is written: it is found before)."""
    study_dir = tmp_path / "study"
    out = run_user(user_project, study_dir, *args)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" in out.stderr and "ZeroDivisionError" in out.stderr.strip().splitlines()[-1]
    assert not study_dir.exists()


def test_the_user_project_runs_when_nothing_is_wrong(user_project, tmp_path):
    """The fixture itself is sound: the refusals above come from the one bad value each."""
    out = run_user(user_project, tmp_path / "study", "budget.n_trials=1", "study.evaluate=false")
    assert out.returncode == 0, out.stdout + out.stderr


# --- a mistyped key, in whichever section: the nearest key, one line ---------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["model.dropuot=0.2"], "model.dropuot: no such key in the config (did you mean model.dropout?)"),
        (
            ["model=cnn", "model.chanels=8"],
            "model.chanels: no such key in the config (did you mean model.channels?)",
        ),
        (["modle.dropout=0.2"], "modle.dropout: no such key in the config (did you mean model.dropout?)"),
        (
            ["dataset=mnist", "dataset.rot=x"],
            "dataset.rot: no such key in the config (did you mean dataset.root?)",
        ),
        (["optimizer.lrr=0.1"], "optimizer.lrr: no such key in the config (did you mean optimizer.lr?)"),
        (
            ["lr_scheduler=cosine", "lr_scheduler.eta_mn=0"],
            "lr_scheduler.eta_mn: no such key in the config (did you mean lr_scheduler.eta_min?)",
        ),
        (
            ["loss.label_smothing=0.1"],
            "loss.label_smothing: no such key in the config (did you mean loss.label_smoothing?)",
        ),
        (["budget.n_trial=3"], "budget.n_trial: no such key in the config (did you mean budget.n_trials?)"),
        (
            ["tuner.ray.adress=auto"],
            "tuner.ray.adress: no such key in the config (did you mean tuner.ray.address?)",
        ),
        (["study.sed=1"], "study.sed: no such key in the config (did you mean study.seed?)"),
        (
            ["report.strategy_internal=true"],
            "report.strategy_internal: no such key in the config (did you mean report.strategy_internals?)",
        ),
        (
            ["+strategy=grid", "strategy.resolutoin=2"],
            "strategy.resolutoin: no such key in the config (did you mean strategy.resolution?)",
        ),
        (
            ["scheduler=asha", "scheduler.etaa=2"],
            "scheduler.etaa: no such key in the config (did you mean scheduler.eta?)",
        ),
        (
            ["strategy.resolution=2"],
            "strategy.resolution: no such key in the config "
            "(no strategy is chosen; choose one first: strategy=NAME)",
        ),
        # a group's option: the groups that have it are named
        (
            ["scheduler=onecycle"],
            "scheduler: 'onecycle' is not one of asha, hyperband, median, none, null; "
            "did you mean lr_scheduler=onecycle?",
        ),
        (["model=digits"], "model: 'digits' is not one of cnn, mlp, resnet18; did you mean dataset=digits?"),
    ],
    ids=lambda a: a[-1] if isinstance(a, list) else None,
)
def test_a_mistyped_key_names_the_nearest_one(args, message, tmp_path):
    study_dir = tmp_path / "study"
    assert_refused(run_in_process("tune", *SHRINK, f"study.dir={study_dir}", *args), study_dir, message)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["race.strategy=[grid]"],
            "race.strategy: no such key in the config (did you mean race.strategies?)",
        ),
        (
            ["landscape=bumpy", "landscape.noize=0.1"],
            "landscape.noize: no such key in the config (did you mean landscape.noise?)",
        ),
        (
            ["landscape=bumpy", "landscape.curve.rat=2"],
            "landscape.curve.rat: no such key in the config (did you mean landscape.curve.rate?)",
        ),
        (
            ["landscape.noise=0.1"],
            "landscape.noise: no such key in the config "
            "(no landscape is chosen; choose one first: landscape=NAME)",
        ),
        (["landscape=bumpi"], "landscape: 'bumpi' is not one of bumpy, smooth, null"),
    ],
    ids=lambda a: a[-1] if isinstance(a, list) else None,
)
def test_a_mistyped_race_key_names_the_nearest_one(args, message, tmp_path):
    race_dir = tmp_path / "race"  # the command's own refusal in a new interpreter: tests/test_race.py
    assert_refused(run_in_process("race", f"study.dir={race_dir}", *args), race_dir, message)
