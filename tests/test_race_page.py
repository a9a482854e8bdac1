"""race.html and the race's equal budget: the page written by `python -m tunetorch.race`, read as
text and driven in headless Chromium (the Run button clicked, the landscape switched), checked by
its DOM and by its screenshots; the default budget of equal GPU minutes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.conftest import run_in_process
from tests.test_race import RACE_STRATEGIES, STRATEGIES, compose_race

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
# A short race: every entrant, 5 simulated minutes each (bayes+asha's stops leave it ~20 trials).
SHORT = ["budget.gpu_minutes=5", "race.heatmap_resolution=40", RACE_STRATEGIES]


def page_data(path) -> dict:
    text = path.read_text()
    blob = re.search(r'<script type="application/json" id="race-data">(.*?)</script>', text, re.S).group(1)
    return json.loads(blob.replace("<\\/", "</"))


@pytest.fixture(scope="module")
def bumpy(tmp_path_factory):
    d = tmp_path_factory.mktemp("page") / "race"
    out = run_in_process("race", "landscape=bumpy", f"study.dir={d}", *SHORT)  # the command: test_race.py
    assert out.returncode == 0, out.stderr + out.stdout
    assert f"results: {d}/race.png, race.gif, race.json, race.html;" in out.stdout
    assert "race.html: racing the smooth landscape in memory" in out.stdout
    return d, json.loads((d / "race.json").read_text())


# --- the budget ------------------------------------------------------------------------------------
def test_the_race_defaults_to_equal_gpu_minutes_and_a_trials_budget_stays_an_option():
    from tunetorch.race.plan import make_plan

    cfg = compose_race("landscape=bumpy")
    assert cfg.budget.n_trials is None and cfg.budget.gpu_minutes is None  # as conf/race.yaml has them
    plan = make_plan(cfg)
    assert cfg.budget.gpu_minutes == cfg.race.default_gpu_minutes == 55
    assert all(e.cfg.budget.gpu_minutes == 55 and e.cfg.budget.n_trials is None for e in plan.entrants)
    assert plan.entrants[0].options["resolution"] == 5  # grid's auto lattice without a trial cap

    trials = compose_race("landscape=bumpy", "budget.n_trials=30")
    make_plan(trials)
    assert (trials.budget.n_trials, trials.budget.gpu_minutes) == (30, None)  # trials only, as before
    minutes = compose_race("landscape=bumpy", "budget.gpu_minutes=10")
    make_plan(minutes)
    assert (minutes.budget.n_trials, minutes.budget.gpu_minutes) == (None, 10)
    off = compose_race("landscape=bumpy", "race.default_gpu_minutes=null")
    make_plan(off)
    assert (off.budget.n_trials, off.budget.gpu_minutes) == (None, None)  # the study's 20 trials


def test_the_default_budget_buys_grid_random_and_bayes_about_30_full_trials():
    """55 simulated minutes: grid's whole 5 x 5 lattice, about 30 trials of random and of bayes."""
    from tunetorch.budget import Budget
    from tunetorch.history import device_minutes
    from tunetorch.race.plan import make_plan
    from tunetorch.race.runner import make_study
    from tunetorch.race.synthetic import search_landscape

    for landscape in ("bumpy", "smooth"):
        cfg = compose_race(f"landscape={landscape}", "race.strategies=[grid,random,bayes]")
        plan = make_plan(cfg)
        for e in plan.entrants:
            study = make_study(e)
            search_landscape(study, plan.landscape, Budget(None, cfg.budget.gpu_minutes), epochs=10)
            done = [t for t in study.trials if t.state.value == "COMPLETE" and t.epochs == 10]
            assert len(done) == len(study.trials) and device_minutes(study.trials) >= 51
            # bayes settles where its landscape is best, and a trial there costs what its lr costs:
            # 35 s on bumpy's summit (lr 2.5e-2), 66 s on smooth's hill (lr 5e-3)
            low, high = {"grid": (25, 25), "random": (28, 38), "bayes": (25, 55)}[e.name]
            assert low <= len(done) <= high, (landscape, e.name, len(done))


