"""Schedulers: the rules against hand-computed cases, then through the Study on learning curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunetorch import Journal, SearchSpace, Strategy, Study, Trial, TrialState, UsageError
from tunetorch.history import pruned_per_rung
from tunetorch.schedulers import REGISTRY, make_scheduler
from tunetorch.schedulers.base import promotable, rung_resources
from tunetorch.snapshot import Snapshot


def _seen(curves, complete=()):
    """The snapshot a scheduler gets: these curves, the trials in `complete` COMPLETE and every
    other trial with a curve RUNNING (a scheduler reads no params or scores)."""
    complete = set(complete)
    numbers = sorted(set(curves) | complete)
    states = {n: TrialState.COMPLETE if n in complete else TrialState.RUNNING for n in numbers}
    return Snapshot(tuple(Trial(n, {}, states[n]) for n in numbers), curves)


# --- ASHA: rungs and the promotion rule -------------------------------------------------------------


def test_rungs_are_min_times_powers_of_eta_below_max():
    assert rung_resources(1, 27, 3) == [1, 3, 9]  # 27 itself is the end of a trial, not a rung
    assert rung_resources(1, 8, 3) == [1, 3]
    assert rung_resources(2, 16, 2) == [2, 4, 8]
    assert rung_resources(1, 81, 3) == [1, 3, 9, 27]  # integer arithmetic: log(81)/log(3) is not needed
    assert make_scheduler("asha", max_resource=10, min_resource=2, eta=2).rungs(0) == [2, 4, 8]


def test_top_one_over_eta_goes_on_and_the_first_ones_only_if_best():
    # eta = 3, one rung at 1 epoch (epoch 0). Trials report in number order; hand-computed:
    #   t0 .50 -> alone: go on                  t1 .40 -> 2 recorded, k=1, best .50: stop
    #   t2 .60 -> 3 recorded, k=1, best: go on  t3 .55 -> 4 recorded, k=1, best .60: stop
    #   t4 .20 -> 5, k=1: stop                  t5 .58 -> 6, k=2, top [.60 .58]: go on
    #   t6 .57 -> 7, k=2, 2nd best .58: stop    t7 .58 -> 8, k=2, ties the 2nd best .58: go on
    #   t8 .10 -> 9, k=3, 3rd best .58: stop
    asha = make_scheduler("asha", max_resource=9)
    values = [0.50, 0.40, 0.60, 0.55, 0.20, 0.58, 0.57, 0.58, 0.10]
    expected_stop = [False, True, False, True, True, False, True, False, True]
    curves: dict[int, dict[int, float]] = {}
    for n, v in enumerate(values):
        curves[n] = {0: v}
        assert asha.on_epoch(n, 0, v, _seen(curves)) is expected_stop[n], n


def test_promotable_counts_the_trials_own_value():
    assert promotable(0.5, [0.5], 3)
    assert not promotable(0.4, [0.5, 0.4], 3)
    assert promotable(0.6, [0.5, 0.4, 0.6], 3)
    assert promotable(0.3, [0.9, 0.8, 0.3, 0.1, 0.0, -1.0], 2)  # n=6, eta=2: the top 3 go on
    assert not promotable(0.1, [0.9, 0.8, 0.3, 0.1, 0.0, -1.0], 2)


def test_asha_decides_only_at_rungs_and_only_among_that_rungs_values():
    asha = make_scheduler("asha", max_resource=9)  # rungs 1, 3: epochs 0 and 2
    curves = {0: {0: 0.9, 1: 0.9, 2: 0.9}, 1: {0: 0.1, 1: 0.1}}
    assert asha.on_epoch(1, 1, 0.1, _seen(curves)) is False  # epoch 1 (2 epochs trained) is no rung
    # At epoch 2 only trial 0 has a value: trial 1 is compared with it, not with epoch-0 values.
    curves[1][2] = 0.8
    assert asha.on_epoch(1, 2, 0.8, _seen(curves)) is True
    curves[1][2] = 0.95
    assert asha.on_epoch(1, 2, 0.95, _seen(curves)) is False
    # The last epoch (9 trained = max_resource) is never a decision: the trial ends anyway.
    assert asha.on_epoch(1, 8, -5.0, _seen({0: {8: 1.0}, 1: {8: -5.0}})) is False
    # A diverged trial stops at the first rung, even alone there.
    assert asha.on_epoch(2, 0, -math.inf, _seen({2: {0: -math.inf}})) is True


def test_asha_counts_the_reported_value_even_when_curves_lack_it():
    asha = make_scheduler("asha", max_resource=9)
    assert asha.on_epoch(1, 0, 0.4, _seen({0: {0: 0.5}})) is True
    assert asha.on_epoch(1, 0, 0.6, _seen({0: {0: 0.5}})) is False


# --- Hyperband: brackets ----------------------------------------------------------------------------


def test_hyperband_brackets_by_hand():
    hb = make_scheduler("hyperband", max_resource=27)  # min 1, eta 3
    assert hb.s_max == 3
    assert hb.bracket_rungs == [[1, 3, 9], [3, 9], [9], []]  # the last bracket never stops a trial
    # ceil((s_max + 1) * eta^s / (s + 1)) with s = 3, 2, 1, 0: ceil(4*27/4), ceil(4*9/3), ceil(4*3/2), 4
    assert hb.weights == [27, 12, 6, 4]
    hb8 = make_scheduler("hyperband", max_resource=8)
    assert (hb8.s_max, hb8.bracket_rungs, hb8.weights) == (1, [[1, 3], [3]], [3, 2])
    hb2 = make_scheduler("hyperband", max_resource=16, min_resource=2, eta=2)
    assert hb2.bracket_rungs == [[2, 4, 8], [4, 8], [8], []]
    assert hb2.weights == [8, 6, 4, 4]  # ceil(4*8/4), ceil(4*4/3), ceil(4*2/2), 4


def test_hyperband_deals_each_cycle_in_the_bracket_proportions_deterministically():
    hb = make_scheduler("hyperband", seed=3, max_resource=27)
    brackets = [hb.bracket(n) for n in range(3 * 49)]
    for c in range(3):
        assert np.bincount(brackets[49 * c : 49 * (c + 1)], minlength=4).tolist() == [27, 12, 6, 4]
    assert brackets[:49] != brackets[49:98]  # each cycle is shuffled afresh
    again = make_scheduler("hyperband", seed=3, max_resource=27)
    assert [again.bracket(n) for n in reversed(range(3 * 49))] == brackets[::-1]  # order of asking irrelevant
    other = make_scheduler("hyperband", seed=4, max_resource=27)
    assert [other.bracket(n) for n in range(49)] != brackets[:49]
    assert hb.rungs(0) == hb.bracket_rungs[brackets[0]]


def test_hyperband_trials_compete_only_within_their_bracket():
    hb = make_scheduler("hyperband", seed=0, max_resource=8)  # brackets: rungs [1, 3] and [3]
    b0 = [n for n in range(20) if hb.bracket(n) == 0][:2]
    b1 = [n for n in range(20) if hb.bracket(n) == 1][:1]
    curves = {b1[0]: {0: 0.99, 1: 0.99, 2: 0.99}, b0[0]: {0: 0.5}}
    assert (
        hb.on_epoch(b0[0], 0, 0.5, _seen(curves)) is False
    )  # first of bracket 0 at rung 1; bracket 1's .99 is no rival
    curves[b0[1]] = {0: 0.4}
    assert hb.on_epoch(b0[1], 0, 0.4, _seen(curves)) is True
    assert (
        hb.on_epoch(b1[0], 0, 0.0, _seen({b1[0]: {0: 0.0}, b0[0]: {0: 0.5}})) is False
    )  # bracket 1 has no rung at 1


# --- the median rule --------------------------------------------------------------------------------


def _complete(values_by_trial):
    return _seen({n: dict(enumerate(v)) for n, v in values_by_trial.items()}, complete=values_by_trial)


def test_median_rule_by_hand():
    med = make_scheduler("median", n_startup_trials=3)
    done = _complete({0: [0.2, 0.4, 0.6], 1: [0.3, 0.5, 0.7], 2: [0.4, 0.6, 0.8]})  # medians .3 .5 .7
    assert med.on_epoch(9, 0, 0.29, done) is True
    assert med.on_epoch(9, 0, 0.30, done) is False  # equal to the median: not worse
    # The best value so far counts, not the last one: .45 at epoch 0 beats the epoch-1 median .5? No,
    # .45 < .5: stop; but .55 at epoch 0 then .1 at epoch 1: best .55 >= .5, goes on.
    assert med.on_epoch(9, 1, 0.1, _seen({**done.curves, 9: {0: 0.45, 1: 0.1}}, done.complete)) is True
    assert med.on_epoch(9, 1, 0.1, _seen({**done.curves, 9: {0: 0.55, 1: 0.1}}, done.complete)) is False


def test_median_rule_waits_for_startup_trials_warmup_and_interval():
    curves = _complete({0: [0.5] * 6, 1: [0.5] * 6})
    assert make_scheduler("median", n_startup_trials=3).on_epoch(9, 0, 0.0, curves) is False  # 2 < 3 complete
    assert make_scheduler("median", n_startup_trials=2).on_epoch(9, 0, 0.0, curves) is True
    warm = make_scheduler("median", n_startup_trials=2, n_warmup_steps=2)
    assert warm.on_epoch(9, 1, 0.0, curves) is False and warm.on_epoch(9, 2, 0.0, curves) is True
    # warm-up 1, interval 2: decisions after epochs 1, 3, 5 only
    spaced = make_scheduler("median", n_startup_trials=2, n_warmup_steps=1, interval_steps=2)
    decided = []
    for e in range(6):
        own = _seen({**curves.curves, 9: {k: 0.0 for k in range(e + 1)}}, curves.complete)
        decided.append(spaced.on_epoch(9, e, 0.0, own))
    assert decided == [False, True, False, True, False, True]
    # n_min_trials: fewer completed trials reached this epoch than asked for -> no decision
    short = _complete({0: [0.5], 1: [0.5, 0.5]})
    assert make_scheduler("median", n_startup_trials=2, n_min_trials=2).on_epoch(9, 1, 0.0, short) is False


def test_median_compares_with_completed_trials_only():
    curves = _seen({0: {0: 0.2}, 1: {0: 0.2}, 2: {0: 0.9}, 3: {0: 0.9}, 4: {0: 0.9}}, complete=[0, 1])
    med = make_scheduler("median", n_startup_trials=2)
    assert med.on_epoch(9, 0, 0.5, curves) is False  # running/pruned trials at .9 do not raise the bar
    assert med.on_epoch(9, 0, -math.inf, _seen({**curves.curves, 9: {0: -math.inf}}, curves.complete)) is True


def test_none_never_stops():
    assert make_scheduler("none").on_epoch(3, 0, -math.inf, _seen({0: {0: 1.0}})) is False


# --- configuration errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,options,message",
    [
        ("sha", {}, "scheduler: 'sha' is not one of asha, hyperband, median, none"),
        (
            "asha",
            {"max_resource": 9, "reduction": 2},
            "scheduler.reduction: not an option of asha; allowed: ",
        ),
        ("asha", {}, "scheduler.max_resource: required for asha"),
        ("hyperband", {"max_resource": 9, "eta": 1}, "scheduler.eta: 1 must be a whole number >= 2"),
        ("asha", {"max_resource": 9, "eta": 2.5}, "scheduler.eta: 2.5 must be a whole number >= 2"),
        (
            "asha",
            {"max_resource": 4, "min_resource": 4},
            "scheduler.min_resource: 4 must be below max_resource",
        ),
        ("asha", {"max_resource": True}, "scheduler.max_resource: True must be a whole number"),
        ("median", {"interval_steps": 0}, "scheduler.interval_steps: 0 must be a whole number >= 1"),
        ("none", {"eta": 3}, "scheduler.eta: not an option of none; allowed: none"),
    ],
)
def test_bad_scheduler_or_option_is_a_usage_error(name, options, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_scheduler(name, **options)


def test_max_resource_past_the_epochs_of_a_trial_is_refused_naming_the_key():
    from tunetorch.schedulers import check_epochs

    for name in ("asha", "hyperband"):
        check_epochs(make_scheduler(name, max_resource=10), 10)  # the default: ${trainer.epochs}
        check_epochs(make_scheduler(name, max_resource=4), 10)  # decisions end early: allowed
        with pytest.raises(
            UsageError, match=r"^scheduler.max_resource: 11 must be at most trainer.epochs \(10\)"
        ):
            check_epochs(make_scheduler(name, max_resource=11), 10)
    check_epochs(make_scheduler("median"), 1)  # no max_resource: nothing to check
    check_epochs(make_scheduler("none"), 1)


# From the command line, as a hostile user types them: one line naming the key, exit 2, no folder.
TUNE = ["budget.n_trials=1", "trainer.epochs=2", "dataset=digits", "tuner.devices=cpu", "tuner.workers=1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["+scheduler=asha", "scheduler.eta=1"], "scheduler.eta: 1 must be a whole number >= 2 (asha)"),
        (["+scheduler=asha", "scheduler.eta=abc"], "scheduler.eta: 'abc' must be a whole number >= 2"),
        (["+scheduler=hyperband", "scheduler.min_resource=0"], "scheduler.min_resource: 0 must be a whole"),
        (["+scheduler=asha", "scheduler.max_resource=-1"], "scheduler.max_resource: -1 must be a whole"),
        (
            ["+scheduler=asha", "scheduler.min_resource=2"],
            "scheduler.min_resource: 2 must be below max_resource",
        ),
        (
            ["+scheduler=asha", "scheduler.max_resource=100"],
            "scheduler.max_resource: 100 must be at most trainer.epochs",
        ),
        (["+scheduler=asha", "scheduler.etaa=3"], "scheduler.etaa: no such key in the config"),
        (["+scheduler=asha", "+scheduler.grace=2"], "scheduler.grace: not an option of asha; allowed: "),
        (["+scheduler=median", "scheduler.n_startup_trials=-1"], "scheduler.n_startup_trials: -1 must be"),
        (["+scheduler=median", "scheduler.n_warmup_steps=1.5"], "scheduler.n_warmup_steps: 1.5 must be"),
        (["+scheduler=nosuch"], "scheduler: 'nosuch' is not one of asha, hyperband, median, none"),
        (["+scheduler="], "scheduler: '' is not one of asha, hyperband, median, none"),
        (
            ["+scheduler=cosine"],
            "scheduler: 'cosine' is not one of asha, hyperband, median, none, null; "
            "did you mean lr_scheduler=cosine?",
        ),
    ],
)
def test_bad_scheduler_options_from_the_command_line_are_one_line_and_leave_nothing(tmp_path, args, message):
    from tests.conftest import run_in_process  # the command in a new interpreter: tests/test_tune_e2e.py

    d = tmp_path / "study"
    out = run_in_process("tune", *TUNE, *args, f"study.dir={d}")
    assert out.returncode == 2, out.stderr + out.stdout
    assert out.stderr.startswith("error: ") and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not d.exists()


def test_conf_group_holds_every_scheduler_with_valid_defaults():
    from pathlib import Path

    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[1] / "conf" / "scheduler"
    assert sorted(p.stem for p in conf.glob("*.yaml")) == sorted(REGISTRY)
    for name in REGISTRY:
        cfg = OmegaConf.create(
            {"trainer": {"epochs": 27}, "scheduler": OmegaConf.load(conf / f"{name}.yaml")}
        )
        options = OmegaConf.to_container(cfg.scheduler, resolve=True)
        assert options.pop("name") == name
        make_scheduler(name, **options)


# --- through the Study, on synthetic learning curves ------------------------------------------------

SQUARE = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "y": {"type": "float", "low": 0.0, "high": 1.0}}
EPOCHS = 9


def curve_value(params: dict, number: int, epoch: int, seed: int = 0) -> float:
    """Validation accuracy after `epoch`: rises toward the final quality q at a rate that depends
    on y, so fast learners lead early and curves cross; seeded noise."""
    q = 0.95 - 0.6 * ((params["x"] - 0.7) ** 2 + (params["y"] - 0.4) ** 2)
    rate = 0.2 + 0.6 * params["y"]
    noise = 0.003 * np.random.default_rng([seed, number, epoch]).standard_normal()
    return float(q * (1.0 - math.exp(-rate * (epoch + 1))) + noise)


class Driver:
    """Runs trials on `workers` simulated slots, one event (an ask or an epoch report) per step,
    round robin, so that several trials are in flight and their reports interleave."""

    def __init__(self, n_trials: int, workers: int = 3, sign: float = 1.0):
        self.n_trials, self.sign = n_trials, sign
        self.slots: list[list | None] = [None] * workers
        self.turn, self.asked = 0, 0
        self.log: list[tuple] = []  # ("ask", number, params) | ("epoch", number, epoch, stop)
        self.epochs_trained = 0

    def done(self) -> bool:
        return self.asked >= self.n_trials and all(s is None for s in self.slots)

    def step(self, study: Study) -> None:
        i = self.turn % len(self.slots)
        self.turn += 1
        slot = self.slots[i]
        if slot is None:
            if self.asked < self.n_trials:
                t = study.ask()
                self.asked += 1
                self.slots[i] = [t.number, t.params, 0]
                self.log.append(("ask", t.number, t.params))
            return
        number, params, epoch = slot
        value = self.sign * curve_value(params, number, epoch)
        stop = study.report(number, epoch, value, {"val_loss": 1 - value})
        self.epochs_trained += 1
        self.log.append(("epoch", number, epoch, stop))
        if stop:
            self.slots[i] = None
        elif epoch == EPOCHS - 1:
            study.tell(number, value, device_seconds=float(epoch + 1))
            self.slots[i] = None
        else:
            slot[2] += 1

    def run(self, study: Study, steps: int | None = None) -> Driver:
        while not self.done() and (steps is None or steps > 0):
            self.step(study)
            steps = None if steps is None else steps - 1
        return self


def make_study(
    scheduler="asha", strategy="random", journal=None, direction="maximize", seed=0, **strategy_options
):
    options = {} if scheduler in ("none", "median") else {"max_resource": EPOCHS}
    if scheduler == "median":
        options = {"n_startup_trials": 3}
    return Study(
        SearchSpace.from_dict(SQUARE),
        strategy=strategy,
        scheduler=scheduler,
        seed=seed,
        scheduler_options=options,
        journal=journal,
        direction=direction,
        metric="val_accuracy",
        strategy_options=strategy_options,
    )


@pytest.mark.parametrize("scheduler", ["asha", "hyperband", "median"])
def test_a_scheduler_spends_fewer_epochs_and_finds_a_comparable_best(scheduler):
    full = Driver(40).run(make_study("none"))
    early = Driver(40).run(study := make_study(scheduler))
    assert full.epochs_trained == 40 * EPOCHS
    assert early.epochs_trained < (0.8 if scheduler == "hyperband" else 0.6) * full.epochs_trained
    best_full = max(curve_value(p, n, EPOCHS - 1) for _, n, p in [e for e in full.log if e[0] == "ask"])
    assert study.best.score >= best_full - 0.02
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.epochs < EPOCHS for t in pruned)
    assert sum(pruned_per_rung(study.trials).values()) == len(pruned)


def test_pruned_trials_are_scored_by_their_best_epoch_and_counted_per_rung():
    study = make_study("asha")
    Driver(30).run(study)
    counts = pruned_per_rung(study.trials)
    assert set(counts) <= {1, 3} and counts[1] > counts.get(3, 0) > 0  # asha with max 9: rungs 1 and 3
    for t in study.trials:
        curve = study.curves[t.number]
        if t.state == TrialState.PRUNED:
            assert t.epochs == max(curve) + 1 and t.score == max(curve.values())
            assert curve[t.best_epoch] == t.score
        else:
            assert t.state == TrialState.COMPLETE and t.epochs == EPOCHS


@pytest.mark.parametrize(
    "scheduler,strategy",
    [("asha", "random"), ("hyperband", "random"), ("median", "random"), ("asha", "bayes")],
)
def test_decisions_rebuilt_from_the_journal_equal_the_uninterrupted_ones(tmp_path, scheduler, strategy):
    n = 10 if strategy == "bayes" else 24
    uninterrupted = Driver(n).run(make_study(scheduler, strategy))
    path = tmp_path / "journal.sqlite"
    first = make_study(scheduler, strategy, journal=Journal(path))
    driver = Driver(n)
    # Cut half-way, at a moment when a trial is in flight between two epochs.
    while len(driver.log) < len(uninterrupted.log) // 2 or not any(s and s[2] > 0 for s in driver.slots):
        driver.step(first)
    # The driver process dies here (its Study is dropped unclosed); a new one opens the journal.
    resumed = make_study(scheduler, strategy, journal=Journal(path))
    driver.run(resumed)
    assert driver.log == uninterrupted.log
    reopened = make_study(scheduler, strategy, journal=Journal(path))
    assert [(t.params, t.state, t.score, t.epochs) for t in reopened.trials] == [
        (t.params, t.state, t.score, t.epochs) for t in resumed.trials
    ]
    assert reopened.curves == resumed.curves


def test_minimize_makes_the_same_decisions_on_negated_values():
    up = make_study("asha")
    down = make_study("asha", direction="minimize")
    Driver(25).run(up)
    Driver(25, sign=-1.0).run(down)
    assert [t.state for t in down.trials] == [t.state for t in up.trials]
    assert any(t.state == TrialState.PRUNED for t in down.trials)
    for a, b in zip(up.trials, down.trials, strict=True):
        assert b.score == -a.score and b.best_epoch == a.best_epoch and b.epochs == a.epochs
    assert down.best.number == up.best.number


def test_a_pruned_trial_never_beats_a_longer_trial_with_an_equal_score():
    study = make_study("asha")
    early, late = study.ask(), study.ask()
    assert study.report(late, 0, 0.95) is False  # first at rung 1
    assert study.report(early, 0, 0.90) is True  # trails it: pruned, score 0.90 after 1 epoch
    for e in range(1, EPOCHS):
        assert study.report(late, e, 0.90) is False
    study.tell(late, 0.90)  # e.g. trainer.score=last: the same 0.90, after 9 epochs
    assert study.trials[early.number].score == study.trials[late.number].score == 0.90
    assert study.best.number == late.number  # not the earlier, shorter one


def test_strategies_without_curves_run_under_a_scheduler_unchanged():
    class Mine(Strategy):  # a user's strategy, written to the first contract
        name = "mine"

        def suggest(self, number, trials):
            return self.space.sample(np.random.default_rng(number))

    study = Study(
        SearchSpace.from_dict(SQUARE),
        strategy=Mine(SearchSpace.from_dict(SQUARE)),
        scheduler="asha",
        scheduler_options={"max_resource": EPOCHS},
    )
    Driver(10).run(study)
    assert any(t.state == TrialState.PRUNED for t in study.trials)
    # random search proposes the same points with or without a scheduler
    a = Driver(15).run(make_study("asha"))
    b = Driver(15).run(make_study("none"))
    assert [e for e in a.log if e[0] == "ask"] == [e for e in b.log if e[0] == "ask"]


@pytest.mark.parametrize("fidelity", ["rank", "joint", "highest"])
def test_bayes_with_asha_learns_from_partial_trials(fidelity):
    driver = Driver(18, workers=3).run(study := make_study("asha", "bayes", fidelity=fidelity))
    gp = [t for t in study.trials if t.info.get("phase") == "gp"]
    assert gp and any(t.info["n_pending"] > 0 for t in gp)
    if fidelity == "rank":  # one row per scored trial, stopped ones included
        assert all(t.info["fidelity_epochs"] is None for t in gp)
        assert any(
            t.info["n_observations"] > sum(u.state == TrialState.COMPLETE for u in study.trials[: t.number])
            for t in gp
        )
    else:
        assert all(t.info["fidelity_epochs"] in range(1, EPOCHS + 1) for t in gp)
    if fidelity == "joint":  # every curve in one model: more observations than trials
        assert any(t.info["n_observations"] > t.number for t in gp) and "fidelity_length_scale" in gp[-1].info
    elif fidelity == "highest":  # the trials stopped below the chosen fidelity are believed
        assert any(t.info["n_pruned"] > 0 for t in gp)
    keys = {tuple(t.params.values()) for t in study.trials}
    assert len(keys) == len(study.trials)
    assert driver.epochs_trained < 0.6 * 18 * EPOCHS
    assert study.best.score > 0.9
