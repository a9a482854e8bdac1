"""`python -m tunetorch.tune +strategy=bayes`: config -> study -> pool -> final evaluation.

Every key of conf/tune.yaml can be overridden on the command line (Hydra). With no
`+strategy=...` the study uses random search and says so; `strategy=NAME` without the
plus is accepted too. An existing `study.dir` is resumed: completed trials are kept,
trials that were running are run again, and the strategy is rebuilt from the journal.

Exit status: 0 done, 1 stopped on failures, 2 bad input (one line, nothing written),
130 interrupted (the study can be resumed).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunetorch.errors import UsageError

CONF_DIR = Path(__file__).parent / "conf"
GROUPS = ("model", "dataset", "space", "strategy")
DEFAULT_STRATEGY = "random"
# Keys that define a study: resuming with any of them changed would mix two searches.
# Budget, tuner and study.evaluate may change between runs (e.g. to extend a study).
IDENTITY_KEYS = ("model", "dataset", "space", "strategy", "trainer", "study.seed")


def main() -> None:
    sys.argv = [sys.argv[0], *_precheck(sys.argv[1:])]
    hydra_entry("tune", run)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _precheck(argv: list[str]) -> list[str]:
    """Catch the bad inputs Hydra would answer with a traceback or several lines."""
    out = []
    for arg in argv:
        m = re.fullmatch(r"(\+{0,2})(model|dataset|space|strategy)=(.*)", arg)
        if m:
            prefix, group, value = m.groups()
            options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
            if value not in options:
                _fail(f"{group}: {value!r} is not one of {', '.join(options)}")
            if group == "strategy" and not prefix:
                arg = "+" + arg  # `strategy` is not in the defaults list, so Hydra needs the plus
        m = re.fullmatch(r"study\.dir=(.+)", arg)
        if m:
            target = Path(m.group(1)).expanduser().absolute()
            parent = target
            while not parent.exists():
                parent = parent.parent
            if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
                _fail(f"study.dir: {m.group(1)} is not writable ({parent} does not allow it)")
            if target.exists() and not os.access(target, os.W_OK | os.X_OK):
                _fail(f"study.dir: {m.group(1)} is not writable")
        out.append(arg)
    return out


def hydra_entry(config_name: str, run_config: Callable[[Any], int]) -> None:
    """Compose `conf/<config_name>.yaml` with Hydra and exit with `run_config(cfg)`.

    Bad input (a UsageError) becomes one line and exit status 2, and the output folder that
    Hydra created for it is removed again, so nothing is left half-written."""
    import hydra

    @hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")
    def entry(cfg):
        out_dir = Path(cfg.study.dir)
        existed = out_dir.exists() and any(out_dir.iterdir())
        try:
            code = run_config(cfg)
        except UsageError as e:
            if not existed and out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()  # Hydra made it for us; bad input leaves nothing behind
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            _fail(str(e))
        sys.exit(code)

    entry()


# --- the study, from a composed config ------------------------------------------------------
def with_strategy(cfg: Any) -> tuple[Any, bool]:
    """The config with a strategy; True when the default was filled in."""
    from omegaconf import OmegaConf, open_dict

    if "strategy" in cfg and cfg.strategy is not None:
        return cfg, False
    with open_dict(cfg):
        cfg.strategy = OmegaConf.load(CONF_DIR / "strategy" / f"{DEFAULT_STRATEGY}.yaml")
    return cfg, True


def validate(cfg: Any):
    """Check the config; returns the SearchSpace. Raises UsageError naming the key."""
    from omegaconf import OmegaConf

    from tunetorch.names import DATASETS, MODEL_PARAMS, TRAINER_PARAMS
    from tunetorch.space import SearchSpace
    from tunetorch.strategies import REGISTRY

    if cfg.model.name not in MODEL_PARAMS:
        raise UsageError(f"model.name: {cfg.model.name!r} is not one of {', '.join(MODEL_PARAMS)}")
    if cfg.dataset.name not in DATASETS:
        raise UsageError(f"dataset.name: {cfg.dataset.name!r} is not one of {', '.join(DATASETS)}")
    if cfg.strategy.name not in REGISTRY:
        raise UsageError(f"strategy.name: {cfg.strategy.name!r} is not one of {', '.join(sorted(REGISTRY))}")
    _positive_int(cfg, "trainer.epochs")
    _positive_int(cfg, "trainer.batch_size")
    _one_of(cfg, "trainer.score", ("best", "last"))
    _one_of(cfg, "trainer.optimizer", ("adamw",))
    _positive_number(cfg, "trainer.lr")
    _positive_int(cfg, "budget.n_trials", optional=True)
    _positive_number(cfg, "budget.gpu_minutes", optional=True)
    if cfg.budget.n_trials is None and cfg.budget.gpu_minutes is None:
        raise UsageError("budget: n_trials and gpu_minutes are both null; give at least one")
    _positive_int(cfg, "tuner.max_consecutive_failures")
    if not isinstance(cfg.tuner.max_retries, int) or cfg.tuner.max_retries < 0:
        raise UsageError(f"tuner.max_retries: {cfg.tuner.max_retries!r} must be a whole number >= 0")
    if not isinstance(cfg.study.seed, int) or isinstance(cfg.study.seed, bool):
        raise UsageError(f"study.seed: {cfg.study.seed!r} must be a whole number")

    space = SearchSpace.from_dict(OmegaConf.to_container(cfg.space, resolve=True))
    consumed = (*TRAINER_PARAMS, *MODEL_PARAMS[cfg.model.name])
    for name in space.names:
        if name not in consumed:
            raise UsageError(
                f"space.{name}: nothing reads it; the trainer reads {', '.join(TRAINER_PARAMS)} "
                f"and the {cfg.model.name} model reads {', '.join(MODEL_PARAMS[cfg.model.name])}"
            )
    return space


def _get(cfg: Any, key: str) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key)


def _positive_int(cfg: Any, key: str, optional: bool = False) -> None:
    v = _get(cfg, key)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise UsageError(f"{key}: {v!r} must be a whole number >= 1" + (" or null" if optional else ""))


def _positive_number(cfg: Any, key: str, optional: bool = False) -> None:
    v = _get(cfg, key)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise UsageError(f"{key}: {v!r} must be a number > 0" + (" or null" if optional else ""))


def _one_of(cfg: Any, key: str, allowed: tuple[str, ...]) -> None:
    v = _get(cfg, key)
    if v not in allowed:
        raise UsageError(f"{key}: {v!r} is not one of {', '.join(allowed)}")


def _identity(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return {
        k: OmegaConf.to_container(OmegaConf.select(cfg, k), resolve=True)
        if k != "study.seed"
        else cfg.study.seed
        for k in IDENTITY_KEYS
    }


def _first_difference(a: Any, b: Any, key: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{key}.{k}")
            if d:
                return d
        return None
    return None if a == b else f"{key}: {a!r} in the study, {b!r} now"


def open_journal(study_dir: Path, cfg: Any):
    """The study's journal: a new one, or the existing one if it holds this same study."""
    import json

    from omegaconf import OmegaConf

    from tunetorch.journal import Journal, read_meta

    path = study_dir / "journal.sqlite"
    identity = _identity(cfg)
    if path.exists():
        stored = read_meta(path, "identity")  # read-only: a refused resume leaves the file untouched
        if stored is None:
            raise UsageError(f"study.dir: {path} holds no study identity; use a new study.dir")
        diff = _first_difference(json.loads(stored), identity, "")
        if diff:
            raise UsageError(
                f"study.dir: {study_dir} holds a different study ({diff.lstrip('.')}); "
                "use a new study.dir, or the study's own settings to resume it"
            )
        return Journal(path), True
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
        journal = Journal(path)
    except (OSError, sqlite3.OperationalError) as e:
        raise UsageError(f"study.dir: {study_dir} is not writable ({e})") from None
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    journal.set_meta("identity", json.dumps(identity))
    journal.set_meta("config", config_yaml)
    journal.set_meta("strategy", cfg.strategy.name)
    (study_dir / "config.yaml").write_text(config_yaml)
    return journal, False


