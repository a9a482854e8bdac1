"""The bayes strategy: GP and EI maths on arrays, then the strategy through the public API."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.stats import norm

from tunetorch import SearchSpace, SpaceExhausted, Study, Trial, TrialState, UsageError, make_strategy
from tunetorch.snapshot import Snapshot
from tunetorch.strategies import _gp
from tunetorch.strategies.base import point_key
from tunetorch.strategies.bayes import BayesSearch

# --- GP maths -------------------------------------------------------------------------------------


def _data(n=12, D=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, D))
    y = _gp.standardise(np.sin(4 * X[:, 0]) + X[:, 1] ** 2)
    return X, y


def test_posterior_interpolates_the_data_at_low_noise():
    X, y = _data()
    post = _gp.Posterior(X, y, _gp.GPParams(ls=np.array([0.4, 0.4]), s2=1.0, noise=1e-8))
    mu, var = post.predict(X)
    np.testing.assert_allclose(mu, y, atol=1e-4)
    assert var.max() < 1e-4
    _, var_far = post.predict(np.array([[5.0, 5.0]]))  # far from the data: back to the prior
    assert var_far[0] == pytest.approx(1.0, rel=1e-6)


def test_posterior_and_log_ei_gradients_match_finite_differences():
    X, y = _data(D=3)
    post = _gp.Posterior(X, y, _gp.GPParams(ls=np.array([0.3, 0.5, 0.8]), s2=1.3, noise=1e-4))
    x = np.array([0.31, 0.62, 0.47])
    mu, var, dmu, dvar = post.predict_with_grad(x)
    assert mu == pytest.approx(post.predict(x[None])[0][0])
    np.testing.assert_allclose(dmu, approx_fprime(x, lambda v: post.predict(v[None])[0][0], 1e-7), rtol=1e-4)
    np.testing.assert_allclose(dvar, approx_fprime(x, lambda v: post.predict(v[None])[1][0], 1e-7), atol=1e-6)
    best = float(y.max()) + 0.5  # an incumbent above the mean: EI lives in the tail
    _, grad = _gp.log_ei_with_grad(mu, var, dmu, dvar, best)
    fd = approx_fprime(x, lambda v: _gp.log_ei(*post.predict(v[None]), best)[0], 1e-7)
    np.testing.assert_allclose(grad, fd, rtol=1e-3)


def test_marginal_likelihood_gradient_matches_finite_differences():
    X, y = _data(n=20, D=3)
    D2 = (X[:, None, :] - X[None, :, :]) ** 2
    theta = np.array([-0.5, 0.2, 0.7, 0.1, math.log(1e-3)])
    _, grad = _gp._neg_log_posterior(theta, D2, y)
    fd = approx_fprime(theta, lambda t: _gp._neg_log_posterior(t, D2, y)[0], 1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-3, atol=1e-3)


def test_fit_finds_the_relevant_dimension_and_low_noise():
    rng = np.random.default_rng(1)
    X = rng.random((30, 2))
    y = _gp.standardise(np.sin(6 * X[:, 0]))  # x1 is irrelevant, no noise
    p = _gp.fit_hyperparameters(X, y)
    assert p.ls[0] < 0.5 < p.ls[1]
    assert p.noise < 1e-2


def test_log_h_matches_naive_ei_where_stable_and_stays_finite_where_it_underflows():
    z = np.linspace(-6, 6, 241)
    naive = np.log(z * norm.cdf(z) + norm.pdf(z))
    np.testing.assert_allclose(_gp.log_h(z), naive, rtol=1e-9, atol=1e-12)
    deep = np.array([-40.0, -1e3, -1e7, -1e10, -1e150])
    assert np.all(deep * norm.cdf(deep) + norm.pdf(deep) == 0.0)  # naive EI has underflowed
    lh = _gp.log_h(deep)
    assert np.all(np.isfinite(lh)) and np.all(np.diff(lh) < 0)
    # Asymptote: h(z) = phi(z) / z^2 (1 - 3 / z^2 + ...) as z -> -inf.
    asymptote = -0.5 * deep**2 - 0.5 * math.log(2 * math.pi) - 2 * np.log(-deep) + np.log1p(-3 / deep**2)
    np.testing.assert_allclose(lh, asymptote, rtol=1e-12, atol=1e-5)  # next term: 15 / z^4
    # No jump where the formula switches branch.
    assert _gp.log_h(np.array([-1.0 - 1e-12]))[0] == pytest.approx(_gp.log_h(np.array([-1.0 + 1e-12]))[0])


# --- the strategy ---------------------------------------------------------------------------------

MIXED = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "width": {"type": "int", "low": 16, "high": 512, "log": True},
    "depth": {"type": "int", "low": 1, "high": 4},
    "act": {"type": "categorical", "choices": ["relu", "gelu", "tanh"]},
}


def mixed_objective(p):
    return (
        -((math.log10(p["lr"]) + 2.5) ** 2)
        - 0.3 * (math.log2(p["width"]) - 7) ** 2
        - 0.2 * abs(p["depth"] - 3)
        + (0.5 if p["act"] == "tanh" else 0.0)
    )


def quadratic(p):
    return -((p["x"] - 0.3) ** 2) - (p["y"] - 0.7) ** 2


SQUARE = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "y": {"type": "float", "low": 0.0, "high": 1.0}}


def best_of(strategy, f, space, n, seed, **options):
    study = Study(SearchSpace.from_dict(space), strategy=strategy, seed=seed, strategy_options=options)
    for _ in range(n):
        t = study.ask()
        study.tell(t, f(t.params))
    return study


@pytest.mark.parametrize("seed", [0, 1])
def test_bayes_beats_random_on_a_2d_bowl(seed):
    bayes = best_of("bayes", quadratic, SQUARE, 15, seed).best.score
    rand = best_of("random", quadratic, SQUARE, 15, seed).best.score
    assert bayes > -1e-4 and bayes > rand


def test_startup_is_a_sobol_design_then_the_gp_takes_over():
    study = best_of("bayes", quadratic, SQUARE, 8, seed=0, n_startup=5)
    phases = [t.info["phase"] for t in study.trials]
    assert phases == ["startup"] * 5 + ["gp"] * 3
    assert [t.info["design_index"] for t in study.trials[:5]] == [0, 1, 2, 3, 4]


def test_default_startup_is_twice_the_dimensions_at_least_five():
    assert make_strategy("bayes", SearchSpace.from_dict(SQUARE)).n_startup == 5
    assert make_strategy("bayes", SearchSpace.from_dict(MIXED)).n_startup == 8


def test_pending_trials_in_the_design_and_in_the_gp_phase_get_distinct_points():
    space = SearchSpace.from_dict(SQUARE)
    study = Study(space, strategy="bayes", seed=0, strategy_options={"n_startup": 5})
    first = [study.ask() for _ in range(3)]  # three workers start before anything is told
    assert [t.info["design_index"] for t in first] == [0, 1, 2]
    for t in first:
        study.tell(t, quadratic(t.params))
    for _ in range(5):
        t = study.ask()
        study.tell(t, quadratic(t.params))
    pending = [study.ask() for _ in range(4)]
    xs = np.array([[t.params["x"], t.params["y"]] for t in pending])
    gaps = np.linalg.norm(xs[:, None] - xs[None], axis=-1)[np.triu_indices(4, 1)]
    assert gaps.min() > 1e-3, xs  # believed values at pending points push the next one away
    assert [t.info["n_pending"] for t in pending] == [0, 1, 2, 3]


def test_interrupted_trials_count_as_pending_and_the_history_alone_decides():
    space = SearchSpace.from_dict(SQUARE)
    study = best_of("bayes", quadratic, SQUARE, 7, seed=2)
    t = study.ask()
    study.update(t.replace(state=TrialState.INTERRUPTED))
    fresh = make_strategy("bayes", space, seed=2)
    params = fresh.suggest(8, Snapshot(study.trials))
    assert params != t.params and fresh.last_info["n_pending"] == 1
    assert make_strategy("bayes", space, seed=2).suggest(8, Snapshot(study.trials)) == params


def test_failed_trials_are_excluded_and_not_proposed_again():
    space = {"depth": {"type": "int", "low": 1, "high": 4}, "act": MIXED["act"]}
    study = Study(SearchSpace.from_dict(space), strategy="bayes", seed=0, strategy_options={"n_startup": 3})
    seen = []
    with pytest.raises(SpaceExhausted):
        for _ in range(13):
            t = study.ask()
            seen.append(tuple(sorted(t.params.items())))
            # gelu always fails (say, NaN loss); the rest score by depth
            study.tell(t, None if t.params["act"] == "gelu" else -abs(t.params["depth"] - 3))
    assert len(seen) == len(set(seen)) == 12  # every point once, then exhausted
    for t in study.trials:
        if t.info["phase"] == "gp":  # the GP saw every earlier failure
            failed_before = sum(u.state == TrialState.FAIL for u in study.trials[: t.number])
            assert t.info["n_failed"] == failed_before
            assert t.info["n_observations"] == t.number - failed_before
    assert any(t.info["phase"] == "gp" and t.info["n_failed"] > 0 for t in study.trials)
    assert study.best.params["depth"] == 3


def test_all_failures_still_leave_a_working_design():
    study = Study(SearchSpace.from_dict(SQUARE), strategy="bayes", seed=0, strategy_options={"n_startup": 4})
    for _ in range(6):
        study.tell(study.ask(), None)
    points = {tuple(t.params.values()) for t in study.trials}
    assert len(points) == 6 and all(t.info["phase"] == "startup" for t in study.trials)


def test_mixed_space_ints_and_categoricals():
    space = SearchSpace.from_dict(MIXED)
    study = best_of("bayes", mixed_objective, MIXED, 30, seed=0)
    for t in study.trials:
        assert space.contains(t.params)
        assert isinstance(t.params["width"], int) and isinstance(t.params["depth"], int)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(keys) == len(set(keys))
    best = study.best.params
    assert best["act"] == "tanh" and best["depth"] == 3
    assert abs(math.log10(best["lr"]) + 2.5) < 0.5 and 64 <= best["width"] <= 256


def test_last_info_is_json_and_names_the_internals():
    study = best_of("bayes", mixed_objective, MIXED, 10, seed=0)
    info = study.trials[-1].info
    json.dumps(info)
    assert info["phase"] == "gp"
    assert set(info["length_scales"]) == set(MIXED)
    assert all(v > 0 for v in info["length_scales"].values())
    for key in ("log_ei", "mean_model", "std_model", "noise", "signal_var", "gp_fit_seconds", "warp_lambda"):
        assert math.isfinite(info[key]), key
    assert info["n_observations"] == 9 and info["gp_fit_seconds"] <= info["suggest_seconds"]


def test_same_history_same_suggestion_with_pending_and_failed():
    space = SearchSpace.from_dict(MIXED)
    study = best_of("bayes", mixed_objective, MIXED, 9, seed=4)
    study.tell(study.ask(), None)
    study.ask()  # left pending
    trials = study.trials
    a = make_strategy("bayes", space, seed=4).suggest(len(trials), Snapshot(trials))
    b = make_strategy("bayes", space, seed=4).suggest(len(trials), Snapshot(list(trials)))
    assert a == b and space.contains(a)


@pytest.mark.parametrize(
    "key,value", [("n_startup", 1), ("n_candidates", 0), ("n_local", -1), ("n_startup", 2.5), ("warp", "yes")]
)
def test_bad_options_are_usage_errors(key, value):
    with pytest.raises(UsageError, match=f"strategy.{key}: "):
        make_strategy("bayes", SearchSpace.from_dict(SQUARE), **{key: value})


def test_rebuilt_trials_from_json_continue_identically():
    """A journal round-trips params through JSON; the suggestion must not change."""
    space = SearchSpace.from_dict(MIXED)
    study = best_of("bayes", mixed_objective, MIXED, 10, seed=6)
    reloaded = [
        Trial(t.number, json.loads(json.dumps(t.params)), t.state, score=t.score) for t in study.trials
    ]
    s = make_strategy("bayes", space, seed=6)
    assert s.suggest(10, Snapshot(reloaded)) == make_strategy("bayes", space, seed=6).suggest(
        10, Snapshot(study.trials)
    )


# --- multi-fidelity, fidelity=highest: the GP on the highest epoch with dims + 1 observations (BOHB) --


def _trial(number, state, score, x):
    return Trial(number, {"x": x, "y": 1 - x}, state, score=score)


def test_gp_fits_the_highest_epoch_with_dims_plus_one_observations():
    C, P, R = TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING
    full = {e: 0.5 + 0.05 * e for e in range(9)}  # 9 epochs, best 0.9 at epoch 8
    trials = [_trial(0, C, 0.9, 0.1), _trial(1, C, 0.9, 0.2)]
    curves = {0: dict(full), 1: dict(full)}
    # three pruned after 3 epochs, the middle one best at epoch 2 so far (0.97); two after 1 epoch
    for n, x, top in ((2, 0.3, 0.6), (3, 0.4, 0.97), (4, 0.5, 0.6)):
        trials.append(_trial(n, P, top, x))
        curves[n] = {0: 0.4, 1: top, 2: 0.3}
    for n, x in ((5, 0.6), (6, 0.7)):
        trials.append(_trial(n, P, 0.1, x))
        curves[n] = {0: 0.1}
    space = SearchSpace.from_dict(SQUARE)  # 2 dims: 3 observations needed at an epoch
    s = make_strategy("bayes", space, seed=0, n_startup=5, fidelity="highest")
    s.suggest(7, Snapshot(trials, curves))
    info = s.last_info
    # epochs 3..8 have only the two complete trials; epoch 2 (3 epochs trained) has five
    assert (info["fidelity_epochs"], info["n_observations"], info["n_pruned"]) == (3, 5, 2)
    assert info["best"] == 0.97  # trial 3's best up to epoch 2
    # A running trial that has reached epoch 3 lifts the fidelity to 4 epochs: 3 observations there.
    trials.append(_trial(7, R, None, 0.8))
    curves[7] = {0: 0.5, 1: 0.6, 2: 0.7, 3: 0.8}
    s.suggest(8, Snapshot(trials, curves))
    assert (s.last_info["fidelity_epochs"], s.last_info["n_observations"]) == (4, 3)
    assert (s.last_info["n_pruned"], s.last_info["n_pending"]) == (5, 0)
    assert s.last_info["best"] == 0.8  # complete trials count with their best up to epoch 3, 0.65


def test_bayes_with_full_curves_suggests_what_it_did_without_them():
    """Sequential trials that all run to the end (no scheduler): the curves change nothing."""
    study = Study(SearchSpace.from_dict(SQUARE), strategy="bayes", seed=1, strategy_options={"n_startup": 4})
    for _ in range(7):
        t = study.ask()
        values = [quadratic(t.params) * (1 - 0.5**e) for e in range(1, 5)]
        for e, v in enumerate(values):
            study.report(t, e, v)
        study.tell(t, max(values))
    with_curves = study.ask()
    assert with_curves.info["fidelity_epochs"] == 4
    plain = make_strategy("bayes", SearchSpace.from_dict(SQUARE), seed=1, n_startup=4)
    assert plain.suggest(with_curves.number, Snapshot(study.trials[:-1])) == with_curves.params
    assert plain.suggest(with_curves.number, Snapshot(study.trials[:-1], {})) == with_curves.params


def test_pruned_trials_are_believed_at_the_predicted_mean_not_at_the_worst():
    """Points a scheduler stopped early sit in the model (so no worker chases them again) without
    marking their region as bad: a near-optimal point can trail the top 1/eta at a low rung."""
    trials, curves = [], {}
    for x in (0.1, 0.5, 0.9):
        for y in (0.1, 0.5, 0.9):
            p = {"x": x, "y": y}
            trials.append(Trial(len(trials), p, TrialState.COMPLETE, score=quadratic(p)))
            curves[len(trials) - 1] = {0: quadratic(p) - 0.1, 1: quadratic(p)}
    for dx, dy in [(0, 0), (0.04, 0), (0, 0.04), (-0.04, 0), (0, -0.04)]:  # stopped at the optimum
        trials.append(Trial(len(trials), {"x": 0.3 + dx, "y": 0.7 + dy}, TrialState.PRUNED, score=-0.5))
        curves[len(trials) - 1] = {0: -0.5}
    s = make_strategy("bayes", SearchSpace.from_dict(SQUARE), seed=0, n_startup=5, fidelity="highest")
    out = s.suggest(len(trials), Snapshot(trials, curves))
    assert s.last_info["n_pruned"] == 5 and s.last_info["fidelity_epochs"] == 2
    assert math.hypot(out["x"] - 0.3, out["y"] - 0.7) < 0.15  # at the worst they would push it to a corner
    assert s.last_info["std_model"] < 0.1  # left out of the model, it would be unsure there (about 0.2)


# --- multi-fidelity, fidelity=joint: one GP over (params, epochs trained) -------------------------


def test_joint_gp_fits_every_curve_thinned_and_takes_ei_at_the_longest_fidelity(monkeypatch):
    C, P = TrialState.COMPLETE, TrialState.PRUNED
    trials = [_trial(0, C, 0.9, 0.1), _trial(1, C, 0.8, 0.2), _trial(2, P, 0.6, 0.3), _trial(3, P, 0.2, 0.4)]
    curves = {
        0: {e: 0.5 + 0.05 * e for e in range(9)},  # 9 epochs: rows at 1, 2, 4, 8 and 9 epochs trained
        1: {e: 0.4 + 0.05 * e for e in range(9)},
        2: {0: 0.4, 1: 0.6, 2: 0.5},  # 3 epochs: rows at 1, 2 and 3 (its last), each the best so far
        3: {0: 0.2},
    }
    fitted = {}
    real_fit = BayesSearch._fit

    def spy(self, X, scores, numbers, ranked=False):
        fitted["X"], fitted["scores"] = X, scores
        return real_fit(self, X, scores, numbers, ranked)

    monkeypatch.setattr(BayesSearch, "_fit", spy)
    s = make_strategy("bayes", SearchSpace.from_dict(SQUARE), seed=0, n_startup=4, fidelity="joint")
    s.suggest(4, Snapshot(trials, curves))
    info = s.last_info
    assert (info["phase"], info["n_observations"], info["fidelity_epochs"]) == ("gp", 5 + 5 + 3 + 1, 9)
    assert info["best"] == 0.9 and "fidelity_length_scale" in info
    X, scores = fitted["X"], fitted["scores"]
    np.testing.assert_allclose(X[:5, -1], np.log([1, 2, 4, 8, 9]) / np.log(9))  # log epochs trained
    np.testing.assert_allclose(scores[10:13], [0.4, 0.6, 0.6])  # trial 2: the best so far, not 0.5
    assert scores[4] == 0.9  # a completed trial's last row is its score


def test_joint_gp_takes_a_completed_trials_score_over_its_curve(monkeypatch):
    """trainer.score may be the last epoch's value, not the best: the told score is the trial's
    value at the length it ran; its earlier epochs stay lower-fidelity observations."""
    C, P = TrialState.COMPLETE, TrialState.PRUNED
    trials = [_trial(0, C, 0.1, 0.1), _trial(1, C, 0.3, 0.5), _trial(2, P, 0.2, 0.9)]
    curves = {0: {0: 0.2, 1: 0.9, 2: 0.1}, 1: {0: 0.1, 1: 0.2, 2: 0.3}, 2: {0: 0.2}}
    fitted = {}
    real_fit = BayesSearch._fit
    monkeypatch.setattr(
        BayesSearch,
        "_fit",
        lambda self, X, scores, numbers, ranked=False: (
            fitted.update(X=X, scores=scores) or real_fit(self, X, scores, numbers, ranked)
        ),
    )
    s = make_strategy("bayes", SearchSpace.from_dict(SQUARE), seed=0, n_startup=3, fidelity="joint")
    s.suggest(3, Snapshot(trials, curves))
    X, scores = fitted["X"], fitted["scores"]
    np.testing.assert_allclose(X[:3, -1], np.log([1, 2, 3]) / np.log(3))
    np.testing.assert_allclose(scores[:3], [0.2, 0.9, 0.1])  # at 3 epochs: its score, 0.1, not 0.9


def test_joint_gp_with_nothing_finite_to_fit_keeps_to_the_design():
    """Scores told through the Python API beside curves that never held a finite value: the
    pruned trials give the model nothing, so the design goes on; a completed trial's score counts."""
    P, C = TrialState.PRUNED, TrialState.COMPLETE
    trials = [_trial(0, P, 0.5, 0.1), _trial(1, P, 0.4, 0.5)]
    curves = {0: {0: math.nan}, 1: {0: math.inf, 1: math.nan}}
    s = make_strategy("bayes", SearchSpace.from_dict(SQUARE), seed=0, n_startup=2, fidelity="joint")
    s.suggest(2, Snapshot(trials, curves))
    assert s.last_info["phase"] == "startup"
    trials.append(_trial(2, C, 0.7, 0.9))
    curves[2] = {0: math.nan, 1: math.nan}
    s.suggest(3, Snapshot(trials, curves))
    assert (s.last_info["phase"], s.last_info["n_observations"], s.last_info["best"]) == ("gp", 1, 0.7)


