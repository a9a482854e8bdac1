"""Inline SVG for index.html: scales, ticks, a framed plot area, the trial-order colours.

Hand-written SVG rather than a plotting library's output: every mark is an element of the page,
so a trial's line, dots and table row can carry the same `data-trial` and light up together
when one is hovered (tunetorch/reports/index.js), and the page needs no network and no script
to draw. Inline SVG in HTML needs no xmlns, so the page holds no URL at all.

Parameter axes are in the search space's unit cube (SearchSpace: `encode`): log dimensions are
evenly spread in decades, an int or a choice has one cell each, and the contour's model lives
on the same coordinates.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from tunetorch.space import Categorical, Float, Int

# viridis at 9 even stops (matplotlib's, as progress.png and params.png use): first dark, last yellow
VIRIDIS = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725")
BEST = "#d62728"  # the best trial: no red in viridis
PRUNED = "#ff7f0e"
FAILED = "#555555"


def e(value: object) -> str:
    return html.escape(str(value))


def viridis(t: float) -> str:
    """The viridis colour at t in [0, 1] (linear between the stops)."""
    t = min(max(float(t), 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(t), len(VIRIDIS) - 2)
    a, b = VIRIDIS[i], VIRIDIS[i + 1]
    mix = [round(int(a[k : k + 2], 16) * (1 - (t - i)) + int(b[k : k + 2], 16) * (t - i)) for k in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.4g}"


def nice_ticks(low: float, high: float, n: int = 5) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(n, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    out, v = [], first
    while v <= high + 1e-9 * step:
        out.append(round(v, 12))
        v += step
    return out


def dim_ticks(dim: Float | Int | Categorical) -> list[tuple[float, str]]:
    """(unit-cube position, label) of the ticks on a parameter's axis."""
    if isinstance(dim, Categorical):
        return [(dim.encode(c), str(c)) for c in dim.choices]
    if isinstance(dim, Int):
        values = list(range(dim.low, dim.high + 1))
        if len(values) > 12:
            values = sorted({int(round(v)) for v in nice_ticks(dim.low, dim.high)} & set(values))
        return [(dim.encode(v), str(v)) for v in values]
    if dim.log:
        lo, hi = math.floor(math.log10(dim.low)), math.ceil(math.log10(dim.high))
        multiples = (1,) if hi - lo >= 3 else (1, 2, 5)
        values = [m * 10.0**k for k in range(lo, hi + 1) for m in multiples]
    else:
        values = nice_ticks(dim.low, dim.high)
    return [
        (dim.encode(v), tick_label(v))
        for v in values
        if dim.low <= v * (1 + 1e-12) and v <= dim.high * (1 + 1e-12)
    ]


class Scale:
    """A linear map from [low, high] onto pixels [a, b] (b < a for an upward y axis)."""

    def __init__(self, low: float, high: float, a: float, b: float):
        if not high > low:
            low, high = low - 0.5, high + 0.5
        self.low, self.high, self.a, self.b = low, high, a, b

    def __call__(self, v: float) -> float:
        v = min(max(v, self.low), self.high)  # outside the axis: drawn on its edge
        return round(self.a + (v - self.low) / (self.high - self.low) * (self.b - self.a), 1)

    def inside(self, v: float) -> bool:
        return self.low <= v <= self.high


def frame(
    x: Scale,
    y: Scale,
    xticks: Sequence[tuple[float, str]],
    yticks: Sequence[tuple[float, str]],
    xlabel: str,
    ylabel: str,
    grid: bool = True,
) -> str:
    """Grid lines, tick labels, the box and the axis labels of a plot area (`grid`: False over a
    filled area, which the box then only outlines)."""
    left, right, bottom, top = x.a, x.b, y.a, y.b
    area = "area" if grid else "area clear"
    parts = [f'<rect class="{area}" x="{left}" y="{top}" width="{right - left}" height="{bottom - top}"/>']
    for v, label in xticks:
        px = x(v)
        if grid:
            parts.append(f'<line class="grid" x1="{px}" y1="{top}" x2="{px}" y2="{bottom}"/>')
        parts.append(f'<text class="tick" x="{px}" y="{bottom + 14}" text-anchor="middle">{e(label)}</text>')
    for v, label in yticks:
        py = y(v)
        if grid:
            parts.append(f'<line class="grid" x1="{left}" y1="{py}" x2="{right}" y2="{py}"/>')
        parts.append(f'<text class="tick" x="{left - 5}" y="{py + 4}" text-anchor="end">{e(label)}</text>')
    centre = (left + right) / 2
    parts.append(
        f'<text class="label" x="{centre}" y="{bottom + 32}" text-anchor="middle">{e(xlabel)}</text>'
    )
    mid = (top + bottom) / 2
    parts.append(
        f'<text class="label" transform="translate({left - 46},{mid}) rotate(-90)" '
        f'text-anchor="middle">{e(ylabel)}</text>'
    )
    return "\n".join(parts)


def score_ticks(y: Scale) -> list[tuple[float, str]]:
    return [(v, f"{v:.3g}") for v in nice_ticks(y.low, y.high) if y.inside(v)]


def svg(width: int, height: int, body: str, label: str) -> str:
    return (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{e(label)}">\n{body}\n</svg>'
    )
