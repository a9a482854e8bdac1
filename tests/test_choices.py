"""Group choices on the command line: `strategy`, `scheduler` (tune.yaml) and the race's
`landscape` (race.yaml) are entries of the defaults list, null until chosen.

- `+strategy=bayes` (the documented spelling) and `strategy=bayes` choose the same;
- `strategy=null` chooses none, as no choice does; the last choice of a group wins;
- `optimizer=null` (a group the defaults list fills) leaves the group out, as `~optimizer` does,
  for a model that builds its own optimiser; a later choice of the group still wins;
- a study with none chosen is the same study as before they were entries: random search, said to
  be the default, and no scheduler, in the config it records (its identity).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT, SHRINK
from tunetorch import cli, config


def show(command: str, *args: str) -> dict:
    """`python -m tunetorch.COMMAND ARGS --cfg`: the composed config, as the command prints it."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    out = subprocess.run(
        [sys.executable, "-m", f"tunetorch.{command}", "study.dir=unused", *args, "--cfg"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and not out.stderr, out.stderr
    return yaml.safe_load(out.stdout)


def test_the_plus_and_the_plain_spelling_choose_the_same():
    plus = show("tune", "+strategy=bayes", "+scheduler=asha", "strategy.n_candidates=64")
    plain = show("tune", "strategy=bayes", "scheduler=asha", "strategy.n_candidates=64")
    assert plus == plain
    assert plus["strategy"]["name"] == "bayes" and plus["strategy"]["n_candidates"] == 64
    assert plus["scheduler"]["name"] == "asha"


def test_none_chosen_leaves_them_out_of_the_composed_config():
    cfg = show("tune")
    assert "strategy" not in cfg and "scheduler" not in cfg
    assert show("tune", "strategy=null") == cfg


@pytest.mark.parametrize(
    ("args", "strategy"),
    [
        (["strategy=grid", "strategy=null"], None),
        (["strategy=null", "+strategy=grid"], "grid"),
        (["+strategy=grid", "strategy=random"], "random"),
    ],
)
def test_the_last_choice_wins(args, strategy):
    cfg = cli.compose("tune", ["study.dir=unused", *args])
    assert (cfg.get("strategy") or {}).get("name") == strategy


@pytest.mark.parametrize(
    ("args", "optimizer"),
    [
        (["optimizer=null"], None),
        (["+optimizer=null"], None),
        (["~optimizer"], None),
        (["optimizer=null", "optimizer=sgd"], "torch.optim.SGD"),
        (["optimizer=sgd", "optimizer=null"], None),
        ([], "torch.optim.AdamW"),
    ],
)
def test_null_leaves_a_filled_group_out_and_the_last_choice_still_wins(args, optimizer):
    cfg = cli.compose("tune", ["study.dir=unused", *args])
    assert (cfg.get("optimizer") or {}).get("_target_") == optimizer


def test_a_study_with_none_chosen_records_random_and_no_scheduler():
    """What config.check fills in is what a study recorded before strategy and scheduler were
    entries of the defaults list, so such a study resumes with the same command."""
    from omegaconf import OmegaConf

    from tunetorch.identity import identity

    cfg = cli.compose("tune", [*SHRINK, "study.dir=unused"])
    plan = config.check(cfg, cli.conf_dir())
    assert plan.strategy == "random" and plan.strategy_defaulted and plan.scheduler == "none"
    assert identity(cfg)["strategy"] == OmegaConf.to_container(
        OmegaConf.load(cli.conf_dir() / "strategy/random.yaml")
    )
    assert identity(cfg)["scheduler"] == {"name": "none"}

    chosen = cli.compose("tune", [*SHRINK, "study.dir=unused", "+strategy=random"])
    assert not config.check(chosen, cli.conf_dir()).strategy_defaulted
    assert identity(chosen) == identity(cfg)


@pytest.mark.parametrize(
    ("args", "landscape"),
    [
        ([], None),
        (["landscape=bumpy"], "bumpy"),
        (["+landscape=smooth"], "smooth"),
        (["landscape=null"], None),
    ],
)
def test_the_race_landscape_is_chosen_the_same_ways(args, landscape):
    cfg = cli.compose("race", ["study.dir=unused", *args])
    assert (cfg.get("landscape") or {}).get("name") == landscape
