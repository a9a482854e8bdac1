"""Bayesian optimisation: a Sobol initial design, then a GP surrogate and log expected improvement.

Each suggestion is rebuilt from the history, the curves and the seed alone:

1. While fewer than `n_startup` trials have finished with a score (completed, or pruned by a
   scheduler with the best value they reached), propose the next point of a seeded,
   scrambled Sobol sequence that no trial (pending, failed or done) already holds.
2. Then fit a GP (Matern 5/2, one length scale per input column, noise; `_gp.py`) on the unit
   cube of the space (log dimensions in log space) with categoricals one-hot; scores are
   standardised and Yeo-Johnson warped (`warp`), so that a long tail of bad trials does not
   flatten the model where the optimum is. What it is fitted to:
   - without curves (trials told without per-epoch reports): the completed trials' scores;
   - with curves and at least one trial stopped early by a scheduler (multi-fidelity),
     `fidelity: rank` (the default): one row per scored trial over its params, valued by its
     standing (epochs trained, then score) as a normal score (`_ranked` says why);
   - likewise, `fidelity: joint`: one GP over (params, z), z = log(epochs trained) /
     log(the longest any trial trained), fitted on every non-failed trial's curve at 1, 2, 4,
     8, ... epochs and its last epoch (each value the best so far), EI taken at z = 1, the
     incumbent the best predicted value at z = 1 among the points tried (MOBSTER, Klein et al.
     2020, pairs such a model with ASHA). A trial stopped after one epoch still informs the
     model about its region at full length, through the correlation learnt across z. A
     completed trial's last row is its score; one told without a curve counts at z = 1.
     Running and interrupted trials are believed at z = 1 at their predicted mean, failed ones
     at the worst value observed at z = 1. "Longest" is the longest any trial has trained so
     far: the full length once one trial has run to the end. Why not the BOHB rule
     by default: under ASHA it drops most observations whenever a higher rung gets its dims + 1
     values, and on docs/bench_multifidelity.md it needed twice the epochs;
   - `fidelity: highest`, the BOHB rule (Falkner et al. 2018, Section 4.1): the observations at
     the highest fidelity that has at least dims + 1 of them, dims the number of searched
     dimensions. The fidelity is the epochs trained, e + 1 for epoch e; a trial's observation
     at epoch e is the best value it reported up to e (what its score would be, stopped
     there), and a completed trial counts with its score at every epoch from its last on.
     Running trials count as soon as they reach e. When no epoch has dims + 1 observations,
     epoch 0 (the most) is used.
   Before a scheduler has stopped any trial (no scheduler, or none stopped yet), `joint` fits
   as `highest` does: with every trial run to the end, that is the completed trials' scores.
   `random_fraction` > 0 proposes that share of the suggestions after the start-up uniformly
   at random instead (BOHB's 1/3), seeded by the trial number.
3. (`highest`) Condition it also on the pending trials (running or interrupted ones without an
   observation at that fidelity) and on the pruned trials stopped below that fidelity at
   their predicted mean (kriging believer), so that parallel workers are sent elsewhere and
   not back to a stopped point; and on the failed ones at the worst observed score, so that
   the search moves away from what broke. A pruned trial is not believed at the worst: it was
   stopped for trailing the top 1/eta at a lower rung, which a near-optimal point may do
   (and BOHB's model at a fidelity leaves such trials out). No trial's params are proposed twice.
4. Maximise log EI: Sobol candidates plus perturbations of the best trials, L-BFGS-B on the
   float coordinates from the best few, then a sweep over the values of each discrete
   dimension. Ints and categoricals are rounded *before* the GP sees them, so EI is always
   that of a point that can actually be run.

5. Scale (`_fit`): past 100 observed trials, the posterior holds at most `_gp.MAX_ROWS` rows
   (`_gp.subset`: the best half and an even spread of the rest), and the hyperparameters are
   refitted only when the history grows by a tenth, on the first trials by number
   (`_gp.anchor_size`); a suggestion stays a function of the history and the seed.

Why one long module: the steps above (design, fit, believer, acquisition, local refinement)
share the strategy's encoded state; the GP maths itself lives apart in _gp.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tunetorch.errors import SpaceExhausted, UsageError
from tunetorch.space import Categorical, Float, Int, SearchSpace
from tunetorch.strategies import _gp
from tunetorch.strategies.base import Strategy
from tunetorch.trial import Trial, TrialState

_MAX_ENUMERATE = 4096  # a discrete space up to this size is searched exhaustively
_MAX_SWEEP = 64  # an int dimension with more values is swept over nearby values only
_FIDELITIES = ("rank", "joint", "highest")


class BayesSearch(Strategy):
    name = "bayes"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        n_startup: int | None = None,
        n_candidates: int = 2048,
        n_local: int = 10,
        warp: bool = True,
        fidelity: str = "rank",
        random_fraction: float = 0.0,
    ):
        super().__init__(space, seed)
        for key, value, low in (
            ("n_startup", n_startup, 2),
            ("n_candidates", n_candidates, 16),
            ("n_local", n_local, 0),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise UsageError(f"strategy.{key}: {value!r} must be a whole number >= {low}")
        if not isinstance(warp, bool):
            raise UsageError(f"strategy.warp: {warp!r} must be true or false")
        if fidelity not in _FIDELITIES:
            raise UsageError(f"strategy.fidelity: {fidelity!r} is not one of {', '.join(_FIDELITIES)}")
        if (
            isinstance(random_fraction, bool)
            or not isinstance(random_fraction, (int, float))
            or not 0.0 <= random_fraction < 1.0
        ):
            raise UsageError(f"strategy.random_fraction: {random_fraction!r} must be a number in [0, 1)")
        self.n_startup = max(5, 2 * len(space)) if n_startup is None else n_startup
        self.n_candidates = n_candidates
        self.n_local = n_local
        self.warp = warp
        self.fidelity = fidelity
        self.random_fraction = float(random_fraction)
        self._columns = _columns(space)
        self._float_idx = np.array([i for i, d in enumerate(space.dims) if isinstance(d, Float)], dtype=int)
        self._float_cols = np.array([self._columns[i][0] for i in self._float_idx], dtype=int)
        self._discrete = [i for i, d in enumerate(space.dims) if not isinstance(d, Float)]
        size = 1
        for d in space.dims:
            size *= 0 if isinstance(d, Float) else (d.n_values if isinstance(d, Int) else len(d.choices))
        self._size = size if 0 < size <= _MAX_ENUMERATE else None  # only for all-discrete spaces
        self._fits: dict[tuple[bytes, bytes], _gp.GPParams] = {}  # anchor rows -> their hyperparameters

    # --- the contract --------------------------------------------------------------------------
    def suggest(
        self, number: int, trials: Sequence[Trial], curves: Mapping[int, Mapping[int, float]] | None = None
    ) -> dict[str, Any]:
        taken = {_key(t.params) for t in trials}
        if self._size is not None and len(taken) >= self._size:
            raise SpaceExhausted(f"bayes: all {self._size} points of the discrete space have been tried")
        if curves:
            scored = [
                t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and _finite(t.score)
            ]
        else:
            scored = [t for t in trials if t.state == TrialState.COMPLETE and _finite(t.score)]
        if len(scored) < self.n_startup:
            return self._startup(taken)
        coin = np.random.default_rng([self.seed, number, 1]).random()
        if coin < self.random_fraction:
            return self._random(number, taken)
        if curves and self.fidelity != "highest" and any(t.state == TrialState.PRUNED for t in trials):
            if self.fidelity == "rank":
                return self._ranked(number, trials, curves, taken)
            return self._joint(number, trials, curves, taken)
        if curves:
            level, observed = self._fidelity(trials, curves)
        else:
            level, observed = None, [(t, float(t.score)) for t in scored]
        seen = {t.number for t, _ in observed}
        pending = [
            t
            for t in trials
            if t.state in (TrialState.RUNNING, TrialState.INTERRUPTED) and t.number not in seen
        ]
        failed = [t for t in trials if t.state == TrialState.FAIL]
        pruned = [t for t in trials if t.state == TrialState.PRUNED and t.number not in seen]
        return self._bayes(number, observed, pending, failed, pruned, taken, level)

    def _fidelity(
        self, trials: Sequence[Trial], curves: Mapping[int, Mapping[int, float]]
    ) -> tuple[int, list[tuple[Trial, float]]]:
        """(epoch, [(trial, observation)]) at the highest epoch with >= dims + 1 observations."""
        # Per trial: epoch -> best finite value reported up to that epoch.
        running: dict[int, dict[int, float]] = {}
        for t in trials:
            best, out = -math.inf, {}
            for e, v in sorted((curves.get(t.number) or {}).items()):
                best = max(best, v) if _finite(v) else best
                out[e] = best
            running[t.number] = out

        def observations(e: int) -> list[tuple[Trial, float]]:
            obs = []
            for t in trials:
                own = running[t.number]
                if t.state == TrialState.COMPLETE and _finite(t.score) and e >= max(own, default=-1):
                    obs.append((t, float(t.score)))
                elif t.state != TrialState.FAIL and e in own and _finite(own[e]):
                    obs.append((t, own[e]))
            return obs

        levels = sorted({e for own in running.values() for e in own}, reverse=True) or [0]
        for e in levels:
            obs = observations(e)
            if len(obs) >= len(self.space) + 1:
                return e, obs
        return levels[-1], observations(levels[-1])

    def _ranked(
        self, number: int, trials: Sequence[Trial], curves: Mapping[int, Mapping[int, float]], taken: set
    ) -> dict[str, Any]:
        """`fidelity: rank`: one GP row per scored trial, over its params alone, valued by its standing
        as the scheduler judged it: trials ordered by the epochs they trained (a completed trial
        above every stopped one), then by score, and the order mapped to normal scores (the order
        Optuna's TPE gives pruned trials). A trial stopped early sits below every trial that went
        further, so it pushes later suggestions away from where it failed; and the length scales
        are learnt from differences between trials, as without a scheduler, not from the rise of
        each curve over its epochs (which, in `joint`, makes every parameter that matters only
        late, such as weight decay, look irrelevant and EI collapse onto one point)."""

        def standing(t: Trial) -> tuple[float, float]:
            trained = math.inf if t.state == TrialState.COMPLETE else 1 + max(curves.get(t.number) or {0: 0})
            return trained, float(t.score)

        done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and _finite(t.score)]
        done.sort(key=standing)
        observed = list(zip(done, _normal_scores(np.arange(len(done), dtype=float)), strict=True))
        pending = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.INTERRUPTED)]
        failed = [t for t in trials if t.state == TrialState.FAIL]
        out = self._bayes(number, observed, pending, failed, [], taken, "rank")
        self.last_info["best"] = max(float(t.score) for t in done)  # a score, not a normal score
        return out

    def _random(self, number: int, taken: set) -> dict[str, Any]:
        """A uniformly random untried point (BOHB's random fraction: keeps the model honest)."""
        rng = np.random.default_rng([self.seed, number, 2])
        self.last_info = {"phase": "random"}
        if self._size is not None:  # a small discrete space: draw among the points left
            free = self._enumerate(taken)
            return self.space.from_unit(free[rng.integers(len(free))])
        for _ in range(1000):
            params = self.space.from_unit(rng.random(len(self.space)))
            if _key(params) not in taken:
                return params
        raise SpaceExhausted("bayes: no untried random point found")

    def _joint(
        self, number: int, trials: Sequence[Trial], curves: Mapping[int, Mapping[int, float]], taken: set
    ) -> dict[str, Any]:
        """`fidelity: joint`: one GP over (params, epochs trained), fitted on every trial's curve,
        and EI at the longest fidelity seen (as MOBSTER, Klein et al. 2020, does with ASHA)."""
        t0 = time.perf_counter()
        rng = np.random.default_rng([self.seed, number])
        top = 1 + max((e for t in trials for e in (curves.get(t.number) or {})), default=0)

        def z(epochs: int) -> float:  # the fidelity input: log epochs trained, 1 at the longest
            return math.log(epochs) / math.log(top) if top > 1 else 1.0

        live = [t for t in trials if t.state != TrialState.FAIL]
        inputs = self._inputs(live)  # each trial's GP input (params only), one batch
        index, fidelities, values, numbers = [], [], [], []  # one entry per row

        def add(i: int, t: Trial, fidelity: float, value: float) -> None:
            index.append(i)
            fidelities.append(fidelity)
            values.append(value)
            numbers.append(t.number)

        for i, t in enumerate(live):
            own = curves.get(t.number) or {}
            last = max(own, default=None)
            complete = t.state == TrialState.COMPLETE and _finite(t.score)
            best = -math.inf
            for e in sorted(own):
                best = max(best, own[e]) if _finite(own[e]) else best
                # Epochs 1, 2, 4, 8, ... and the last: the curve's shape without a row per epoch.
                # A completed trial's last row is its score (trainer.score may be `last`, not best).
                if _finite(best) and ((e + 1) & e == 0 or e == last) and not (complete and e == last):
                    add(i, t, z(e + 1), best)
            if complete:  # at the length it ran; told without a curve: at the longest
                add(i, t, z(last + 1) if own else 1.0, float(t.score))
        if not values:  # nothing finite to fit yet (every curve diverged): keep exploring
            return self._startup(taken)
        rows = np.hstack([inputs[index], np.array(fidelities)[:, None]])
        X, y, lam, params, post = self._fit(rows, np.array(values, dtype=float), numbers)
        scores = np.array(values, dtype=float)
        fit_seconds = time.perf_counter() - t0

        pending = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.INTERRUPTED)]
        failed = [t for t in trials if t.state == TrialState.FAIL]
        at_longest = y[X[:, -1] == 1.0]
        worst = float(at_longest.min() if len(at_longest) else y.min())  # a failed trial, at full length
        post, _ = _condition(post, X, y, params, self._top_inputs(pending), self._top_inputs(failed), worst)
        at_top = _AtFidelity(post, 1.0)
        # The incumbent: the best predicted value at the longest fidelity among the points tried.
        tried = np.vstack([inputs[sorted(set(index))], self._inputs(pending)])
        predicted = at_top.predict(tried)[0]
        best = float(predicted.max())
        u, lei = self._maximise(at_top, best, tried, predicted, taken, rng)
        self.last_info = {
            **self._gp_info(at_top, u, lei, best, scores, params, params.ls[:-1], lam),
            "fidelity_length_scale": float(params.ls[-1]),
            "n_observations": len(values),
            "fidelity_epochs": top,  # EI is taken at this many epochs trained
            "n_pending": len(pending),
            "n_failed": len(failed),
            "gp_fit_seconds": float(fit_seconds),
            "suggest_seconds": float(time.perf_counter() - t0),
        }
        return self.space.from_unit(u)

    # --- 1. initial design ---------------------------------------------------------------------
    def _startup(self, taken: set) -> dict[str, Any]:
        from scipy.stats import qmc

        # The sequence depends on the seed only, so the k-th free point is the same whoever
        # asks; skipping points already held means pending trials never get a duplicate.
        sobol = qmc.Sobol(len(self.space), scramble=True, rng=self.seed)
        m, start = max(4, math.ceil(math.log2(self.n_startup + len(taken) + 1))), 0
        while m <= 16:
            points = sobol.random_base2(m) if start == 0 else sobol.random(2**m - start)
            for i, u in enumerate(points, start=start):
                params = self.space.from_unit(u)
                if _key(params) not in taken:
                    self.last_info = {"phase": "startup", "design_index": i}
                    return params
            start, m = 2**m, m + 1
        raise SpaceExhausted("bayes: the initial design found no untried point")

    # --- 2-4. model-based suggestion --------------------------------------------------------------
    def _bayes(
        self,
        number: int,
        observed: list[tuple[Trial, float]],
        pending: list[Trial],
        failed: list[Trial],
        pruned: list[Trial],
        taken: set,
        level: int | str | None,  # the epoch observed (highest), "rank", or None (no curves)
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        rng = np.random.default_rng([self.seed, number])
        X = self._inputs([t for t, _ in observed])
        scores = np.array([v for _, v in observed], dtype=float)
        X, y, lam, params, post = self._fit(
            X, scores, [t.number for t, _ in observed], ranked=level == "rank"
        )
        fit_seconds = time.perf_counter() - t0

        post, believed = _condition(
            post, X, y, params, self._inputs(pending + pruned), self._inputs(failed), float(y.min())
        )
        # The believed values count towards the incumbent, or a pending point with a high
        # predicted mean would keep EI = mean - best > 0 even at zero variance and be re-proposed.
        best = max(float(y.max()), float(believed.max(initial=-np.inf)))

        u, lei = self._maximise(post, best, X, y, taken, rng)
        out = self.space.from_unit(u)
        self.last_info = {
            **self._gp_info(post, u, lei, best, scores, params, params.ls, lam),
            "n_observations": len(observed),
            "fidelity_epochs": level + 1
            if isinstance(level, int)
            else None,  # epochs behind each observation
            "n_pending": len(pending),
            "n_failed": len(failed),
            "n_pruned": len(pruned),  # pruned below that fidelity, believed like the pending ones
            "gp_fit_seconds": float(fit_seconds),
            "suggest_seconds": float(time.perf_counter() - t0),
        }
        return out

    def _maximise(
        self, post: _gp.Posterior, best: float, X: np.ndarray, y: np.ndarray, taken: set, rng
    ) -> tuple[np.ndarray, float]:
        """The untried point u (n_dims,) of highest log EI, and that log EI."""
        from scipy.optimize import minimize
        from scipy.stats import qmc

        n_dims = len(self.space)
        if self._size is not None:
            U = self._enumerate(taken)
        else:
            sobol = qmc.Sobol(n_dims, scramble=True, rng=rng)
            U = sobol.random_base2(max(4, math.ceil(math.log2(self.n_candidates))))
            # n_candidates is rounded up to a power of two: Sobol points are balanced only in those.
            # Local candidates around the best trials: EI is often highest next to the incumbent,
            # in a basin too small for a space-filling set to hit in 6+ dimensions.
            top = np.argsort(-y)[:5]
            centres = np.stack([self._unit_of_gp_row(X[i]) for i in top])
            local = centres[rng.integers(len(top), size=512)] + rng.normal(0, 0.05, (512, n_dims))
            U = np.vstack([U, np.clip(local, 0.0, 1.0)])
        U = self._round(U)
        scores = _gp.log_ei(*post.predict(self._gp_input_batch(U)), best)
        order = np.argsort(-scores)

        results: list[tuple[float, np.ndarray]] = [
            (float(scores[i]), U[i]) for i in order[: 4 * self.n_local + 8]
        ]
        if self._size is None:
            for i in order[: self.n_local]:
                u = U[i].copy()
                if len(self._float_idx):
                    fi = self._float_idx

                    def negative(z, u=u, fi=fi):
                        u2 = u.copy()
                        u2[fi] = z
                        mu, var, dmu, dvar = post.predict_with_grad(self._gp_input(u2))
                        val, grad = _gp.log_ei_with_grad(mu, var, dmu, dvar, best)
                        return -val, -grad[self._float_cols]

                    res = minimize(
                        negative,
                        u[fi],
                        jac=True,
                        method="L-BFGS-B",
                        bounds=[(0.0, 1.0)] * len(fi),
                        options={"maxiter": 100},
                    )
                    u[fi] = np.clip(res.x, 0.0, 1.0)
                u = self._sweep(post, best, u)
                lei = float(_gp.log_ei(*post.predict(self._gp_input(u)[None, :]), best)[0])
                results.append((lei, u))
        results.sort(key=lambda r: -r[0])
        for lei, u in results:
            if _key(self.space.from_unit(u)) not in taken:
                return u, lei
        # Every good candidate is taken (a small discrete corner): the best untried one of the set.
        for i in order:
            if _key(self.space.from_unit(U[i])) not in taken:
                return U[i], float(scores[i])
        raise SpaceExhausted("bayes: no untried candidate left")

    def _sweep(self, post: _gp.Posterior, best: float, u: np.ndarray) -> np.ndarray:
        """Coordinate ascent over the discrete dimensions: try each value, keep the best."""
        for j in self._discrete:
            d = self.space.dims[j]
            if isinstance(d, Categorical):
                values = [d.encode(c) for c in d.choices]
            else:
                k = d.decode(u[j])
                lo, hi = (
                    (d.low, d.high) if d.n_values <= _MAX_SWEEP else (max(d.low, k - 3), min(d.high, k + 3))
                )
                values = [d.encode(v) for v in range(lo, hi + 1)]
            U = np.repeat(u[None, :], len(values), axis=0)
            U[:, j] = values
            s = _gp.log_ei(*post.predict(self._gp_input_batch(U)), best)
            u = U[int(np.argmax(s))]
        return u

    def _fit(
        self, X: np.ndarray, scores: np.ndarray, numbers: Sequence[int], ranked: bool = False
    ) -> tuple[np.ndarray, np.ndarray, float, Any, _gp.Posterior]:
        """Standardise (and warp) the scores and fit the GP: (X, y, warp lambda, params, posterior),
        X and y the rows the posterior holds (`_gp.subset` of them past MAX_ROWS).

        Hyperparameters: refitted at every suggestion while at most REFIT_EVERY_UNTIL trials are
        observed; past that, fitted on the anchor only: the rows of the first m observed trials
        by number, m the largest of 100 * 1.1^k within the count (`_gp.anchor_size`), so they are
        refitted each time the history grows by a tenth. The anchor is a function of the history,
        so the suggestion stays one of the history and the seed (a resumed study refits the same
        anchor and gets the same values); the fit is kept while the anchor is unchanged."""
        y, lam = self._standardise(scores)
        keep = _gp.subset(y)
        numbers = np.asarray(numbers)
        observed = np.unique(numbers)
        if len(observed) <= _gp.REFIT_EVERY_UNTIL:
            params = _gp.fit_hyperparameters(X[keep], y[keep])
        else:
            anchor = np.isin(numbers, observed[: _gp.anchor_size(len(observed))])
            # Ranked scores (fidelity rank) are ranked again within the anchor: the anchor's own
            # order does not change as later trials join the ranking, so neither does its fit.
            Xa = X[anchor]
            ya = _normal_scores(scores[anchor]) if ranked else self._standardise(scores[anchor])[0]
            rows = _gp.subset(ya)
            key = (Xa[rows].tobytes(), ya[rows].tobytes())
            if key not in self._fits:
                self._fits.clear()  # one anchor at a time: the next one replaces it
                self._fits[key] = _gp.fit_hyperparameters(Xa[rows], ya[rows])
            params = self._fits[key]
        return X[keep], y[keep], lam, params, _gp.Posterior(X[keep], y[keep], params)

    def _standardise(self, scores: np.ndarray) -> tuple[np.ndarray, float]:
        y, lam = _gp.standardise(scores), 1.0
        if self.warp:
            y, lam = _gp.warp_outputs(y)
        return y, lam

    def _gp_info(
        self, post, u: np.ndarray, lei: float, best: float, scores: np.ndarray, params, ls, lam: float
    ) -> dict[str, Any]:
        """What every model-based suggestion records about the model at its point u."""
        mu, var = post.predict(self._gp_input(u)[None, :])
        return {
            "phase": "gp",
            # In the model's units: standardised (and warped) scores, where the incumbent is `best_model`.
            "log_ei": float(lei),
            "mean_model": float(mu[0]),
            "std_model": float(math.sqrt(var[0])),
            "best_model": float(best),
            "best": float(scores.max()),
            "length_scales": self._length_scales(ls),
            "signal_var": float(params.s2),
            "warp_lambda": lam,
            "noise": float(params.noise),  # variance, in units of the score variance
        }

    # --- encoding ------------------------------------------------------------------------------
    def _inputs(self, trials: Sequence[Trial]) -> np.ndarray:
        """The trials' GP inputs, (len(trials), D)."""
        U = np.array([self.space.to_unit(t.params) for t in trials]).reshape(len(trials), len(self.space))
        return self._gp_input_batch(U)

    def _top_inputs(self, trials: Sequence[Trial]) -> np.ndarray:
        """The trials' joint-GP inputs at the longest fidelity, (len(trials), D + 1)."""
        X = self._inputs(trials)
        return np.hstack([X, np.ones((len(X), 1))])

    def _round(self, U: np.ndarray) -> np.ndarray:
        """Snap the discrete coordinates to their cell centres: the point that will actually run."""
        U = U.copy()
        for j in self._discrete:
            d = self.space.dims[j]
            U[:, j] = [d.encode(d.decode(v)) for v in U[:, j]]
        return U

    def _gp_input(self, u: np.ndarray) -> np.ndarray:
        return self._gp_input_batch(u[None, :])[0]

    def _gp_input_batch(self, U: np.ndarray) -> np.ndarray:
        """(m, n_dims) unit-cube points -> (m, D) GP inputs (categoricals one-hot)."""
        out = np.empty((U.shape[0], self._columns[-1][-1] + 1))
        for j, (d, cols) in enumerate(zip(self.space.dims, self._columns, strict=True)):
            if isinstance(d, Categorical):
                idx = np.minimum((np.clip(U[:, j], 0, 1) * len(d.choices)).astype(int), len(d.choices) - 1)
                out[:, cols] = np.eye(len(d.choices))[idx]
            elif isinstance(d, Int):
                out[:, cols[0]] = [d.encode(d.decode(v)) for v in U[:, j]]
            else:
                out[:, cols[0]] = U[:, j]
        return out

    def _unit_of_gp_row(self, row: np.ndarray) -> np.ndarray:
        u = np.empty(len(self.space))
        for j, (d, cols) in enumerate(zip(self.space.dims, self._columns, strict=True)):
            u[j] = (
                d.encode(d.choices[int(np.argmax(row[cols]))]) if isinstance(d, Categorical) else row[cols[0]]
            )
        return u

    def _enumerate(self, taken: set) -> np.ndarray:
        """Every untried point of an all-discrete space, as unit-cube cell centres."""
        grid = self.space.grid({d.name: d.n_values if isinstance(d, Int) else 1 for d in self.space.dims})
        free = [p for p in grid if _key(p) not in taken]
        return np.stack([self.space.to_unit(p) for p in free])

    def _length_scales(self, ls: np.ndarray) -> dict[str, float]:
        # A categorical has one length scale per choice; report their geometric mean.
        return {
            d.name: float(np.exp(np.log(ls[cols]).mean()))
            for d, cols in zip(self.space.dims, self._columns, strict=True)
        }


def _condition(
    post: _gp.Posterior,
    X: np.ndarray,
    y: np.ndarray,
    params: Any,
    believe: np.ndarray,
    failed: np.ndarray,
    worst: float,
) -> tuple[_gp.Posterior, np.ndarray]:
    """The GP also conditioned on the `believe` points at its predicted mean (kriging believer:
    pending trials, so parallel workers go elsewhere) and the `failed` points at `worst` (so the
    search moves away from what broke); and the believed values. Each kind is capped at
    _gp.MAX_ROWS points, evenly spread in the order given, so thousands of failed or pruned
    trials do not make a suggestion cubic in the history."""
    if not len(believe) and not len(failed):
        return post, np.empty(0)
    believe, failed = believe[_gp.evenly(len(believe))], failed[_gp.evenly(len(failed))]
    believed = post.predict(believe)[0] if len(believe) else np.empty(0)
    yp = np.concatenate([believed, np.full(len(failed), worst)])
    return _gp.Posterior(np.vstack([X, believe, failed]), np.concatenate([y, yp]), params), believed


class _AtFidelity:
    """The joint GP seen at one fidelity: its inputs are the params' columns alone."""

    def __init__(self, post: _gp.Posterior, z: float):
        self.post, self.z = post, z

    def predict(self, Xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.post.predict(np.hstack([Xq, np.full((len(Xq), 1), self.z)]))

    def predict_with_grad(self, x: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        mu, var, dmu, dvar = self.post.predict_with_grad(np.append(x, self.z))
        return mu, var, dmu[:-1], dvar[:-1]


def _columns(space: SearchSpace) -> list[list[int]]:
    """For each dimension, the GP input columns it occupies."""
    cols, at = [], 0
    for d in space.dims:
        width = len(d.choices) if isinstance(d, Categorical) else 1
        cols.append(list(range(at, at + width)))
        at += width
    return cols


def _normal_scores(values: np.ndarray) -> np.ndarray:
    """Each value's rank (ties in order of position) mapped to the standard normal quantile
    (rank + 0.5) / n."""
    from scipy.stats import norm

    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return norm.ppf((ranks + 0.5) / len(values))


def _finite(score: Any) -> bool:
    return isinstance(score, (int, float)) and math.isfinite(score)


def _key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))
