"""TensorBoard for a study, written live as trials finish (`TensorBoardLog`).

Runs under study_dir/tb:

    study       the study's cards: best score so far by trial and by device time, device minutes
                by trial, the test result (scalar and text), progress/params/importance images;
                and the HParams experiment (declared domains and metrics)
    trial_NNNN  one per trial: its epoch curves, running best, and its HParams session
    strategy    the strategy's internals (bayes: EI, GP fit time, length scales), only with
                `strategy_internals=True` (conf: report.strategy_internals=true): Time Series sorts
                tag groups by name, so 18 `strategy/*` cards would open above the study's own

Why these choices:
- TensorBoard steps are integers. "Best so far by device time" uses milliseconds of device time
  as the step, made strictly increasing, so every trial stays a point even when trials take under
  a second (whole seconds merged 12 CPU trials into 4 points). `study/device_minutes_by_trial`
  gives the minutes themselves against the trial number.
- HParams has no log-scale flag (HParamInfo holds name, display_name, description, type, domain,
  differs) and its parallel-coordinates view starts every numeric axis linear. A log dimension is
  therefore logged as log10 of its value, "optimizer.lr (log10)", with a declared interval of
  log10(low)..log10(high): the axis is then evenly spread in decades from the start.
- Epochs count from 1, as everywhere a person reads them: a trial's curves have their first point
  at step 1 and `trial/best_epoch` (the HParams "best epoch") is 1-based; the journal's 0-based
  epochs are converted by tunetorch/words.py: shown_epoch.
- There is no `state` hyperparameter: each session ends with TensorBoard's own status (COMPLETE:
  success, FAIL: failure, PRUNED: unknown, as TensorBoard has no "stopped early"; `trial/epochs`
  tells pruned trials apart).

Why one long module: the HParams protos, the per-trial runs and the study run must agree on
names and domains; keeping them in one file keeps them in step.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunetorch.history import best_so_far, sign
from tunetorch.space import Categorical, Float, Int, SearchSpace
from tunetorch.trial import Trial, TrialState
from tunetorch.words import shown_epoch

# Small ints get a discrete domain (every value a tick); wider ones an interval.
MAX_DISCRETE_INT = 16
IMAGES = ("progress.png", "params.png", "importance.png")


def hparam_name(dim) -> str:
    return f"{dim.name} (log10)" if getattr(dim, "log", False) and isinstance(dim, Float) else dim.name


def hparam_value(dim, value: Any) -> Any:
    if isinstance(dim, Float) and dim.log:
        return math.log10(value)
    if isinstance(dim, Categorical):
        return value if isinstance(value, (bool, str)) else str(value)
    return value


def display_names(space: SearchSpace) -> dict[str, str]:
    """Axis labels for the parallel coordinates: the last part of each config path ("lr (log10)" for
    "optimizer.lr"), the whole path where the last part is not unique. Full names stay the keys."""
    last = [d.name.rsplit(".", 1)[-1] for d in space.dims]
    out = {}
    for d, tail in zip(space.dims, last, strict=True):
        label = tail if last.count(tail) == 1 else d.name
        out[d.name] = f"{label} (log10)" if isinstance(d, Float) and d.log else label
    return out


def metric_tags(metric: str) -> list[tuple[str, str, str]]:
    """(tag in each trial's run, short name for the HParams axes, description): the HParams metrics."""
    return [
        (
            f"trial/best_{metric}",
            f"best {metric}",
            f"best {metric} so far, per epoch (last value: the trial's score)",
        ),
        (
            "trial/val_loss_at_best_epoch",
            "val_loss at best",
            "validation loss at the epoch of the running best",
        ),
        ("trial/best_epoch", "best epoch", "epoch of the running best (the first epoch is 1)"),
        ("trial/epochs", "epochs", "epochs trained (fewer for pruned trials)"),
        ("trial/device_seconds", "device s", "device seconds charged to the trial"),
        ("trial/test_accuracy", "test accuracy", "test accuracy: only the trial evaluated on the test split"),
    ]


def experiment_proto(space: SearchSpace, metric: str):
    """The HParams experiment: every dimension with its declared domain, and the metrics."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    short = display_names(space)
    hparams = []
    for d in space.dims:
        if isinstance(d, Float):
            lo, hi = (math.log10(d.low), math.log10(d.high)) if d.log else (d.low, d.high)
            domain = hp.RealInterval(float(lo), float(hi))
            about = f"log10 of {d.name}, searched on a log scale ({d.low:g}..{d.high:g})" if d.log else ""
        elif isinstance(d, Int):
            values = list(range(d.low, d.high + 1))
            domain = hp.Discrete(values) if len(values) <= MAX_DISCRETE_INT else hp.IntInterval(d.low, d.high)
            about = f"integer {d.low}..{d.high}" + (" (searched on a log scale)" if d.log else "")
        else:
            values = [hparam_value(d, c) for c in d.choices]
            domain = hp.Discrete(values)
            about = "one of " + ", ".join(map(str, values))
        hparams.append(hp.HParam(hparam_name(d), domain, display_name=short[d.name], description=about))
    metrics = [
        hp.Metric(tag, display_name=short, description=about) for tag, short, about in metric_tags(metric)
    ]
    summary = hp.hparams_config_pb(hparams, metrics)
    # Every searched dimension varies by design: without `differs`, TensorBoard hides nothing but
    # marks them "differs: false" and sorts them as if constant.
    from tensorboard.plugins.hparams import metadata

    exp = metadata.parse_experiment_plugin_data(summary.value[0].metadata.plugin_data.content)
    for info in exp.hparam_infos:
        info.differs = True
    return _plugin_summary(metadata.EXPERIMENT_TAG, experiment=exp)


def _plugin_summary(tag: str, **plugin_data):
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    summary = summary_pb2.Summary()
    summary.value.add(
        tag=tag,
        metadata=metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(**plugin_data)),
        tensor=metadata.NULL_TENSOR,
    )
    return summary


def session_protos(trial: Trial, space: SearchSpace | None, start: float):
    """The trial's HParams session: its parameters (start) and its end status."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp

    dims = {d.name: d for d in space.dims} if space is not None else {}
    values = {}
    for name, value in trial.params.items():
        d = dims.get(name)
        if d is not None:
            values[hparam_name(d)] = hparam_value(d, value)
        else:
            values[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    status = {
        TrialState.COMPLETE: api_pb2.STATUS_SUCCESS,
        TrialState.FAIL: api_pb2.STATUS_FAILURE,
        TrialState.RUNNING: api_pb2.STATUS_RUNNING,
    }.get(trial.state, api_pb2.STATUS_UNKNOWN)
    started = hp.hparams_pb(values, trial_id=f"trial {trial.number:04d}", start_time_secs=start)
    ended = _plugin_summary(
        metadata.SESSION_END_INFO_TAG,
        session_end_info=plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time()),
    )
    return started, ended


def trial_curves(
    epochs: Sequence[Mapping[str, Any]], metric: str, direction: str, score: float | None
) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(epoch, value)]: every numeric epoch metric, and the running best with the validation
    loss and epoch it was reached at. The last running-best value is the trial's own score.
    `epochs`: the journal's rows (0-based "epoch"); steps and best-epoch values are 1-based."""
    s = sign(direction)
    out: dict[str, list[tuple[int, float]]] = {}
    best = best_epoch = loss_at_best = None
    for e in epochs:
        step = shown_epoch(e["epoch"])
        for key, value in e.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(f"trial/{'epoch_seconds' if key == 'seconds' else key}", []).append(
                    (step, float(value))
                )
        value = e.get(metric)
        if (
            isinstance(value, (int, float))
            and math.isfinite(value)
            and (best is None or s * value > s * best)
        ):
            best, best_epoch, loss_at_best = float(value), step, e.get("val_loss")
        if best is not None:
            out.setdefault(f"trial/best_{metric}", []).append((step, best))
            out.setdefault("trial/best_epoch", []).append((step, float(best_epoch)))
            if loss_at_best is not None:
                out.setdefault("trial/val_loss_at_best_epoch", []).append((step, float(loss_at_best)))
    if score is not None and epochs:
        # trainer.score=last scores the last epoch, not the best one: the curve ends on the score.
        last = shown_epoch(epochs[-1]["epoch"])
        out.setdefault(f"trial/best_{metric}", []).append((last, float(score)))
    return out


