"""Which observations the bayes strategy's GP is fitted on, at which fidelity (epochs trained).

Each rule turns the trials and their curves (maximise form) into `Evidence`: the GP's rows and
values, the points it is also conditioned on, and what the suggestion records about them.

- `final`: without curves (trials told without per-epoch reports), the completed trials'
  scores.
- `highest`, the BOHB rule (Falkner et al. 2018, Section 4.1): the observations at the highest
  fidelity that has at least dims + 1 of them, dims the number of searched dimensions. The
  fidelity is the epochs trained, e + 1 for epoch e; a trial's observation at epoch e is the
  best value it reported up to e (what its score would be, stopped there), and a completed
  trial counts with its score at every epoch from its last on. Running trials count as soon as
  they reach e. When no epoch has dims + 1 observations, epoch 0 (the most) is used. Before a
  scheduler has stopped any trial, every fidelity falls back to this rule: with every trial
  run to the end, that is the completed trials' scores.
- `rank` (the default with a scheduler): one row per scored trial over its params, valued by
  its standing (epochs trained, then score) as a normal score (`ranked` says why).
- `joint`: one GP over (params, z), z = log(epochs trained) / log(the longest any trial
  trained), fitted on every non-failed trial's curve at 1, 2, 4, 8, ... epochs and its last
  epoch (each value the best so far), EI taken at z = 1, the incumbent the best predicted
  value at z = 1 among the points tried (MOBSTER, Klein et al. 2020, pairs such a model with
  ASHA). A trial stopped after one epoch still informs the model about its region at full
  length, through the correlation learnt across z. A completed trial's last row is its score;
  one told without a curve counts at z = 1. "Longest" is the longest any trial has trained so
  far: the full length once one trial has run to the end. Why not the BOHB rule by default:
  under ASHA it drops most observations whenever a higher rung gets its dims + 1 values, and
  on docs/bench_multifidelity.md it needed twice the epochs.

Conditioning (kriging believer, `_gp.condition`): running and interrupted trials without an
observation are believed at their predicted mean, and (`highest`, `final`) so are the pruned
trials without an observation there (stopped below that fidelity), so that parallel workers
are sent elsewhere and not back to a stopped point; failed trials at the worst observed value
(`joint`: the worst at z = 1), so that the search moves away from what broke. A pruned trial
is not believed at the worst: it was stopped for trailing the top 1/eta at a lower rung, which
a near-optimal point may do (and BOHB's model at a fidelity leaves such trials out).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunetorch import history
from tunetorch.strategies.encoding import Encoding
from tunetorch.trial import Trial, TrialState

Curves = Mapping[int, Mapping[int, float]]
PENDING = (TrialState.RUNNING, TrialState.INTERRUPTED)


@dataclass(frozen=True)
class Evidence:
    """What the GP is fitted and conditioned on.

    X (n, D) rows, or (n, D + 1) with the fidelity z as the last column when `at` is set;
    values (n,) in maximise form; numbers (n,) the trial of each row (the hyperparameters'
    anchor is chosen by trial number); believe and failed: rows believed at the predicted mean
    and at the worst value; at: the fidelity z at which EI is taken (joint), None when the rows
    have no fidelity column; tried (m, D): the points tried, the incumbent the best predicted
    value among them at `at`; best_score: the best score, as recorded; counts: what the
    suggestion records about the rows (n_observations, fidelity_epochs, n_pending, ...).
    """

    X: np.ndarray
    values: np.ndarray
    numbers: list[int]
    believe: np.ndarray
    failed: np.ndarray
    best_score: float
    counts: dict[str, Any] = field(default_factory=dict)
    ranked: bool = False  # values are normal scores of a ranking (re-ranked within the anchor)
    at: float | None = None
    tried: np.ndarray | None = None


def final(trials: Sequence[Trial], scored: Sequence[Trial], encoding: Encoding) -> Evidence:
    """Without curves: the scored trials' scores."""
    return _at_one_fidelity(trials, [(t, float(t.score)) for t in scored], None, encoding)


def highest(trials: Sequence[Trial], curves: Curves, encoding: Encoding) -> Evidence:
    """The BOHB rule: the observations at the highest epoch with >= dims + 1 of them."""
    # Per trial: epoch -> best finite value reported up to that epoch.
    running: dict[int, dict[int, float]] = {}
    for t in trials:
        best, out = -math.inf, {}
        for e, v in sorted((curves.get(t.number) or {}).items()):
            best = max(best, v) if history.finite(v) else best
            out[e] = best
        running[t.number] = out

    def observations(e: int) -> list[tuple[Trial, float]]:
        obs = []
        for t in trials:
            own = running[t.number]
            if t.state == TrialState.COMPLETE and history.finite(t.score) and e >= max(own, default=-1):
                obs.append((t, float(t.score)))
            elif t.state != TrialState.FAIL and e in own and history.finite(own[e]):
                obs.append((t, own[e]))
        return obs

    levels = sorted({e for own in running.values() for e in own}, reverse=True) or [0]
    for e in levels:
        obs = observations(e)
        if len(obs) >= len(encoding.space) + 1:
            return _at_one_fidelity(trials, obs, e, encoding)
    return _at_one_fidelity(trials, observations(levels[-1]), levels[-1], encoding)


