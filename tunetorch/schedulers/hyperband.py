"""Hyperband: several ASHA brackets with different minimum resources, run side by side.

Bracket b (b = 0 .. s_max) is ASHA with minimum resource min_resource * eta**b, where s_max
is the largest s with min_resource * eta**s <= max_resource: bracket 0 is the most aggressive
(rungs from min_resource on), bracket s_max the most conservative (for max_resource a power of
eta times min_resource it has no rung below max_resource: its trials always run to the end).
A trial competes only with the trials of its own bracket (asha.py gives the rule at a rung).
This is the asynchronous Hyperband of Li et al. 2020 (Section 3.3), as Ray Tune's
AsyncHyperBandScheduler with several brackets and Optuna's HyperbandPruner run it.

Which bracket a trial is in is a deterministic function of (seed, trial number), so that a
resumed study puts every trial where the uninterrupted one did:

- Bracket b receives w_b = ceil((s_max + 1) * eta**s / (s + 1)) trials out of every
  W = sum(w) trials, with s = s_max - b: the number of configurations that synchronous
  Hyperband (Li et al. 2018, Algorithm 1) starts in that bracket (Optuna weighs its
  brackets the same way). E.g. max_resource=27, min_resource=1, eta=3: s_max = 3 and
  w = [27, 12, 6, 4] of every W = 49 trials.
- Trial numbers are dealt in cycles of W: trial n is in cycle c = n // W at position
  p = n % W; the cycle's W places (w_0 times bracket 0, then w_1 times bracket 1, ...) are
  shuffled by numpy's Generator seeded with (seed, c), and trial n gets the bracket at place p.
  So every full cycle holds exactly w_b trials of bracket b, in a seeded order (rather than
  Ray Tune's independent random draw per trial, whose proportions wander in a short study).
"""

from __future__ import annotations

import numpy as np

from tunetorch.schedulers.asha import stop_at_rung
from tunetorch.schedulers.base import Scheduler, resources, rung_resources
from tunetorch.snapshot import Snapshot


class Hyperband(Scheduler):
    name = "hyperband"

    def __init__(self, seed: int = 0, max_resource: int | None = None, min_resource: int = 1, eta: int = 3):
        super().__init__(seed)
        self.min_resource, self.max_resource, self.eta = resources(
            "hyperband", min_resource, max_resource, eta
        )
        s_max = 0
        while self.min_resource * self.eta ** (s_max + 1) <= self.max_resource:
            s_max += 1
        self.s_max = s_max
        # bracket b -> its rungs (epochs trained at each decision)
        self.bracket_rungs = [
            rung_resources(self.min_resource * self.eta**b, self.max_resource, self.eta)
            for b in range(s_max + 1)
        ]
        self.weights = [
            -(-(s_max + 1) * self.eta ** (s_max - b) // (s_max - b + 1)) for b in range(s_max + 1)
        ]
        self._places = np.repeat(np.arange(s_max + 1), self.weights)
        self._cycles: dict[int, np.ndarray] = {}  # a memo of a pure function of (seed, cycle)

    def bracket(self, number: int) -> int:
        """The bracket of trial `number` (see the module docstring for the rule)."""
        cycle, place = divmod(number, len(self._places))
        if cycle not in self._cycles:
            self._cycles[cycle] = np.random.default_rng([self.seed, cycle]).permutation(self._places)
        return int(self._cycles[cycle][place])

    def rungs(self, number: int) -> list[int]:
        return list(self.bracket_rungs[self.bracket(number)])

    def on_epoch(self, number: int, epoch: int, value: float, snapshot: Snapshot) -> bool:
        b = self.bracket(number)
        return stop_at_rung(
            number,
            epoch,
            value,
            snapshot.curves,
            self.bracket_rungs[b],
            self.eta,
            member=lambda n: self.bracket(n) == b,
        )
