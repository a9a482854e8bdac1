"""Errors that speak to the user.

A `UsageError` is bad input: the entry points print its one-line message and exit
with status 2, without a traceback. An `EnvironmentFault` is the environment's (a full disk, a
read-only folder, a damaged journal): one line, exit status 1, and nothing that completed is
lost. Everything else is a bug and keeps its traceback.
"""


class UsageError(Exception):
    """Bad input from the user: one line naming the key, the value and what is allowed."""


class SpaceExhausted(Exception):
    """The strategy has nothing left to propose (a grid whose lattice is used up)."""


class EnvironmentFault(Exception):
    """A fault of the environment (a full disk, a read-only folder, a missing device), not of
    the input: the entry points print its one line and exit with status 1."""


def nearest(word: str, options, cutoff: float = 0.6) -> str | None:
    """The known name closest to a mistyped one, or None: the one rule behind every "did you mean"."""
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word: str, options, prefix: str = "", cutoff: float = 0.6) -> str:
    """' (did you mean PREFIX+closest?)', or '' when nothing is close."""
    close = nearest(word, options, cutoff)
    return f" (did you mean {prefix}{close}?)" if close else ""