def _at_one_fidelity(
    trials: Sequence[Trial], observed: list[tuple[Trial, float]], level: int | None, encoding: Encoding
) -> Evidence:
    """Rows for the observations at one epoch (`level`; None: the scores), the pending trials
    and the pruned ones without an observation there believed, the failed ones at the worst."""
    seen = {t.number for t, _ in observed}
    pending = [t for t in trials if t.state in PENDING and t.number not in seen]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.number not in seen]
    values = np.array([v for _, v in observed], dtype=float)
    return Evidence(
        X=encoding.rows([t.params for t, _ in observed]),
        values=values,
        numbers=[t.number for t, _ in observed],
        believe=encoding.rows([t.params for t in pending + pruned]),
        failed=encoding.rows([t.params for t in failed]),
        best_score=float(values.max()),
        counts={
            "n_observations": len(observed),
            "fidelity_epochs": None if level is None else level + 1,  # epochs behind each observation
            "n_pending": len(pending),
            "n_failed": len(failed),
            "n_pruned": len(pruned),  # pruned below that fidelity, believed like the pending ones
        },
    )


def ranked(trials: Sequence[Trial], curves: Curves, encoding: Encoding) -> Evidence:
    """`fidelity: rank`: one GP row per scored trial, over its params alone, valued by its standing
    as the scheduler judged it: trials ordered by the epochs they trained (a completed trial
    above every stopped one), then by score, and the order mapped to normal scores (the order
    Optuna's TPE gives pruned trials). A trial stopped early sits below every trial that went
    further, so it pushes later suggestions away from where it failed; and the length scales
    are learnt from differences between trials, as without a scheduler, not from the rise of
    each curve over its epochs (which, in `joint`, makes every parameter that matters only
    late, such as weight decay, look irrelevant and EI collapse onto one point)."""

    # Epochs trained as the scheduler saw them: the curve's reports (1 + the last epoch).
    done = history.by_standing(trials, epochs=lambda t: 1 + max(curves.get(t.number) or {0: 0}))
    observed = list(zip(done, history.normal_scores(len(done)), strict=True))
    pending = [t for t in trials if t.state in PENDING]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    return Evidence(
        X=encoding.rows([t.params for t in done]),
        values=np.array([v for _, v in observed], dtype=float),
        numbers=[t.number for t in done],
        believe=encoding.rows([t.params for t in pending]),
        failed=encoding.rows([t.params for t in failed]),
        best_score=max(float(t.score) for t in done),  # a score, not a normal score
        counts={
            "n_observations": len(done),
            "fidelity_epochs": None,
            "n_pending": len(pending),
            "n_failed": len(failed),
            "n_pruned": 0,
        },
        ranked=True,
    )


def joint(trials: Sequence[Trial], curves: Curves, encoding: Encoding) -> Evidence | None:
    """`fidelity: joint`: rows over (params, z) from every trial's curve, EI at z = 1; None when
    nothing finite was reported yet (every curve diverged)."""
    top = 1 + max((e for t in trials for e in (curves.get(t.number) or {})), default=0)

    def z(epochs: int) -> float:  # the fidelity input: log epochs trained, 1 at the longest
        return math.log(epochs) / math.log(top) if top > 1 else 1.0

    live = [t for t in trials if t.state != TrialState.FAIL]
    inputs = encoding.rows([t.params for t in live])  # each trial's GP input (params only), one batch
    index, fidelities, values, numbers = [], [], [], []  # one entry per row

    def add(i: int, t: Trial, fidelity: float, value: float) -> None:
        index.append(i)
        fidelities.append(fidelity)
        values.append(value)
        numbers.append(t.number)

    for i, t in enumerate(live):
        own = curves.get(t.number) or {}
        last = max(own, default=None)
        complete = t.state == TrialState.COMPLETE and history.finite(t.score)
        best = -math.inf
        for e in sorted(own):
            best = max(best, own[e]) if history.finite(own[e]) else best
            # Epochs 1, 2, 4, 8, ... and the last: the curve's shape without a row per epoch.
            # A completed trial's last row is its score (trainer.score may be `last`, not best).
            if history.finite(best) and ((e + 1) & e == 0 or e == last) and not (complete and e == last):
                add(i, t, z(e + 1), best)
        if complete:  # at the length it ran; told without a curve: at the longest
            add(i, t, z(last + 1) if own else 1.0, float(t.score))
    if not values:
        return None
    pending = [t for t in trials if t.state in PENDING]
    failed = [t for t in trials if t.state == TrialState.FAIL]

    def at_top(ts: list[Trial]) -> np.ndarray:  # rows at the longest fidelity, (len(ts), D + 1)
        X = encoding.rows([t.params for t in ts])
        return np.hstack([X, np.ones((len(X), 1))])

    scores = np.array(values, dtype=float)
    return Evidence(
        X=np.hstack([inputs[index], np.array(fidelities)[:, None]]),
        values=scores,
        numbers=numbers,
        believe=at_top(pending),
        failed=at_top(failed),
        best_score=float(scores.max()),
        counts={
            "n_observations": len(values),
            "fidelity_epochs": top,  # EI is taken at this many epochs trained
            "n_pending": len(pending),
            "n_failed": len(failed),
        },
        at=1.0,
        tried=np.vstack([inputs[sorted(set(index))], encoding.rows([t.params for t in pending])]),
    )
