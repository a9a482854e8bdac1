"""The strategy contract: the only thing a new search method implements.

A strategy sees the space and the study (`Snapshot`: every trial so far, completed, failed,
pruned and pending, i.e. RUNNING, and their per-epoch curves) and proposes the parameters of
trial `number`. It keeps no state that cannot be rebuilt from that snapshot and its seed, so a
study resumed from its journal proposes exactly what an uninterrupted one would have.

Multi-fidelity (a scheduler stops trials early): the curves say how far each trial got and
what it reported on the way; a strategy that ignores them (grid, random) sees a pruned trial as
a trial like any other (state PRUNED, score = the best value it reached).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from tunetorch.snapshot import Snapshot
from tunetorch.space import SearchSpace


class Strategy(ABC):
    name: str = "base"

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.seed = int(seed)
        # Diagnostics of the last suggestion (the bayes strategy puts EI and GP fit data here);
        # the study copies them into the trial's `info`. Never read back as state.
        self.last_info: dict[str, Any] = {}

    @abstractmethod
    def suggest(self, number: int, snapshot: Snapshot) -> dict[str, Any]:
        """Params for trial `number`, given the study so far. Raise SpaceExhausted when done."""


def point_key(params: Mapping[str, Any]) -> tuple:
    """What makes two points the same point: their params by name, values by repr (so 1 and
    1.0 differ, as an int and a float dimension's values do). Strategies that must not propose
    a point twice compare these."""
    return tuple(sorted((k, repr(v)) for k, v in params.items()))
