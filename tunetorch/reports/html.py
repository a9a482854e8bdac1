"""index.html: the study on one page a reader can explore, self-contained (no network).

Titled with the model, the data and the strategy; every trial in a table that sorts by any
column; every trial's learning curve (pruned ones marked where they were stopped); the score
against each parameter; which parameters mattered and the model's contour over the two that
mattered most. Hovering any mark of a trial shows its parameters and lights up its other marks.

One file: the charts are inline SVG (tunetorch/reports/charts.py), the style and the script are
package data (index.css, index.js beside this module) inlined at write time, progress.png is
inline base64. The URL fragment drives the script as a reader would, so a test or a screenshot
can too: `index.html#sort=-lr&hover=12&view=curves` sorts by the column whose key is or ends
with "lr" (descending), shows trial 12 as if hovered, and scrolls to the learning curves.

Epochs are counted from 1, as in the terminal and summary.json (tunetorch/words.py); the cost in
GPU minutes, or CPU minutes on a CPU.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from tunetorch.journal import Journal
from tunetorch.reports.charts import contour_chart, curves_chart, param_panels
from tunetorch.reports.importance import comparable, pair_surface
from tunetorch.reports.meta import study_meta
from tunetorch.reports.summary import optimism_reading
from tunetorch.reports.svg import e
from tunetorch.reports.terminal import (
    evaluate_command,
    format_duration,
    format_params,
    format_score,
    format_value,
    tensorboard_command,
)
from tunetorch.reports.trials_table import trials_table
from tunetorch.trial import Trial
from tunetorch.words import GPU_MINUTES, count, minutes, no_test_counterpart, test_name, test_parts, times

SECTIONS = (
    ("trials", "Trials"),
    ("curves", "Learning curves"),
    ("params", "Score against each parameter"),
    ("importance", "Which parameters mattered"),
    ("progress", "Progress"),
)


def asset(name: str) -> str:
    """index.css or index.js, shipped beside this module (pyproject.toml: package-data)."""
    return resources.files("tunetorch.reports").joinpath(name).read_text(encoding="utf-8")


def _target_name(config: Mapping[str, Any], group: str) -> str | None:
    """'MLP' for model._target_ 'tunetorch.training.models.MLP': the class a group built."""
    node = config.get(group)
    target = node.get("_target_") if isinstance(node, Mapping) else None
    return str(target).rsplit(".", 1)[-1] if target else None


def study_title(journal: Journal, strategy: str) -> str:
    """'MLP on Digits: bayes search, asha stopping' (the model and data module's class names, from
    the config the journal holds); without a config, the strategy alone."""
    import yaml  # hydra's own dependency

    try:
        config = yaml.safe_load(journal.get_meta("config") or "") or {}
    except yaml.YAMLError:
        config = {}
    model, data = _target_name(config, "model"), _target_name(config, "dataset")
    what = f"{model or 'model'} on {data or 'data'}" if model or data else "Study"
    scheduler = journal.get_meta("scheduler")
    how = f"{strategy} search" + (f", {scheduler} stopping" if scheduler and scheduler != "none" else "")
    return f"{what}: {how}"


def _card(key: str, value: str, cls: str = "") -> str:
    return f'<div class="card {cls}"><div class="k">{e(key)}</div><div class="v">{e(value)}</div></div>'


def _h2(key: str) -> str:
    return f'<h2 id="{key}">{e(dict(SECTIONS)[key])}</h2>'


def render(
    summary: Mapping[str, Any], trials: Sequence[Trial], study_dir: Path, journal: Journal | None = None
) -> str:
    """The page as a string. `summary`: summary.json's dict; the curves, the config and the space
    come from `journal` (the study's own, opened from `study_dir` when not given)."""
    study_dir = Path(study_dir)
    if journal is None:
        own = Journal(study_dir / "journal.sqlite")
        try:
            return render(summary, trials, study_dir, own)
        finally:
            own.close()
    meta = study_meta(journal, summary.get("strategy"))
    curves = journal.all_epochs()
    metric, direction = summary["metric"], summary["direction"]
    unit = summary.get("device_unit") or GPU_MINUTES
    title = study_title(journal, summary["strategy"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)} ({e(study_dir.name)})</title>",
        f'<style>{asset("index.css")}</style></head><body data-direction="{e(direction)}">',
        f"<h1>{e(title)}</h1>",
        f'<p class="sub">study {e(study_dir.name)}: {e(direction)} {e(metric)}; '
        f"{count(summary['n_trials'], 'finished trial')}, "
        f"{e(minutes(float(summary['gpu_minutes']), unit))}, "
        f"{format_duration(float(summary.get('wall_seconds') or 0.0))} wall</p>",
        _cards(summary, metric, unit),
        "<!-- nav -->",
        *_best_and_test(summary, metric, study_dir),
        _h2("trials"),
        '<p class="note">Click a column to sort by it (again: the other way). Hover a row, a line or a '
        "dot to see the trial's parameters and light up its marks in every chart.</p>",
        trials_table(trials, _param_names(trials, meta.space), metric, unit),
        _h2("curves"),
        f'<p class="note">{e(metric)} after each epoch of every trial: solid lines ran to the end; '
        "dashed lines with a hollow orange square are trials the scheduler stopped there (pruned); "
        "grey lines with a cross failed; the best trial is red. Colour: trial number (first dark, "
        "last yellow).</p>",
        curves_chart(trials, curves, metric, direction),
    ]
    if meta.space is not None:
        parts += [
            _h2("params"),
            '<p class="note">Each scored trial\'s score against each parameter; hollow orange squares '
            "are pruned trials (their score after fewer epochs); the best trial is ringed red; triangles "
            "on an edge are outside the score axis. Ints and choices are spread a little within their "
            "value.</p>",
            param_panels(trials, meta.space, metric, direction),
        ]
    parts += _importance(summary, trials, meta.space, metric, direction)
    if (study_dir / "progress.png").is_file():
        data = base64.b64encode((study_dir / "progress.png").read_bytes()).decode("ascii")
        alt = f"Progress: best score so far against the {unit} spent"
        parts += [_h2("progress"), f'<img alt="{e(alt)}" src="data:image/png;base64,{data}">']
    parts += [
        '<div id="tip" role="tooltip" hidden></div>',
        '<p class="note">Everything here is rebuilt from journal.sqlite. More: summary.json, trials.csv, '
        f"<code>{e(tensorboard_command(study_dir / 'tb'))}</code> (from the folder the study was "
        "started in).</p>",
        f"<script>{asset('index.js')}</script>",
        "</body></html>",
    ]
    present = [(k, v) for k, v in SECTIONS if any(p.startswith(f'<h2 id="{k}">') for p in parts)]
    nav = '<nav class="toc">' + " ".join(f'<a href="#{k}">{e(v)}</a>' for k, v in present) + "</nav>"
    return "\n".join(nav if p == "<!-- nav -->" else p for p in parts) + "\n"


