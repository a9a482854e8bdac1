"""The search space: named dimensions, their unit-cube encoding, sampling and grids.

A space is written as a mapping, in YAML or in Python:

    lr:           {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
    depth:        {type: int, low: 1, high: 4}
    activation:   {type: categorical, choices: [relu, gelu]}

Encoding (used by strategies that work on arrays): every dimension maps to one
coordinate in [0, 1]. Log dimensions are encoded in log space. An integer k in
[low, high] occupies the cell [(k - low) / n, (k - low + 1) / n) with n = high - low + 1,
so that every integer gets the same share of the cube; categoricals likewise by index.

Edges (`dim.edges()`: ("low", low), ("high", high), or ("choice", c) for each choice) are the
values a dimension can reach that a constructor is most likely to refuse; tunetorch builds the
searched groups at them before anything runs (training/build.py `check_edges`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunetorch import checks
from tunetorch.errors import UsageError

TYPES = ("float", "int", "categorical")


@dataclass(frozen=True)
class Float:
    name: str
    low: float
    high: float
    log: bool = False

    def encode(self, value: float) -> float:
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def decode(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return min(max(value, self.low), self.high)  # exp/log round-off must not leave the box

    def grid(self, resolution: int) -> list[float]:
        if resolution == 1:
            return [self.decode(0.5)]
        return [self.decode(i / (resolution - 1)) for i in range(resolution)]

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def edges(self) -> tuple[tuple[str, float], ...]:
        return (("low", self.low), ("high", self.high))


@dataclass(frozen=True)
class Int:
    name: str
    low: int
    high: int
    log: bool = False

    @property
    def n_values(self) -> int:
        return self.high - self.low + 1

    def encode(self, value: int) -> float:
        if self.log:
            span = math.log(self.high + 0.5) - math.log(self.low - 0.5)
            return (math.log(value) - math.log(self.low - 0.5)) / span
        return (value - self.low + 0.5) / self.n_values

    def decode(self, u: float) -> int:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            span = math.log(self.high + 0.5) - math.log(self.low - 0.5)
            value = round(math.exp(math.log(self.low - 0.5) + u * span))
        else:
            value = self.low + math.floor(u * self.n_values)
        return int(min(max(value, self.low), self.high))

    def grid(self, resolution: int) -> list[int]:
        if resolution >= self.n_values:
            return list(range(self.low, self.high + 1))
        if resolution == 1:
            return [self.decode(0.5)]
        values = np.linspace(self.low, self.high, resolution)
        if self.log:
            values = np.geomspace(self.low, self.high, resolution)
        return sorted({int(round(v)) for v in values})

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and self.low <= value <= self.high

    def edges(self) -> tuple[tuple[str, int], ...]:
        return (("low", self.low), ("high", self.high))


@dataclass(frozen=True)
class Categorical:
    name: str
    choices: tuple

    def encode(self, value: Any) -> float:
        return (self.choices.index(value) + 0.5) / len(self.choices)

    def decode(self, u: float) -> Any:
        u = min(max(float(u), 0.0), 1.0)
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def grid(self, resolution: int) -> list:
        return list(self.choices)  # every choice, whatever the resolution

    def contains(self, value: Any) -> bool:
        return value in self.choices

    def edges(self) -> tuple[tuple[str, Any], ...]:
        return tuple(("choice", c) for c in self.choices)  # unordered: every choice is an edge


Dimension = Float | Int | Categorical


class SearchSpace:
    """An ordered set of named dimensions. Build it with `SearchSpace.from_dict`."""

    def __init__(self, dims: Sequence[Dimension]):
        if not dims:
            raise UsageError("space: is empty; give at least one dimension")
        self.dims: tuple[Dimension, ...] = tuple(dims)
        self.names: tuple[str, ...] = tuple(d.name for d in self.dims)

    def __len__(self) -> int:
        return len(self.dims)

    def __repr__(self) -> str:
        return f"SearchSpace({list(self.dims)!r})"

    def __getitem__(self, name: str) -> Dimension:
        return self.dims[self.names.index(name)]

    @classmethod
    def from_dict(cls, spec: Mapping[str, Mapping[str, Any]], prefix: str = "space") -> SearchSpace:
        """Build and validate a space; errors name the key, e.g. `space.lr.low`."""
        if not isinstance(spec, Mapping) or not spec:
            raise UsageError(f"{prefix}: {spec!r} is not a mapping of dimensions; give name: {{type: ...}}")
        return cls([_parse_dimension(str(name), entry, f"{prefix}.{name}") for name, entry in spec.items()])

    def to_dict(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for d in self.dims:
            if isinstance(d, Categorical):
                out[d.name] = {"type": "categorical", "choices": list(d.choices)}
            else:
                kind = "float" if isinstance(d, Float) else "int"
                out[d.name] = {"type": kind, "low": d.low, "high": d.high, "log": d.log}
        return out

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One point drawn uniformly in the encoded cube (so log dimensions log-uniformly)."""
        return self.from_unit(rng.random(len(self)))

    def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
        """params -> (n_dims,) array in [0, 1]."""
        return np.array([d.encode(params[d.name]) for d in self.dims], dtype=float)

    def from_unit(self, u: Sequence[float]) -> dict[str, Any]:
        """(n_dims,) array in [0, 1] -> params (ints rounded, categoricals chosen)."""
        return {d.name: _plain(d.decode(x)) for d, x in zip(self.dims, u, strict=True)}

    def grid(self, resolution: int | Mapping[str, int]) -> list[dict[str, Any]]:
        """The lattice: every combination of each dimension's grid values, in order."""
        per_dim = [
            d.grid(int(resolution[d.name] if isinstance(resolution, Mapping) else resolution))
            for d in self.dims
        ]
        return [
            dict(zip(self.names, map(_plain, combo), strict=True)) for combo in itertools.product(*per_dim)
        ]

    def contains(self, params: Mapping[str, Any]) -> bool:
        return set(params) == set(self.names) and all(d.contains(params[d.name]) for d in self.dims)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so params are JSON- and YAML-friendly."""
    return value.item() if isinstance(value, np.generic) else value


def _number(entry: Mapping, key: str, where: str) -> float:
    if key not in entry:
        raise UsageError(f"{where}.{key}: missing; a float/int dimension needs low and high")
    return checks.under(where).number(key, entry[key])


def _parse_dimension(name: str, entry: Any, where: str) -> Dimension:
    if not isinstance(entry, Mapping):
        raise UsageError(f"{where}: {entry!r} is not a mapping; give {{type: float|int|categorical, ...}}")
    kind = entry.get("type")
    kind = checks.under(where).one_of("type", kind, TYPES)
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log"}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise UsageError(
            f"{where}.{unknown[0]}: not a key of a {kind} dimension; allowed: {', '.join(sorted(allowed))}"
        )
    if kind == "categorical":
        choices = entry.get("choices")
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence) or len(choices) == 0:
            raise UsageError(f"{where}.choices: {choices!r} must be a non-empty list")
        if len(set(map(repr, choices))) != len(choices):
            raise UsageError(f"{where}.choices: {list(choices)!r} has duplicates")
        return Categorical(name, tuple(choices))
    low, high = _number(entry, "low", where), _number(entry, "high", where)
    log = checks.under(where).boolean("log", entry.get("log", False))
    if low >= high:
        raise UsageError(f"{where}.low: {low!r} must be below high ({high!r})")
    if log and low <= 0:
        raise UsageError(f"{where}.low: {low!r} must be > 0 when log is true")
    if kind == "int":
        if int(low) != low or int(high) != high:
            raise UsageError(
                f"{where}: low {low!r} and high {high!r} must be whole numbers for an int dimension"
            )
        return Int(name, int(low), int(high), log)
    return Float(name, float(low), float(high), log)