def test_joint_gp_learns_from_trials_stopped_early():
    """Three full-length trials, all mediocre, and many stopped after one epoch: those that were
    good at their one epoch sit near (0.3, 0.7). The joint model carries that to the longest
    fidelity and proposes there. The BOHB rule (fidelity=highest: three observations needed at
    an epoch) fits the three full-length trials alone and looks elsewhere."""
    C, P = TrialState.COMPLETE, TrialState.PRUNED
    trials, curves = [], {}
    for x, y in ((0.9, 0.1), (0.8, 0.9), (0.9, 0.5)):
        p = {"x": x, "y": y}
        trials.append(Trial(len(trials), p, C, score=quadratic(p) - 0.1 * 0.5**7))
        curves[len(trials) - 1] = {e: quadratic(p) - 0.1 * 0.5**e for e in range(8)}  # rising to the end
    rng = np.random.default_rng(0)
    for x, y in rng.random((14, 2)):
        p = {"x": float(x), "y": float(y)}
        trials.append(Trial(len(trials), p, P, score=quadratic(p) - 0.1))
        curves[len(trials) - 1] = {0: quadratic(p) - 0.1}
    distance = {}
    for fidelity in ("joint", "highest"):
        s = make_strategy("bayes", SearchSpace.from_dict(SQUARE), seed=0, n_startup=5, fidelity=fidelity)
        out = s.suggest(len(trials), Snapshot(trials, curves))
        assert s.last_info["fidelity_epochs"] == 8
        distance[fidelity] = math.hypot(out["x"] - 0.3, out["y"] - 0.7)
    assert distance["joint"] < 0.2 < distance["highest"], distance


