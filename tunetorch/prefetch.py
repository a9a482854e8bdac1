"""The next suggestion, computed on a thread while every slot is busy, so a slot that frees
starts its next trial at once instead of waiting for the strategy.

    ahead = Prefetch(study)
    ahead.start()          # every slot busy: compute the next suggestion from the history now
    ...                    # the loop goes on answering the workers' events meanwhile
    trial = ahead.take()   # a slot is free: that suggestion (waiting for it if unfinished)

A prepared suggestion is a function of the history as it was when `start` copied it and of
the seed (Study.prepare): trials running then are believed as for any parallel suggestion,
and a trial that finished while it was computed is seen by the next one. `take` without a
prepared suggestion asks at once. Only this object calls the strategy while it is in use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tunetorch.study import Study, Suggestion
from tunetorch.trial import Trial


class Prefetch:
    def __init__(self, study: Study):
        self.study = study
        self._thread: threading.Thread | None = None
        self._result: Suggestion | BaseException | None = None

    @property
    def pending(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Begin computing the next suggestion, unless one is already prepared or underway."""
        if self._thread is not None:
            return
        compute = self.study.prepare()
        self._result = None
        # A daemon: an interrupted study does not wait for a suggestion it will never use.
        self._thread = threading.Thread(target=self._run, args=(compute,), daemon=True, name="prefetch")
        self._thread.start()

    def take(self) -> Trial:
        """A new RUNNING trial: the prepared suggestion if there is one, else one asked now.
        Raises what the strategy raised (SpaceExhausted when the space is used up)."""
        if self._thread is None:
            return self.study.ask()
        self._thread.join()
        self._thread, result = None, self._result
        self._result = None
        if isinstance(result, BaseException):
            raise result
        return self.study.ask(result)

    def _run(self, compute: Callable[[], Suggestion]) -> None:
        try:
            self._result = compute()
        except BaseException as e:  # handed to the loop's thread by take()
            self._result = e
