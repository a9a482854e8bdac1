"""The race figure's panels, one function each: a strategy's landscape and probes, its budget bar,
and the best-so-far curves. tunetorch.race.figure lays them out (`race_figure`) and redraws them
probe by probe (`save_race_gif`); each takes the figure's shared `Layout`.

    draw_landscape    the landscape as a heatmap and the optimum (when known) a star, with
    draw_probes       each probe a dot coloured by the order it was made and sized by the epochs it
                      trained (a trial stopped early is a small dot), failed probes as crosses, the
                      best probe ringed;
    draw_budget_bar   a bar whose full length is the budget: minutes against a minutes budget
                      (marked), trials against a trials budget, or, with no budget, the largest
                      spend of any strategy (said so in its label);
    draw_best_curves  best score so far against device minutes, one curve per strategy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunetorch.history import best_trial
from tunetorch.space import SearchSpace
from tunetorch.trial import Trial, TrialState
from tunetorch.words import count


@dataclass(frozen=True)
class Layout:
    """What every panel of one race figure shares, computed once from all the results (so the frames
    of race.gif keep one landscape, one colour scale and fixed axes while the probes arrive)."""

    space: SearchSpace
    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray
    heat_note: str
    score_norm: Any
    extend: str
    order_norm: Any
    names: list[str]
    bar_kind: str  # "minutes" (a minutes budget, or none) | "trials" (a trials budget only)
    bar_total: float  # the bar's full length, in its kind's unit
    curve_xmax: float
    curve_ylim: tuple[float, float] | None
    unit: str
    score_label: str
    optimum: tuple[dict, float] | None
    budget_minutes: float | None
    budget_trials: int | None
    max_epochs: int | None  # a full trial's epochs: probes are sized against it (None: all one size)
    direction: str = "maximize"  # the study's: which trial is best, which way the curves improve


COLOURS = {"grid": "tab:blue", "random": "tab:orange", "bayes": "tab:green", "bayes+asha": "tab:purple"}
OTHER_COLOURS = ("tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
HEATMAP_CMAP = "Blues"  # white = low score, dark blue = high
# Probe order: green (first) -> yellow (last). Readable on white and on dark blue, and free of red,
# which is the best probe's ring alone.
ORDER_CMAP = "summer"
BEST_COLOUR = "red"
# A probe's marker area: PROBE_AREA for a trial that trained every epoch, down to MIN_PROBE_AREA
# + a sliver for one stopped after its first epoch, in proportion to the epochs it trained.
PROBE_AREA, MIN_PROBE_AREA = 42.0, 8.0
# Trials drawn as probes: those with a score (a pruned trial's is the best it reached).
PROBED = (TrialState.COMPLETE, TrialState.PRUNED)


def probe_sizes(trials: Sequence[Trial], max_epochs: int | None) -> list[float]:
    """Marker areas, in proportion to the epochs each trial trained (all PROBE_AREA without epochs)."""
    if not max_epochs:
        return [PROBE_AREA] * len(trials)
    out = []
    for t in trials:
        share = min(1.0, (t.epochs or max_epochs) / max_epochs)
        out.append(MIN_PROBE_AREA + (PROBE_AREA - MIN_PROBE_AREA) * share)
    return out


def entrant_colour(name: str, i: int) -> str:
    """The entrant's colour in race.png, race.gif and race.html."""
    return COLOURS.get(name, OTHER_COLOURS[i % len(OTHER_COLOURS)])


def draw_landscape(ax, lay: Layout, name: str, i: int, trials: Sequence[Trial], first: bool = True):
    """One strategy's panel: the heatmap, the optimum as a star, the axes, and the probes
    (`draw_probes`). Returns the heatmap."""
    dx, dy = lay.space.dims
    mesh = ax.pcolormesh(
        lay.X, lay.Y, lay.Z, cmap=HEATMAP_CMAP, norm=lay.score_norm, shading="nearest", rasterized=True
    )
    draw_probes(ax, lay, name, i, trials)
    if lay.optimum is not None:
        ax.scatter(
            [lay.optimum[0][dx.name]],
            [lay.optimum[0][dy.name]],
            marker="*",
            s=220,
            color="white",
            edgecolors="black",
            linewidths=1.0,
            zorder=5,
        )
    if dx.log:
        ax.set_xscale("log")
    if dy.log:
        ax.set_yscale("log")
    ax.set_xlim(lay.X[0, 0], lay.X[0, -1])
    ax.set_ylim(lay.Y[0, 0], lay.Y[-1, 0])
    ax.set_xlabel(f"{dx.name}{' (log scale)' if dx.log else ''}")
    if first:
        ax.set_ylabel(f"{dy.name}{' (log scale)' if dy.log else ''}")
    return mesh


