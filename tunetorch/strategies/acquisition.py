"""The point of highest log expected improvement that no trial holds yet.

Symbols and shapes (see encoding.py and _gp.py):
    model   anything with predict(X (m, D)) -> (mean (m,), variance (m,)) and
            predict_with_grad(x (D,)) -> (mean, variance, d mean (D,), d variance (D,)):
            a `_gp.Posterior`, or `_gp.AtFidelity` (a joint GP seen at one fidelity)
    best    the incumbent, in the model's units
    X, y    (n, D), (n,): the points the model rates best and their values, whose neighbourhoods
            are searched (EI is often highest next to the incumbent)
    taken   the `point_key`s of every trial's params: never proposed again

How: Sobol candidates plus perturbations of the best points, L-BFGS-B on the float coordinates
from the best few, then a sweep over the values of each discrete dimension. Ints and
categoricals are rounded before the model sees them (`Encoding.round`), so EI is always that
of a point that can actually run. A small all-discrete space is scored exhaustively instead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tunetorch.errors import SpaceExhausted
from tunetorch.space import Categorical
from tunetorch.strategies import _gp
from tunetorch.strategies.base import point_key
from tunetorch.strategies.encoding import Encoding

MAX_SWEEP = 64  # an int dimension with more values is swept over nearby values only


def maximise(
    model: Any,
    best: float,
    X: np.ndarray,
    y: np.ndarray,
    taken: set,
    rng: np.random.Generator,
    encoding: Encoding,
    n_candidates: int,
    n_local: int,
) -> tuple[np.ndarray, float]:
    """The untried point u (n_dims,) of highest log EI, and that log EI."""
    from scipy.optimize import minimize
    from scipy.stats import qmc

    space = encoding.space
    n_dims = len(space)
    if encoding.size is not None:
        U = encoding.untried(taken)
    else:
        sobol = qmc.Sobol(n_dims, scramble=True, rng=rng)
        # n_candidates is rounded up to a power of two: Sobol points are balanced only in those.
        U = sobol.random_base2(max(4, math.ceil(math.log2(n_candidates))))
        # Local candidates around the best points: EI is often highest next to the incumbent,
        # in a basin too small for a space-filling set to hit in 6+ dimensions.
        top = np.argsort(-y)[:5]
        centres = np.stack([encoding.unit(X[i]) for i in top])
        local = centres[rng.integers(len(top), size=512)] + rng.normal(0, 0.05, (512, n_dims))
        U = np.vstack([U, np.clip(local, 0.0, 1.0)])
    U = encoding.round(U)
    scores = _gp.log_ei(*model.predict(encoding.batch(U)), best)
    order = np.argsort(-scores)

    results: list[tuple[float, np.ndarray]] = [(float(scores[i]), U[i]) for i in order[: 4 * n_local + 8]]
    if encoding.size is None:
        for i in order[:n_local]:
            u = U[i].copy()
            if len(encoding.float_idx):
                fi = encoding.float_idx

                def negative(z, u=u, fi=fi):
                    u2 = u.copy()
                    u2[fi] = z
                    mu, var, dmu, dvar = model.predict_with_grad(encoding.row(u2))
                    val, grad = _gp.log_ei_with_grad(mu, var, dmu, dvar, best)
                    return -val, -grad[encoding.float_cols]

                res = minimize(
                    negative,
                    u[fi],
                    jac=True,
                    method="L-BFGS-B",
                    bounds=[(0.0, 1.0)] * len(fi),
                    options={"maxiter": 100},
                )
                u[fi] = np.clip(res.x, 0.0, 1.0)
            u = _sweep(model, best, u, encoding)
            lei = float(_gp.log_ei(*model.predict(encoding.row(u)[None, :]), best)[0])
            results.append((lei, u))
    results.sort(key=lambda r: -r[0])
    for lei, u in results:
        if point_key(space.from_unit(u)) not in taken:
            return u, lei
    # Every good candidate is taken (a small discrete corner): the best untried one of the set.
    for i in order:
        if point_key(space.from_unit(U[i])) not in taken:
            return U[i], float(scores[i])
    raise SpaceExhausted("bayes: no untried candidate left")


def _sweep(model: Any, best: float, u: np.ndarray, encoding: Encoding) -> np.ndarray:
    """Coordinate ascent over the discrete dimensions: try each value, keep the best."""
    for j in encoding.discrete:
        d = encoding.space.dims[j]
        if isinstance(d, Categorical):
            values = [d.encode(c) for c in d.choices]
        else:
            k = d.decode(u[j])
            lo, hi = (d.low, d.high) if d.n_values <= MAX_SWEEP else (max(d.low, k - 3), min(d.high, k + 3))
            values = [d.encode(v) for v in range(lo, hi + 1)]
        U = np.repeat(u[None, :], len(values), axis=0)
        U[:, j] = values
        s = _gp.log_ei(*model.predict(encoding.batch(U)), best)
        u = U[int(np.argmax(s))]
    return u
