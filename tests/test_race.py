"""The race: landscapes, the figure's structure, and `python -m tunetorch.race` end to end (fast)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

# bayes joins the race once its module exists; grid and random always run.
STRATEGIES = ["grid", "random"] + (
    ["bayes"] if importlib.util.find_spec("tunetorch.strategies.bayes") else []
)
RACE_STRATEGIES = f"race.strategies=[{','.join(STRATEGIES)}]"


def run_race(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "tunetorch.race", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def compose_race(*overrides: str):
    from hydra import compose, initialize_config_dir

    from tunetorch.cli import conf_dir

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose("race", overrides=["study.dir=unused", RACE_STRATEGIES, *overrides])


def synthetic_results(landscape: str = "bumpy", n_trials: int = 12, seed: int = 0):
    from tunetorch.race import make_plan, run_synthetic
    from tunetorch.search import Budget
    from tunetorch.strategies import make_strategy
    from tunetorch.study import Study

    cfg = compose_race(f"landscape={landscape}", f"budget.n_trials={n_trials}", f"study.seed={seed}")
    plan = make_plan(cfg)
    results = {}
    for e in plan.entrants:
        study = Study(plan.space, make_strategy(e.name, plan.space, seed=seed, **e.options))
        run_synthetic(study, plan.landscape, Budget(n_trials, None), seed=seed)
        results[e.name] = study.trials
    return cfg, plan, results


# --- landscapes --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "lr", "wd"), [("bumpy", 10**-1.6, 10**-2.6), ("smooth", 10**-2.3, 10**-3.7)]
)
def test_landscape_optimum_is_where_the_docs_say(name, lr, wd):
    from tunetorch.landscapes import optimum, score

    best_lr, best_wd, best = optimum(name)
    assert best == pytest.approx(0.95, abs=1e-3)
    assert np.log10(best_lr) == pytest.approx(np.log10(lr), abs=1e-3)
    assert np.log10(best_wd) == pytest.approx(np.log10(wd), abs=1e-3)
    rng = np.random.default_rng(0)
    probes = score(name, 10 ** rng.uniform(-4, -1, 5000), 10 ** rng.uniform(-6, -2, 5000))
    assert probes.max() <= best + 1e-9 and probes.min() >= 0.4


def test_bumpy_grid_lattice_misses_the_summit():
    from tunetorch.landscapes import score

    X, Y = np.meshgrid(np.geomspace(1e-4, 1e-1, 5), np.geomspace(1e-6, 1e-2, 5))
    assert score("bumpy", X, Y).max() == pytest.approx(0.685, abs=1e-3)  # a decoy, as documented


def test_cost_grows_as_lr_shrinks():
    from tunetorch.landscapes import cost_seconds

    lrs = np.geomspace(1e-4, 1e-1, 7)
    costs = cost_seconds(lrs)
    assert np.all(np.diff(costs) < 0)
    assert cost_seconds(0.1) == pytest.approx(20.0) and cost_seconds(1e-4) == pytest.approx(20 * 1000**0.4)


# --- the figure ----------------------------------------------------------------------------------
def _structure(fig, names):
    from matplotlib.collections import QuadMesh
    from matplotlib.patches import Rectangle

    n = len(names)
    assert len(fig.axes) == 2 * n + 3  # n heatmaps, n budget bars, the curves, two colour bars
    heat, bars, curves = fig.axes[0 : 2 * n : 2], fig.axes[1 : 2 * n : 2], fig.axes[-1]
    for ax, name in zip(heat, names, strict=True):
        meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
        assert len(meshes) == 1 and np.isfinite(np.asarray(meshes[0].get_array())).all()
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert ax.get_title().startswith(f"{name}:")
    for ax in bars:
        assert len([p for p in ax.patches if isinstance(p, Rectangle)]) == 2  # the budget and the spent part
        assert "minutes spent" in ax.get_xlabel()
    labelled = [ln for ln in curves.get_lines() if ln.get_label().split(":")[0] in names]
    assert len(labelled) == n
    assert "minutes" in curves.get_xlabel() and "so far" in curves.get_ylabel()
    return heat, bars, curves


def test_figure_structure_on_a_landscape():
    from tunetorch.race import figure

    cfg, plan, results = synthetic_results()
    fig = figure(cfg, plan, results, "simulated GPU minutes", "the bumpy landscape")
    heat, bars, curves = _structure(fig, STRATEGIES)
    for ax, name in zip(heat, STRATEGIES, strict=True):
        probes = ax.collections[1]  # the probes, coloured by order
        assert len(probes.get_offsets()) == len(results[name])
        assert list(probes.get_array()) == list(range(1, len(results[name]) + 1))
    assert any(ln.get_label().startswith("optimum") for ln in curves.get_lines())
    for bar, name in zip(bars, STRATEGIES, strict=True):
        # A trials budget: the bar's full length is the 12 trials, the filled part the trials run.
        budget, run = (p.get_width() for p in bar.patches)
        assert budget == 12 and run == len(results[name]) and "trials run:" in bar.get_xlabel()


def test_figure_interpolates_without_a_surface_and_shows_the_minute_budget():
    from tunetorch.race_plot import race_figure

    _, plan, results = synthetic_results(n_trials=6)
    fig = race_figure(plan.space, results, budget_minutes=10.0, unit="GPU minutes")
    _, bars, curves = _structure(fig, STRATEGIES)
    assert any(ln.get_label().startswith("budget") for ln in curves.get_lines())
    assert all(max(p.get_width() for p in b.patches) >= 10.0 for b in bars)


def test_race_gif_fills_probe_by_probe(tmp_path):
    from PIL import Image

    from tunetorch.race_plot import save_race_gif

    _, plan, results = synthetic_results(n_trials=4)
    frames = save_race_gif(tmp_path / "race.gif", plan.space, results, budget_trials=4, fps=2, resolution=30)
    with Image.open(tmp_path / "race.gif") as gif:
        assert gif.n_frames >= 4 and frames == 4 + 2  # one per probe, the last held for a second
        gif.seek(0)
        first = np.asarray(gif.convert("RGB")).astype(int)
        gif.seek(3)
        last = np.asarray(gif.convert("RGB")).astype(int)
    below_title = slice(first.shape[0] // 10, None)  # the title changes anyway ("probe k of n")
    changed = (np.abs(first[below_title] - last[below_title]).max(axis=2) > 60).sum()
    assert first.shape == last.shape and changed > 5000  # probes, bars and curves grew (palette noise: ~1300)


def test_best_ring_is_drawn_above_the_optimum_star_and_off_the_order_colours():
    from matplotlib import colormaps
    from matplotlib.collections import PathCollection

    from tunetorch.race import figure
    from tunetorch.race_plot import BEST_COLOUR, ORDER_CMAP

    cfg, plan, results = synthetic_results(n_trials=6)
    fig = figure(cfg, plan, results, "simulated GPU minutes", "the bumpy landscape")
    dots = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    star = next(c for c in dots if c.get_sizes()[0] == 220)
    ring = next(c for c in dots if c.get_sizes()[0] == 320)
    assert ring.get_zorder() > star.get_zorder()
    reds = [colormaps[ORDER_CMAP](x) for x in np.linspace(0, 1, 50)]
    assert all(not (r > 0.8 and g < 0.3 and b < 0.3) for r, g, b, _ in reds) and BEST_COLOUR == "red"


def test_minute_budget_bar_is_the_budget_and_marked_without_one_the_common_maximum_is_said():
    from tunetorch.race_plot import race_figure

    _, plan, results = synthetic_results(n_trials=6)
    fig = race_figure(plan.space, results, budget_minutes=10.0, unit="GPU minutes")
    bar = fig.axes[1]
    assert bar.patches[0].get_width() == 10.0 and any(ln.get_xdata()[0] == 10.0 for ln in bar.get_lines())
    free = race_figure(plan.space, results, unit="GPU minutes").axes[1]
    assert "the largest spend" in free.get_xlabel() and "no budget set" in free.get_xlabel()


def test_interpolate_handles_few_duplicate_and_collinear_probes():
    from tunetorch.race_plot import interpolate

    Q = np.random.default_rng(0).random((50, 2))
    one = interpolate(np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([0.2, 0.4]), Q)
    assert np.allclose(one, 0.3)
    line = interpolate(np.array([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]), np.array([0.1, 0.5, 0.9]), Q)
    assert np.isfinite(line).all() and line.min() >= 0.1 and line.max() <= 0.9
    P = np.random.default_rng(1).random((20, 2))
    s = P.sum(axis=1)
    est = interpolate(P, s, P)
    assert np.abs(est - s).max() < 0.05


# --- the entry point -----------------------------------------------------------------------------
def test_synthetic_race_end_to_end(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    d = tmp_path / "race"
    out = run_race("landscape=bumpy", RACE_STRATEGIES, f"study.dir={d}", "budget.n_trials=12")
    assert out.returncode == 0, out.stderr + out.stdout
    assert (d / "race.png").stat().st_size > 20_000
    summary = json.loads((d / "race.json").read_text())
    assert list(summary["strategies"]) == STRATEGIES and summary["unit"] == "simulated GPU minutes"
    assert summary["landscape"]["name"] == "bumpy"
    for name in STRATEGIES:
        s = summary["strategies"][name]
        assert s["n_trials"] <= 12 and s["gpu_minutes"] > 0 and 0.4 <= s["best"]["score"] <= 0.951
        assert set(s["best"]["params"]) == {"optimizer.lr", "optimizer.weight_decay"}
        assert (d / name / "journal.sqlite").is_file()
        ea = EventAccumulator(str(d / "tb" / name)).Reload()
        steps = [e.step for e in ea.Scalars("race/best_score")]
        assert len(steps) == s["n_trials"] and steps == sorted(steps)
    assert summary["strategies"]["grid"]["options"]["resolution"] == 3  # auto: isqrt(12)
    assert EventAccumulator(str(d / "tb" / "figure"), size_guidance={"images": 0}).Reload().Tags()["images"]
    assert not (d / ".hydra").exists() and not (ROOT / "outputs").exists()

    again = run_race("landscape=bumpy", RACE_STRATEGIES, f"study.dir={d}", "budget.n_trials=12")
    assert again.returncode == 0, again.stderr
    assert (
        json.loads((d / "race.json").read_text())["strategies"] == summary["strategies"]
    )  # resumed, nothing re-run
    other = run_race("landscape=smooth", RACE_STRATEGIES, f"study.dir={d}", "budget.n_trials=12")
    assert other.returncode == 2 and "landscape" in other.stderr


def test_synthetic_race_under_a_minute_budget(tmp_path):
    from tunetorch.landscapes import cost_seconds

    d = tmp_path / "race"
    out = run_race(
        "landscape=smooth",
        RACE_STRATEGIES,
        f"study.dir={d}",
        "budget.n_trials=null",
        "budget.gpu_minutes=15",
        "race.options.grid.resolution=4",
    )
    assert out.returncode == 0, out.stderr + out.stdout
    worst = float(cost_seconds(1e-4)) / 60  # the most one trial can overshoot by
    for name, s in json.loads((d / "race.json").read_text())["strategies"].items():
        if name == "grid" and s["n_trials"] == 16:
            continue  # the 4 x 4 lattice may run out first
        assert 15 <= s["gpu_minutes"] < 15 + worst


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["landscape=hilly"], "landscape: 'hilly' is not one of bumpy, smooth"),
        (["strategy=grid"], "strategy: the race runs every strategy in race.strategies"),
        (["race.dims=[optimizer.lr]"], "race.dims:"),
        (["race.dims=[optimizer.lr,nope]"], "race.dims: 'nope' is not a dimension of space"),
        (
            ["landscape=bumpy", "race.dims=[optimizer.lr,model.dropout]"],
            "race.dims: ['optimizer.lr', 'model.dropout']",
        ),
        (["race.strategies=[grid,annealing]"], "race.strategies: 'annealing' is not one of"),
        (["race.options.grid.resolution=0"], "race.options.grid"),
        (["landscape=bumpy", "landscape.noise=-1"], "landscape.noise: -1"),
        (["budget.n_trials=0"], "budget.n_trials: 0"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, args, message):
    d = tmp_path / "race"
    strategies = [] if any(a.startswith("race.strategies") for a in args) else [RACE_STRATEGIES]
    out = run_race(*strategies, *args, f"study.dir={d}", timeout=60)
    assert out.returncode == 2, out.stderr + out.stdout
    assert (
        out.stderr.startswith("error: ")
        and message in out.stderr
        and len(out.stderr.strip().splitlines()) == 1
    )
    assert not d.exists()


def test_real_training_race_on_digits(tmp_path):
    """The smallest real race: every strategy trains 2 MLPs for 1 epoch on digits, in worker processes."""
    d = tmp_path / "race"
    out = run_race(
        RACE_STRATEGIES,
        f"study.dir={d}",
        "budget.n_trials=2",
        "trainer.epochs=1",
        "dataset=digits",
        "tuner.devices=cpu",
        "tuner.workers=1",
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert (d / "race.png").stat().st_size > 20_000
    summary = json.loads((d / "race.json").read_text())
    assert summary["unit"] == "CPU-device minutes" and summary["landscape"] is None
    for name in STRATEGIES:
        s = summary["strategies"][name]
        # grid's auto resolution is the largest square lattice within the budget: 1 x 1 for 2 trials
        assert s["n_trials"] == (1 if name == "grid" else 2)
        assert s["n_failed"] == 0 and s["gpu_minutes"] > 0 and s["exit"] == 0
        assert set(s["best"]["params"]) == {"optimizer.lr", "optimizer.weight_decay"}  # the space cut to the race dims
        study = json.loads((d / name / "summary.json").read_text())
        assert study["strategy"] == name and study["test"] is None  # the race never touches the test split
        assert (d / name / "journal.sqlite").is_file() and list(
            (d / "tb" / name).glob("events.out.tfevents.*")
        )