def test_random_fraction_proposes_that_share_at_random_by_seed():
    def phases(seed):
        study = Study(
            SearchSpace.from_dict(SQUARE),
            strategy="bayes",
            seed=seed,
            strategy_options={"n_startup": 3, "random_fraction": 0.5},
        )
        out = []
        for _ in range(16):
            t = study.ask()
            study.tell(t, quadratic(t.params))
            out.append(t.info.get("phase"))
        return out

    got = phases(0)
    assert got[:3] == ["startup"] * 3
    assert 3 <= got.count("random") <= 10 and got.count("gp") >= 3
    assert phases(0) == got


def test_random_fraction_draws_among_the_points_left_of_a_small_discrete_space():
    space = SearchSpace.from_dict(
        {"a": {"type": "int", "low": 0, "high": 63}, "b": {"type": "int", "low": 0, "high": 63}}
    )
    s = make_strategy("bayes", space, seed=0)
    left = [{"a": 5, "b": 7}, {"a": 60, "b": 1}]
    trials = [
        Trial(n, {"a": a, "b": b}, TrialState.COMPLETE, score=0.0)
        for n, (a, b) in enumerate(
            (a, b) for a in range(64) for b in range(64) if {"a": a, "b": b} not in left
        )
    ]
    taken = {point_key(t.params) for t in trials}
    for number in range(20):
        assert s._random(number, taken) in left


