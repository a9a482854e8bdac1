"""index.html: one self-contained page (no network), checked as text and in headless Chromium."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess

import pytest

from tests._report_studies import PRUNED, SPACE, TEST_ACCURACY, journal_study, real_study
from tunetorch.reports import write_reports
from tunetorch.reports.terminal import format_params, format_value

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)


CONFIG = """
model:
  _target_: tunetorch.training.models.MLP
dataset:
  _target_: tunetorch.training.datasets.Digits
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    d = tmp_path_factory.mktemp("html") / "study"
    journal = journal_study(d)
    journal.set_meta("config", CONFIG)  # what a real study's journal holds (identity.open_journal)
    journal.set_meta("scheduler", "asha")
    data = write_reports(d, journal)
    return d, journal, data, (d / "index.html").read_text()


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


def _section(text: str, key: str) -> str:
    """The HTML from the section's heading to the next one's."""
    return text.split(f'<h2 id="{key}">')[1].split("<h2")[0]


def test_page_is_self_contained(page):
    d, _, _, text = page
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", text)
    assert links and all(link.startswith(("data:", "#")) for link in links), links  # nothing fetched
    for link in links:  # every section the contents name is on the page
        assert link.startswith("data:") or f'id="{link[1:]}"' in text, link
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert text.count("<script>") == 1 and "<script src" not in text and "<link" not in text
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 1 and base64.b64decode(images[0]) == (d / "progress.png").read_bytes()
    assert "function sortBy" in text and "#trial-table" in text  # index.js and index.css, inlined


def test_title_names_the_model_the_data_and_the_strategy(page):
    _, _, _, text = page
    assert "<title>MLP on Digits: random search, asha stopping (study)</title>" in text
    assert "<h1>MLP on Digits: random search, asha stopping</h1>" in text


def test_title_without_a_config_names_the_strategy(tmp_path):
    journal = journal_study(tmp_path / "s", evaluate=False)
    write_reports(tmp_path / "s", journal)
    assert "<h1>Study: random search</h1>" in (tmp_path / "s" / "index.html").read_text()


def test_every_trial_is_in_the_table_with_a_sort_value_per_column(page):
    _, journal, _, text = page
    table = text.split('<table id="trial-table"')[1].split("</table>")[0]
    keys = re.findall(r'<th data-key="([^"]+)" data-kind="(num|text)"', table)
    names = [k for k, _ in keys]
    assert names[:6] == ["trial", "state", "score", "epochs", "best_epoch", "minutes"]
    assert set(SPACE) <= set(names) and "error" in names
    assert dict(keys)["optimizer.lr"] == "num" and dict(keys)["model.act"] == "text"
    rows = re.findall(r'<tr class="trial (\w+)" data-trial="(\d+)"', table)
    trials = journal.trials()
    assert [int(n) for _, n in rows] == [t.number for t in trials]  # all 16, not the top 5
    assert {n for s, n in rows if s == "pruned"} == {str(n) for n in PRUNED}
    for t in trials:
        row = table.split(f'data-trial="{t.number}"')[1].split("</tr>")[0]
        cells = re.findall(r'<td[^>]*data-v="([^"]*)"', row)
        assert len(cells) == len(names)
        assert cells[names.index("optimizer.lr")] == repr(t.params["optimizer.lr"])
        assert cells[names.index("score")] == ("" if t.score is None else repr(t.score))


def test_learning_curves_of_every_trial_with_pruned_ones_marked(page):
    _, journal, _, text = page
    curves = _section(text, "curves")
    drawn = {int(n): cls for cls, n in re.findall(r'<g class="trial ?(\w*)" data-trial="(\d+)"', curves)}
    assert set(drawn) == {t.number for t in journal.trials()}  # the failed trial recorded one epoch
    assert {n for n, cls in drawn.items() if cls == "pruned"} == set(PRUNED)
    for n, epochs in PRUNED.items():
        g = curves.split(f'data-trial="{n}"')[1].split("</g>")[0]
        points = re.search(r'<polyline points="([^"]+)"', g).group(1).split()
        assert len(points) == epochs and 'class="stop"' in g  # stopped where the scheduler stopped it
    assert curves.count('class="stop"') == len(PRUNED)
    assert "epoch (counted from 1)" in curves


def test_score_against_each_parameter_and_the_contour_of_the_two_that_mattered(page):
    _, journal, data, text = page
    params = _section(text, "params")
    assert params.count('<svg class="chart"') == len(SPACE)
    scored = [t for t in journal.trials() if t.score is not None]
    assert params.count('<g class="trial"') == len(SPACE) * len(scored)
    for name in SPACE:
        assert f'aria-label="val_accuracy against {name}"' in params
    assert "optimizer.lr (log scale)" in params
    imp = _section(text, "importance")
    first, second = list(data["importance"]["importance"])[:2]
    assert first == "optimizer.lr"  # the journal study's accuracy depends on lr
    assert f"The two that mattered most: {first} and {second}" in imp
    contour = imp.split("<svg")[1]
    assert contour.count("<rect x=") >= 32 * 32 and f"{first} (log scale)" in contour
    assert contour.count('<g class="trial"') == data["importance"]["n_trials"]
    assert "from " + data["importance"]["counted"] in _plain(imp)


