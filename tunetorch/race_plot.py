"""The race figure (matplotlib, Agg): where each strategy probed, and how fast its best score rose.

    top row     one panel per strategy over the two race dimensions: the landscape as a
                heatmap, each probe a dot coloured by the order it was made, failed probes
                as crosses, the strategy's best probe circled, the optimum (when known) a star;
    under each  a budget bar: device minutes spent against the budget;
    bottom      best score so far against device minutes, one curve per strategy.

The heatmap is exact when a `surface` function is given (the synthetic landscapes); otherwise
it is interpolated from every strategy's completed probes (`interpolate`), so the three panels
share one estimate of the landscape and differ only in where each strategy looked.

Symbols in `interpolate`: P: (n_probes, 2) probe coordinates in the unit square (the space's
encoding, so log dimensions are in log coordinates), s: (n_probes,) scores, Q: (n_cells, 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from tunetorch.history import best_trial
from tunetorch.space import SearchSpace
from tunetorch.trial import Trial, TrialState

COLOURS = {"grid": "tab:blue", "random": "tab:orange", "bayes": "tab:green"}
OTHER_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
HEATMAP_CMAP = "Blues"  # white = low score, dark blue = high
ORDER_CMAP = "autumn"  # probe order: red (first) -> yellow (last), readable on white and on blue


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
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from tunetorch.history import best_so_far, device_minutes

    if len(space) != 2 or not all(hasattr(d, "low") for d in space.dims):
        raise ValueError(f"race_figure needs two numeric dimensions, got {space.names}")
    dx, dy = space.dims
    names = list(results)
    n = len(names)

    # --- the landscape on a (resolution x resolution) lattice of cell centres ---------------
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
    score_norm = Normalize(low, max(high, low + 1e-9))
    max_probes = max((len(t) for t in results.values()), default=1)
    order_norm = Normalize(1, max(max_probes, 2))

    fig = Figure(figsize=(5.0 * n + 1.6, 10.5), layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(3, n + 2, height_ratios=[4.2, 0.5, 3.3], width_ratios=[1] * n + [0.05, 0.05])
    fig.suptitle(title, fontsize=14)

    spent_all = {name: device_minutes(trials) for name, trials in results.items()}
    bar_total = budget_minutes if budget_minutes is not None else max(spent_all.values(), default=0.0)
    bar_total = max(bar_total, max(spent_all.values(), default=0.0), 1e-9)

    heat_axes, mesh = [], None
    for i, name in enumerate(names):
        trials = sorted(results[name], key=lambda t: t.number)
        ax = fig.add_subplot(gs[0, i])
        heat_axes.append(ax)
        mesh = ax.pcolormesh(X, Y, Z, cmap=HEATMAP_CMAP, norm=score_norm, shading="nearest", rasterized=True)
        ok = [t for t in trials if t.state == TrialState.COMPLETE]
        failed = [t for t in trials if t.state == TrialState.FAIL]
        order = {t.number: k + 1 for k, t in enumerate(trials)}
        if ok:
            ax.scatter(
                [t.params[dx.name] for t in ok],
                [t.params[dy.name] for t in ok],
                c=[order[t.number] for t in ok],
                cmap=ORDER_CMAP,
                norm=order_norm,
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
        best = best_trial(ok)
        if best is not None:
            ax.scatter(
                [best.params[dx.name]],
                [best.params[dy.name]],
                s=320,
                facecolors="none",
                edgecolors="red",
                linewidths=2.4,
                zorder=4,
                clip_on=False,
            )
        if optimum is not None:
            ax.scatter(
                [optimum[0][dx.name]],
                [optimum[0][dy.name]],
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
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(ys[0], ys[-1])
        ax.set_xlabel(f"{dx.name}{' (log scale)' if dx.log else ''}")
        if i == 0:
            ax.set_ylabel(f"{dy.name}{' (log scale)' if dy.log else ''}")
        best_txt = f"best {best.score:.3f}" if best is not None else "no completed probe"
        ax.set_title(
            f"{name}: {best_txt} after {len(trials)} probes", color=_colour(name, i), fontweight="bold"
        )

        # the budget bar: device minutes spent of the budget
        bar = fig.add_subplot(gs[1, i])
        spent = spent_all[name]
        bar.barh([0], [bar_total], color="0.88", edgecolor="0.5", height=0.8)
        bar.barh([0], [spent], color=_colour(name, i), height=0.8)
        bar.set_xlim(0, bar_total * 1.02)
        bar.set_ylim(-0.5, 0.5)
        bar.set_yticks([])
        bar.tick_params(axis="x", labelsize=8)
        of = f" of {budget_minutes:g} budget" if budget_minutes is not None else ""
        count = f"{len([t for t in trials if t.finished])}" + (
            f" of {budget_trials}" if budget_trials else ""
        )
        bar.set_xlabel(f"{unit} spent: {spent:.3g}{of} ({count} trials)", fontsize=9)

    heat_axes[0].legend(
        handles=[
            Line2D([], [], marker="o", ls="", mfc="orange", mec="black", label="probe (colour: order)"),
            Line2D([], [], marker="o", ls="", mfc="none", mec="red", mew=2, ms=12, label="strategy's best"),
            *(
                [Line2D([], [], marker="x", ls="", color="black", label="failed probe")]
                if any(t.state == TrialState.FAIL for ts in results.values() for t in ts)
                else []
            ),
            *(
                [Line2D([], [], marker="*", ls="", mfc="white", mec="black", ms=13, label="optimum")]
                if optimum is not None
                else []
            ),
        ],
        loc="lower left",
        fontsize=8,
        framealpha=0.85,
    )
    if mesh is not None:
        fig.colorbar(mesh, cax=fig.add_subplot(gs[0, n]), extend=extend, label=f"{score_label} ({heat_note})")
        from matplotlib.cm import ScalarMappable
        from matplotlib.ticker import MaxNLocator

        order_bar = fig.colorbar(
            ScalarMappable(order_norm, ORDER_CMAP),
            cax=fig.add_subplot(gs[0, n + 1]),
            label="probe order (1 = first)",
        )
        order_bar.locator = MaxNLocator(integer=True)
        order_bar.update_ticks()

    # --- bottom: best score so far against device minutes ------------------------------------
    ax = fig.add_subplot(gs[2, :n])
    for i, name in enumerate(names):
        curve = best_so_far(list(results[name]))
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
            label=f"{name}: best {best[-1]:.3f} after {mins[-1]:.3g} {unit}",
        )
    if optimum is not None:
        ax.axhline(optimum[1], color="0.4", ls=":", lw=1.2, label=f"optimum {optimum[1]:.3f}")
    if budget_minutes is not None:
        ax.axvline(budget_minutes, color="0.4", ls="--", lw=1.2, label=f"budget {budget_minutes:g} {unit}")
    ax.set_xlim(left=0)
    ax.set_xlabel(unit)
    ax.set_ylabel(f"best {score_label} so far")
    ax.set_title(f"Best score so far against {unit}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    return fig
