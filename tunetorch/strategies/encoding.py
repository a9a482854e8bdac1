"""The search space as the GP sees it: points of the unit cube and their GP input rows.

Symbols and shapes:
    u      (n_dims,)     a point of the unit cube, one coordinate per dimension of the space
                         (`SearchSpace.to_unit`: log dimensions in log space)
    U      (m, n_dims)   several such points
    X      (m, D)        GP input rows: one column per float or int dimension (its unit-cube
                         code), one column per choice of a categorical (one-hot), so
                         D = n_dims + sum(choices - 1)

Ints and categoricals are snapped to the centre of their cell (`round`) before the GP sees
them, so a row is always that of a point that can actually run: two codes that decode to the
same point get the same row. Nothing here fits or scores; `_gp.py` does the maths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tunetorch.space import Categorical, Float, Int, SearchSpace
from tunetorch.strategies.base import point_key

MAX_ENUMERATE = 4096  # a discrete space up to this size is searched exhaustively


class Encoding:
    def __init__(self, space: SearchSpace):
        self.space = space
        self.columns = _columns(space)  # for each dimension, the GP input columns it occupies
        self.width = self.columns[-1][-1] + 1  # D
        self.float_idx = np.array([i for i, d in enumerate(space.dims) if isinstance(d, Float)], dtype=int)
        self.float_cols = np.array([self.columns[i][0] for i in self.float_idx], dtype=int)
        self.discrete = [i for i, d in enumerate(space.dims) if not isinstance(d, Float)]
        size = 1
        for d in space.dims:
            size *= 0 if isinstance(d, Float) else (d.n_values if isinstance(d, Int) else len(d.choices))
        # The number of points of an all-discrete space small enough to enumerate, else None.
        self.size = size if 0 < size <= MAX_ENUMERATE else None

    def rows(self, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The GP inputs (len(params), D) of these points."""
        U = np.array([self.space.to_unit(p) for p in params]).reshape(len(params), len(self.space))
        return self.batch(U)

    def batch(self, U: np.ndarray) -> np.ndarray:
        """(m, n_dims) unit-cube points -> (m, D) GP inputs (categoricals one-hot)."""
        out = np.empty((U.shape[0], self.width))
        for j, (d, cols) in enumerate(zip(self.space.dims, self.columns, strict=True)):
            if isinstance(d, Categorical):
                idx = np.minimum((np.clip(U[:, j], 0, 1) * len(d.choices)).astype(int), len(d.choices) - 1)
                out[:, cols] = np.eye(len(d.choices))[idx]
            elif isinstance(d, Int):
                out[:, cols[0]] = [d.encode(d.decode(v)) for v in U[:, j]]
            else:
                out[:, cols[0]] = U[:, j]
        return out

    def row(self, u: np.ndarray) -> np.ndarray:
        """(n_dims,) -> (D,)."""
        return self.batch(u[None, :])[0]

    def unit(self, row: np.ndarray) -> np.ndarray:
        """(D,) GP input -> (n_dims,) unit-cube point (a categorical at its largest column)."""
        u = np.empty(len(self.space))
        for j, (d, cols) in enumerate(zip(self.space.dims, self.columns, strict=True)):
            u[j] = (
                d.encode(d.choices[int(np.argmax(row[cols]))]) if isinstance(d, Categorical) else row[cols[0]]
            )
        return u

    def round(self, U: np.ndarray) -> np.ndarray:
        """Snap the discrete coordinates to their cell centres: the point that will actually run."""
        U = U.copy()
        for j in self.discrete:
            d = self.space.dims[j]
            U[:, j] = [d.encode(d.decode(v)) for v in U[:, j]]
        return U

    def untried(self, taken: set) -> np.ndarray:
        """Every point of an all-discrete space whose `point_key` is not in `taken`, as unit-cube
        cell centres."""
        grid = self.space.grid({d.name: d.n_values if isinstance(d, Int) else 1 for d in self.space.dims})
        free = [p for p in grid if point_key(p) not in taken]
        return np.stack([self.space.to_unit(p) for p in free])

    def length_scales(self, ls: np.ndarray) -> dict[str, float]:
        """The GP's length scales (D,) by dimension name. A categorical has one per choice;
        report their geometric mean."""
        return {
            d.name: float(np.exp(np.log(ls[cols]).mean()))
            for d, cols in zip(self.space.dims, self.columns, strict=True)
        }


def _columns(space: SearchSpace) -> list[list[int]]:
    cols, at = [], 0
    for d in space.dims:
        width = len(d.choices) if isinstance(d, Categorical) else 1
        cols.append(list(range(at, at + width)))
        at += width
    return cols
