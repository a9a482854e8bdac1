"""Synthetic objectives for the race: a score surface over (lr, weight_decay), a simulated GPU cost,
and a learning curve per trial that rises to the surface's value.

Symbols (all arrays broadcast together):
    x = log10(lr)            e.g. in [-4, -1] for the default space
    y = log10(weight_decay)  e.g. in [-6, -2]
    score(x, y)              in about [0.4, 0.95]: reads like a validation accuracy, higher is better

Both surfaces are sums of Gaussian bumps on a floor,
    score = floor + sum_i h_i * exp(-((x - x_i)^2 + (y - y_i)^2) / (2 w_i^2)),
with centres (x_i, y_i) and widths w_i in decades:

smooth: floor 0.45 and one broad, tilted hill (a 2-D Gaussian with sigma 0.8 decades along
    lr, 1.5 along weight decay, correlation 0.5). Optimum 0.95 at lr = 10^-2.3 = 5.0e-3,
    weight_decay = 10^-3.7 = 2.0e-4. Every strategy does well; grid is not punished.
bumpy: floor 0.40, three decoy hills and one high peak whose summit is narrow (0.22 decades)
    and sits on a broader shoulder:
        (x, y)        h     w
        (-1.6, -2.6)  0.25  0.70   shoulder of the global peak
        (-1.6, -2.6)  0.30  0.22   its summit
        (-3.3, -5.3)  0.35  0.45   decoy, about 0.75
        (-2.6, -4.3)  0.28  0.35   decoy, about 0.69
        (-3.6, -2.7)  0.25  0.40   decoy, about 0.65
    Optimum 0.950 at lr = 10^-1.6 = 2.5e-2, weight_decay = 10^-2.6 = 2.5e-3 (the decoys add
    under 1e-5 there; `optimum("bumpy")` computes it). The summit lies between the points of a
    5 x 5 log lattice over the default space, so grid's best is a decoy (0.685 at lr 5.6e-4,
    wd 1e-5); 30 log-uniform random probes reach a median of about 0.75, while a model-based
    search that finds the shoulder can climb to the summit.

Simulated cost (`cost_seconds`): a smaller learning rate needs more epochs to converge, so a
trial's simulated device time grows as lr shrinks:
    seconds = base_seconds * (0.1 / lr) ** lr_exponent
With the defaults (base_seconds 20, lr_exponent 0.4) a trial costs 20 s at lr = 0.1 and
about 316 s at lr = 1e-4; log-uniform lr in [1e-4, 1e-1] averages about 107 s a trial.
Weight decay does not change the cost.

Learning curves (`learning_curve`): a trial trains E epochs (trainer.epochs); after epoch e
(0-based) it has trained a fraction t = (e + 1) / E of its run, and scores
    c(e) = v - (v - start) * (exp(-k t) - exp(-k)) / (1 - exp(-k)),   k = rate * (lr / 0.1) ** lr_exponent
where v is the surface's value at the trial's (lr, weight_decay) and start the score of an
untrained model (defaults start 0.10, rate 6, lr_exponent the cost's 0.4). c rises from near
`start` and reaches v exactly at the last epoch (t = 1), so a curve's final value is the
landscape's value and the optima stay where they are. The rate k is the learning rate's: a
large lr rises fast (k = 6 at lr 0.1: most of the way after the first tenth), a small one
slowly (k = 0.38 at lr 1e-4: nearly a straight line), so a fast trial on a low hill leads a
slow one on a high hill early and is overtaken later: the curves cross, as real ones do, and
early stopping can be wrong. The race adds seeded noise to each epoch (`epoch_noise`).
"""

from __future__ import annotations

import functools

import numpy as np

# name -> (floor, [(x_i, y_i, h_i, w_i), ...]); the smooth hill is handled by _smooth.
BUMPY_FLOOR = 0.40
BUMPY_PEAKS = (
    (-1.6, -2.6, 0.25, 0.70),
    (-1.6, -2.6, 0.30, 0.22),
    (-3.3, -5.3, 0.35, 0.45),
    (-2.6, -4.3, 0.28, 0.35),
    (-3.6, -2.7, 0.25, 0.40),
)
SMOOTH_CENTRE = (-2.3, -3.7)  # (log10 lr, log10 weight decay) of the optimum
SMOOTH_SIGMA = (0.8, 1.5)  # decades along each axis
SMOOTH_RHO = 0.5  # correlation: a larger lr tolerates a larger weight decay
SMOOTH_FLOOR, SMOOTH_HEIGHT = 0.45, 0.50

