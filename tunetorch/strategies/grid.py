"""Grid search: every point of a lattice once, then the space is exhausted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tunetorch import checks
from tunetorch.errors import SpaceExhausted, UsageError
from tunetorch.snapshot import Snapshot
from tunetorch.space import SearchSpace
from tunetorch.strategies.base import Strategy, point_key


class GridSearch(Strategy):
    name = "grid"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        resolution: int | Mapping[str, int] = 5,
        shuffle: bool = True,
    ):
        super().__init__(space, seed)
        keys = checks.under("strategy")
        if isinstance(resolution, Mapping):
            per_dim = dict(resolution)
        else:
            per_dim = {n: keys.whole("resolution", resolution, low=1) for n in space.names}
        for name, r in per_dim.items():
            if name not in space.names:
                raise UsageError(
                    f"strategy.resolution.{name}: not a dimension of the space; have {', '.join(space.names)}"
                )
            per_dim[name] = keys.whole(f"resolution.{name}", r, low=1)
        self.lattice = [
            {name: _exact(space[name], v) for name, v in point.items()}
            for point in space.grid({n: per_dim.get(n, 5) for n in space.names})
        ]
        if shuffle:
            # A seeded order: a grid cut short by the budget still covers the whole space
            # coarsely instead of one corner of it (Optuna's GridSampler does the same).
            order = np.random.default_rng(self.seed).permutation(len(self.lattice))
            self.lattice = [self.lattice[i] for i in order]

    def suggest(self, number: int, snapshot: Snapshot) -> dict[str, Any]:
        taken = {point_key(t.params) for t in snapshot.trials}
        for point in self.lattice:
            if point_key(point) not in taken:
                return dict(point)
        raise SpaceExhausted(f"grid: all {len(self.lattice)} lattice points have been tried")


def _exact(dim, value: Any) -> Any:
    """A float lattice value without the noise of exp/log and linspace arithmetic: 1e-4, not
    0.00010000000000000009. 12 significant digits keep distinct points distinct (a lattice has at
    most thousands per dimension) and stay inside the dimension's bounds."""
    if not isinstance(value, float) or isinstance(value, bool):
        return value
    rounded = float(f"{value:.12g}")
    return min(max(rounded, dim.low), dim.high) if hasattr(dim, "low") else rounded
