"""The layout a wheel is built from: the configs at the top level, every subpackage listed."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT


def test_every_subpackage_is_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "tunetorch").rglob("__init__.py")
    } | {"tunetorch.conf"}
    assert found == listed


def test_the_config_groups_are_at_the_top_level():
    groups = {p.name for p in (ROOT / "conf").iterdir() if p.is_dir()}
    assert {"model", "dataset", "optimizer", "lr_scheduler", "loss", "space", "strategy"} <= groups
    assert (ROOT / "conf" / "tune.yaml").is_file() and not (ROOT / "tunetorch" / "conf").exists()
