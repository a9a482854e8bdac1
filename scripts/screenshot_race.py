"""Screenshots of race.html for docs/reports.md: each landscape before and after "Run search".

    .venv/bin/python scripts/screenshot_race.py [RACE_DIR] [--out docs/img]

Without RACE_DIR it first runs the default race, `python -m tunetorch.race landscape=bumpy`
(equal budget of simulated GPU minutes, seed 0), in a temporary directory. The page is driven by
its URL fragment (`#landscape=smooth` clicks the switch, `#run` clicks "Run search"; see
tunetorch/race/page.js) in headless Chromium, whose virtual time lets the replay run to its end
before the screenshot. Writes race_html_<landscape>_<before|after>.png into --out. Needs
`chromium` on PATH; nothing is fetched (the page is one self-contained file).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH, HEIGHT = 1600, 1000


def screenshot(exe: str, url: str, out: Path, profile: Path) -> None:
    subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars",
         f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
         "--virtual-time-budget=30000", f"--screenshot={out}", url],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    print(f"wrote {out}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("race_dir", nargs="?", type=Path, help="a race directory holding race.html")
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        print("error: chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="tt-race-") as tmp:
        race_dir = args.race_dir
        if race_dir is None:
            race_dir = Path(tmp) / "race"
            command = [sys.executable, "-m", "tunetorch.race", "landscape=bumpy", f"study.dir={race_dir}"]
            print("$ " + " ".join(command), flush=True)
            subprocess.run(command, check=True)
        page = race_dir / "race.html"
        if not page.is_file():
            print(f"error: {page} does not exist; run the race first", file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        url = page.resolve().as_uri()
        for landscape in ("bumpy", "smooth"):
            for when, fragment in (("before", ""), ("after", "&run")):
                out = args.out / f"race_html_{landscape}_{when}.png"
                screenshot(exe, f"{url}#landscape={landscape}{fragment}", out, Path(tmp) / "profile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
