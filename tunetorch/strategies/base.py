"""The strategy contract: the only thing a new search method implements.

A strategy sees the space and the whole trial history (completed, failed and pending,
i.e. RUNNING, trials) and proposes the parameters of trial `number`. It keeps no state
that cannot be rebuilt from that history and its seed, so a study resumed from its
journal proposes exactly what an uninterrupted one would have.

Multi-fidelity (a scheduler stops trials early): a strategy that also declares a `curves`
parameter, `suggest(number, trials, curves=None)`, is handed every trial's per-epoch values,
trial number -> {epoch: value}, in maximise form like the scores (the journal holds them, so
they are history too). Strategies without it (grid, random, a user's own written to the
first contract) are called as `suggest(number, trials)` and see pruned trials as trials
like any other (state PRUNED, score = the best value reached).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from tunetorch.space import SearchSpace
from tunetorch.trial import Trial


class Strategy(ABC):
    name: str = "base"

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.seed = int(seed)
        # Diagnostics of the last suggestion (the bayes strategy puts EI and GP fit data here);
        # the study copies them into the trial's `info`. Never read back as state.
        self.last_info: dict[str, Any] = {}

    @abstractmethod
    def suggest(self, number: int, trials: Sequence[Trial]) -> dict[str, Any]:
        """Params for trial `number`, given every trial so far. Raise SpaceExhausted when done.

        An implementation may add `curves: Mapping[int, Mapping[int, float]] | None = None`
        (see the module docstring); the study passes it by keyword to those that do.
        """