def test_a_bad_default_budget_is_one_line_and_leaves_nothing(tmp_path):
    args = ["landscape=bumpy", "race.default_gpu_minutes=-3", f"study.dir={tmp_path / 'r'}"]
    out = run_in_process("race", *args)
    assert out.returncode == 2 and out.stderr == "error: race.default_gpu_minutes: -3 must be a number > 0\n"
    assert not (tmp_path / "r").exists()


def test_the_race_says_which_budget_applied(bumpy):
    d, race = bumpy
    assert race["budget"] == {"n_trials": None, "gpu_minutes": 5}
    data = page_data(d / "race.html")
    for scene in data["scenes"].values():
        assert scene["budget"]["text"] == "5 simulated GPU minutes (no trial cap)"
        assert scene["budget"]["kind"] == "minutes"


# --- the page as text --------------------------------------------------------------------------------
def test_the_page_is_self_contained_and_holds_the_recorded_race(bumpy):
    d, race = bumpy
    text = (d / "race.html").read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert not re.search(r"""<(script|link|img)[^>]*(src|href)\s*=""", text)  # nothing fetched
    data = page_data(d / "race.html")
    assert list(data["scenes"]) == ["smooth", "bumpy"] and data["initial"] == "bumpy"
    scene = data["scenes"]["bumpy"]
    assert scene["raced_here"] and not data["scenes"]["smooth"]["raced_here"]
    assert scene["heatmap"].startswith("data:image/png;base64,")
    assert [e["name"] for e in scene["entrants"]] == STRATEGIES
    for e in scene["entrants"]:
        s = race["strategies"][e["name"]]
        assert len(e["trials"]) == s["n_trials"]
        assert e["spent"] == pytest.approx(s["gpu_minutes"])
        assert max(t["score"] for t in e["trials"]) == s["best"]["score"]
        assert sum(t["state"] == "PRUNED" for t in e["trials"]) == s["n_pruned"]
        ends = [t["end"] for t in e["trials"]]  # the race clock: each trial ends where the next starts
        assert ends == sorted(ends) and all(
            b["start"] == a["end"] for a, b in zip(e["trials"], e["trials"][1:], strict=False)
        )
    asha = next(e for e in scene["entrants"] if e["name"] == "bayes+asha")
    bayes = next(e for e in scene["entrants"] if e["name"] == "bayes")
    assert len(asha["trials"]) > 2 * len(bayes["trials"])  # the minutes it saved bought more trials


def test_the_other_landscape_on_the_page_is_the_race_that_landscape_would_record(bumpy, tmp_path):
    """The smooth scene, raced in memory for the switch, is what `landscape=smooth` records."""
    d, _ = bumpy
    smooth = tmp_path / "smooth"
    out = run_in_process("race", "landscape=smooth", f"study.dir={smooth}", *SHORT)  # the page's logic
    assert out.returncode == 0, out.stderr + out.stdout
    here = page_data(d / "race.html")["scenes"]["smooth"]
    recorded = page_data(smooth / "race.html")["scenes"]["smooth"]
    assert recorded["raced_here"] and not here["raced_here"]
    assert here["entrants"] == recorded["entrants"] and here["heatmap"] == recorded["heatmap"]


# --- the page in headless Chromium ---------------------------------------------------------------------
def _chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
         "--hide-scrollbars", "--window-size=1600,1000", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )  # fmt: skip


def _dom(url: str, profile) -> str:
    """The page's DOM after it has played (timers run on virtual time: 12 s of replay in a moment)."""
    out = _chromium(f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom", url)
    assert out.returncode == 0, out.stderr[-1000:]
    return out.stdout


def _panels(dom: str) -> dict[str, dict]:
    """entrant -> the panel's data attributes and the probes it shows."""
    out = {}
    for m in re.finditer(r'<div class="panel" ([^>]*)>(.*?)<p class="bar-label">([^<]*)</p>', dom, re.S):
        attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', m.group(1)))
        probes = re.findall(r'<(?:circle|path) class="probe[^"]*"[^>]*display="(inline|none)"', m.group(2))
        out[attrs["entrant"]] = {**attrs, "visible": probes.count("inline"), "probes": len(probes),
                                 "label": m.group(3)}  # fmt: skip
    return out


def _screenshot(url: str, path, profile):
    from PIL import Image

    out = _chromium(f"--user-data-dir={profile}", "--virtual-time-budget=30000", f"--screenshot={path}", url)
    assert out.returncode == 0 and path.is_file(), out.stderr[-1000:]
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _near(rgb, colour: str, tol: int = 30) -> int:
    """Pixels within `tol` of a '#rrggbb' colour in every channel."""
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target).max(axis=2) <= tol).sum())