def _param_names(trials: Sequence[Trial], space) -> list[str]:
    if space is not None:
        return list(space.names)
    return list(dict.fromkeys(k for t in trials for k in t.params))


def _cards(summary: Mapping[str, Any], metric: str, unit: str) -> str:
    cards = [
        _card("strategy", summary["strategy"]),
        _card("trials finished", f"{summary['n_trials']}"),
        _card(
            "complete / pruned / failed",
            f"{summary['n_complete']} / {summary['n_pruned']} / {summary['n_failed']}",
        ),
        _card(unit, format_value(float(summary["gpu_minutes"]))),
    ]
    best, test, opt = summary.get("best"), summary.get("test"), summary.get("optimism")
    if best:
        cards.append(_card(f"best {metric}", f"{format_score(best['val_score'])} (trial {best['trial']})"))
    if test:
        looks = int(summary.get("test_evaluations") or 1)
        if test["value"] is None:
            name, value = "test", f"trial {test['trial']}: {test['metric']} has no test counterpart"
        else:
            name, value = test_name(test["metric"]), f"{format_score(test['value'])} (trial {test['trial']})"
        cards.append(_card(f"{name} (evaluated {times(looks)})", value))
    if opt:
        cards.append(_card("optimism of validation", f"{opt['gap']:+.4f}", "opt"))
    return f'<div class="cards">{"".join(cards)}</div>'


