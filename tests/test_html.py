"""index.html: one self-contained page (no network), checked as text and in headless Chromium."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess

import pytest

from tests._report_studies import PRUNED, TEST_ACCURACY, journal_study, real_study
from tunetorch.reports import write_reports
from tunetorch.reports.terminal import format_params

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    d = tmp_path_factory.mktemp("html") / "study"
    journal = journal_study(d)
    data = write_reports(d, journal)
    return d, journal, data, (d / "index.html").read_text()


def test_page_is_self_contained(page):
    d, _, _, text = page
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", text)  # nothing fetched, nothing linked
    assert "http://" not in text and "https://" not in text and "<script" not in text
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 3
    for data, name in zip(images, ("progress.png", "params.png", "importance.png"), strict=True):
        assert base64.b64decode(data) == (d / name).read_bytes()


def test_page_holds_summary_test_result_optimism_top_trials_and_importance(page):
    _, journal, data, text = page
    plain = html.unescape(re.sub(r"<[^>]+>", " ", text))
    plain = re.sub(r"\s+", " ", plain)
    best = data["best"]
    assert f"best val_accuracy {best['val_score']:.4f} (trial {best['trial']})" in plain
    assert (
        f"test accuracy {TEST_ACCURACY:.4f} (loss 0.3000) of trial {best['trial']}, evaluated once." in plain
    )
    assert "(s)" not in plain and "device min" not in plain
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
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td>", text)
    assert len(rows) == 5 and rows[0] == str(best["trial"])
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
    journal.complete_evaluation(ev, best.score + 0.02, 0.3, "f" * 64)
    data = write_reports(tmp_path / "s", journal)
    plain = re.sub(
        r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", (tmp_path / "s" / "index.html").read_text()))
    )
    section = plain.split("Optimism of validation:")[1].split("Top ")[0]
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


@needs_chromium
def test_page_renders_offline_in_headless_chromium(page, tmp_path):
    from PIL import Image

    d, _, data, _ = page
    url = (d / "index.html").resolve().as_uri()
    profile = tmp_path / "profile"
    dom = _chromium(f"--user-data-dir={profile}", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-1000:]
    assert "Top 5 trials" in dom.stdout and f"{TEST_ACCURACY:.4f}" in dom.stdout
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
    # The plots drew: the viridis dots, the blue curves and bars are the page's only saturated colours.
    colourful = int(((rgb.max(axis=2) - rgb.min(axis=2)) > 90).sum())
    assert colourful > 20_000, colourful


@needs_chromium
def test_real_study_page_in_headless_chromium(tmp_path_factory, tmp_path):
    d, _ = real_study(tmp_path_factory)
    data = json.loads((d / "summary.json").read_text())
    dom = _chromium(f"--user-data-dir={tmp_path / 'p'}", "--dump-dom", (d / "index.html").resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-1000:]
    assert f"trial {data['best']['trial']}" in dom.stdout and "Which parameters mattered" in dom.stdout
    assert dom.stdout.count("data:image/png;base64,") == 3
    assert dom.stdout.count("<tr>") >= 6
