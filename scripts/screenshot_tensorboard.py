"""A screenshot of TensorBoard while a study runs: a trial's curves mid-way, the study's cards so far.

    .venv/bin/python scripts/screenshot_tensorboard.py [--out docs/img/tensorboard_live.png]
        [--study DIR] [--epochs 15] [--trials 4]

Runs a short real study (`python -m tunetorch.tune`, digits on the CPU, one worker, no test
evaluation) in DIR (default: a temporary folder, removed after), starts TensorBoard on a free port
of 127.0.0.1 against its tb/, waits until at least two trials have finished and a third has written
some of its epochs but not its end, then takes the screenshot with headless Chromium's
`--screenshot` (`?forceSVG=true`: the charts as SVG, which the headless browser draws; WebGL it may
not). It checks the trial was still running after the screenshot and says so; the study is then
stopped (Ctrl-C's signal: it stays resumable).

Exit status: 0 the screenshot was taken mid-trial, 1 otherwise (the message says why).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _tensorboard_server import start_tensorboard

ROOT = Path(__file__).resolve().parents[1]


def _accumulate(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0}).Reload()


def trial_state(tb: Path, number: int) -> tuple[int, bool]:
    """(epochs on disk, ended) of trial `number`'s run, as TensorBoard reads it."""
    run = tb / f"trial_{number:04d}"
    if not run.is_dir():
        return 0, False
    acc = _accumulate(run)
    tags = acc.Tags()
    epochs = len(acc.Scalars("trial/val_accuracy")) if "trial/val_accuracy" in tags["scalars"] else 0
    return epochs, "_hparams_/session_end_info" in tags["tensors"]


def screenshot(url: str, out: Path, width: int = 1600, height: int = 1500) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    profile = tempfile.mkdtemp(prefix="tt-chromium-")
    try:
        subprocess.run(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "--virtual-time-budget=20000",
                f"--screenshot={out}",
                url,
            ],  # fmt: skip
            check=True,
            capture_output=True,
            timeout=180,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "tensorboard_live.png")
    parser.add_argument("--study", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    temporary = args.study is None
    study = Path(tempfile.mkdtemp(prefix="tt-live-")) / "study" if temporary else args.study
    tb = study / "tb"
    overrides = [
        "dataset=digits", "tuner.devices=cpu", "tuner.workers=1", "study.evaluate=false",
        f"trainer.epochs={args.epochs}", f"budget.n_trials={args.trials}", f"study.dir={study}",
    ]  # fmt: skip
    print(f"study: python -m tunetorch.tune {' '.join(overrides)}", flush=True)
    tuner = subprocess.Popen(
        [sys.executable, "-m", "tunetorch.tune", *overrides],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    board = None
    try:
        while not tb.is_dir():
            if tuner.poll() is not None:
                raise RuntimeError(f"the study stopped ({tuner.returncode}): {tuner.stderr.read()[-500:]}")
            time.sleep(0.5)
        board, url = start_tensorboard(tb, need_runs=False)
        # Two trials finished and the third a few epochs in: the cards have something to show.
        watched, want = 2, max(3, args.epochs // 3)
        while True:
            if tuner.poll() is not None:
                raise RuntimeError(f"the study ended before trial {watched} was mid-way; more --epochs")
            epochs, ended = trial_state(tb, watched)
            if ended:
                raise RuntimeError(f"trial {watched} ended before it was seen mid-way; more --epochs")
            if epochs >= want:
                break
            time.sleep(0.5)
        time.sleep(2)  # TensorBoard reloads every second
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(f"{url}/?forceSVG=true#timeseries", args.out)
        after, ended = trial_state(tb, watched)
        if ended:
            print(f"trial {watched} ended while the screenshot was taken: not mid-trial", file=sys.stderr)
            return 1
        print(
            f"{args.out}: trial {watched} of {args.trials} was running, {epochs} to {after} of its "
            f"{args.epochs} epochs on disk when the screenshot was taken",
            flush=True,
        )
        return 0
    finally:
        if tuner.poll() is None:
            tuner.send_signal(signal.SIGINT)  # as Ctrl-C: the study stays resumable
            try:
                tuner.wait(timeout=60)
            except subprocess.TimeoutExpired:
                tuner.kill()
        if board is not None:
            board.terminate()
            board.wait(timeout=10)
        if temporary:
            shutil.rmtree(study.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
