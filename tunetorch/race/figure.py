"""The race figure (matplotlib, Agg): where each strategy probed, and how fast its best score rose.

    top row     one panel per entrant over the two race dimensions (tunetorch.race.panels.draw_landscape)
    under each  its budget bar (draw_budget_bar)
    bottom      best score so far against device minutes, one curve per entrant (draw_best_curves)

`layout` computes what every panel shares once, from all the results; `race_figure` draws the
figure; `save_race_gif` redraws it probe by probe into race.gif, on the same layout.

The heatmap is exact when a `surface` function is given (the synthetic landscapes); otherwise
it is interpolated from every strategy's completed probes (`interpolate`), so the panels share
one estimate of the landscape and differ only in where each strategy looked. Trials stopped
early are left out of the estimate: their scores are of shorter training.

The interpolation itself is tunetorch.race.heatmap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tunetorch.race.heatmap import axis_values, encode, interpolate
from tunetorch.race.panels import (
    HEATMAP_CMAP,
    ORDER_CMAP,
    Layout,
    _legend,
    draw_best_curves,
    draw_budget_bar,
    draw_landscape,
    draw_probes,
)
from tunetorch.space import SearchSpace
from tunetorch.trial import Trial, TrialState
from tunetorch.words import count

__all__ = ["HEATMAP_CMAP", "Layout", "interpolate", "layout", "race_figure", "save_race_gif"]


def layout(
    space: SearchSpace,
    results: Mapping[str, Sequence[Trial]],
    surface,
    optimum,
    budget_minutes,
    budget_trials,
    unit,
    score_label,
    resolution,
    max_epochs: int | None = None,
    direction: str = "maximize",
) -> Layout:
    from matplotlib.colors import Normalize

    from tunetorch.history import best_so_far, device_minutes

    if len(space) != 2 or not all(hasattr(d, "low") for d in space.dims):
        raise ValueError(f"race_figure needs two numeric dimensions, got {space.names}")
    dx, dy = space.dims
    xs, ys = axis_values(dx, resolution), axis_values(dy, resolution)
    X, Y = np.meshgrid(xs, ys)
    done = [t for trials in results.values() for t in trials if t.state == TrialState.COMPLETE]
    if surface is not None:
        Z = np.asarray(surface(X, Y), dtype=float)
        heat_note = "exact landscape"
    elif done:
        P = np.array([[encode(dx, t.params[dx.name]), encode(dy, t.params[dy.name])] for t in done])
        s = np.array([t.score for t in done])
        Q = np.column_stack([encode(dx, X.ravel()), encode(dy, Y.ravel())])
        Z = interpolate(P, s, Q).reshape(X.shape)
        heat_note = f"landscape interpolated from all {count(len(done), 'probe')}"
    else:
        Z = np.full(X.shape, np.nan)
        heat_note = "no completed probes"
    finite = Z[np.isfinite(Z)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    extend = "neither"
    if surface is None and len(done) >= 4:
        # Diverged trials (accuracy at chance) would stretch the scale over nothing of interest:
        # colours span the better three quarters of the probes, worse scores are clipped.
        if direction == "maximize":
            low, extend = max(low, float(np.percentile([t.score for t in done], 25))), "min"
        else:
            high, extend = min(high, float(np.percentile([t.score for t in done], 75))), "max"
    max_probes = max((len(t) for t in results.values()), default=1)
    if max_epochs is None:  # the longest any trial trained stands for a full one
        max_epochs = max((t.epochs or 0 for trials in results.values() for t in trials), default=0) or None

    spent = [device_minutes(trials) for trials in results.values()]
    if budget_minutes:
        bar_kind, bar_total = "minutes", float(budget_minutes)
    elif budget_trials:
        bar_kind, bar_total = "trials", float(budget_trials)
    else:
        bar_kind, bar_total = "minutes", max(max(spent, default=0.0), 1e-9)
    curve_xmax = max([*spent, budget_minutes or 0.0, 1e-9]) * 1.03
    curve_values = [c[1] for trials in results.values() for c in best_so_far(list(trials), direction)]
    if optimum is not None:
        curve_values.append(optimum[1])
    curve_ylim = None
    if curve_values:
        lo, hi = min(curve_values), max(curve_values)
        pad = 0.05 * (hi - lo) if hi > lo else 0.01
        curve_ylim = (lo - pad, hi + pad)
    return Layout(
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
        max_epochs=max_epochs,
        direction=direction,
    )


def _draw(fig, lay: Layout, results: Mapping[str, Sequence[Trial]], title: str, legend_results=None):
    """Every panel of the figure, in the axes order the tests rely on: (heatmap, bar) per strategy,
    the two colour bars, then the curves. Returns the suptitle. `legend_results`: the trials the
    probe legend describes (default `results`; race.gif's first frame describes the whole race)."""
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
    _legend(heat_axes[0], lay, results if legend_results is None else legend_results)
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
    max_epochs: int | None = None,
    direction: str = "maximize",
):
    """The race figure; returns the matplotlib Figure (not yet saved).

    space: the two race dimensions, x first. results: strategy name -> its trials.
    surface(X, Y) -> scores at arrays of the two dimensions' values (exact heatmap), or None
    to interpolate from the probes. optimum: (params, score) of the known maximum, or None.
    max_epochs: a full trial's epochs, against which probes are sized (None: the most any trained).
    direction: the study's (maximize | minimize): the best trial's ring and the best-so-far curves.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lay = layout(
        space,
        results,
        surface,
        optimum,
        budget_minutes,
        budget_trials,
        unit,
        score_label,
        resolution,
        max_epochs,
        direction,
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
    """race.gif: the race figure redrawn probe by probe (Pillow, as matplotlib's PillowWriter writes
    it), the budget bars and best-so-far curves growing as the probes arrive; the last frame holds
    for a second. `figure_kwargs` are race_figure's. Returns the number of frames.

    Fast enough to write after every race (about 0.3 s a frame on a laptop core): the figure is
    laid out once, on the first frame; later frames replace only the probes, the bars and the
    curves, and each is one draw of the canvas (PillowWriter's savefig would draw it twice).
    Minor ticks are left off the frames: at the GIF's size they are a blur, and the costliest part.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    lay = layout(
        space,
        results,
        figure_kwargs.get("surface"),
        figure_kwargs.get("optimum"),
        figure_kwargs.get("budget_minutes"),
        figure_kwargs.get("budget_trials"),
        figure_kwargs.get("unit", "GPU minutes"),
        figure_kwargs.get("score_label", "validation accuracy"),
        min(int(figure_kwargs.get("resolution", 120)), 80),  # a GIF frame needs no finer heatmap
        figure_kwargs.get("max_epochs"),
        figure_kwargs.get("direction", "maximize"),
    )
    ordered = {name: sorted(trials, key=lambda t: t.number) for name, trials in results.items()}
    longest = max((len(t) for t in ordered.values()), default=0)
    ks = sorted({int(round(x)) for x in np.linspace(1, max(longest, 1), min(max(longest, 1), max_frames))})
    ks += [ks[-1]] * int(fps)  # hold the finished race
    # Drawn at the GIF's dpi from the start: a figure saved at another dpi lays its text out afresh.
    fig = Figure(figsize=(5.0 * len(lay.names) + 1.6, 10.5), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    n = len(lay.names)
    frames, background = [], None
    for frame, k in enumerate(ks):
        if frame > 0 and k == ks[frame - 1]:  # the finished race held: the same picture again
            frames.append(frames[-1])
            continue
        shown = {name: trials[:k] for name, trials in ordered.items()}
        frame_title = f"{title} (probe {k} of {longest})"
        if frame == 0:
            suptitle = _draw(fig, lay, shown, frame_title, legend_results=results)
            for ax in fig.axes:
                ax.minorticks_off()
            # The constrained layout costs more than the drawing: solve it once, on the first
            # frame, and keep the axes; later frames redraw only what the probes change.
            fig.canvas.draw()
            fig.set_layout_engine("none")
            axes = list(fig.axes)
            heat, bars, curves = axes[0 : 2 * n : 2], axes[1 : 2 * n : 2], axes[-1]
            # draw_landscape drew the heatmap, then the probes, then the optimum's star (if any)
            probes = [list(ax.collections[1:-1] if lay.optimum else ax.collections[1:]) for ax in heat]
        else:
            if background is None:
                background = _still_background(fig, heat, bars, curves, suptitle)
            fig.canvas.restore_region(background)
            suptitle.set_text(frame_title)
            for i, name in enumerate(lay.names):
                for artist in probes[i]:
                    artist.remove()
                probes[i] = draw_probes(heat[i], lay, name, i, shown[name])
                _animate_from(heat[i], PROBE_ZORDER)
                _redraw(bars[i])
                draw_budget_bar(bars[i], lay, name, i, shown[name])
            _redraw(curves)
            draw_best_curves(curves, lay, shown)
            _animate_from(curves, CURVE_ZORDER)
            _draw_moving(fig)
        width, height = fig.canvas.get_width_height()
        pixels = bytes(fig.canvas.buffer_rgba())
        frames.append(Image.frombuffer("RGBA", (width, height), pixels, "raw", "RGBA", 0, 1))
    frames[0].save(str(path), save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return len(ks)


# What later frames of race.gif change, and all drawn above it (a whole draw puts it beneath), is
# redrawn each frame: from the probes' zorder up on a heatmap (the star, the legend, the titles
# above them), from the lines' up on the curves (the spines, the title, the legend; their ticks,
# grid and axis labels, beneath, stay), and the budget bars whole (their labels change).
PROBE_ZORDER, CURVE_ZORDER = 3, 2


def _animate_from(ax, zorder: float) -> None:
    """Mark the artists of `ax` from `zorder` up animated: a canvas draw leaves them out."""
    for artist in ax.get_children():
        if artist.get_zorder() >= zorder and artist is not ax.patch:
            artist.set_animated(True)


def _still_background(fig, heat, bars, curves, suptitle):
    """The figure without what later frames change, drawn once: the heatmaps, their axes, the
    colour bars, the curves' axes and grid."""
    for ax in heat:
        _animate_from(ax, PROBE_ZORDER)
    _animate_from(curves, CURVE_ZORDER)
    for artist in (suptitle, *bars):
        artist.set_animated(True)
    fig.canvas.draw()
    return fig.canvas.copy_from_bbox(fig.bbox)


def _draw_moving(fig) -> None:
    """Draw the animated artists over the restored background in the order a whole draw gives
    them (the figure's axes in turn, each one's artists by zorder, the figure's title last)."""
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        if ax.get_animated():
            ax.draw(renderer)
            continue
        for artist in sorted(ax.get_children(), key=lambda a: a.get_zorder()):
            if artist.get_animated():
                artist.draw(renderer)
    for artist in fig.texts:  # the suptitle among them
        if artist.get_animated():
            artist.draw(renderer)


def _redraw(ax) -> None:
    """Empty `ax` of what a panel function drew on it, for the function to draw again: its bars,
    lines, texts and legend go; the axes, their limits and ticks stay (the panel functions set the
    same ones each frame, and cla() would rebuild every tick, the costliest part of a frame)."""
    for artist in [*ax.patches, *ax.lines, *ax.texts, *ax.collections]:
        artist.remove()
    ax.containers.clear()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
