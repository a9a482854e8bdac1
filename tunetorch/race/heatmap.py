"""The race heatmap's values away from the probes: the space's axes and a thin-plate RBF estimate.

Symbols in `interpolate`: P: (n_probes, 2) probe coordinates in the unit square (the space's
encoding, so log dimensions are in log coordinates), s: (n_probes,) scores, Q: (n_cells, 2).
"""

from __future__ import annotations

import numpy as np


def interpolate(P: np.ndarray, s: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Scores at Q estimated from the probes (P, s): a thin-plate RBF, clipped to the observed range.

    Repeated probes are averaged first: the RBF system is singular for coincident points.
    With fewer than 3 distinct probes, or collinear ones (the linear tail of the thin-plate
    spline is then undetermined), the estimate falls back to the nearest probe.
    """
    from scipy.interpolate import NearestNDInterpolator, RBFInterpolator

    keys, inverse = np.unique(np.round(P, 9), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    mean = np.bincount(inverse, weights=s) / np.bincount(inverse)
    if len(keys) == 1:
        return np.full(len(Q), mean[0])
    if len(keys) >= 3 and np.linalg.matrix_rank(keys - keys.mean(axis=0)) == 2:
        try:
            # A little smoothing: trial scores are noisy, and an exact fit overshoots between probes.
            est = RBFInterpolator(keys, mean, kernel="thin_plate_spline", smoothing=1e-3)(Q)
            return np.clip(est, mean.min(), mean.max())
        except np.linalg.LinAlgError:
            pass
    return NearestNDInterpolator(keys, mean)(Q)


def axis_values(dim, n: int) -> np.ndarray:
    """n values spanning a numeric dimension, evenly in its encoding (log spacing for log dims)."""
    lo, hi = float(dim.low), float(dim.high)
    return np.geomspace(lo, hi, n) if dim.log else np.linspace(lo, hi, n)


def encode(dim, values: np.ndarray) -> np.ndarray:
    lo, hi = float(dim.low), float(dim.high)
    if dim.log:
        return (np.log(values) - np.log(lo)) / (np.log(hi) - np.log(lo))
    return (values - lo) / (hi - lo)