@pytest.mark.parametrize(
    "options, message",
    [
        ({"fidelity": "lowest"}, "strategy.fidelity: 'lowest' is not one of rank, joint, highest"),
        ({"random_fraction": 1.0}, "strategy.random_fraction: 1.0 must be a number in [0, 1)"),
        ({"random_fraction": "x"}, "strategy.random_fraction: 'x' must be a number in [0, 1)"),
    ],
)
def test_bad_multi_fidelity_options_are_one_line(options, message):
    with pytest.raises(UsageError) as e:
        make_strategy("bayes", SearchSpace.from_dict(SQUARE), **options)
    assert str(e.value) == message


# --- scale: a bounded posterior and anchored hyperparameters ---------------------------------------

SIX = {f"x{i}": {"type": "float", "low": 1e-3 if i < 2 else 0.0, "high": 1.0, "log": i < 2} for i in range(6)}


def _many(n, seed=0):
    space = SearchSpace.from_dict(SIX)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        u = rng.random(6)
        out.append(Trial(i, space.from_unit(u), TrialState.COMPLETE, score=float(-((u - 0.3) ** 2).sum())))
    return space, out


def test_subset_keeps_every_row_up_to_the_cap_then_the_best_half_and_a_spread():
    y = np.arange(300, dtype=float)[::-1]  # row i has the (i+1)-th best value
    np.testing.assert_array_equal(_gp.subset(y[:50], size=64), np.arange(50))
    keep = _gp.subset(y, size=64)
    assert len(keep) == 64 and len(set(keep)) == 64
    assert set(range(32)) <= set(keep)  # the best 32
    assert 299 in keep  # the spread reaches the worst


