"""The benchmark scripts still run: each once, shrunk to seconds. They measure nothing here;
their real runs and outputs are in docs/bench_*.md."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_bench_strategies_prints_its_table():
    out = script(
        "bench_strategies.py",
        *("--seeds", "2", "--budget", "8", "--functions", "branin", "--samplers", "bayes,random"),
        *("--workers", "1", "--no-timing"),
    )
    assert "| branin | bayes |" in out.stdout and "| branin | random |" in out.stdout


def test_bench_dispatch_prints_its_tables():
    from tests.test_ray import HAVE_RAY, _unshare_works

    out = script(
        "bench_dispatch.py",
        *("--reps", "1", "--trials", "20", "--cpu-trials", "3", "--cpu-epochs", "1"),
    )
    assert "added per trial" in out.stdout and "Utilisation on the CPU" in out.stdout
    if HAVE_RAY and _unshare_works():  # the Ray rows, from their two-node clusters
        assert "| Ray backend (2 nodes, 1 actor each) |" in out.stdout, out.stdout
        assert "| 2 (Ray backend, 2 node(s)) |" in out.stdout, out.stdout


def test_bench_real_prints_best_so_far():
    out = script(
        "bench_real.py",
        *("--seeds", "1", "--trials", "3", "--epochs", "1", "--dataset", "digits"),
    )
    assert "| bayes |" in out.stdout and "| random |" in out.stdout


def test_race_check_reports_medians_and_bayes_wins_on_bumpy():
    out = script("race_check.py", "--seeds", "2", "--trials", "30")  # exit status 1 if bayes does not win
    assert "median best" in out.stdout


def test_bench_multifidelity_prints_its_tables():
    import importlib.util

    methods = "random,bayes+asha" + (",optuna-tpe+hyperband" if importlib.util.find_spec("optuna") else "")
    out = script(
        "bench_multifidelity.py",
        *("--dataset", "digits", "--epochs", "2", "--seeds", "1", "--budget-trials", "3"),
        *("--methods", methods, "--device", "cpu"),
    )
    assert "| random |" in out.stdout and "| bayes+asha |" in out.stdout and "Spearman" in out.stdout
    assert "Target 1" in out.stdout
    if "optuna" in methods:
        assert "| optuna-tpe+hyperband |" in out.stdout and "Target 2" in out.stdout
