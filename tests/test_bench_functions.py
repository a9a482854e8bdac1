"""The benchmark's test functions score their documented minimiser at the recorded optimum f*.

scripts/bench_strategies.py reports regret against FUNCTIONS' f*: a wrong f* (or a function
written wrong) shifts every regret in docs/bench_strategies.md. Each function is evaluated at
its minimiser from the literature (the Virtual Library of Simulation Experiments, BoTorch's
test functions), and no point of a random sample of its box scores below f*.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# The minimisers, to the digits the literature gives them (hence the tolerance below).
MINIMISERS = {
    "branin": (math.pi, 2.275),
    "hartmann3": (0.114614, 0.555649, 0.852547),
    "hartmann6": (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573),
    "styblinski_tang4": (-2.903534,) * 4,
    "ackley5": (0.0,) * 5,
    "rosenbrock4": (1.0,) * 4,
    "rastrigin4": (0.0,) * 4,
    "levy4": (1.0,) * 4,
    "shekel10": (4.00074671, 4.00059326, 3.99966290, 4.00053140),
    "schwefel4": (420.968746,) * 4,
    "michalewicz5": (2.2029055, 1.5707963, 1.2849916, 1.9230585, 1.7204698),
    "griewank4": (0.0,) * 4,
    "eggholder2": (512.0, 404.231805),
}


@pytest.fixture(scope="module")
def functions():
    path = ROOT / "scripts" / "bench_strategies.py"
    spec = importlib.util.spec_from_file_location("bench_strategies", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FUNCTIONS


def test_every_function_has_a_documented_minimiser(functions):
    assert set(functions) == set(MINIMISERS)


@pytest.mark.parametrize("name", sorted(MINIMISERS))
def test_the_minimiser_scores_the_recorded_optimum(functions, name):
    bounds, f, fstar = functions[name]
    x = np.array(MINIMISERS[name])
    assert all(lo <= xi <= hi for xi, (lo, hi) in zip(x, bounds, strict=True)), "the minimiser is in the box"
    assert f(x) == pytest.approx(fstar, rel=1e-5, abs=1e-5)
    low, high = np.array(bounds).T
    sample = np.random.default_rng(0).uniform(low, high, size=(2000, len(bounds)))
    assert min(f(p) for p in sample) >= fstar - 1e-9