def run(cfg: Any) -> int:
    from omegaconf import OmegaConf

    from tunetorch.strategies import make_strategy

    # The config first, before torch is imported: bad input is refused in a fraction of a second.
    cfg, defaulted = with_strategy(cfg)
    space = validate(cfg)
    options = {k: v for k, v in OmegaConf.to_container(cfg.strategy, resolve=True).items() if k != "name"}
    strategy = make_strategy(cfg.strategy.name, space, seed=cfg.study.seed, **options)

    from tunetorch.history import device_minutes, device_unit
    from tunetorch.pool import Pool, slot_devices
    from tunetorch.report import TensorBoardLog, write_reports
    from tunetorch.search import Budget, run_search
    from tunetorch.study import Study
    from tunetorch.training.datasets import ensure_available
    from tunetorch.training.objective import run_training, setup_training

    devices = slot_devices(
        cfg.tuner.devices if isinstance(cfg.tuner.devices, str) else list(cfg.tuner.devices),
        cfg.tuner.workers,
        cfg.tuner.trials_per_device,
    )
    ensure_available(cfg.dataset)
    study_dir = Path(cfg.study.dir)
    journal, resumed = open_journal(study_dir, cfg)
    study = Study(space, strategy, journal=journal)
    checkpoints = study_dir / "checkpoints"
    checkpoints.mkdir(exist_ok=True)

    note = (
        f" (the default; choose with +strategy={'|'.join(('bayes', 'grid', 'random'))})" if defaulted else ""
    )
    what = "resuming" if resumed else "study"
    print(
        f"{what} {study_dir}: strategy {cfg.strategy.name}{note}; {cfg.model.name} on {cfg.dataset.name}; "
        f"budget {cfg.budget.n_trials} trials / {cfg.budget.gpu_minutes} device minutes; "
        f"{len(devices)} slot(s): {', '.join(devices)}",
        flush=True,
    )
    if resumed:
        done = [t for t in study.trials if t.finished]
        print(
            f"  {len(done)} finished trials kept; "
            f"{len(study.trials) - len(done)} interrupted trial(s) will run again",
            flush=True,
        )

    tb = TensorBoardLog(study_dir)
    progress = _Progress(cfg, study, time.monotonic())

    def on_trial(trial) -> None:
        _keep_best_checkpoint(study, checkpoints, study_dir / "best.pt")
        tb.trial(trial, journal.epochs(trial.number), study.trials)
        if cfg.tuner.progress:
            progress.line(trial)

    def on_epoch(number: int, metrics: dict) -> None:
        if metrics["epoch"] == 0:
            journal.clear_epochs(number)  # a re-run trial starts its curves afresh
        journal.add_epoch(number, metrics["epoch"], metrics)

    setup = functools.partial(
        setup_training, cfg_yaml=OmegaConf.to_yaml(cfg, resolve=True), checkpoints=str(checkpoints)
    )
    pool = Pool(devices, setup=setup, task=run_training)
    try:
        outcome = run_search(
            study,
            pool,
            Budget(cfg.budget.n_trials, cfg.budget.gpu_minutes),
            max_retries=cfg.tuner.max_retries,
            max_consecutive_failures=cfg.tuner.max_consecutive_failures,
            on_epoch=on_epoch,
            on_trial=on_trial,
        )
    finally:
        pool.close()
    journal.set_meta("wall_seconds", str(float(journal.get_meta("wall_seconds") or 0) + outcome.wall_seconds))
    _keep_best_checkpoint(study, checkpoints, study_dir / "best.pt")
    summary = write_reports(study_dir, journal, cfg.strategy.name)
    unit = device_unit(study.trials)
    print(
        f"search ended: {outcome.reason}. {summary['n_trials']} trials ({summary['n_failed']} failed), "
        f"{device_minutes(study.trials):.2f} {unit}, {outcome.wall_seconds:.1f} s wall",
        flush=True,
    )

    if not outcome.ok:
        print(
            ("interrupted: run the same command again to resume. " if outcome.interrupted else "")
            + f"results so far in {study_dir}",
            file=sys.stderr,
        )
        tb.close()
        return 130 if outcome.interrupted else 1
    best = study.best
    if best is not None:
        print(f"best: trial {best.number}, val accuracy {best.score:.4f}, params {best.params}")
    if cfg.study.evaluate and best is not None:
        from tunetorch.evaluate import evaluate_best

        if journal.evaluations():
            print(
                "test split: already evaluated for this study "
                "(python -m tunetorch.evaluate force=true to redo)"
            )
        else:
            result = evaluate_best(study_dir, journal, device=_eval_device(devices))
            tb.test_result(result["accuracy"], result["loss"], result["trial"])
            print(
                f"test accuracy {result['accuracy']:.4f} (loss {result['loss']:.4f}) on {result['n_test']} "
                f"held-out examples, evaluated once"
            )
            write_reports(study_dir, journal, cfg.strategy.name)
    tb.close()
    print(
        f"results: {study_dir}/ (summary.json, trials.csv, progress.png, best.pt); "
        f"tensorboard --logdir {study_dir}/tb"
    )
    return 0


