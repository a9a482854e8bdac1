"""Bayesian optimisation: a Sobol initial design, then a GP surrogate and log expected improvement.

Each suggestion is rebuilt from the snapshot (the trials and their curves) and the seed alone:

1. While fewer than `n_startup` trials have finished with a score (completed, or pruned by a
   scheduler with the best value they reached), propose the next point of a seeded,
   scrambled Sobol sequence that no trial (pending, failed or done) already holds.
2. `random_fraction` > 0 proposes that share of the suggestions after the start-up uniformly
   at random instead (BOHB's 1/3), seeded by the trial number.
3. Otherwise choose the evidence (fidelity.py): without curves the completed trials' scores;
   with curves, the `fidelity` option's rule once a scheduler has stopped a trial (`rank`,
   the default; `joint`; `highest`), and the highest-fidelity rule before that.
4. The one model-based path (`_model_based`): fit a GP (Matern 5/2, one length scale per input
   column, noise; `_gp.py`) to the evidence on the encoded space (encoding.py: the unit cube,
   log dimensions in log space, categoricals one-hot), scores standardised and Yeo-Johnson
   warped (`warp`), so that a long tail of bad trials does not flatten the model where the
   optimum is; condition it on the believed and failed points (kriging believer, so parallel
   workers are sent elsewhere); take the incumbent; maximise log EI over the untried points
   (acquisition.py); record what the model says there (`last_info`). No trial's params are
   proposed twice.
5. Scale (`_fit`): past 100 observed trials, the posterior holds at most `_gp.MAX_ROWS` rows
   (`_gp.subset`: the best half and an even spread of the rest), and the hyperparameters are
   refitted only when the history grows by a tenth, on the first trials by number
   (`_gp.anchor_size`); a suggestion stays a function of the history and the seed.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from tunetorch import checks, history
from tunetorch.errors import SpaceExhausted
from tunetorch.snapshot import Snapshot
from tunetorch.space import SearchSpace
from tunetorch.strategies import _gp, acquisition, fidelity
from tunetorch.strategies.base import Strategy, point_key
from tunetorch.strategies.encoding import Encoding
from tunetorch.trial import TrialState

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
        keys = checks.under("strategy")
        n_startup = keys.whole("n_startup", n_startup, low=2, optional=True)
        self.n_startup = max(5, 2 * len(space)) if n_startup is None else n_startup
        self.n_candidates = keys.whole("n_candidates", n_candidates, low=16)
        self.n_local = keys.whole("n_local", n_local, low=0)
        self.warp = keys.boolean("warp", warp)
        self.fidelity = keys.one_of("fidelity", fidelity, _FIDELITIES)
        self.random_fraction = float(keys.number("random_fraction", random_fraction, at_least=0.0, below=1.0))
        self.encoding = Encoding(space)
        self._fits: dict[tuple[bytes, bytes], _gp.GPParams] = {}  # anchor rows -> their hyperparameters

    # --- the contract --------------------------------------------------------------------------
    def suggest(self, number: int, snapshot: Snapshot) -> dict[str, Any]:
        t0 = time.perf_counter()
        trials, curves = snapshot.trials, snapshot.curves
        taken = {point_key(t.params) for t in trials}
        size = self.encoding.size
        if size is not None and len(taken) >= size:
            raise SpaceExhausted(f"bayes: all {size} points of the discrete space have been tried")
        if curves:
            scored = [
                t
                for t in trials
                if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and history.finite(t.score)
            ]
        else:
            scored = [t for t in trials if t.state == TrialState.COMPLETE and history.finite(t.score)]
        if len(scored) < self.n_startup:
            return self._startup(taken)
        coin = np.random.default_rng([self.seed, number, 1]).random()
        if coin < self.random_fraction:
            return self._random(number, taken)
        if not curves:
            evidence = fidelity.final(trials, scored, self.encoding)
        elif self.fidelity == "highest" or not any(t.state == TrialState.PRUNED for t in trials):
            evidence = fidelity.highest(trials, curves, self.encoding)
        elif self.fidelity == "rank":
            evidence = fidelity.ranked(trials, curves, self.encoding)
        else:
            evidence = fidelity.joint(trials, curves, self.encoding)
        if evidence is None:  # nothing finite to fit yet (every curve diverged): keep exploring
            return self._startup(taken)
        return self._model_based(number, evidence, taken, t0)

    # --- 1, 2. initial design and random draws ---------------------------------------------------
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
                if point_key(params) not in taken:
                    self.last_info = {"phase": "startup", "design_index": i}
                    return params
            start, m = 2**m, m + 1
        raise SpaceExhausted("bayes: the initial design found no untried point")

    def _random(self, number: int, taken: set) -> dict[str, Any]:
        """A uniformly random untried point (BOHB's random fraction: keeps the model honest)."""
        rng = np.random.default_rng([self.seed, number, 2])
        self.last_info = {"phase": "random"}
        if self.encoding.size is not None:  # a small discrete space: draw among the points left
            free = self.encoding.untried(taken)
            return self.space.from_unit(free[rng.integers(len(free))])
        for _ in range(1000):
            params = self.space.from_unit(rng.random(len(self.space)))
            if point_key(params) not in taken:
                return params
        raise SpaceExhausted("bayes: no untried random point found")

    # --- 4. the model-based suggestion -----------------------------------------------------------
    def _model_based(self, number: int, evidence: fidelity.Evidence, taken: set, t0: float) -> dict[str, Any]:
        """Fit, condition, take the incumbent, maximise log EI, describe: for every fidelity rule."""
        rng = np.random.default_rng([self.seed, number])
        X, y, lam, params, post = self._fit(evidence.X, evidence.values, evidence.numbers, evidence.ranked)
        fit_seconds = time.perf_counter() - t0
        # A failed trial is believed at the worst value observed at the fidelity EI is taken at.
        at = y if evidence.at is None else y[X[:, -1] == evidence.at]
        worst = float(at.min() if len(at) else y.min())
        post, believed = _gp.condition(post, X, y, params, evidence.believe, evidence.failed, worst)
        if evidence.at is None:
            model, ls, centres, rated = post, params.ls, X, y
            # The believed values count towards the incumbent, or a pending point with a high
            # predicted mean would keep EI = mean - best > 0 even at zero variance and be re-proposed.
            best = max(float(y.max()), float(believed.max(initial=-np.inf)))
        else:
            # The incumbent: the best predicted value at that fidelity among the points tried.
            model, ls, centres = _gp.AtFidelity(post, evidence.at), params.ls[:-1], evidence.tried
            rated = model.predict(centres)[0]
            best = float(rated.max())
        u, lei = acquisition.maximise(
            model, best, centres, rated, taken, rng, self.encoding, self.n_candidates, self.n_local
        )
        mu, var = model.predict(self.encoding.row(u)[None, :])
        self.last_info = {
            "phase": "gp",
            # In the model's units: standardised (and warped) scores, where the incumbent is `best_model`.
            "log_ei": float(lei),
            "mean_model": float(mu[0]),
            "std_model": float(math.sqrt(var[0])),
            "best_model": float(best),
            "best": float(evidence.best_score),
            "length_scales": self.encoding.length_scales(ls),
            "signal_var": float(params.s2),
            "warp_lambda": lam,
            "noise": float(params.noise),  # variance, in units of the score variance
            **({} if evidence.at is None else {"fidelity_length_scale": float(params.ls[-1])}),
            **evidence.counts,
            "gp_fit_seconds": float(fit_seconds),
            "suggest_seconds": float(time.perf_counter() - t0),
        }
        return self.space.from_unit(u)

    def _fit(
        self, X: np.ndarray, scores: np.ndarray, numbers: list[int], ranked: bool = False
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
            ya = _rank_scores(scores[anchor]) if ranked else self._standardise(scores[anchor])[0]
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


def _rank_scores(values: np.ndarray) -> np.ndarray:
    """Each value's rank (ties in order of position) as its normal score (history.normal_scores)."""
    ranks = np.empty(len(values), dtype=int)
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return history.normal_scores(len(values))[ranks]