def test_past_the_refit_threshold_the_posterior_is_bounded_and_the_fit_kept_while_the_anchor_stands(
    monkeypatch,
):
    space, trials = _many(300)
    fits = []
    real = _gp.fit_hyperparameters
    monkeypatch.setattr(_gp, "fit_hyperparameters", lambda X, y: fits.append(len(X)) or real(X, y))
    s = make_strategy("bayes", space, seed=0)
    s.suggest(300, Snapshot(trials))
    assert fits == [_gp.MAX_ROWS]  # on the anchor's subset, not on 300 rows
    assert _gp.anchor_size(300) == _gp.anchor_size(301)
    trials.append(Trial(300, space.from_unit(np.full(6, 0.5)), TrialState.COMPLETE, score=-0.2))
    s.suggest(301, Snapshot(trials))
    assert fits == [_gp.MAX_ROWS]  # the same anchor: not refitted


def test_a_suggestion_past_the_refit_threshold_is_a_function_of_the_history_and_seed_alone():
    """A resumed study (a fresh strategy, no fit kept) suggests what the running one did."""
    space, trials = _many(160)
    running = make_strategy("bayes", space, seed=3)
    running.suggest(125, Snapshot(trials[:125]))  # fits an earlier anchor and keeps it
    running.suggest(158, Snapshot(trials[:158]))  # and this one
    kept = running.suggest(160, Snapshot(trials))
    fresh = make_strategy("bayes", space, seed=3).suggest(160, Snapshot(trials))
    assert kept == fresh
    assert [_gp.anchor_size(n) for n in (100, 109, 110, 121, 1000)] == [100, 100, 110, 121, 993]


def test_failed_and_pending_trials_are_capped_in_the_posterior_too(monkeypatch):
    """600 failed and 300 pending trials beside 150 scored: the posterior the suggestion
    conditions on holds at most MAX_ROWS of each kind, never all 1,050."""
    space, trials = _many(150)
    rng = np.random.default_rng(1)
    trials += [Trial(150 + i, space.from_unit(rng.random(6)), TrialState.FAIL) for i in range(600)]
    trials += [Trial(750 + i, space.from_unit(rng.random(6)), TrialState.RUNNING) for i in range(300)]
    rows = []
    real = _gp.Posterior.__init__

    def spy(self, X, y, params):
        rows.append(len(X))
        real(self, X, y, params)

    monkeypatch.setattr(_gp.Posterior, "__init__", spy)
    make_strategy("bayes", space, seed=0).suggest(1050, Snapshot(trials))
    assert rows and max(rows) <= 3 * _gp.MAX_ROWS, rows
