"""race.html: the race as a page that replays it, one self-contained file (no network).

    write_race_page(race_dir / "race.html", cfg, plan, results, make_study=..., figure_kwargs=...)

The page holds the recorded trials of every entrant and plays them back on the race's own clock,
device minutes: "Run search" starts the clock, each entrant's panel shows a probe once its trial
has finished by then (coloured by order, sized by the epochs it trained, the best ringed, as in
race.png), its budget bar fills with the minutes it has spent, and the chart draws the best
score so far against minutes as the clock runs. On an equal minutes budget the four bars fill
together and the panels differ in how many probes those minutes bought.

Both synthetic landscapes are on the page, behind a Smooth/Bumpy switch: the landscape this
race ran is read from its entrants' journals (the `results` given), and the other one is raced
here, in memory, with the same config but for `landscape.name` (the same entrants, options,
budget, seed, epochs, noise, cost and curve; nothing written), through the same search loop
(tunetorch.race.synthetic.search_landscape). It is cheap, being synthetic, and deterministic, so
a re-run writes the same page. A race in real training has one objective and shows it alone.

The runner hands in its `make_study` and `figure_kwargs` (tunetorch.race.runner), so that the
other landscape's studies and heatmap are built by the runner's own rules while this module
imports nothing of the runner (the runner imports this one).

The page's script and style are page.js and page.css next to this file, inlined; the data is
one JSON block (`scenes`, see `_scene`). The heatmap is a PNG data URI, coloured as race.png's.
Headless browsers can drive the page by its URL fragment: `#landscape=smooth&run` clicks the
switch and "Run search" on load, `&seconds=N` sets how long the replay takes (page.js).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from tunetorch.race.plan import Plan
from tunetorch.trial import Trial, TrialState
from tunetorch.words import count

LANDSCAPE_ORDER = ("smooth", "bumpy")  # the switch reads left to right, gentle first


def write_race_page(
    path: Path,
    cfg: Any,
    plan: Plan,
    results: Mapping[str, Sequence[Trial]],
    *,
    make_study: Callable[..., Any],
    figure_kwargs: Callable[..., dict[str, Any]],
    unit: str,
    objective: str,
    other_landscapes: bool = True,
) -> None:
    """race.html at `path`, written whole (a temporary file, then renamed).

    cfg, plan, results: the race as run (plan from make_plan, results: entrant -> its trials).
    other_landscapes: also race the other synthetic landscape(s) in memory (False: this one only,
    e.g. after an interrupted race)."""
    scenes: dict[str, dict] = {}
    if plan.landscape is None:
        scenes["training"] = _scene(
            cfg, plan, results, figure_kwargs(cfg, plan, unit, objective), objective, True
        )
    else:
        from tunetorch.race.landscapes import LANDSCAPES

        raced = plan.landscape["name"]
        for name in [n for n in LANDSCAPE_ORDER if n in LANDSCAPES]:
            if name == raced:
                kwargs = figure_kwargs(cfg, plan, unit, objective)
                scenes[name] = _scene(cfg, plan, results, kwargs, objective, True)
            elif other_landscapes:
                print(f"race.html: racing the {name} landscape in memory for the page's switch", flush=True)
                other_cfg, other_plan, other_results = race_other_landscape(
                    cfg, name, path.parent, make_study
                )
                other_objective = objective.replace(f"the {raced} landscape", f"the {name} landscape")
                kwargs = figure_kwargs(other_cfg, other_plan, unit, other_objective)
                scenes[name] = _scene(other_cfg, other_plan, other_results, kwargs, other_objective, False)
    data = {
        "scenes": scenes,
        "initial": plan.landscape["name"] if plan.landscape else "training",
        "seed": cfg.study.seed,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(data))
    os.replace(tmp, path)


def race_other_landscape(cfg: Any, name: str, race_dir: Path, make_study: Callable[..., Any]):
    """The race `cfg` on the landscape `name`, in memory: (cfg, plan, entrant -> trials).

    The entrants' study.dir is a folder that is never made (race_dir/page-<name>): the plan only
    reads there, to find no journal to resume."""
    from omegaconf import open_dict

    from tunetorch.budget import Budget
    from tunetorch.race.plan import make_plan
    from tunetorch.race.synthetic import search_landscape

    other = copy.deepcopy(cfg)
    with open_dict(other):
        other.landscape.name = name
        other.study.dir = str(race_dir / f"page-{name}")
    plan = make_plan(other)
    results = {}
    for entrant in plan.entrants:
        study = make_study(entrant)
        search_landscape(  # as the runner races an entrant (tunetorch.race.runner._race_synthetic_locked)
            study,
            plan.landscape,
            Budget(other.budget.n_trials, other.budget.gpu_minutes),
            seed=int(other.study.seed),
            epochs=int(other.trainer.epochs),
            slots=int(other.tuner.workers),
            max_retries=other.tuner.max_retries,
            max_consecutive_failures=other.tuner.max_consecutive_failures,
        )
        results[entrant.name] = study.trials
    return other, plan, results


# --- the data of one landscape ---------------------------------------------------------------------
def _scene(
    cfg: Any,
    plan: Plan,
    results: Mapping[str, Sequence[Trial]],
    kwargs: dict[str, Any],
    objective: str,
    raced_here: bool,
) -> dict[str, Any]:
    """What the page draws for one objective: axes, heatmap, optimum, budget and every entrant's
    trials on the race clock (`start` and `end`: the entrant's device minutes before and after it)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from tunetorch.budget import Budget
    from tunetorch.race.figure import layout
    from tunetorch.race.panels import ORDER_CMAP, entrant_colour, probe_sizes
    from tunetorch.reports.terminal import budget_text

    lay = layout(
        plan.space,
        results,
        kwargs["surface"],
        kwargs["optimum"],
        kwargs["budget_minutes"],
        kwargs["budget_trials"],
        kwargs["unit"],
        kwargs["score_label"],
        kwargs["resolution"],
        kwargs["max_epochs"],
        kwargs["direction"],
    )
    dx, dy = plan.space.dims
    order_cmap = colormaps[ORDER_CMAP]
    entrants = []
    for i, name in enumerate(lay.names):
        trials = sorted((t for t in results.get(name, ()) if t.finished), key=lambda t: t.number)
        sizes = probe_sizes(trials, lay.max_epochs)
        spent, rows = 0.0, []
        for k, (t, area) in enumerate(zip(trials, sizes, strict=True)):
            start = spent
            spent += (t.device_seconds or 0.0) / 60.0
            rows.append(
                {
                    "n": t.number,
                    "x": float(t.params[dx.name]),
                    "y": float(t.params[dy.name]),
                    "score": None if t.score is None else float(t.score),
                    "state": t.state.value,
                    "epochs": t.epochs,
                    "start": start,
                    "end": spent,
                    "r": round(0.65 * area**0.5, 2),  # race.png's marker area (points^2) as a radius in px
                    "colour": to_hex(order_cmap(lay.order_norm(k + 1))),
                }
            )
        entrants.append(
            {"name": name, "colour": to_hex(entrant_colour(name, i)), "trials": rows, "spent": spent}
        )
    budget = Budget(cfg.budget.n_trials, cfg.budget.gpu_minutes)
    optimum = None
    if lay.optimum is not None:
        params, best = lay.optimum
        optimum = {"x": params[dx.name], "y": params[dy.name], "score": best}
    name = plan.landscape["name"] if plan.landscape else "training"
    return {
        "name": name,
        "label": name.capitalize() if plan.landscape else "Training",
        "objective": objective,
        "raced_here": raced_here,
        "unit": lay.unit,
        "score_label": lay.score_label,
        "direction": lay.direction,  # which way a score is better: the best ring and the curves
        "budget": {
            "minutes": lay.budget_minutes,
            "trials": lay.budget_trials,
            "text": budget_text(budget, lay.unit),
            "kind": "minutes" if lay.budget_minutes else "trials",
        },
        "end": max([lay.budget_minutes or 0.0, *(e["spent"] for e in entrants), 1e-9]),
        "max_epochs": lay.max_epochs,
        "x": _axis(dx),
        "y": _axis(dy),
        "heatmap": _heatmap_uri(lay),
        "heat_note": lay.heat_note,
        "score_range": [float(lay.score_norm.vmin), float(lay.score_norm.vmax)],
        "curve": {"xmax": lay.curve_xmax, "ylim": list(lay.curve_ylim) if lay.curve_ylim else [0.0, 1.0]},
        "optimum": optimum,
        "entrants": entrants,
        "summary": _summary_line(entrants, lay.unit),
    }


def _axis(dim) -> dict[str, Any]:
    return {"name": dim.name, "low": float(dim.low), "high": float(dim.high), "log": bool(dim.log)}


def _heatmap_uri(lay) -> str:
    """The layout's landscape, coloured as race.png colours it (HEATMAP_CMAP over score_norm), as a
    PNG data URI; row 0 is the top (the highest y), as an image is drawn."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    from tunetorch.race.panels import HEATMAP_CMAP

    Z = np.ma.masked_invalid(lay.Z)
    rgba = colormaps[HEATMAP_CMAP](lay.score_norm(Z), bytes=True)[::-1]
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _summary_line(entrants: list[dict], unit: str) -> str:
    """One sentence per race, for the page's foot: trials each entrant's budget bought."""
    parts = []
    for e in entrants:
        pruned = sum(t["state"] == TrialState.PRUNED.value for t in e["trials"])
        stopped = f" ({pruned} stopped early)" if pruned else ""
        parts.append(f"{e['name']} {count(len(e['trials']), 'trial')}{stopped} in {e['spent']:.1f}")
    return f"Trials run and {unit} spent: " + "; ".join(parts) + "."


# --- the page --------------------------------------------------------------------------------------
def render(data: dict[str, Any]) -> str:
    """The whole page: page.css and page.js inlined, `data` as a JSON block the script reads."""
    assets = resources.files("tunetorch.race")
    css = assets.joinpath("page.css").read_text(encoding="utf-8")
    js = assets.joinpath("page.js").read_text(encoding="utf-8")
    # "</" inside a script element would end it early; JSON allows "<\/".
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    first = data["scenes"].get(data["initial"]) or next(iter(data["scenes"].values()))
    title = f"The race: {first['objective']}"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{_escape(title)}</title>
<style>
{css}</style>
</head>
<body data-state="ready">
<header>
  <h1>The race</h1>
  <p id="objective"></p>
  <div class="controls">
    <button id="run" type="button">Run search</button>
    <span class="switch" role="group" aria-label="landscape" id="switch"></span>
    <span id="clock"></span>
  </div>
  <p id="note"></p>
</header>
<main>
  <section id="panels"></section>
  <section id="chart-box"><svg id="chart" role="img" aria-label="best score so far"></svg></section>
  <p id="summary"></p>
</main>
<script type="application/json" id="race-data">{blob}</script>
<script>
{js}</script>
</body>
</html>
"""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
