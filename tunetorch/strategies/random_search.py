"""Random search: independent draws, log dimensions log-uniform."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunetorch.snapshot import Snapshot
from tunetorch.strategies.base import Strategy


class RandomSearch(Strategy):
    name = "random"

    def suggest(self, number: int, snapshot: Snapshot) -> dict[str, Any]:
        # One generator per (seed, trial number): the draw for trial n does not depend on
        # how many draws came before, so a resumed study continues the same sequence.
        return self.space.sample(np.random.default_rng([self.seed, number]))
