"""The layout a wheel is built from: the configs at the top level, every subpackage listed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

from tests.conftest import ROOT


def test_every_subpackage_and_config_group_is_in_pyproject():
    """Every package, and every folder of conf/ as tunetorch.conf.GROUP: setuptools counts any folder
    under a package as one and warns about each that is not listed."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "tunetorch").rglob("__init__.py")
    } | {"tunetorch.conf"}
    folders = [p for p in (ROOT / "conf").rglob("*") if p.is_dir() and p.name != "__pycache__"]
    groups = {"tunetorch.conf." + ".".join(p.relative_to(ROOT / "conf").parts) for p in folders}
    assert groups and found | groups == listed


def test_the_config_groups_are_at_the_top_level():
    groups = {p.name for p in (ROOT / "conf").iterdir() if p.is_dir()}
    assert {"model", "dataset", "optimizer", "lr_scheduler", "loss", "space", "strategy"} <= groups
    assert (ROOT / "conf" / "tune.yaml").is_file() and not (ROOT / "tunetorch" / "conf").exists()


def _source_copy(tmp_path: Path) -> Path:
    """What a build reads, copied (a build writes its egg-info and build/ into the source folder)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    shutil.copytree(ROOT / "tunetorch", src / "tunetorch", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "conf", src / "conf")
    return src


def test_the_wheel_builds_without_warnings_and_carries_every_config(tmp_path):
    """`pip wheel` (pip prints a build backend's warnings for a local folder): no setuptools warning
    (each config group folder is a listed package, not "absent from the `packages` configuration"),
    and the wheel holds every module and every YAML of conf/ under tunetorch/conf/."""
    src = _source_copy(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    said = out.stdout + out.stderr
    assert "absent from the `packages`" not in said and "Warning" not in said, said[-3000:]
    (wheel,) = (tmp_path / "dist").glob("tunetorch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {
        f"tunetorch/conf/{p.relative_to(ROOT / 'conf').as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")
    }
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tunetorch").rglob("*.py")}
    assert configs and configs <= names, sorted(configs - names)
    assert modules <= names, sorted(modules - names)


def test_an_editable_build_warns_only_its_information_note(tmp_path):
    """What `pip install -e` builds (scripts/_setup.sh): setuptools' only warning is its
    "Editable installation" note, which every editable install of a package-dir mapping gets and
    _setup.sh filters by that message; nothing about the package configuration."""
    src = _source_copy(tmp_path)
    code = (
        "import json, sys, warnings\n"
        "from setuptools import build_meta\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    build_meta.build_editable(sys.argv[1])\n"
        "print(json.dumps([str(w.message).splitlines()[0] for w in caught\n"
        "                  if w.category.__module__.startswith('setuptools')]))\n"
    )
    (tmp_path / "out").mkdir()
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "out")],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    warned = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(warned) <= {"Editable installation."}, warned
    setup = (ROOT / "scripts" / "_setup.sh").read_text()
    assert 'PYTHONWARNINGS="ignore:Editable installation"' in setup


FAKE_PYTHON = """#!/usr/bin/env bash
# A stand-in for python3 and for the venv's python: logs what it is asked to do.
echo "$*" >> "$CALLS"
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && chmod +x "$3/bin/python"
fi
"""


def test_scripts_tune_installs_no_ray_and_scripts_test_does(tmp_path):
    """./scripts/tune sets up .venv with the package and its dependencies only; ./scripts/test adds
    the dev and ray extras; a later ./scripts/tune keeps them and installs nothing again."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    for name in ("_setup.sh", "tune", "test"):
        shutil.copy(ROOT / "scripts" / name, root / "scripts" / name)
    shutil.copy(ROOT / "pyproject.toml", root)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(FAKE_PYTHON)
    (bin_dir / "python3").chmod(0o755)
    calls = tmp_path / "calls.log"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CALLS": str(calls)}

    def run(script: str) -> list[str]:
        calls.write_text("")
        out = subprocess.run([str(root / "scripts" / script), "x=1"], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return calls.read_text().splitlines()

    tune = run("tune")
    editable = [c for c in tune if " -e " in c]
    assert editable == [f"-m pip install -q -e {root} torch==2.13.0"], tune
    assert not any("ray" in c for c in tune) and tune[-1] == "-m tunetorch.tune x=1"
    test = run("test")
    assert [c for c in test if " -e " in c] == [f"-m pip install -q -e {root}[dev,ray] torch==2.13.0"], test
    again = run("tune")
    assert again == ["-m tunetorch.tune x=1"], again  # nothing installed again: the extras stay
