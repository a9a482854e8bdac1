"""The race figure (matplotlib, Agg): where each strategy probed, and how fast its best score rose.

    top row     one panel per strategy over the two race dimensions: the landscape as a
                heatmap, each probe a dot coloured by the order it was made, failed probes
                as crosses, the strategy's best probe circled, the optimum (when known) a star;
    under each  a budget bar whose full length is the budget: minutes against a minutes budget
                (marked), trials against a trials budget, or, with no budget, the largest spend
                of any strategy (said so in its label);
    bottom      best score so far against device minutes, one curve per strategy.

One function per panel (`draw_landscape`, `draw_budget_bar`, `draw_best_curves`); `race_figure`
lays them out, `save_race_gif` redraws them probe by probe into race.gif.

The heatmap is exact when a `surface` function is given (the synthetic landscapes); otherwise
it is interpolated from every strategy's completed probes (`interpolate`), so the three panels
share one estimate of the landscape and differ only in where each strategy looked.

Symbols in `interpolate`: P: (n_probes, 2) probe coordinates in the unit square (the space's
encoding, so log dimensions are in log coordinates), s: (n_probes,) scores, Q: (n_cells, 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunetorch.history import best_trial
from tunetorch.space import SearchSpace
from tunetorch.trial import Trial, TrialState

COLOURS = {"grid": "tab:blue", "random": "tab:orange", "bayes": "tab:green"}
OTHER_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
HEATMAP_CMAP = "Blues"  # white = low score, dark blue = high
# Probe order: green (first) -> yellow (last). Readable on white and on dark blue, and free of red,
# which is the best probe's ring alone.
ORDER_CMAP = "summer"
BEST_COLOUR = "red"


def interpolate(P: np.ndarray, s: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Scores at Q estimated from the probes (P, s): a thin-plate RBF, clipped to the observed range.

    Repeated probes are averaged first: the RBF system is singular for coincident points.
    With fewer than 3 distinct probes, or collinear ones (the linear tail of the thin-plate
    spline is then undetermined), the estimate falls back to the nearest probe.
    """
    from scipy.interpolate import NearestNDInterpolator, RBFInterpolator

    keys, inverse = np.unique(np.round(P, 9), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    mean = np.bincount(inverse, weights=s) / np.bincount(inverse)
    if len(keys) == 1:
        return np.full(len(Q), mean[0])
    if len(keys) >= 3 and np.linalg.matrix_rank(keys - keys.mean(axis=0)) == 2:
        try:
            # A little smoothing: trial scores are noisy, and an exact fit overshoots between probes.
            est = RBFInterpolator(keys, mean, kernel="thin_plate_spline", smoothing=1e-3)(Q)
            return np.clip(est, mean.min(), mean.max())
        except np.linalg.LinAlgError:
            pass
    return NearestNDInterpolator(keys, mean)(Q)


def _axis_values(dim, n: int) -> np.ndarray:
    """n values spanning a numeric dimension, evenly in its encoding (log spacing for log dims)."""
    lo, hi = float(dim.low), float(dim.high)
    return np.geomspace(lo, hi, n) if dim.log else np.linspace(lo, hi, n)


def _encode(dim, values: np.ndarray) -> np.ndarray:
    lo, hi = float(dim.low), float(dim.high)
    if dim.log:
        return (np.log(values) - np.log(lo)) / (np.log(hi) - np.log(lo))
    return (values - lo) / (hi - lo)


def _colour(name: str, i: int) -> str:
    return COLOURS.get(name, OTHER_COLOURS[i % len(OTHER_COLOURS)])


@dataclass(frozen=True)
class _Layout:
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


def _layout(
    space: SearchSpace,
    results: Mapping[str, Sequence[Trial]],
    surface,
    optimum,
    budget_minutes,
    budget_trials,
    unit,
    score_label,
    resolution,
) -> _Layout:
    from matplotlib.colors import Normalize

    from tunetorch.history import best_so_far, device_minutes

    if len(space) != 2 or not all(hasattr(d, "low") for d in space.dims):
        raise ValueError(f"race_figure needs two numeric dimensions, got {space.names}")
    dx, dy = space.dims
    xs, ys = _axis_values(dx, resolution), _axis_values(dy, resolution)
    X, Y = np.meshgrid(xs, ys)
    done = [t for trials in results.values() for t in trials if t.state == TrialState.COMPLETE]
    if surface is not None:
        Z = np.asarray(surface(X, Y), dtype=float)
        heat_note = "exact landscape"
    elif done:
        P = np.array([[_encode(dx, t.params[dx.name]), _encode(dy, t.params[dy.name])] for t in done])
        s = np.array([t.score for t in done])
        Q = np.column_stack([_encode(dx, X.ravel()), _encode(dy, Y.ravel())])
        Z = interpolate(P, s, Q).reshape(X.shape)
        heat_note = f"landscape interpolated from all {len(done)} probes"
    else:
        Z = np.full(X.shape, np.nan)
        heat_note = "no completed probes"
    finite = Z[np.isfinite(Z)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    extend = "neither"
    if surface is None and len(done) >= 4:
        # Diverged trials (accuracy at chance) would stretch the scale over nothing of interest:
        # colours span the upper three quarters of the probes, lower scores are clipped.
        low, extend = max(low, float(np.percentile([t.score for t in done], 25))), "min"
    max_probes = max((len(t) for t in results.values()), default=1)

    spent = [device_minutes(trials) for trials in results.values()]
    if budget_minutes:
        bar_kind, bar_total = "minutes", float(budget_minutes)
    elif budget_trials:
        bar_kind, bar_total = "trials", float(budget_trials)
    else:
        bar_kind, bar_total = "minutes", max(max(spent, default=0.0), 1e-9)
    curve_xmax = max([*spent, budget_minutes or 0.0, 1e-9]) * 1.03
    curve_values = [c[1] for trials in results.values() for c in best_so_far(list(trials))]
    if optimum is not None:
        curve_values.append(optimum[1])
    curve_ylim = None
    if curve_values:
        lo, hi = min(curve_values), max(curve_values)
        pad = 0.05 * (hi - lo) if hi > lo else 0.01
        curve_ylim = (lo - pad, hi + pad)
    return _Layout(
        space=space,
        X=X,
        Y=Y,
        Z=Z,
        heat_note=heat_note,
        score_norm=Normalize(low, max(high, low + 1e-9)),
        extend=extend,
        order_norm=Normalize(1, max(max_probes, 2)),
        names=list(results),
        bar_kind=bar_kind,
        bar_total=bar_total,
        curve_xmax=curve_xmax,
        curve_ylim=curve_ylim,
        unit=unit,
        score_label=score_label,
        optimum=optimum,
        budget_minutes=budget_minutes,
        budget_trials=budget_trials,
    )


def draw_landscape(ax, lay: _Layout, name: str, i: int, trials: Sequence[Trial], first: bool = True):
    """One strategy's panel: the heatmap, its probes coloured by order, failures as crosses, the
    optimum as a star and, above the star, the strategy's best probe ringed. Returns the heatmap."""
    dx, dy = lay.space.dims
    trials = sorted(trials, key=lambda t: t.number)
    mesh = ax.pcolormesh(
        lay.X, lay.Y, lay.Z, cmap=HEATMAP_CMAP, norm=lay.score_norm, shading="nearest", rasterized=True
    )
    ok = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    order = {t.number: k + 1 for k, t in enumerate(trials)}
    ax.scatter(
        [t.params[dx.name] for t in ok],
        [t.params[dy.name] for t in ok],
        c=[order[t.number] for t in ok],
        cmap=ORDER_CMAP,
        norm=lay.order_norm,
        s=42,
        edgecolors="black",
        linewidths=0.7,
        zorder=3,
        clip_on=False,
    )
    if failed:
        ax.scatter(
            [t.params[dx.name] for t in failed],
            [t.params[dy.name] for t in failed],
            marker="x",
            color="black",
            s=40,
            zorder=3,
            clip_on=False,
        )
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
    best = best_trial(ok)
    if best is not None:
        # Above the star (zorder 6): when a strategy finds the optimum, its ring must still show.
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
    if dx.log:
        ax.set_xscale("log")
    if dy.log:
        ax.set_yscale("log")
    ax.set_xlim(lay.X[0, 0], lay.X[0, -1])
    ax.set_ylim(lay.Y[0, 0], lay.Y[-1, 0])
    ax.set_xlabel(f"{dx.name}{' (log scale)' if dx.log else ''}")
    if first:
        ax.set_ylabel(f"{dy.name}{' (log scale)' if dy.log else ''}")
    best_txt = f"best {best.score:.3f}" if best is not None else "no completed probe"
    ax.set_title(f"{name}: {best_txt} after {len(trials)} probes", color=_colour(name, i), fontweight="bold")
    return mesh


def draw_budget_bar(ax, lay: _Layout, name: str, i: int, trials: Sequence[Trial]) -> None:
    """The bar's full length is the budget: a minutes budget (marked at its end), else a trials
    budget (trials run of it), else the largest spend of any strategy, and the label says which."""
    from tunetorch.history import device_minutes

    spent = device_minutes(trials)
    n_run = sum(t.finished for t in trials)
    filled = spent if lay.bar_kind == "minutes" else float(n_run)
    ax.barh([0], [lay.bar_total], color="0.88", edgecolor="0.5", height=0.8)
    ax.barh([0], [filled], color=_colour(name, i), height=0.8)
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
    ax.set_xlabel(f"{lay.unit} spent: {spent:.3g}{of} ({trials_of} trials)", fontsize=9)


def draw_best_curves(ax, lay: _Layout, results: Mapping[str, Sequence[Trial]]) -> None:
    """Best score so far against device minutes, one curve per strategy."""
    from tunetorch.history import best_so_far

    for i, name in enumerate(lay.names):
        curve = best_so_far(list(results.get(name, ())))
        if not curve:
            continue
        mins, best, _ = zip(*curve, strict=True)
        ax.step(
            mins,
            best,
            where="post",
            color=_colour(name, i),
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
        ax.legend(loc="lower right", fontsize=9)


def _legend(ax, lay: _Layout, results) -> None:
    from matplotlib.lines import Line2D

    probe = plt_colour(ORDER_CMAP, 0.6)
    ax.legend(
        handles=[
            Line2D([], [], marker="o", ls="", mfc=probe, mec="black", label="probe (colour: order)"),
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


def _draw(fig, lay: _Layout, results: Mapping[str, Sequence[Trial]], title: str):
    """Every panel of the figure, in the axes order the tests rely on: (heatmap, bar) per strategy,
    the two colour bars, then the curves."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.ticker import MaxNLocator

    n = len(lay.names)
    gs = fig.add_gridspec(3, n + 2, height_ratios=[4.2, 0.5, 3.3], width_ratios=[1] * n + [0.05, 0.05])
    suptitle = fig.suptitle(title, fontsize=14)
    heat_axes, mesh = [], None
    for i, name in enumerate(lay.names):
        ax = fig.add_subplot(gs[0, i])
        heat_axes.append(ax)
        mesh = draw_landscape(ax, lay, name, i, results.get(name, ()), first=i == 0)
        draw_budget_bar(fig.add_subplot(gs[1, i]), lay, name, i, results.get(name, ()))
    _legend(heat_axes[0], lay, results)
    if mesh is not None:
        fig.colorbar(
            mesh,
            cax=fig.add_subplot(gs[0, n]),
            extend=lay.extend,
            label=f"{lay.score_label} ({lay.heat_note})",
        )
        order_bar = fig.colorbar(
            ScalarMappable(lay.order_norm, ORDER_CMAP),
            cax=fig.add_subplot(gs[0, n + 1]),
            label="probe order (1 = first)",
        )
        order_bar.locator = MaxNLocator(integer=True)
        order_bar.update_ticks()
    draw_best_curves(fig.add_subplot(gs[2, :n]), lay, results)
    return suptitle


def race_figure(
    space: SearchSpace,
    results: Mapping[str, Sequence[Trial]],
    *,
    surface: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    optimum: tuple[dict, float] | None = None,
    budget_minutes: float | None = None,
    budget_trials: int | None = None,
    unit: str = "GPU minutes",
    score_label: str = "validation accuracy",
    title: str = "The race",
    resolution: int = 120,
):
    """The race figure; returns the matplotlib Figure (not yet saved).

    space: the two race dimensions, x first. results: strategy name -> its trials.
    surface(X, Y) -> scores at arrays of the two dimensions' values (exact heatmap), or None
    to interpolate from the probes. optimum: (params, score) of the known maximum, or None.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lay = _layout(
        space, results, surface, optimum, budget_minutes, budget_trials, unit, score_label, resolution
    )
    fig = Figure(figsize=(5.0 * len(lay.names) + 1.6, 10.5), layout="constrained")
    FigureCanvasAgg(fig)
    _draw(fig, lay, results, title)
    return fig


def save_race_gif(
    path,
    space: SearchSpace,
    results: Mapping[str, Sequence[Trial]],
    *,
    fps: float = 3,
    max_frames: int = 60,
    dpi: int = 55,
    title: str = "The race",
    **figure_kwargs: Any,
) -> int:
    """race.gif: the race figure redrawn probe by probe (matplotlib's Pillow writer), the budget bars
    and best-so-far curves growing as the probes arrive; the last frame holds for a second.
    `figure_kwargs` are race_figure's. Returns the number of frames."""
    from matplotlib.animation import PillowWriter
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lay = _layout(
        space,
        results,
        figure_kwargs.get("surface"),
        figure_kwargs.get("optimum"),
        figure_kwargs.get("budget_minutes"),
        figure_kwargs.get("budget_trials"),
        figure_kwargs.get("unit", "GPU minutes"),
        figure_kwargs.get("score_label", "validation accuracy"),
        min(int(figure_kwargs.get("resolution", 120)), 80),  # a GIF frame needs no finer heatmap
    )
    ordered = {name: sorted(trials, key=lambda t: t.number) for name, trials in results.items()}
    longest = max((len(t) for t in ordered.values()), default=0)
    ks = sorted({int(round(x)) for x in np.linspace(1, max(longest, 1), min(max(longest, 1), max_frames))})
    ks += [ks[-1]] * int(fps)  # hold the finished race
    fig = Figure(figsize=(5.0 * len(lay.names) + 1.6, 10.5), layout="constrained")
    FigureCanvasAgg(fig)
    positions = None
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi):
        for k in ks:
            fig.clear()
            shown = {name: trials[:k] for name, trials in ordered.items()}
            suptitle = _draw(fig, lay, shown, f"{title} (probe {k} of {longest})")
            if positions is None:
                # The constrained layout costs more than the drawing: solve it on the first frame
                # (the widest labels are there already) and pin every later frame's axes to it.
                fig.canvas.draw()
                positions = [ax.get_position() for ax in fig.axes]
                title_at = suptitle.get_position()
                fig.set_layout_engine("none")
            else:
                for ax, pos in zip(fig.axes, positions, strict=True):
                    ax.set_position(pos)
                suptitle.set_position(title_at)
            writer.grab_frame()
    return len(ks)