def _probe_pixels(rgb) -> int:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((b >= 80) & (b <= 125) & (g >= 120) & (g - b >= 40) & (np.abs(r - b) > 15)).sum())


@needs_chromium
def test_run_search_plays_the_race_to_its_end_on_both_landscapes(bumpy, tmp_path):
    d, race = bumpy
    data = page_data(d / "race.html")
    url = (d / "race.html").resolve().as_uri()

    before = _dom(url, tmp_path / "p")
    assert 'data-state="ready"' in before and 'data-landscape="bumpy"' in before
    panels = _panels(before)
    assert list(panels) == STRATEGIES
    for name, p in panels.items():
        assert p["shown"] == "0" and p["visible"] == 0 and p["probes"] == race["strategies"][name]["n_trials"]
        assert p["label"].startswith("0.0 of 5 simulated GPU minutes")

    after = _dom(url + "#run", tmp_path / "p")  # the fragment clicks "Run search" on load
    assert 'data-state="finished"' in after and "5 simulated GPU minutes · finished" in after
    for name, p in _panels(after).items():
        s = race["strategies"][name]
        assert int(p["shown"]) == p["visible"] == s["n_trials"]
        assert float(p["best"]) == s["best"]["score"] and float(p["spent"]) == pytest.approx(
            s["gpu_minutes"], abs=1e-3
        )
        assert f"{s['gpu_minutes']:.1f} of 5 simulated GPU minutes" in p["label"]
    assert after.count('class="curve"') == len(STRATEGIES)

    switched = _dom(url + "#landscape=smooth&run", tmp_path / "p")  # clicks Smooth, then Run
    assert 'data-landscape="smooth"' in switched and 'data-state="finished"' in switched
    assert 'id="landscape-smooth" aria-pressed="true"' in switched
    smooth = {e["name"]: e for e in data["scenes"]["smooth"]["entrants"]}
    for name, p in _panels(switched).items():
        assert int(p["shown"]) == p["visible"] == len(smooth[name]["trials"])
    images = set(re.findall(r'<image href="([^"]+)"', switched))
    assert images == {data["scenes"]["smooth"]["heatmap"]}


@needs_chromium
def test_the_screenshots_show_bars_probes_and_curves_after_run_and_the_landscape_switch(bumpy, tmp_path):
    d, _ = bumpy
    url = (d / "race.html").resolve().as_uri()
    colours = {e["name"]: e["colour"] for e in page_data(d / "race.html")["scenes"]["bumpy"]["entrants"]}
    before = _screenshot(url, tmp_path / "before.png", tmp_path / "p")
    after = _screenshot(url + "#run", tmp_path / "after.png", tmp_path / "p")
    smooth = _screenshot(url + "#landscape=smooth&run", tmp_path / "smooth.png", tmp_path / "p")
    for name, colour in colours.items():
        # before Run only the panel's title is in its colour; after it, its budget bar and its curve
        assert _near(after, colour) > _near(before, colour) + 3000, name
        assert _near(smooth, colour) > _near(before, colour) + 3000, name
    # the probes: filled in the order colours (matplotlib's "summer", green to yellow, blue fixed
    # at 102), which neither the Blues heatmap nor the entrants' colours come near
    assert _probe_pixels(after) > _probe_pixels(before) + 300
    assert _probe_pixels(smooth) > _probe_pixels(before) + 300
    # the landscape switched: the heatmaps (the top half of the page) differ
    top = slice(150, 500)
    changed = (np.abs(smooth[top] - after[top]).max(axis=2) > 40).sum()
    assert changed > 20_000, changed