class TensorBoardLog:
    """Write a study's TensorBoard as it runs. Calls, in order: `trial()` as each trial finishes,
    `test_result()` after the one test evaluation, `images()` after write_reports, `close()`."""

    def __init__(
        self,
        study_dir: Path,
        space: SearchSpace | None = None,
        metric: str = "val_accuracy",
        direction: str = "maximize",
        strategy_internals: bool = False,
    ):
        from torch.utils.tensorboard import SummaryWriter

        self._writer_cls = SummaryWriter
        self.study_dir = Path(study_dir)
        self.root = self.study_dir / "tb"
        self.space, self.metric, self.direction = space, metric, direction
        self.strategy_internals = strategy_internals
        self.study = SummaryWriter(str(self.root / "study"))
        self._strategy = None
        self._last_ms = -1
        if space is not None:
            self.study.file_writer.add_summary(experiment_proto(space, metric))
            self.study.flush()

    # --- as trials finish -------------------------------------------------------------------
    def trial(self, trial: Trial, epochs: list[dict], trials: list[Trial]) -> None:
        run = self.root / f"trial_{trial.number:04d}"
        shutil.rmtree(run, ignore_errors=True)  # a re-run trial (after a resume) starts afresh
        with self._writer_cls(str(run)) as w:
            curves = trial_curves(epochs, self.metric, self.direction, trial.score)
            for tag, points in curves.items():
                for step, value in points:
                    w.add_scalar(tag, value, step)
            last = shown_epoch(epochs[-1]["epoch"]) if epochs else 0
            # A failed trial records no epochs; what it trained before failing is what the journal holds.
            w.add_scalar("trial/epochs", trial.epochs if trial.epochs is not None else len(epochs), last)
            if trial.device_seconds is not None:
                w.add_scalar("trial/device_seconds", trial.device_seconds, last)
            start = time.time() - (trial.wall_seconds or 0.0)
            for proto in session_protos(trial, self.space, start):
                w.file_writer.add_summary(proto)
        self._study_cards(trial, trials)
        self._strategy_internals(trial)
        self.study.flush()

    def _study_cards(self, trial: Trial, trials: list[Trial]) -> None:
        curve = best_so_far(trials, self.direction)
        point = next((c for c in curve if c[2] == trial.number), None)
        if point is None:
            return
        minutes, best, _ = point
        m = self.metric
        self.study.add_scalar(f"study/best_{m}_by_trial", best, trial.number)
        # Milliseconds of device time, strictly increasing: every trial is its own point.
        ms = max(int(round(minutes * 60_000)), self._last_ms + 1)
        self._last_ms = ms
        self.study.add_scalar(f"study/best_{m}_by_device_ms", best, ms)
        self.study.add_scalar("study/device_minutes_by_trial", minutes, trial.number)
        if trial.score is not None:
            self.study.add_scalar(f"study/trial_{m}", trial.score, trial.number)

    def _strategy_internals(self, trial: Trial) -> None:
        if not self.strategy_internals:
            return
        scalars = {}
        for key, value in trial.info.items():  # bayes: EI, fit time, length scales
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                scalars[f"strategy/{key}"] = value
            elif isinstance(value, dict):
                for k, v in value.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        scalars[f"strategy/{key}/{k}"] = v
        if not scalars:
            return
        if self._strategy is None:
            self._strategy = self._writer_cls(str(self.root / "strategy"))
        for tag, value in scalars.items():
            self._strategy.add_scalar(tag, value, trial.number)
        self._strategy.flush()

    # --- after the search ---------------------------------------------------------------------
    def test_result(
        self,
        accuracy: float,
        loss: float,
        trial: int,
        *,
        val_accuracy: float | None = None,
        n_trials: int | None = None,
    ) -> None:
        """The one test evaluation: a flat line across the trials (a labelled level, not a lone dot),
        a text card saying what it is, and `trial/test_accuracy` in the evaluated trial's run."""
        last = max(n_trials - 1 if n_trials else trial, trial, 1)
        for step in (0, last):
            self.study.add_scalar("study/test_accuracy_of_best_trial", accuracy, step)
            self.study.add_scalar("study/test_loss_of_best_trial", loss, step)
        from tunetorch.reports.summary import optimism_reading

        text = f"**test accuracy {accuracy:.4f}** (loss {loss:.4f}) of trial {trial}, evaluated once"
        if val_accuracy is not None:
            gap = val_accuracy - accuracy
            reading = optimism_reading({"measure": "accuracy", "gap": gap})
            text += (
                f"; validation accuracy {val_accuracy:.4f}, optimism of validation (validation minus "
                f"test) {gap:+.4f}: {reading}"
            )
        text += "."
        self.study.add_text("study/test_result", text, last)
        self.study.flush()
        with self._writer_cls(str(self.root / f"trial_{trial:04d}")) as w:
            w.add_scalar("trial/test_accuracy", accuracy, 0)

    def images(self, step: int | None = None) -> None:
        """progress.png, params.png and importance.png from the study directory, as image cards."""
        import numpy as np
        from PIL import Image

        for name in IMAGES:
            path = self.study_dir / name
            if path.is_file():
                with Image.open(path) as im:
                    pixels = np.asarray(im.convert("RGB"))
                self.study.add_image(f"study/{path.stem}", pixels, step or 0, dataformats="HWC")
        self.study.flush()

    def close(self) -> None:
        self.study.close()
        if self._strategy is not None:
            self._strategy.close()


def replay(study_dir: Path, journal, strategy_internals: bool = False) -> None:
    """Rebuild study_dir/tb from the journal, as if the study had been logged live (a study made
    before this layout, or a tb/ that was deleted)."""
    from tunetorch.reports.meta import study_meta

    study_dir = Path(study_dir)
    meta = study_meta(journal)
    shutil.rmtree(study_dir / "tb", ignore_errors=True)
    log = TensorBoardLog(
        study_dir,
        space=meta.space,
        metric=meta.metric,
        direction=meta.direction,
        strategy_internals=strategy_internals,
    )
    trials = journal.trials()
    seen: list[Trial] = []
    for t in sorted(trials, key=lambda t: t.number):
        seen.append(t)
        if t.finished:
            log.trial(t, journal.epochs(t.number), list(seen))
    evaluations = [e for e in journal.evaluations() if e.get("accuracy") is not None]
    if evaluations:
        e = evaluations[-1]
        val = next((t.score for t in trials if t.number == e["trial"]), None)
        log.test_result(
            e["accuracy"],
            e["loss"],
            e["trial"],
            val_accuracy=val if meta.metric == "val_accuracy" else None,
            n_trials=len(trials),
        )
    log.images(sum(t.finished for t in trials))
    log.close()