def test_every_mark_of_a_trial_carries_its_parameters_on_hover(page):
    _, journal, _, text = page
    for t in journal.trials():
        titles = re.findall(rf'data-trial="{t.number}">\s*<title>([^<]+)</title>', text)
        assert titles, t.number
        for title in titles:
            title = html.unescape(title)
            assert title.startswith(f"trial {t.number}, ")
            for k, v in t.params.items():
                assert f"{k}={format_value(v)}" in title
    assert "trial 5, pruned after 1 epoch\nval_accuracy" in html.unescape(text)


def test_page_holds_summary_test_result_optimism_and_importance(page):
    _, journal, data, text = page
    plain = _plain(text)
    best = data["best"]
    assert f"best val_accuracy {best['val_score']:.4f} (trial {best['trial']})" in plain
    assert (
        f"test accuracy {TEST_ACCURACY:.4f} (loss 0.3000) of trial {best['trial']}, evaluated once." in plain
    )
    assert "(s)" not in plain and "device min" not in plain and "epoches" not in plain
    gap = data["optimism"]["gap"]
    assert f"optimism of validation {gap:+.4f}" in plain.lower()
    assert (
        f"minus test accuracy {TEST_ACCURACY:.4f} = {gap:+.4f} : validation was optimistic by {gap:.4f}"
        in plain
    )
    # the best epoch counted from 1, as summary.json, trials.csv and the terminal count it
    assert f"at epoch {best['best_epoch']} of {best['epochs']} (epochs counted from 1)" in plain
    assert best["best_epoch"] == 3 and "CPU minutes" in plain
    assert f"complete / pruned / failed {data['n_complete']} / {len(PRUNED)} / 1" in plain
    assert html.escape(format_params(best["params"])) in text
    shares = data["importance"]["importance"]
    first = next(iter(shares))
    assert re.search(rf"<td>{re.escape(first)}</td><td class=\"num\">{shares[first]:.0%}</td>", text)
    assert "fANOVA" in plain


def test_page_before_the_test_look_says_how_to_take_it(tmp_path):
    journal = journal_study(tmp_path / "s", evaluate=False)
    write_reports(tmp_path / "s", journal)
    text = (tmp_path / "s" / "index.html").read_text()
    assert (
        "not evaluated yet" in text
        and "optimism" not in text.split("<h2>Test result</h2>")[1].split("<h2>")[0]
    )
    # the command in full, with this study's folder: it runs as shown (tests/test_reports.py)
    assert f"-m tunetorch.evaluate study.dir={tmp_path / 's'}</code>" in text


def test_a_negative_optimism_gap_is_not_called_flattery(tmp_path):
    """Test better than validation: the page says so, and does not say validation flattered it."""
    journal = journal_study(tmp_path / "s", evaluate=False)
    best = max((t for t in journal.trials() if t.score is not None), key=lambda t: t.score)
    ev = journal.start_evaluation(best.number, "0" * 64, forced=False)
    journal.complete_evaluation(
        ev, {"val_loss": 0.3, "val_accuracy": best.score + 0.02}, best.score + 0.02, "f" * 64
    )
    data = write_reports(tmp_path / "s", journal)
    plain = re.sub(
        r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", (tmp_path / "s" / "index.html").read_text()))
    )
    section = plain.split("Optimism of validation:")[1].split("Trials")[0]
    assert data["optimism"]["gap"] == pytest.approx(-0.02)
    assert "test came out 0.0200 better than validation (no optimism showed" in section
    assert "validation was optimistic" not in section and "flatters it" not in section


def _chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )  # fmt: skip


def _dom(page_dir, profile, fragment: str = "") -> str:
    url = (page_dir / "index.html").resolve().as_uri() + fragment
    out = _chromium(f"--user-data-dir={profile}", "--dump-dom", url)
    assert out.returncode == 0, out.stderr[-1000:]
    return out.stdout


def _row_order(dom: str) -> list[int]:
    table = dom.split('id="trial-table"')[1].split("</table>")[0]
    return [int(n) for n in re.findall(r'<tr class="trial[^"]*" data-trial="(\d+)"', table)]