def _eval_device(devices: list[str]) -> str:
    return next((d for d in devices if d.startswith("cuda")), "cpu")


def _keep_best_checkpoint(study, checkpoints: Path, best_path: Path) -> None:
    """best.pt is a copy of the best trial's weights; other trials' weights are dropped.

    The best trial's own file stays in checkpoints/, so a crash between the two steps
    loses nothing: the next call copies it again.
    """
    best = study.best
    if best is None:
        return
    source = checkpoints / f"trial_{best.number:04d}.pt"
    marker = best_path.with_suffix(".trial")
    current = best_path.exists() and marker.exists() and marker.read_text().strip() == str(best.number)
    if source.exists() and not current:
        tmp = best_path.with_suffix(".pt.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, best_path)
        marker.write_text(f"{best.number}\n")
    running = {t.number for t in study.trials if not t.finished}
    for f in checkpoints.glob("trial_*.pt"):
        n = int(f.stem.split("_")[1])
        if n != best.number and n not in running:
            f.unlink(missing_ok=True)


class _Progress:
    """One line per finished trial: done of budget, device minutes, best so far, time left."""

    def __init__(self, cfg: Any, study, start: float):
        self.cfg, self.study, self.start = cfg, study, start
        self.done_at_start = sum(t.finished for t in study.trials)
        self.best_number = study.best.number if study.best else None

    def line(self, trial) -> None:
        from tunetorch.history import device_minutes, device_unit

        trials = self.study.trials
        done = sum(t.finished for t in trials)
        minutes = device_minutes(trials)
        budget_n, budget_m = self.cfg.budget.n_trials, self.cfg.budget.gpu_minutes
        elapsed = time.monotonic() - self.start
        rate = (done - self.done_at_start) / elapsed if elapsed > 0 else 0.0
        left = []
        if budget_n and rate > 0:
            left.append((budget_n - done) / rate)
        if budget_m and minutes > 0:
            left.append(elapsed * max(0.0, budget_m - minutes) / max(minutes, 1e-9))
        eta = f"~{min(left):.0f} s left" if left else ""
        result = f"val acc {trial.score:.4f}" if trial.score is not None else f"FAILED: {trial.error}"
        best = self.study.best
        best_txt = f"best {best.score:.4f} (#{best.number})" if best else "no best yet"
        of = f"/{budget_n}" if budget_n else ""
        print(
            f"[{done:>3}{of}] trial {trial.number:>3} {result} | {best_txt} | "
            f"{minutes:.2f} {device_unit(trials)} | {eta}",
            flush=True,
        )
        if best is not None and best.number != self.best_number:
            self.best_number = best.number
            print(f"      new best params: {_fmt(best.params)}", flush=True)


def _fmt(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


if __name__ == "__main__":
    main()