LANDSCAPES = ("bumpy", "smooth")
LR_REF = 0.1  # the lr at which a trial costs base_seconds and its curve rises at `rate`


def _smooth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a = (x - SMOOTH_CENTRE[0]) / SMOOTH_SIGMA[0]
    b = (y - SMOOTH_CENTRE[1]) / SMOOTH_SIGMA[1]
    q = (a * a + b * b - 2 * SMOOTH_RHO * a * b) / (1 - SMOOTH_RHO**2)
    return SMOOTH_FLOOR + SMOOTH_HEIGHT * np.exp(-0.5 * q)


def _bumpy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(x, y).shape, BUMPY_FLOOR)
    for cx, cy, h, w in BUMPY_PEAKS:
        out = out + h * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * w * w))
    return out


def score_log10(name: str, x, y) -> np.ndarray:
    """The surface at x = log10(lr), y = log10(weight_decay)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if name == "smooth":
        return _smooth(x, y)
    if name == "bumpy":
        return _bumpy(x, y)
    raise ValueError(f"unknown landscape {name!r}; have {', '.join(LANDSCAPES)}")


def score(name: str, lr, weight_decay) -> np.ndarray:
    """The surface at (lr, weight_decay), both > 0."""
    return score_log10(name, np.log10(lr), np.log10(weight_decay))


def cost_seconds(lr, base_seconds: float = 20.0, lr_exponent: float = 0.4) -> np.ndarray:
    """Simulated device seconds of one trial: base_seconds * (0.1 / lr) ** lr_exponent."""
    return base_seconds * (LR_REF / np.asarray(lr, dtype=float)) ** lr_exponent


@functools.cache
def optimum(
    name: str, lr_range: tuple[float, float] = (1e-5, 1.0), wd_range: tuple[float, float] = (1e-8, 1.0)
) -> tuple[float, float, float]:
    """(lr, weight_decay, score) of the maximum over the box lr_range x wd_range."""
    from scipy.optimize import minimize

    bounds = [tuple(np.log10(lr_range)), tuple(np.log10(wd_range))]
    # A dense lattice finds the right basin; a bounded local search polishes it.
    xs, ys = np.meshgrid(np.linspace(*bounds[0], 301), np.linspace(*bounds[1], 301))
    z = score_log10(name, xs, ys)
    i = np.unravel_index(np.argmax(z), z.shape)
    res = minimize(
        lambda p: -float(score_log10(name, p[0], p[1])),
        [xs[i], ys[i]],
        method="Nelder-Mead",
        bounds=bounds,
        options={"xatol": 1e-7, "fatol": 1e-12},
    )
    x, y = res.x
    return float(10**x), float(10**y), float(-res.fun)


def learning_curve(
    value, lr, epochs: int, start: float = 0.10, rate: float = 6.0, lr_exponent: float = 0.4
) -> np.ndarray:
    """c(e) for e = 0 .. epochs - 1 (last axis): rises from about `start` to `value` at the last epoch.

    `value` and `lr` broadcast together; the result has their shape plus one axis of epochs.
    The last epoch is exactly `value` (the factor is exp(-k) - exp(-k) = 0 there).
    """
    value = np.asarray(value, dtype=float)[..., None]
    k = rate * (np.asarray(lr, dtype=float) / LR_REF) ** lr_exponent
    k = np.maximum(k, 1e-9)[..., None]  # k -> 0 is the straight line; avoid 0 / 0
    t = np.arange(1, epochs + 1, dtype=float) / epochs
    left = (np.exp(-k * t) - np.exp(-k)) / -np.expm1(-k)
    return value - (value - start) * left


def epoch_noise(seed: int, number: int, epoch: int, epochs: int, noise: float) -> float:
    """Seeded noise of one epoch's score: Gaussian with std `noise * (1 - t)`, t = (epoch + 1) / epochs,
    so it fades to nothing at the last epoch. Seeded by (study seed, trial number, epoch)."""
    scale = noise * (1.0 - (epoch + 1) / epochs)
    if scale <= 0:
        return 0.0
    return float(np.random.default_rng([seed, number, epoch]).normal(0.0, scale))
