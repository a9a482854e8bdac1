"""index.html's charts as inline SVG: learning curves, score against each parameter, the contour.

Every mark of a trial carries `data-trial` (the page's script lights up all marks of the trial
under the pointer, its table row included) and a <title>: the trial's number, state, score and
parameters, which any browser shows on hover, script or not. Colours follow progress.png and
params.png: trial order in viridis, pruned trials orange and dashed, the best trial red.

The score axis is plots.score_limits' (the better three quarters of the trials): a diverged
trial is drawn on the lower edge instead of flattening the others into a line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tunetorch.history import SCORED, best_trial
from tunetorch.reports.plots import score_limits
from tunetorch.reports.svg import (
    BEST,
    FAILED,
    PRUNED,
    Scale,
    dim_ticks,
    e,
    frame,
    nice_ticks,
    score_ticks,
    svg,
    viridis,
)
from tunetorch.reports.terminal import format_score, format_value
from tunetorch.space import Categorical, Int, SearchSpace
from tunetorch.trial import Trial, TrialState
from tunetorch.words import count

Curves = Mapping[int, Sequence[Mapping[str, Any]]]


def epochs(n: int) -> str:
    return count(n, "epoch", "epochs")  # words.plural would say "epoches"


def trial_tip(t: Trial, metric: str) -> str:
    """What hovering a trial shows, a line each: 'trial 7, pruned after 3 epochs', 'val_accuracy
    0.9500', then its parameters ('optimizer.lr=0.00427')."""
    state = {
        TrialState.PRUNED: f"pruned after {epochs(t.epochs or 0)}",
        TrialState.COMPLETE: f"complete, {epochs(t.epochs or 0)}",
        TrialState.FAIL: f"failed ({t.error})" if t.error else "failed",
    }.get(t.state, t.state.value.lower())
    lines = [f"trial {t.number}, {state}"]
    if t.score is not None:
        lines.append(f"{metric} {format_score(t.score)}")
    lines += [f"{k}={format_value(v)}" for k, v in t.params.items()]
    return "\n".join(lines)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _colour(t: Trial, n: int) -> str:
    return viridis(t.number / max(n - 1, 1))


def _mark(t: Trial, metric: str) -> tuple[str, str]:
    """(attributes, <title>) shared by every mark of trial t."""
    return f'data-trial="{t.number}"', f"<title>{e(trial_tip(t, metric))}</title>"


def curves_chart(trials: Sequence[Trial], curves: Curves, metric: str, direction: str) -> str:
    """`metric` per epoch of every trial that recorded one: solid for complete trials, dashed with
    a hollow orange square where the scheduler stopped a pruned one, grey for failed ones, the
    best trial red and on top."""
    W, H, L, R, T, B = 1060, 400, 70, 20, 14, 48
    drawn = [t for t in trials if any(_number(r.get(metric)) for r in curves.get(t.number, ()))]
    if not drawn:
        return f'<p class="note">No trial has recorded {e(metric)} per epoch yet.</p>'
    # The axis: the better three quarters of every value recorded (plots.score_limits), so the
    # curves that ran on are told apart; what falls outside sits on the edge and is counted.
    values = [r[metric] for t in drawn for r in curves[t.number] if _number(r.get(metric))]
    best = best_trial(trials, direction)
    low, high = score_limits(values, direction)
    last = max(len(curves[t.number]) for t in drawn)
    x = Scale(1, max(last, 2), L, W - R)
    y = Scale(low, high, H - B, T)
    xticks = [(v, str(int(v))) for v in nice_ticks(1, max(last, 2), 8) if float(v).is_integer()]
    parts = [frame(x, y, xticks, score_ticks(y), "epoch (counted from 1)", metric)]
    n = max((t.number for t in trials), default=0) + 1
    order = sorted(drawn, key=lambda t: (best is not None and t.number == best.number, t.number))
    for t in order:
        rows = enumerate(curves.get(t.number, ()), start=1)
        # a non-finite value (a diverged epoch) on the lower edge, where the axis puts outliers
        pts = [
            (i, r[metric] if _number(r[metric]) else low)
            for i, r in rows
            if isinstance(r.get(metric), (int, float))
        ]
        if not pts:
            continue
        attrs, title = _mark(t, metric)
        is_best = best is not None and t.number == best.number
        colour = BEST if is_best else FAILED if t.state == TrialState.FAIL else _colour(t, n)
        cls = {TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}.get(t.state, "")
        width = 3 if is_best else 1.6
        line = " ".join(f"{x(i)},{y(v)}" for i, v in pts)
        parts.append(
            f'<g class="trial {cls}" {attrs}>{title}'
            f'<polyline class="hit" points="{line}"/>'
            f'<polyline points="{line}" stroke="{colour}" stroke-width="{width}"/>'
        )
        ex, ey = x(pts[-1][0]), y(pts[-1][1])
        if t.state == TrialState.PRUNED:
            parts.append(
                f'<rect class="stop" x="{ex - 4}" y="{ey - 4}" width="8" height="8" stroke="{PRUNED}"/>'
            )
        elif t.state == TrialState.FAIL:
            parts.append(f'<path class="x" d="M{ex - 4},{ey - 4}l8,8m0,-8l-8,8" stroke="#000"/>')
        else:
            parts.append(f'<circle cx="{ex}" cy="{ey}" r="{4 if is_best else 2.5}" fill="{colour}"/>')
        parts.append("</g>")
    outside = sum(
        any(_number(r.get(metric)) and not y.inside(r[metric]) for r in curves[t.number]) for t in drawn
    )
    if outside:
        parts.append(
            f'<text class="tick" x="{x.b - 6}" y="{y.a - 6}" text-anchor="end">{count(outside, "trial")} '
            "outside the axis at some epoch: drawn on its edge</text>"
        )
    return svg(W, H, "\n".join(parts), f"{metric} per epoch of every trial")


