"""What a strategy and a scheduler see of a study: one value, the same for both.

    trials    Sequence[Trial]                    every trial so far (completed, failed, pruned,
                                                 running, interrupted), by number; scores in
                                                 maximise form (the study negates them for
                                                 direction="minimize")
    curves    Mapping[int, Mapping[int, float]]  trial number -> {epoch: value}, the values each
                                                 trial reported, in maximise form (a non-finite
                                                 value is -inf); empty when no trial reported
    complete  frozenset[int]                     the trials that ran to their end (state
                                                 COMPLETE), from `trials`

The study hands a strategy `suggest(number, snapshot)` and a scheduler
`on_epoch(number, epoch, value, snapshot)`. Everything in it is rebuilt from the journal, so a
resumed study's strategy and scheduler see what an uninterrupted one's would have.

A snapshot also reads as its trials (`for t in snapshot`, `len(snapshot)`, `snapshot[i]`), so a
strategy written as `suggest(number, trials)` over a list of trials works on it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from tunetorch.trial import Trial, TrialState


@dataclass(frozen=True, eq=False)
class Snapshot(Sequence):
    trials: Sequence[Trial] = ()
    curves: Mapping[int, Mapping[int, float]] = field(default_factory=dict)

    @cached_property
    def complete(self) -> frozenset[int]:
        """The numbers of the trials that ran to their end (the median rule compares only those)."""
        return frozenset(t.number for t in self.trials if t.state == TrialState.COMPLETE)

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, index):
        return self.trials[index]

    def __iter__(self) -> Iterator[Trial]:
        return iter(self.trials)