@needs_chromium
@pytest.mark.parametrize(
    "fragment, key, reverse",
    [
        ("#sort=-lr", "optimizer.lr", True),
        ("#sort=dropout", "model.dropout", False),
        ("#sort=score", "score", False),
    ],
)
def test_the_table_sorts_by_a_column_in_headless_chromium(page, tmp_path, fragment, key, reverse):
    """The fragment clicks the column's header as a reader would (once, or twice for the other way)."""
    d, journal, _, _ = page
    dom = _dom(d, tmp_path / "p", fragment)
    trials = journal.trials()
    if key == "score":  # the failed trial has no score: last, whichever way
        scored = sorted((t for t in trials if t.score is not None), key=lambda t: t.score)
        want = [t.number for t in scored] + [t.number for t in trials if t.score is None]
    else:
        want = [t.number for t in sorted(trials, key=lambda t: t.params[key], reverse=reverse)]
    assert _row_order(dom) == want
    arrow = "desc" if reverse else "asc"
    assert re.search(rf'<th data-key="{re.escape(key)}" [^>]*class="{arrow}"', dom)
    assert f'data-sorted="{"-" if reverse else ""}{key}"' in dom
    assert _row_order(_dom(d, tmp_path / "q")) == [t.number for t in trials]  # no fragment: trial order


@needs_chromium
def test_hovering_a_trial_shows_its_parameters_and_lights_up_its_marks(page, tmp_path):
    d, journal, _, _ = page
    n = min(PRUNED)
    trial = next(t for t in journal.trials() if t.number == n)
    dom = _dom(d, tmp_path / "p", f"#hover={n}")
    tip = re.search(r'<div id="tip" role="tooltip" style="[^"]+">([^<]+)</div>', dom)
    assert tip, "the tooltip is hidden"
    text = html.unescape(tip.group(1))
    assert text.startswith(f"trial {n}, pruned after {trial.epochs} epoch")
    for k, v in trial.params.items():
        assert f"{k}={format_value(v)}" in text
    lit = re.findall(r'class="([^"]*\bhi\b[^"]*)" data-trial="(\d+)"', dom)
    assert {int(m) for _, m in lit} == {n}
    # its curve, its dot in each parameter's panel, its table row; the contour too when it counted
    assert len(lit) >= 1 + len(SPACE) + 1 and any(c.startswith("trial pruned") for c, _ in lit)
    body = dom.split("<body")[1]
    assert 'class="hovering"' in body and "<title>" not in body  # one tooltip: the titles became data-tip


@needs_chromium
def test_page_renders_offline_in_headless_chromium(page, tmp_path):
    from PIL import Image

    d, _, data, _ = page
    url = (d / "index.html").resolve().as_uri()
    profile = tmp_path / "profile"
    dom = _dom(d, profile)
    assert "Learning curves" in dom and f"{TEST_ACCURACY:.4f}" in dom
    shot = tmp_path / "page.png"
    out = _chromium(
        f"--user-data-dir={profile}",
        "--window-size=1200,4200",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        url,
    )
    assert out.returncode == 0 and shot.is_file(), out.stderr[-1000:]
    import numpy as np

    with Image.open(shot) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    # The charts drew: the viridis lines and dots, the contour's bands are the page's saturated colours.
    colourful = int(((rgb.max(axis=2) - rgb.min(axis=2)) > 90).sum())
    assert colourful > 60_000, colourful


@needs_chromium
def test_real_study_page_in_headless_chromium(tmp_path_factory, tmp_path):
    d, _ = real_study(tmp_path_factory)
    data = json.loads((d / "summary.json").read_text())
    dom = _dom(d, tmp_path / "p", "#sort=-score")
    assert f"trial {data['best']['trial']}" in dom and "Which parameters mattered" in dom
    assert "<h1>MLP on Digits: random search</h1>" in dom
    assert dom.count("data:image/png;base64,") == 1
    assert _row_order(dom)[0] == data["best"]["trial"] and len(_row_order(dom)) == 6
    assert dom.count('<g class="trial') >= 6 * 2  # a curve per trial, a dot per trial and parameter


@needs_chromium
def test_the_screenshots_script_cuts_a_picture_per_section(tmp_path_factory, tmp_path):
    """scripts/screenshots.py on a finished study (--study): one PNG per part of the page, each
    cut where its section starts; the curves picture shows the hover box (dark, #222)."""
    import sys

    import numpy as np
    from PIL import Image

    from tests.conftest import ROOT

    d, _ = real_study(tmp_path_factory)
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--study", str(d), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    names = ["report.png", "report_curves.png", "report_params.png", "report_importance.png"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(names)
    for name in names:
        with Image.open(tmp_path / name) as im:
            grey = np.asarray(im.convert("L")).astype(int)
        assert grey.shape[1] == 1200 and 150 < grey.shape[0] < 2000, (name, grey.shape)
        assert (grey < 128).mean() > 0.002, name  # not a blank picture
        hover_box = _solid_run(grey, 0x22) >= 150  # text is #222 too, but never a solid box
        assert hover_box == (name == "report_curves.png"), name


def _solid_run(grey, level: int) -> int:
    """The longest run of pixels of one grey level (+-2) along any row: a filled box, not text."""
    import numpy as np

    best = 0
    for row in np.abs(grey - level) <= 2:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
        if edges.size:
            best = max(best, int((edges[1::2] - edges[::2]).max()))
    return best
