"""Bayes against random on real training: best validation accuracy after each trial.

Runs `python -m tunetorch.tune` (the real command, a subprocess per study) for each strategy
and seed on the same data set, model and budget, then reads every study's trials.csv and
prints, as markdown, the median (over seeds) best validation accuracy so far after k trials,
each seed's curve, and the CPU/GPU-device minutes each study spent. The test split is not
touched (study.evaluate=false): this compares search efficiency on validation accuracy.

    .venv/bin/python scripts/bench_real.py --seeds 3 --trials 30 --out docs/bench_real.md
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_study(strategy: str, seed: int, args, base: Path) -> dict:
    d = base / f"{strategy}_seed{seed}"
    cmd = [
        sys.executable,
        "-m",
        "tunetorch.tune",
        f"+strategy={strategy}",
        f"dataset={args.dataset}",
        *([] if args.dataset == "digits" else [f"dataset.root={args.root}"]),  # digits ships with sklearn
        f"model={args.model}",
        f"trainer.epochs={args.epochs}",
        f"budget.n_trials={args.trials}",
        f"study.seed={seed}",
        f"study.dir={d}",
        "study.evaluate=false",
        "tuner.progress=false",
    ]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    rows = sorted(csv.DictReader((d / "trials.csv").open()), key=lambda r: int(r["number"]))
    best, curve = float("-inf"), []
    for r in rows:
        if r["state"] == "COMPLETE" and r["val_score"]:
            best = max(best, float(r["val_score"]))
        curve.append(best)
    summary = json.loads((d / "summary.json").read_text())
    return {"curve": curve, "minutes": summary["gpu_minutes"], "unit": summary["device_unit"], "wall": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strategies", default="bayes,random")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--root", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--model", default="mlp")
    p.add_argument("--out", type=Path, help="also write the markdown here")
    args = p.parse_args()
    strategies = args.strategies.split(",")

    runs: dict[str, list[dict]] = {s: [] for s in strategies}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for s in strategies:
                runs[s].append(run_study(s, seed, args, Path(tmp)))
                print(f"{s} seed {seed}: best {runs[s][-1]['curve'][-1]:.4f}", file=sys.stderr)

    marks = [k for k in (5, 10, 15, 20, 25, 30, 40, 50) if k <= args.trials]
    if args.trials not in marks:
        marks.append(args.trials)
    unit = runs[strategies[0]][0]["unit"]
    lines = [
        f"# Real training: {', '.join(strategies)}",
        "",
        f"Machine: {_machine()}.",
        "",
        f"`{' '.join(sys.argv)}`: {args.model} on {args.dataset}, {args.trials} trials of "
        f"{args.epochs} epochs per study, seeds 0..{args.seeds - 1} (each seed also fixes the "
        "validation split and the trials' training seeds, so strategies see the same landscape).",
        "",
        "Median best validation accuracy after k trials (min..max over seeds):",
        "",
        "| strategy | " + " | ".join(f"k={k}" for k in marks) + f" | {unit} (median) | wall s (median) |",
        "|---|" + "---|" * (len(marks) + 2),
    ]
    for s in strategies:
        cells = []
        for k in marks:
            vals = [r["curve"][k - 1] for r in runs[s]]
            cells.append(f"{statistics.median(vals):.4f} ({min(vals):.4f}..{max(vals):.4f})")
        minutes = statistics.median(r["minutes"] for r in runs[s])
        wall = statistics.median(r["wall"] for r in runs[s])
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {minutes:.2f} | {wall:.0f} |")
    lines += ["", "Each seed's best-so-far curve (after trials 1..n):", ""]
    for s in strategies:
        for seed, r in enumerate(runs[s]):
            lines.append(f"- {s} seed {seed}: " + " ".join(f"{v:.4f}" for v in r["curve"]))
    lines += [
        "",
        "Trials that reach the final median best of random (fewer is better):",
        "",
    ]
    target = statistics.median(r["curve"][-1] for r in runs[strategies[-1]])
    for s in strategies:
        hits = [next((i + 1 for i, v in enumerate(r["curve"]) if v >= target), None) for r in runs[s]]
        lines.append(f"- {s}: " + ", ".join("never" if h is None else str(h) for h in hits))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


def _machine() -> str:
    from _machine import machine

    return machine(with_gpu=True)


if __name__ == "__main__":
    main()