def _jitter(number: int, width: float) -> float:
    """A fixed offset per trial inside its int or choice cell: the same study draws the same picture."""
    return float(np.random.default_rng(number).uniform(-0.3, 0.3)) * width


def unit_of(dim, value: Any, number: int) -> float | None:
    """A trial's position on a parameter's unit-cube axis (ints and choices jittered in their cell)."""
    if not dim.contains(value):
        return None
    u = dim.encode(value)
    if isinstance(dim, Categorical):
        return u + _jitter(number, 1 / len(dim.choices))
    if isinstance(dim, Int) and not dim.log:
        return u + _jitter(number, 1 / dim.n_values)
    return u


def _dot(t: Trial, px: float, y: Scale, n: int, best: Trial | None, metric: str) -> str:
    """A trial's dot; one outside the score axis is a triangle on its edge, pointing out."""
    attrs, title = _mark(t, metric)
    py = y(t.score)
    if not y.inside(t.score):
        tip = 6 if py >= y.a else -6  # y.a is the lower edge (pixels grow downwards)
        colour = PRUNED if t.state == TrialState.PRUNED else _colour(t, n)
        shape = f'<path class="out" d="M{px - 4},{py}h8l-4,{tip}z" fill="{colour}"/>'
    elif t.state == TrialState.PRUNED:
        shape = f'<rect x="{px - 3.5}" y="{py - 3.5}" width="7" height="7" class="pdot" stroke="{PRUNED}"/>'
    else:
        shape = f'<circle cx="{px}" cy="{py}" r="4" fill="{_colour(t, n)}" class="cdot"/>'
    ring = ""
    if best is not None and t.number == best.number:
        ring = f'<circle cx="{px}" cy="{py}" r="8" class="ring" stroke="{BEST}"/>'
    return f'<g class="trial" {attrs}>{title}{shape}{ring}</g>'


def param_panels(trials: Sequence[Trial], space: SearchSpace, metric: str, direction: str) -> str:
    """One panel per searched parameter: each scored trial's score against its value."""
    W, H, L, R, T, B = 330, 250, 60, 12, 10, 44
    scored = [t for t in trials if t.state in SCORED and t.score is not None and np.isfinite(t.score)]
    low, high = score_limits([t.score for t in scored], direction)
    n = max((t.number for t in trials), default=0) + 1
    best = best_trial(trials, direction)
    panels = []
    for dim in space.dims:
        x = Scale(0, 1, L, W - R)
        y = Scale(low, high, H - B, T)
        log = " (log scale)" if getattr(dim, "log", False) else ""
        parts = [frame(x, y, dim_ticks(dim), score_ticks(y), f"{dim.name}{log}", metric)]
        ordered = sorted(scored, key=lambda t: (best is not None and t.number == best.number, t.number))
        for t in ordered:
            u = unit_of(dim, t.params.get(dim.name), t.number)
            if u is not None:
                parts.append(_dot(t, x(u), y, n, best, metric))
        panels.append(svg(W, H, "\n".join(parts), f"{metric} against {dim.name}"))
    return '<div class="panels">' + "\n".join(panels) + "</div>"


