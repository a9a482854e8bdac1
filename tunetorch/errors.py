"""Errors that speak to the user.

A `UsageError` is bad input: the entry points print its one-line message and exit
with status 2, without a traceback. Everything else is a bug and keeps its traceback.
"""


class UsageError(Exception):
    """Bad input from the user: one line naming the key, the value and what is allowed."""

    exit_code = 2


class SpaceExhausted(Exception):
    """The strategy has nothing left to propose (a grid whose lattice is used up)."""


class EnvironmentFault(Exception):
    """A fault of the environment (a full disk, a read-only folder, a missing device), not of
    the input: the entry points print its one line and exit with status 1."""

    exit_code = 1