def draw_probes(ax, lay: Layout, name: str, i: int, trials: Sequence[Trial]) -> list:
    """A strategy's probes on its panel, coloured by order and sized by the epochs they trained,
    failures as crosses, its best probe ringed above the optimum's star; and the panel's title.
    Returns the artists drawn (race.gif replaces them frame by frame)."""
    dx, dy = lay.space.dims
    trials = sorted(trials, key=lambda t: t.number)
    ok = [t for t in trials if t.state in PROBED]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    order = {t.number: k + 1 for k, t in enumerate(trials)}
    drawn = [
        ax.scatter(
            [t.params[dx.name] for t in ok],
            [t.params[dy.name] for t in ok],
            c=[order[t.number] for t in ok],
            cmap=ORDER_CMAP,
            norm=lay.order_norm,
            s=probe_sizes(ok, lay.max_epochs),
            edgecolors="black",
            linewidths=0.7,
            zorder=3,
            clip_on=False,
        )
    ]
    if failed:
        drawn.append(
            ax.scatter(
                [t.params[dx.name] for t in failed],
                [t.params[dy.name] for t in failed],
                marker="x",
                color="black",
                s=40,
                zorder=3,
                clip_on=False,
            )
        )
    best = best_trial(ok, lay.direction)
    if best is not None:
        # Above the star (zorder 6): when a strategy finds the optimum, its ring must still show.
        drawn.append(
            ax.scatter(
                [best.params[dx.name]],
                [best.params[dy.name]],
                s=320,
                facecolors="none",
                edgecolors=BEST_COLOUR,
                linewidths=2.4,
                zorder=6,
                clip_on=False,
            )
        )
    best_txt = f"best {best.score:.3f}" if best is not None else "no completed probe"
    n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    stopped = f", {n_pruned} stopped early" if n_pruned else ""
    ax.set_title(
        f"{name}: {best_txt} after {count(len(trials), 'probe')}{stopped}",
        color=entrant_colour(name, i),
        fontweight="bold",
    )
    return drawn


def draw_budget_bar(ax, lay: Layout, name: str, i: int, trials: Sequence[Trial]) -> None:
    """The bar's full length is the budget: a minutes budget (marked at its end), else a trials
    budget (trials run of it), else the largest spend of any strategy, and the label says which."""
    from tunetorch.history import device_minutes

    spent = device_minutes(trials)
    n_run = sum(t.finished for t in trials)
    filled = spent if lay.bar_kind == "minutes" else float(n_run)
    ax.barh([0], [lay.bar_total], color="0.88", edgecolor="0.5", height=0.8)
    ax.barh([0], [filled], color=entrant_colour(name, i), height=0.8)
    ax.set_xlim(0, max(lay.bar_total, filled) * 1.02)
    ax.set_ylim(-0.5, 0.5)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=8)
    trials_of = f"{n_run}" + (f" of {lay.budget_trials}" if lay.budget_trials else "")
    if lay.bar_kind == "trials":
        ax.set_xlabel(f"trials run: {trials_of}; {lay.unit} spent: {spent:.3g}", fontsize=9)
        return
    if lay.budget_minutes:
        ax.axvline(lay.bar_total, color="black", lw=1.6)
        ax.text(
            lay.bar_total,
            0.5,
            " budget",
            va="bottom",
            ha="right",
            fontsize=8,
            transform=ax.get_xaxis_transform(),
        )
        of = f" of {lay.budget_minutes:g} budget"
    else:
        of = f" (bar: the largest spend, {lay.bar_total:.3g}; no budget set)"
    trials = f"{n_run} of {count(lay.budget_trials, 'trial')}" if lay.budget_trials else count(n_run, "trial")
    ax.set_xlabel(f"{lay.unit} spent: {spent:.3g}{of} ({trials})", fontsize=9)


def draw_best_curves(ax, lay: Layout, results: Mapping[str, Sequence[Trial]]) -> None:
    """Best score so far against device minutes, one curve per strategy."""
    from tunetorch.history import best_so_far

    for i, name in enumerate(lay.names):
        curve = best_so_far(list(results.get(name, ())), lay.direction)
        if not curve:
            continue
        mins, best, _ = zip(*curve, strict=True)
        ax.step(
            mins,
            best,
            where="post",
            color=entrant_colour(name, i),
            lw=2.2,
            marker="o",
            ms=3.5,
            label=f"{name}: best {best[-1]:.3f} after {mins[-1]:.3g} {lay.unit}",
        )
    if lay.optimum is not None:
        ax.axhline(lay.optimum[1], color="0.4", ls=":", lw=1.2, label=f"optimum {lay.optimum[1]:.3f}")
    if lay.budget_minutes is not None:
        ax.axvline(
            lay.budget_minutes,
            color="0.4",
            ls="--",
            lw=1.2,
            label=f"budget {lay.budget_minutes:g} {lay.unit}",
        )
    ax.set_xlim(0, lay.curve_xmax)
    if lay.curve_ylim is not None:
        ax.set_ylim(*lay.curve_ylim)
    ax.set_xlabel(lay.unit)
    ax.set_ylabel(f"best {lay.score_label} so far")
    ax.set_title(f"Best score so far against {lay.unit}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right" if lay.direction == "maximize" else "upper right", fontsize=9)


def _legend(ax, lay: Layout, results) -> None:
    from matplotlib.lines import Line2D

    probe = plt_colour(ORDER_CMAP, 0.6)
    ax.legend(
        handles=[
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                mfc=probe,
                mec="black",
                label="probe (colour: order; size: epochs trained)"
                if any(t.state == TrialState.PRUNED for ts in results.values() for t in ts)
                else "probe (colour: order)",
            ),
            Line2D(
                [], [], marker="o", ls="", mfc="none", mec=BEST_COLOUR, mew=2, ms=12, label="strategy's best"
            ),
            *(
                [Line2D([], [], marker="x", ls="", color="black", label="failed probe")]
                if any(t.state == TrialState.FAIL for ts in results.values() for t in ts)
                else []
            ),
            *(
                [Line2D([], [], marker="*", ls="", mfc="white", mec="black", ms=13, label="optimum")]
                if lay.optimum is not None
                else []
            ),
        ],
        loc="lower left",
        fontsize=8,
        framealpha=0.85,
    )


def plt_colour(cmap: str, x: float):
    from matplotlib import colormaps

    return colormaps[cmap](x)