def _phi(z: float) -> float:
    """The standard normal's distribution function: a normal score back to a share."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _band_colour(band: int, levels: int, sign: float) -> str:
    """Band 0 holds the lowest values; yellow is the better end whichever way that is."""
    t = band / (levels - 1)
    return viridis(t if sign > 0 else 1 - t)


def contour_chart(
    Z: np.ndarray,
    dims: tuple[Any, Any],
    used: Sequence[Trial],
    metric: str,
    direction: str,
    what: str,
    ranked: bool = False,
    levels: int = 10,
) -> str:
    """The model's expected value over two parameters (`Z[a, b]` at the cell centres of x = dims[0],
    y = dims[1]), in `levels` bands of equal width, with the trials it learnt from on top. `what`
    names the value; `ranked`: Z is in normal scores of the standing (importance.comparable),
    labelled as the share of trials beaten, higher better whatever the direction."""
    W, H, L, R, T, B = 560, 440, 70, 96, 12, 46
    g = Z.shape[0]
    sign = 1.0 if direction == "maximize" or ranked else -1.0
    zlo, zhi = float(Z.min()), float(Z.max())
    span = zhi - zlo if zhi > zlo else 1.0
    x, y = Scale(0, 1, L, W - R), Scale(0, 1, H - B, T)
    cw, ch = (x.b - x.a) / g, (y.a - y.b) / g
    parts = ['<g shape-rendering="crispEdges">']  # no hairline seams between the cells
    for a in range(g):
        for b in range(g):
            band = min(int((Z[a, b] - zlo) / span * levels), levels - 1)
            parts.append(
                f'<rect x="{x.a + a * cw:.1f}" y="{y.a - (b + 1) * ch:.1f}" width="{cw + 0.4:.1f}" '
                f'height="{ch + 0.4:.1f}" fill="{_band_colour(band, levels, sign)}"/>'
            )
    parts.append("</g>")
    dx, dy = dims
    labels = [f"{d.name} (log scale)" if getattr(d, "log", False) else d.name for d in dims]
    parts.append(frame(x, y, dim_ticks(dx), dim_ticks(dy), *labels, grid=False))
    for t in sorted(used, key=lambda t: t.number):
        # a second jitter for y (another seed), so a trial on an int in both is not on a diagonal
        u, v = (
            unit_of(dx, t.params.get(dx.name), t.number),
            unit_of(dy, t.params.get(dy.name), t.number + 7919),
        )
        if u is None or v is None:
            continue
        attrs, title = _mark(t, metric)
        if t.state == TrialState.PRUNED:
            mark = f'<rect x="{x(u) - 3.5}" y="{y(v) - 3.5}" width="7" height="7" class="pdot on-map"/>'
        else:
            mark = f'<circle cx="{x(u)}" cy="{y(v)}" r="4" class="cdot on-map"/>'
        parts.append(f'<g class="trial" {attrs}>{title}{mark}</g>')
    # the colour bar: one box per band, values increasing upwards
    bx, bh = W - R + 22, (y.a - y.b) / levels
    for k in range(levels):
        colour = _band_colour(k, levels, sign)
        parts.append(
            f'<rect x="{bx}" y="{y.a - (k + 1) * bh:.1f}" width="16" height="{bh + 0.4:.1f}" '
            f'fill="{colour}"/>'
        )
    for k in (0, levels // 2, levels):
        z = zlo + span * k / levels
        value = f"{_phi(z):.0%}" if ranked else format_score(z)
        parts.append(f'<text class="tick" x="{bx + 20}" y="{y.a - k * bh + 4:.1f}">{value}</text>')
    parts.append(
        f'<text class="label" transform="translate({bx + 72},{(y.a + y.b) / 2}) rotate(-90)" '
        f'text-anchor="middle">{e(what.split(" (")[0])}</text>'
    )
    return svg(W, H, "\n".join(parts), f"{what} over {dx.name} and {dy.name}")
