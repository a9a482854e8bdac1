"""Screenshots of index.html for docs/reports.md, from a short real study on the digits default.

    python scripts/screenshots.py [--out docs/img] [--study DIR]

Runs `python -m tunetorch.tune +strategy=bayes +scheduler=asha` on the default config (MLP on
digits) with 24 trials of up to 9 epochs on the CPU (about 5 minutes), in a temporary folder
(`--study DIR`: a finished study there is used as it is, else the study runs there and is
kept), then renders its index.html in headless Chromium
(`chromium --headless --screenshot=... --window-size=...`) and writes:

    report.png             the top of the page: title, cards, best trial, the trials sorted by score
    report_curves.png      the learning curves, a pruned trial hovered (its parameters, its marks lit)
    report_params.png      the score against each parameter
    report_importance.png  which parameters mattered, and the contour of the two that mattered most

Headless Chromium draws a scrolled page blank, so each picture is cut out of one screenshot of
the whole page; where to cut is measured first (`--dump-dom` of a copy of the page with a few
lines that write each section's box into the DOM). Needs chromium on PATH (or CHROMIUM=...).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 1200
STUDY = [
    "+strategy=bayes",
    "+scheduler=asha",
    "budget.n_trials=24",
    "trainer.epochs=9",
    "tuner.devices=cpu",
    "tuner.workers=1",
]
PICTURES = {  # file: (first section, the section it stops before; None: the page's end)
    "report.png": (None, "curves"),
    "report_curves.png": ("curves", "params"),
    "report_params.png": ("params", "importance"),
    "report_importance.png": ("importance", "progress"),
}
# Writes every h2's top and the page's height into the DOM, for --dump-dom to carry out.
MEASURE = """<script>
window.addEventListener("load", function () {
  var boxes = {"_height": document.documentElement.scrollHeight};
  document.querySelectorAll("h2[id]").forEach(function (h) {
    boxes[h.id] = Math.round(h.getBoundingClientRect().top + window.scrollY);
  });
  document.body.setAttribute("data-boxes", JSON.stringify(boxes));
});
</script>"""


def chromium() -> str:
    exe = os.environ.get("CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
    )
    if exe is None:
        sys.exit("error: chromium is not installed (apt-get install -y chromium, or CHROMIUM=path)")
    return exe


def browse(*args: str, profile: Path) -> subprocess.CompletedProcess:
    """Headless Chromium, offline: every host name fails to resolve and the proxy goes nowhere."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND",
             "--proxy-server=127.0.0.1:9", f"--user-data-dir={profile}"]  # fmt: skip
    out = subprocess.run([chromium(), *flags, *args], capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        sys.exit(f"error: chromium failed: {out.stderr.strip()[-500:]}")
    return out


def run_study(study: Path) -> None:
    cmd = [sys.executable, "-m", "tunetorch.tune", *STUDY, f"study.dir={study}"]
    print("$", " ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def measure(page: Path, work: Path) -> dict[str, int]:
    """Each section's top and the page's height, in CSS pixels at WIDTH."""
    copy = work / "measure.html"
    copy.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    dom = browse("--dump-dom", f"--window-size={WIDTH},1000", copy.as_uri(), profile=work / "profile").stdout
    found = re.search(r'data-boxes="([^"]+)"', dom)
    if not found:
        sys.exit("error: the page's sections could not be measured")
    return json.loads(found.group(1).replace("&quot;", '"'))


def hovered_trial(study: Path) -> int:
    """A pruned trial that trained more than one epoch (the most telling curve), else the best."""
    import csv

    with open(study / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["epochs"] and int(r["epochs"]) > 1]
    if pruned:
        return int(max(pruned, key=lambda r: float(r["val_score"]))["number"])
    return int(json.loads((study / "summary.json").read_text())["best"]["trial"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument(
        "--study", type=Path, help="a finished study to use; a folder without one: run it there and keep it"
    )
    args = parser.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="tt-shots-") as tmp:
        work = Path(tmp)
        study = args.study or work / "digits_bayes_asha"  # the page's subtitle names the folder
        if not (study / "index.html").is_file():
            run_study(study)
        page = study / "index.html"
        boxes = measure(page, work)
        height = boxes["_height"] + 20
        shots = {
            "plain": f"{page.as_uri()}#sort=-score",
            "hover": f"{page.as_uri()}#sort=-score&hover={hovered_trial(study)}",
        }
        for name, url in shots.items():
            browse(
                f"--window-size={WIDTH},{height}", f"--screenshot={work / name}.png", url, profile=work / "p"
            )
        args.out.mkdir(parents=True, exist_ok=True)
        for picture, (start, stop) in PICTURES.items():
            if (start is not None and start not in boxes) or stop not in boxes:
                print(f"skipped {picture}: the page has no such section")
                continue
            top = 0 if start is None else boxes[start] - 12
            source = "hover" if picture == "report_curves.png" else "plain"
            with Image.open(work / f"{source}.png") as im:
                im.crop((0, top, WIDTH, boxes[stop] - 8)).save(args.out / picture, optimize=True)
            print(f"wrote {args.out / picture}")


if __name__ == "__main__":
    main()
