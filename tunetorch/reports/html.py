"""index.html: the study on one self-contained page (no network: styles inline, images as base64).

Epochs are counted from 1, as in the terminal and summary.json (summary.json's `best_epoch` is
already converted: tunetorch/words.py); the cost in GPU minutes, or CPU minutes on a CPU."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunetorch.reports.summary import optimism_reading
from tunetorch.reports.terminal import (
    evaluate_command,
    format_duration,
    format_params,
    format_score,
    format_value,
    ranked,
    tensorboard_command,
)
from tunetorch.trial import Trial
from tunetorch.words import GPU_MINUTES, count, minutes, times

IMAGES = (
    ("progress.png", "Progress: best score so far against the GPU (or CPU) minutes spent"),
    ("params.png", "Score against each parameter"),
    ("importance.png", "Importance chart"),
)

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { padding: 0.25em 0.8em; text-align: left; }
th { border-bottom: 2px solid #bbb; } tr:nth-child(even) td { background: #f4f6f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 0.7em 1em; min-width: 12em; }
.card .v { font-size: 1.5em; font-weight: 600; } .card .k { color: #666; font-size: 0.85em; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
.bar { background: #1f77b4; height: 0.9em; display: inline-block; vertical-align: middle; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _card(key: str, value: str, cls: str = "") -> str:
    return f'<div class="card {cls}"><div class="k">{_e(key)}</div><div class="v">{_e(value)}</div></div>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<h2>{_e(alt)}</h2>\n<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def render(summary: Mapping[str, Any], trials: Sequence[Trial], study_dir: Path, k: int = 5) -> str:
    """The page as a string. `summary`: summary.json's dict; images are read from `study_dir`."""
    metric, direction = summary["metric"], summary["direction"]
    unit = summary.get("device_unit") or GPU_MINUTES
    if unit == "CPU-device minutes":  # summary.json of an older tunetorch
        unit = "CPU minutes"
    best = summary.get("best")
    cards = [
        _card("strategy", summary["strategy"]),
        _card("trials finished", f"{summary['n_trials']}"),
        _card(
            "complete / pruned / failed",
            f"{summary['n_complete']} / {summary['n_pruned']} / {summary['n_failed']}",
        ),
        _card(unit, format_value(float(summary["gpu_minutes"]))),
    ]
    if best:
        cards.append(_card(f"best {metric}", f"{format_score(best['val_score'])} (trial {best['trial']})"))
    test, opt = summary.get("test"), summary.get("optimism")
    looks = int(summary.get("test_evaluations") or 1)
    if test:
        cards.append(
            _card(
                f"test accuracy (evaluated {times(looks)})",
                f"{format_score(test['accuracy'])} (trial {test['trial']})",
            )
        )
    if opt:
        cards.append(_card("optimism of validation", f"{opt['gap']:+.4f}", "opt"))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>tunetorch study: {_e(study_dir.name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Study {_e(study_dir.name)}</h1>",
        f'<p class="sub">{_e(summary["strategy"])} search, {_e(direction)} {_e(metric)}; '
        f"{count(summary['n_trials'], 'finished trial')}, "
        f"{_e(minutes(float(summary['gpu_minutes']), unit))}, "
        f"{format_duration(float(summary.get('wall_seconds') or 0.0))} wall</p>",
        f'<div class="cards">{"".join(cards)}</div>',
    ]
    if best:
        parts.append(
            f"<h2>Best trial</h2><p>trial {best['trial']}: validation {_e(metric)} "
            f"{format_score(best['val_score'])} at epoch {best.get('best_epoch')} of {best.get('epochs')} "
            "(epochs counted from 1); "
            f"{_e(format_params(best['params']))}</p>"
        )
    parts.append("<h2>Test result</h2>")
    if test:
        forced = " <strong>(forced re-evaluation)</strong>" if summary.get("test_forced") else ""
        parts.append(
            f'<p id="test">test accuracy <strong>{format_score(test["accuracy"])}</strong> (loss '
            f"{format_score(test['loss'])}) of trial {test['trial']}, evaluated {times(looks)}{forced}.</p>"
        )
        if opt:
            m = opt["measure"]
            reading = opt.get("reading") or optimism_reading(opt)
            parts.append(
                f'<p id="optimism">Optimism of validation: validation {m} {format_score(opt[f"val_{m}"])} '
                f"minus test {m} {format_score(opt[f'test_{m}'])} = <strong>{opt['gap']:+.4f}</strong>: "
                f"{_e(reading)}.</p>"
                f'<p class="note">{_e(opt["label"])}.</p>'
            )
    else:
        parts.append(f'<p id="test">not evaluated yet: <code>{_e(evaluate_command(study_dir))}</code></p>')

    rows = ranked(trials, direction)[:k]
    parts.append(f"<h2>Top {count(len(rows), 'trial')}</h2>")
    parts.append(
        f'<table id="top"><tr><th>trial</th><th>{_e(metric)}</th><th>epochs</th>'
        f"<th>{_e(unit)}</th><th>state</th><th>params</th></tr>"
    )
    for t in rows:
        parts.append(
            f'<tr><td class="num">{t.number}</td><td class="num">{format_score(t.score)}</td>'
            f'<td class="num">{t.epochs if t.epochs is not None else "-"}</td>'
            f'<td class="num">{format_value((t.device_seconds or 0.0) / 60)}</td><td>{t.state.value}</td>'
            f"<td>{_e(format_params(t.params))}</td></tr>"
        )
    parts.append("</table>")

    imp = summary.get("importance")
    parts.append("<h2>Which parameters mattered</h2>")
    if imp and imp.get("importance"):
        parts.append('<table id="importance"><tr><th>parameter</th><th>share</th><th></th></tr>')
        for name, share in imp["importance"].items():
            parts.append(
                f'<tr><td>{_e(name)}</td><td class="num">{share:.0%}</td>'
                f'<td><span class="bar" style="width:{share * 20:.2f}em"></span></td></tr>'
            )
        parts.append(
            f'</table><p class="note">Method: {_e(imp["method"])}, '
            f"from {count(imp['n_trials'], 'complete trial')}.</p>"
        )
    else:
        reason = (imp or {}).get("reason", "not estimated")
        parts.append(f'<p id="importance">not estimated: {_e(reason)}</p>')

    for name, alt in IMAGES:
        if (study_dir / name).is_file():
            parts.append(_img(study_dir / name, alt))
    parts.append(
        '<p class="note">Everything here is rebuilt from journal.sqlite. More: summary.json, trials.csv, '
        f"<code>{_e(tensorboard_command(study_dir / 'tb'))}</code> (from the folder the study was "
        "started in).</p></body></html>"
    )
    return "\n".join(parts) + "\n"
