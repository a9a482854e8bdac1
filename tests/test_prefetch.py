"""The driver keeps dispatching while a suggestion is computed: with every slot busy, the next
suggestion is prepared on a thread, workers' epochs are answered meanwhile, and a slot that
frees starts the prepared trial (tunetorch/prefetch.py)."""

from __future__ import annotations

import threading
import time

from tests import _toy_tasks
from tunetorch import SearchSpace, Study, TrialState
from tunetorch.executors.local import Pool
from tunetorch.search import Budget, run_search
from tunetorch.strategies.random_search import RandomSearch

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
SUGGESTION_SECONDS = 0.2


def ten_short_epochs(state: dict, number: int, params: dict, emit) -> dict:
    for epoch in range(10):
        time.sleep(0.02)
        emit("epoch", {"epoch": epoch, "score": float(params["x"])})
    return {"score": float(params["x"]), "epoch": 9, "epochs": 10}


class SlowWatchfulSearch(RandomSearch):
    """Random search that takes SUGGESTION_SECONDS per suggestion and records what it saw: the
    trials running in its history, and the epochs the search loop answered while it computed
    (none when it computes on the loop's own thread)."""

    def __init__(self, space, seed=0):
        super().__init__(space, seed=seed)
        self.answered = 0  # epochs the loop has answered, counted on its thread
        self.seen = {}  # trial number -> (trials running in its history, epochs answered meanwhile)

    def suggest(self, number, trials):
        running = sum(t.state == TrialState.RUNNING for t in trials)
        start = self.answered
        time.sleep(SUGGESTION_SECONDS)
        self.seen[number] = (running, self.answered - start)
        return super().suggest(number, trials)


def test_with_every_slot_busy_the_next_suggestion_is_prepared_while_epochs_are_answered():
    strategy = SlowWatchfulSearch(SPACE, seed=0)
    study = Study(SPACE, strategy=strategy, seed=0)
    lock = threading.Lock()
    with Pool(["cpu", "cpu"], setup=_toy_tasks.setup, task=ten_short_epochs, decide=True) as pool:
        real_decide = pool.decide

        def decide(slot, stop):
            with lock:
                strategy.answered += 1
            real_decide(slot, stop)

        pool.decide = decide
        outcome = run_search(study, pool, Budget(n_trials=8))
    assert outcome.ok and len(study.completed) == 8
    # Trials 0 and 1 fill the idle slots; every later one was prepared while both slots were
    # busy (both running in the history it saw), and the loop answered epochs meanwhile.
    assert [strategy.seen[n][0] for n in (0, 1)] == [0, 1]
    assert [strategy.seen[n][0] for n in range(2, 8)] == [2] * 6, strategy.seen
    assert sum(strategy.seen[n][1] for n in range(2, 8)) >= 6, strategy.seen
