"""Plots of a study (matplotlib, Agg): progress.png, params.png and importance.png.

The score axis is fitted to where the search happens: from the lower quartile of the scored
trials (upper quartile when minimizing) to the best, so one diverged trial at chance level does
not flatten the rest into a line. Trials outside are drawn on the edge as arrows and counted.

Why one long module: three plots that share one axis rule (the interesting range, outliers
at the edge) and one colour rule (trial order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunetorch.history import SCORED, best_so_far, best_trial, sign
from tunetorch.space import Categorical, Float, Int, SearchSpace
from tunetorch.trial import Trial, TrialState
from tunetorch.words import GPU_MINUTES, count

ORDER_CMAP = "viridis"  # trial order: dark blue (first) -> yellow (last)
BEST_COLOUR = "tab:red"  # the best trial's ring: not in viridis
PRUNED_COLOUR = "tab:orange"
FAIL_COLOUR = "black"


# A picture's PNG records what it was drawn from (a digest of its inputs, in a text chunk): the
# reports are rewritten after each run and after the test look, and a picture whose inputs did not
# change is kept instead of drawn again (params.png and importance.png do not show the test score).
INPUTS = "tunetorch inputs"


def drawn_from(*args: Any, **kwargs: Any) -> str:
    """The digest of a picture's inputs (trials, options): their repr, which holds every field."""
    import hashlib

    return hashlib.sha256(repr((args, sorted(kwargs.items()))).encode()).hexdigest()


def draw(path: Path, figure: Any, dpi: int, *inputs: Any, **options: Any) -> bool:
    """`figure(*inputs, **options)` saved as the PNG `path`, with the digest of its inputs, unless the
    PNG there was drawn from the same (`unchanged`). A figure of None (nothing to show) removes the
    file, never a stale picture. Returns whether a picture is there."""
    digest = drawn_from(*inputs, **options)
    if unchanged(path, digest):
        return True
    fig = figure(*inputs, **options)
    if fig is None:
        path.unlink(missing_ok=True)
        return False
    fig.savefig(path, dpi=dpi, metadata={INPUTS: digest})
    return True


