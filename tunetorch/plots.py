"""Plots of a study (matplotlib, Agg backend): progress.png and params.png."""

from __future__ import annotations

import math
from pathlib import Path

from tunetorch.trial import Trial, TrialState


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_progress(trials: list[Trial], path: Path, unit: str = "GPU minutes") -> None:
    """Best validation score so far against cumulative device minutes; failed trials marked."""
    from tunetorch.history import best_so_far

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    curve = best_so_far(trials)
    if curve:
        xs, ys, _ = zip(*curve, strict=True)
        ax.step(xs, ys, where="post", color="tab:blue", label="best so far")
    spent, done_x, done_y, fail_x = 0.0, [], [], []
    for t in sorted((t for t in trials if t.finished), key=lambda t: t.number):
        spent += (t.device_seconds or 0.0) / 60.0
        if t.state == TrialState.COMPLETE:
            done_x.append(spent)
            done_y.append(t.score)
        else:
            fail_x.append(spent)
    ax.scatter(done_x, done_y, s=14, color="tab:gray", alpha=0.6, label="trial")
    if fail_x:
        floor = min(done_y) if done_y else 0.0
        ax.scatter(fail_x, [floor] * len(fail_x), marker="x", color="tab:red", label="failed trial")
    ax.set_xlabel(unit)
    ax.set_ylabel("validation accuracy")
    ax.set_title("Best score so far against device time")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_params(trials: list[Trial], path: Path) -> None:
    """Score against value, one panel per searched dimension."""
    plt = _pyplot()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    names = list(trials[0].params) if trials else []  # the space's own order
    if not names:
        return
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    best = max(done, key=lambda t: t.score) if done else None
    for ax, name in zip(axes.flat, names, strict=False):
        values = [t.params[name] for t in done]
        numeric = all(isinstance(v, (int, float)) for v in values)
        xs = values if numeric else [str(v) for v in values]
        ax.scatter(xs, [t.score for t in done], s=16, alpha=0.7)
        if best is not None:
            bx = best.params[name] if numeric else str(best.params[name])
            ax.scatter([bx], [best.score], s=80, facecolors="none", edgecolors="tab:red", label="best")
        if numeric and values and min(values) > 0 and max(values) / min(values) > 50:
            ax.set_xscale("log")
        elif values and all(isinstance(v, int) for v in values):
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel(name)
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"score against {name}")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(loc="lower right")
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
