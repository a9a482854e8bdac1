"""The value rules of every config key, each written once.

    keys = under("scheduler")                      # the section the keys sit in; "" for full keys
    eta = keys.whole("eta", eta, low=2, note="asha")
    # UsageError: scheduler.eta: 1 must be a whole number >= 2 (asha)

A rule raises one UsageError line naming the full key, the value given (its repr) and what is
allowed, and returns the value in its plain Python type, so that a caller keeps what it checked.
These are the checks of a value alone; where a key's value is judged against something else (a
study folder on disk, the GPUs of this machine, another key) the module that knows it says so.

    whole    a whole number >= low, or from low to high         (int)
    number   a finite number, optionally > or >= a bound and < one   (int or float)
    one_of   one of a list of words                              (str)
    boolean  true or false                                       (bool)
    seed     a whole number numpy's generators take              (int)

A bool is never a number (`True` is an int to Python, but no user means 1 by it); numpy's
scalars count as the numbers and booleans they hold (a space or a seed computed with numpy).
`optional=True` lets null through (returned as None) and says "or null" when refusing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tunetorch.errors import UsageError

# Seeds go to numpy's generators, which take 0 .. 2**32 - 1.
SEED_MAX = 2**32 - 1


class Keys:
    """The rules for the keys under one prefix (`scheduler`, `race.options.bayes`; "" for none)."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix

    def key(self, name: str) -> str:
        """The full key of `name`: prefix.name (the prefix alone when `name` is empty)."""
        if not self.prefix:
            return name
        return f"{self.prefix}.{name}" if name else self.prefix

    def under(self, name: str) -> Keys:
        return Keys(self.key(name))

    def whole(
        self,
        name: str,
        value: Any,
        low: int = 0,
        high: int | None = None,
        *,
        optional: bool = False,
        note: str | None = None,
    ) -> int | None:
        """`value` as an int in [low, high] (no upper bound when `high` is None)."""
        if value is None and optional:
            return None
        value = _plain(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            span = f"from {low} to {high}" if high is not None else f">= {low}"
            self._refuse(name, value, f"must be a whole number {span}", optional, note)
        return value

    def number(
        self,
        name: str,
        value: Any,
        *,
        above: float | None = None,
        at_least: float | None = None,
        below: float | None = None,
        optional: bool = False,
    ) -> float | int | None:
        """`value`, a finite number: > `above`, >= `at_least`, < `below` where given (at most one
        lower bound). Returned as given (an int stays an int: a space's int bounds are whole)."""
        if value is None and optional:
            return None
        value = _plain(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok and above is not None:
            ok = value > above
        if ok and at_least is not None:
            ok = value >= at_least
        if ok and below is not None:
            ok = value < below
        if not ok:
            low = above if above is not None else at_least
            sign = ">" if above is not None else ">="
            if below is not None:
                bracket = "(" if above is not None else "["
                allowed = f"must be a number in {bracket}{low:g}, {below:g})"
            elif low is not None:
                allowed = f"must be a number {sign} {low:g}"
            else:
                allowed = "is not a finite number"
            self._refuse(name, value, allowed, optional)
        return value

    def one_of(self, name: str, value: Any, allowed: Sequence[str]) -> str:
        """`value` as the word it is, one of `allowed`. Compared as text, so that YAML's 32 is the
        word "32" (trainer.precision); a boolean is never a word (YAML's `on` and `no` are ones)."""
        if isinstance(value, bool) or str(value) not in allowed:
            raise UsageError(f"{self.key(name)}: {value!r} is not one of {', '.join(allowed)}")
        return str(value)

    def boolean(self, name: str, value: Any) -> bool:
        value = _plain(value)
        if not isinstance(value, bool):
            raise UsageError(f"{self.key(name)}: {value!r} must be true or false")
        return value

    def seed(self, name: str, value: Any) -> int:
        return self.whole(name, value, low=0, high=SEED_MAX, note="2**32 - 1")

    def _refuse(self, name: str, value: Any, allowed: str, optional: bool, note: str | None = None) -> None:
        raise UsageError(
            f"{self.key(name)}: {value!r} {allowed}"
            + (" or null" if optional else "")
            + (f" ({note})" if note else "")
        )


def under(prefix: str = "") -> Keys:
    """The rules for the keys under `prefix` (see the module docstring)."""
    return Keys(prefix)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number or bool it holds; anything else as it is."""
    import numpy as np

    return value.item() if isinstance(value, (np.integer, np.floating, np.bool_)) else value