def unchanged(path: Path, inputs: str) -> bool:
    """Whether the PNG at `path` was drawn from `inputs` (read from its header, not its pixels)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.text.get(INPUTS) == inputs
    except (OSError, ValueError, SyntaxError):  # none there, or not a PNG we can read: draw it
        return False


def _figure(**kw):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kw)
    FigureCanvasAgg(fig)
    return fig


def score_limits(
    scores: Sequence[float], direction: str = "maximize", keep: Sequence[float] = ()
) -> tuple[float, float]:
    """(low, high) of the score axis: the better three quarters of `scores` and every value of `keep`
    (the best-so-far curve after its first point, the test score), with a 6% margin."""
    s = sign(direction)
    values = np.asarray([v for v in scores if v is not None and np.isfinite(v)], dtype=float)
    if values.size == 0:
        return 0.0, 1.0
    if values.size >= 4:
        cut = np.percentile(s * values, 25)  # in "higher is better" units
        inside = values[s * values >= cut]
    else:
        inside = values
    inside = np.concatenate([inside, [v for v in keep if v is not None and np.isfinite(v)]])
    low, high = float(inside.min()), float(inside.max())
    pad = 0.06 * (high - low) if high > low else max(abs(high) * 0.05, 1e-3)
    return low - pad, high + pad


def _edge_points(ax, xs, ys, low, high, colour="0.45"):
    """Points outside (low, high) drawn on the nearer edge as arrows; returns how many."""
    below = [(x, y) for x, y in zip(xs, ys, strict=True) if y < low]
    above = [(x, y) for x, y in zip(xs, ys, strict=True) if y > high]
    for pts, edge, marker in ((below, low, "v"), (above, high, "^")):
        if pts:
            ax.scatter(
                [p[0] for p in pts],
                [edge] * len(pts),
                marker=marker,
                s=36,
                color=colour,
                clip_on=False,
                zorder=4,
            )
    return len(below) + len(above)


def plot_progress(trials: Sequence[Trial], path: Path, **kwargs: Any) -> None:
    """progress.png (see `progress_figure`), unless the file there shows the same (`draw`)."""
    draw(path, progress_figure, 110, trials, **kwargs)


def progress_figure(
    trials: Sequence[Trial],
    *,
    unit: str = GPU_MINUTES,
    direction: str = "maximize",
    metric: str = "val_accuracy",
    test: Mapping[str, Any] | None = None,
) -> None:
    """Best score so far against cumulative device minutes; every trial a dot coloured by order,
    pruned trials hollow, failed ones a cross on the lower edge, the best trial ringed and the test
    score (`test`: {"trial", "value", "label"}) a diamond at the best trial's minute."""
    fig = _figure(figsize=(8, 4.6), layout="constrained")
    ax = fig.add_subplot()
    ordered = sorted((t for t in trials if t.finished), key=lambda t: t.number)
    curve = best_so_far(ordered, direction)
    spent, x_at = 0.0, {}
    for t in ordered:
        spent += (t.device_seconds or 0.0) / 60.0
        x_at[t.number] = spent
    scored = [t for t in ordered if t.state in SCORED and t.score is not None]
    keep = [c[1] for c in curve[1:]] + ([test["value"]] if test and test.get("value") is not None else [])
    low, high = score_limits([t.score for t in scored], direction, keep=keep)
    n = max(len(ordered), 2)
    from matplotlib.colors import Normalize

    norm = Normalize(0, n - 1)
    if curve:
        xs, ys, _ = zip(*curve, strict=True)
        ax.step(xs, ys, where="post", color="tab:blue", lw=2, label="best so far", zorder=2)
    complete = [t for t in scored if t.state == TrialState.COMPLETE]
    pruned = [t for t in scored if t.state == TrialState.PRUNED]
    if complete:
        sc = ax.scatter(
            [x_at[t.number] for t in complete],
            [t.score for t in complete],
            c=[t.number for t in complete],
            cmap=ORDER_CMAP,
            norm=norm,
            s=30,
            edgecolors="black",
            linewidths=0.4,
            label="trial (colour: number)",
            zorder=3,
        )
        fig.colorbar(sc, ax=ax, label="trial number", pad=0.01)
    if pruned:
        ax.scatter(
            [x_at[t.number] for t in pruned],
            [t.score for t in pruned],
            facecolors="none",
            edgecolors=PRUNED_COLOUR,
            marker="s",
            s=30,
            linewidths=1.2,
            label=count(len(pruned), "pruned trial"),
            zorder=3,
        )
    outside = _edge_points(ax, [x_at[t.number] for t in scored], [t.score for t in scored], low, high)
    failed = [t for t in ordered if t.state == TrialState.FAIL]
    if failed:
        ax.scatter(
            [x_at[t.number] for t in failed],
            [low] * len(failed),
            marker="x",
            color=FAIL_COLOUR,
            s=40,
            clip_on=False,
            label=count(len(failed), "failed trial"),
            zorder=4,
        )
    best = best_trial(ordered, direction)
    if best is not None:
        ax.scatter(
            [x_at[best.number]],
            [best.score],
            s=200,
            facecolors="none",
            edgecolors=BEST_COLOUR,
            linewidths=2,
            label=f"best: trial {best.number}, {best.score:.4f}",
            zorder=5,
        )
    if test and test.get("value") is not None and test.get("trial") in x_at:
        ax.scatter(
            [x_at[test["trial"]]],
            [test["value"]],
            marker="D",
            s=70,
            color=BEST_COLOUR,
            edgecolors="black",
            label=f"{test.get('label', 'test')} {test['value']:.4f} (trial {test['trial']})",
            zorder=6,
        )
    if outside:
        ax.plot([], [], "v", color="0.45", label=f"outside the axis ({outside}), on the edge")
    ax.set_ylim(low, high)
    ax.set_xlim(left=0)
    ax.set_xlabel(unit)
    ax.set_ylabel(metric)
    better = "higher" if direction == "maximize" else "lower"
    ax.set_title(f"Best {metric} so far against {unit} ({better} is better)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if direction == "maximize" else "upper right", fontsize=8, framealpha=0.85)
    return fig


def _infer_dim(name: str, values: list):
    if all(isinstance(v, bool) or isinstance(v, str) for v in values):
        return Categorical(name, tuple(dict.fromkeys(values)))
    if all(isinstance(v, int) for v in values):
        return Int(name, min(values), max(values))
    return Float(name, float(min(values)), float(max(values)))


def plot_params(trials: Sequence[Trial], path: Path, **kwargs: Any) -> None:
    """params.png (see `params_figure`), unless the file there shows the same (`draw`); none when the
    trials have no parameters."""
    draw(path, params_figure, 100, trials, **kwargs)


def params_figure(
    trials: Sequence[Trial],
    *,
    space: SearchSpace | None = None,
    direction: str = "maximize",
    metric: str = "val_accuracy",
) -> None:
    """Score against each searched parameter, one panel each. Colour: trial order. Log axes where
    the space says log; ints and categoricals in jittered strips, one per value."""
    scored = sorted((t for t in trials if t.state in SCORED and t.score is not None), key=lambda t: t.number)
    if space is not None:
        dims = list(space.dims)
    else:
        names = list(dict.fromkeys(k for t in trials for k in t.params))
        dims = [_infer_dim(n, [t.params[n] for t in trials if n in t.params]) for n in names]
    if not dims:
        return None
    cols = min(len(dims), 3)
    rows = math.ceil(len(dims) / cols)
    fig = _figure(figsize=(4.4 * cols + 0.8, 3.5 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    low, high = score_limits([t.score for t in scored], direction)
    best = best_trial(scored, direction)
    from matplotlib.colors import Normalize

    n_finished = max((t.number for t in trials), default=1)
    norm = Normalize(0, max(n_finished, 1))
    rng = np.random.default_rng(0)  # the jitter is fixed: the same study draws the same picture
    jitter = rng.uniform(-0.18, 0.18, size=max((t.number for t in trials), default=0) + 1)
    mappable = None
    for ax, dim in zip(axes.flat, dims, strict=False):
        pts = [t for t in scored if dim.name in t.params]

        def x_of(t, dim=dim):
            v = t.params[dim.name]
            if isinstance(dim, Categorical):
                return dim.choices.index(v) + jitter[t.number] if v in dim.choices else np.nan
            if isinstance(dim, Int) and not dim.log:
                return v + jitter[t.number]
            return v

        ys = [t.score for t in pts]
        xs = [x_of(t) for t in pts]
        complete = [i for i, t in enumerate(pts) if t.state == TrialState.COMPLETE]
        pruned = [i for i, t in enumerate(pts) if t.state == TrialState.PRUNED]
        if complete:
            mappable = ax.scatter(
                [xs[i] for i in complete],
                [ys[i] for i in complete],
                c=[pts[i].number for i in complete],
                cmap=ORDER_CMAP,
                norm=norm,
                s=26,
                edgecolors="black",
                linewidths=0.4,
                zorder=3,
            )
        if pruned:
            ax.scatter(
                [xs[i] for i in pruned],
                [ys[i] for i in pruned],
                marker="s",
                facecolors="none",
                edgecolors=PRUNED_COLOUR,
                s=26,
                zorder=3,
                label="pruned",
            )
        outside = _edge_points(ax, xs, ys, low, high)
        if outside:
            ax.plot([], [], "v", color="0.45", label=f"outside the axis ({outside})")
        if best is not None and dim.name in best.params:
            ax.scatter(
                [x_of(best)],
                [best.score],
                s=170,
                facecolors="none",
                edgecolors=BEST_COLOUR,
                lw=2,
                zorder=5,
                label=f"best (trial {best.number})",
            )
        if isinstance(dim, Categorical):
            ax.set_xticks(range(len(dim.choices)), [str(c) for c in dim.choices])
            ax.set_xlim(-0.5, len(dim.choices) - 0.5)
        elif isinstance(dim, Int) and not dim.log:
            ticks = list(range(dim.low, dim.high + 1))
            if len(ticks) <= 12:
                ax.set_xticks(ticks)
            ax.set_xlim(dim.low - 0.5, dim.high + 0.5)
        else:
            # A small margin outside the space's bounds: probes on a bound stay whole dots.
            if dim.log:
                ax.set_xscale("log")
                span = (dim.high / dim.low) ** 0.03
                ax.set_xlim(dim.low / span, dim.high * span)
            elif dim.high > dim.low:
                pad = 0.03 * (dim.high - dim.low)
                ax.set_xlim(dim.low - pad, dim.high + pad)
        kind = " (log scale)" if getattr(dim, "log", False) else ""
        ax.set_xlabel(f"{dim.name}{kind}")
        ax.set_ylabel(metric)
        ax.set_ylim(low, high)
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        axes.flat[0].legend(fontsize=8, loc="lower right" if direction == "maximize" else "upper right")
    for ax in list(axes.flat)[len(dims) :]:
        ax.set_visible(False)
    if mappable is not None:
        fig.colorbar(mappable, ax=axes, label="trial number", shrink=0.9)
    fig.suptitle(
        f"{metric} against each parameter ({count(len(scored), 'scored trial')}; ints and choices jittered)"
    )
    return fig


def plot_importance(importance: Mapping[str, Any], path: Path) -> bool:
    """importance.png (see `importance_figure`), unless the file there shows the same (`draw`).
    False (nothing written) without estimates."""
    if not (importance and importance.get("importance")):
        return False
    return draw(path, importance_figure, 100, importance)


def importance_figure(importance: Mapping[str, Any]) -> Any:
    """Horizontal bars, the most important parameter on top."""
    shares = importance["importance"]
    names = list(shares)[::-1]
    values = [shares[n] for n in names]
    fig = _figure(figsize=(7.5, 0.5 * len(names) + 1.9), layout="constrained")
    ax = fig.add_subplot()
    bars = ax.barh(names, values, color="tab:blue")
    for bar, v in zip(bars, values, strict=True):
        ax.text(
            bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{v:.0%}", va="center", fontsize=9
        )
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("share of the score's variance explained by the parameter alone")
    trials = count(importance["n_trials"], "trial")
    if importance.get("n_pruned"):
        trials += f", {importance['n_pruned']} pruned, by standing"
    ax.set_title(f"Which parameters mattered\n(fANOVA on a random forest, {trials})")
    ax.grid(axis="x", alpha=0.3)
    return fig
