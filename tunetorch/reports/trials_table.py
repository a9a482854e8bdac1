"""index.html's table of every trial: one column per field and per parameter, sortable.

Each cell carries its sort value (`data-v`: the number itself, or the text), each header its
column key (`data-key`: trial, state, score, epochs, best_epoch, minutes, the parameter's config
path) and kind (`data-kind`: num or text), so the page's script sorts any column without
parsing what it shows. Epochs are counted from 1 (tunetorch/words.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from tunetorch.reports.charts import trial_tip
from tunetorch.reports.svg import e
from tunetorch.reports.terminal import format_score, format_value
from tunetorch.trial import Trial
from tunetorch.words import shown_epoch


def _num(value: float | int | None, shown: str | None = None) -> str:
    if value is None:
        return '<td class="num" data-v="">-</td>'
    return f'<td class="num" data-v="{value!r}">{e(shown if shown is not None else value)}</td>'


def _text(value: str) -> str:
    return f'<td data-v="{e(value)}">{e(value)}</td>'


def _param(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _text("-" if value is None else str(value))
    return _num(value, format_value(value))


def trials_table(trials: Sequence[Trial], names: Sequence[str], metric: str, unit: str) -> str:
    """Every trial, in trial order until the reader sorts it: `names` are the parameter columns."""
    failed = any(t.error for t in trials)
    heads = [
        ("trial", "trial", "num"),
        ("state", "state", "text"),
        ("score", metric, "num"),
        ("epochs", "epochs", "num"),
        ("best_epoch", "best epoch", "num"),
        ("minutes", unit, "num"),
        *((n, n, "num" if _numeric(trials, n) else "text") for n in names),
        *((("error", "error", "text"),) if failed else ()),
    ]
    cells = "".join(
        f'<th data-key="{e(k)}" data-kind="{kind}" title="sort by {e(label)}">{_breakable(label)}</th>'
        for k, label, kind in heads
    )
    rows = [f'<table id="trial-table" class="sortable"><thead><tr>{cells}</tr></thead><tbody>']
    for t in sorted(trials, key=lambda t: t.number):
        state = t.state.value.lower()
        minutes = None if t.device_seconds is None else t.device_seconds / 60.0
        row = [
            _num(t.number),
            f'<td data-v="{state}"><span class="state {state}">{state}</span></td>',
            _num(t.score, format_score(t.score)),
            _num(t.epochs),
            _num(shown_epoch(t.best_epoch)),
            _num(minutes, None if minutes is None else format_value(minutes)),
            *(_param(t.params.get(n)) for n in names),
            *((_text(t.error or ""),) if failed else ()),
        ]
        rows.append(
            f'<tr class="trial {state}" data-trial="{t.number}" data-tip="{e(trial_tip(t, metric))}">'
            + "".join(row)
            + "</tr>"
        )
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _breakable(label: str) -> str:
    """'optimizer.<wbr>weight_decay': a long config path may wrap after a dot (a narrower table)."""
    return "<wbr>".join(e(part) + "." for part in label.split(".")[:-1]) + e(label.split(".")[-1])


def _numeric(trials: Sequence[Trial], name: str) -> bool:
    values = [t.params[name] for t in trials if t.params.get(name) is not None]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