def _best_and_test(summary: Mapping[str, Any], metric: str, study_dir: Path) -> list[str]:
    best, test, opt = summary.get("best"), summary.get("test"), summary.get("optimism")
    parts = []
    if best:
        parts.append(
            f"<h2>Best trial</h2><p>trial {best['trial']}: validation {e(metric)} "
            f"{format_score(best['val_score'])} at epoch {best.get('best_epoch')} of {best.get('epochs')} "
            "(epochs counted from 1); "
            f"{e(format_params(best['params']))}</p>"
        )
    parts.append("<h2>Test result</h2>")
    if not test:
        parts.append(f'<p id="test">not evaluated yet: <code>{e(evaluate_command(study_dir))}</code></p>')
        return parts
    looks = int(summary.get("test_evaluations") or 1)
    forced = " <strong>(forced re-evaluation)</strong>" if summary.get("test_forced") else ""
    parts.append(
        f'<p id="test">{_test_scores(test)} of trial {test["trial"]}, evaluated {times(looks)}{forced}.</p>'
    )
    if test["value"] is None:
        parts.append(f'<p id="optimism">{e(no_test_counterpart(test["metric"], test["metrics"]))}.</p>')
    if opt:
        m = opt["measure"]
        reading = opt.get("reading") or optimism_reading(opt)
        parts.append(
            f'<p id="optimism">Optimism of validation: validation {m} {format_score(opt[f"val_{m}"])} '
            f"minus test {m} {format_score(opt[f'test_{m}'])} = <strong>{opt['gap']:+.4f}</strong>: "
            f"{e(reading)}.</p>"
            f'<p class="note">{e(opt["label"])}.</p>'
        )
    return parts


def _test_scores(test: Mapping[str, Any]) -> str:
    """'test accuracy <strong>0.9694</strong> (loss 0.0673)', words.test_parts as the page shows
    it: every value to 4 decimals, the study's metric in bold; all of them where it has no test
    counterpart."""
    head, others = test_parts(test["metric"], test["metrics"])
    shown = ", ".join(f"{e(name)} {format_score(value)}" for name, value in others)
    if head is None:
        return f"test {shown}"
    first = f"test {e(head[0])} <strong>{format_score(head[1])}</strong>"
    return f"{first} ({shown})" if shown else first


def _importance(summary, trials, space, metric: str, direction: str) -> list[str]:
    """The shares as bars, how the trials counted, and the contour of the two that mattered most."""
    imp = summary.get("importance")
    parts = [_h2("importance")]
    if not (imp and imp.get("importance")):
        reason = (imp or {}).get("reason", "not estimated")
        return [*parts, f'<p id="importance-none">not estimated: {e(reason)}</p>']
    shares = imp["importance"]
    parts.append('<table id="shares"><tr><th>parameter</th><th>share</th><th></th></tr>')
    for name, share in shares.items():
        parts.append(
            f'<tr><td>{e(name)}</td><td class="num">{share:.0%}</td>'
            f'<td><span class="bar" style="width:{share * 20:.2f}em"></span></td></tr>'
        )
    counted = imp.get("counted") or count(imp["n_trials"], "complete trial")
    parts.append(f'</table><p class="note">Method: {e(imp["method"])}, from {e(counted)}.</p>')
    if space is None or len(shares) < 2:
        return parts
    names = list(shares)[:2]
    used = comparable(trials, space, direction)
    X = np.array([space.to_unit(t.params) for t in used.trials])
    Z = pair_surface(X, used.y, space.names.index(names[0]), space.names.index(names[1]), n_grid=32)
    if used.ranked:
        what = "standing (the share of the counted trials it would beat)"
        scale = "the standing the model expects"
    else:
        what, scale = f"expected {metric}", f"the {e(metric)} the model expects"
    parts += [
        f"<h3>The two that mattered most: {e(names[0])} and {e(names[1])}</h3>",
        f'<p class="note">The importance model (the same forest): {scale} over the two, averaged '
        "over every other parameter, in ten bands from worst to best (yellow: better); the dots are "
        "the trials it learnt from (squares: pruned).</p>",
        contour_chart(
            Z, (space[names[0]], space[names[1]]), used.trials, metric, direction, what, used.ranked
        ),
    ]
    return parts
