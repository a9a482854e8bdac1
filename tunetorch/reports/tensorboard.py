"""TensorBoard for a study, written live (`TensorBoardLog`): a running trial's curves grow epoch by
epoch, the study's cards as trials finish. A race's own runs (`write_race_tensorboard`) too.

Runs under study_dir/tb:

    study       the study's cards: progress (the best score so far against GPU or CPU minutes, the
                picture of progress.png, redrawn as trials finish), each trial's score by trial
                number, the test result as text, params and importance pictures at the end; and
                the HParams experiment (tunetorch/reports/hparams.py)
    trial_NNNN  one per trial: `trial/*`, its epoch curves (x: the epoch, counted from 1), written
                as each epoch's event reaches the tuner; `trials/*`, its single values (score,
                scored epoch, epochs, device seconds) written once as it ends, at its trial number;
                and its HParams session
    strategy    the strategy's internals (bayes: EI, GP fit time, length scales), only with
                `strategy_internals=True` (conf: report.strategy_internals=true)

Why these choices:
- Wall time: an epoch's event carries its metrics and its own duration ("seconds"), not a clock
  time, so each point is stamped when the event reaches the tuner (time.time() in `epoch`). That
  is within the event's round trip of the worker's clock, and it makes TensorBoard's Relative and
  Wall axes mean what they say.
- Nothing is rewritten: a trial's run is appended to as it trains and closed as it ends. A trial
  that starts again from its first epoch (a retry after a lost worker, a resumed study re-running
  an interrupted trial) starts its run afresh, as the journal starts its curve afresh (Study.report
  at epoch 0): no step is written twice.
- No smoothed staircase: TensorBoard smooths every scalar series (0.6 by default), which draws a
  best-so-far step as a slow rise. The best so far is therefore the progress picture (an image is
  never smoothed), with device minutes on its axis (TensorBoard's steps are whole numbers). Drawing
  takes a few tenths of a second, so it is redrawn at most every DRAW_EVERY times that long.
- Single values are not one-point curves: a trial's single values are HParams metrics (the table),
  each at the trial's number, so `trials/*` cards read as one point per trial across the study; the
  test result, one number for the study, is a text card.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunetorch.reports.hparams import GROUP, experiment_proto, session_end, session_start
from tunetorch.space import SearchSpace
from tunetorch.trial import Trial, TrialState
from tunetorch.words import no_test_counterpart, shown_epoch, trials_cost_unit

IMAGES = ("progress.png", "params.png", "importance.png")
DRAW_EVERY = 10  # the progress picture is redrawn at most once per 10 times its drawing time


def epoch_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """tag -> value for one epoch's metrics: every number but the epoch itself ("seconds", the
    epoch's duration, as `trial/epoch_seconds`)."""
    return {
        f"trial/{'epoch_seconds' if key == 'seconds' else key}": float(value)
        for key, value in metrics.items()
        if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def end_values(trial: Trial, epochs: list[dict], metric: str) -> dict[str, float]:
    """The trial's single values (its HParams metrics), by tag: what the journal holds for it."""
    group = GROUP
    out: dict[str, float] = {}
    if trial.score is not None:
        out[f"{group}/{metric}"] = float(trial.score)
    if trial.best_epoch is not None:
        out[f"{group}/scored_epoch"] = float(shown_epoch(trial.best_epoch))
        row = next((e for e in epochs if e["epoch"] == trial.best_epoch), {})
        if isinstance(row.get("val_loss"), (int, float)):
            out[f"{group}/val_loss_at_scored_epoch"] = float(row["val_loss"])
    # A failed trial records no epoch count; what it trained before failing is what the journal holds.
    out[f"{group}/epochs"] = float(trial.epochs if trial.epochs is not None else len(epochs))
    if trial.device_seconds is not None:
        out[f"{group}/device_seconds"] = float(trial.device_seconds)
    return out


def journaled(trial: Trial, epoch: int) -> bool:
    """Whether the study recorded this epoch: the trial is running, or was pruned at this epoch."""
    if trial.state == TrialState.RUNNING:
        return True
    return trial.state == TrialState.PRUNED and trial.epochs == epoch + 1


class TensorBoardLog:
    """Write a study's TensorBoard as it runs. Calls: `epoch()` as each epoch's event arrives,
    `trial()` as each trial finishes, `test_result()` after the one test evaluation, `images()`
    after write_reports, `close()`. Opening it again on the same study (a resume, `evaluate`)
    appends: the HParams experiment is written once. As a context manager it is closed on the way out."""

    def __init__(
        self,
        study_dir: Path,
        space: SearchSpace | None = None,
        metric: str = "val_accuracy",
        direction: str = "maximize",
        strategy_internals: bool = False,
    ):
        # What the live pictures draw with, imported now, before any trial runs: a Ctrl-C that
        # lands inside a first import mid-search would leave matplotlib half-initialised for the
        # reports written after the interruption ("module 'matplotlib' has no attribute ...").
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
        import PIL.Image  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter

        import tunetorch.reports.plots  # noqa: F401

        self._writer_cls = SummaryWriter
        self.study_dir = Path(study_dir)
        self.root = self.study_dir / "tb"
        self.space, self.metric, self.direction = space, metric, direction
        self.strategy_internals = strategy_internals
        new = not any((self.root / "study").glob("events.out.tfevents.*"))
        self.study = SummaryWriter(str(self.root / "study"))
        self._strategy = None
        self._runs: dict[int, Any] = {}  # trial number -> the writer of its run, while it trains
        self._drawn_at, self._draw_seconds = -float("inf"), 0.0
        if space is not None and new:
            self.study.file_writer.add_summary(experiment_proto(space, metric))
            self.study.flush()

    def _run(self, number: int) -> Path:
        return self.root / f"trial_{number:04d}"

    def _open(self, trial: Trial, start: float) -> Any:
        """The writer of `trial`'s run; a run new on disk first gets its HParams session start."""
        fresh = not self._run(trial.number).exists()
        writer = self._writer_cls(str(self._run(trial.number)))
        if fresh:
            writer.file_writer.add_summary(session_start(trial, self.space, start))
        return writer

    # --- as epochs arrive ---------------------------------------------------------------------
    def epoch(self, trial: Trial | None, metrics: Mapping[str, Any], wall_time: float | None = None) -> None:
        """One epoch of `trial` (`metrics`: the event's payload, with its 0-based "epoch"), stamped
        `wall_time` (default: now, as the event reaches the tuner). Epochs the study did not record
        (a trial it no longer runs) are left out, as the journal leaves them out."""
        if (
            trial is None
            or not isinstance(metrics.get("epoch"), int)
            or not journaled(trial, metrics["epoch"])
        ):
            return
        now = time.time() if wall_time is None else wall_time
        writer = self._runs.get(trial.number)
        if metrics["epoch"] == 0 or writer is None:
            if metrics["epoch"] == 0:  # its first epoch, or a new attempt's: the run starts afresh
                if writer is not None:
                    writer.close()
                shutil.rmtree(self._run(trial.number), ignore_errors=True)
            writer = self._runs[trial.number] = self._open(trial, now - float(metrics.get("seconds") or 0.0))
        for tag, value in epoch_scalars(metrics).items():
            writer.add_scalar(tag, value, shown_epoch(metrics["epoch"]), walltime=now)
        writer.flush()

    # --- as trials finish -------------------------------------------------------------------
    def trial(self, trial: Trial, epochs: list[dict], trials: list[Trial]) -> None:
        """`trial` has finished (`epochs`: its journal rows, `trials`: the study's): its single
        values and its end, then the study's cards."""
        now = time.time()
        writer = self._runs.pop(trial.number, None)
        if writer is None:  # nothing of it was written live: it failed before its first epoch
            fresh = not self._run(trial.number).exists()
            writer = self._open(trial, now - float(trial.wall_seconds or 0.0))
            if fresh:
                for row in epochs:
                    for tag, value in epoch_scalars(row).items():
                        writer.add_scalar(tag, value, shown_epoch(row["epoch"]), walltime=now)
        for tag, value in end_values(trial, epochs, self.metric).items():
            writer.add_scalar(tag, value, trial.number, walltime=now)
        writer.file_writer.add_summary(session_end(trial))
        writer.close()
        if trial.score is not None:
            self.study.add_scalar(f"study/trial_{self.metric}", trial.score, trial.number, walltime=now)
        self._draw_progress(trials)
        self._strategy_internals(trial)
        self.study.flush()

    def _draw_progress(self, trials: list[Trial]) -> None:
        """progress.png's picture, drawn from `trials` now, unless it was drawn very lately."""
        began = time.monotonic()
        if began - self._drawn_at < DRAW_EVERY * self._draw_seconds:
            return
        from tunetorch.reports.plots import progress_figure

        done = [t for t in trials if t.finished]
        fig = progress_figure(done, unit=trials_cost_unit(done), direction=self.direction, metric=self.metric)
        self.study.add_image("study/progress", figure_pixels(fig), len(done), dataformats="HWC")
        self._drawn_at = time.monotonic()
        self._draw_seconds = self._drawn_at - began

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
        test: Mapping[str, Any],
        optimism: Mapping[str, Any] | None = None,
        *,
        n_trials: int | None = None,
    ) -> None:
        """The one test evaluation (`test`, `optimism`: summary.json's), a single value: a text card
        saying what it is (not a lone dot), worded as the terminal words it (terminal.test_scores)."""
        from tunetorch.reports.summary import optimism_reading
        from tunetorch.reports.terminal import format_score, test_scores

        trial = int(test["trial"])
        once = "a forced re-evaluation" if test.get("forced") else "evaluated once"
        text = f"{test_scores(test, rest=format_score, bold='**')} of trial {trial}, {once}"
        if test.get("value") is None:
            text += f"; {no_test_counterpart(test['metric'], test['metrics'])}"
        elif optimism and optimism.get("trial") == trial:
            m = optimism["measure"]
            text += (
                f"; validation {m} {format_score(optimism[f'val_{m}'])}, optimism of validation "
                f"(validation minus test) {optimism['gap']:+.4f}: {optimism_reading(optimism)}"
            )
        text += "."
        self.study.add_text("study/test_result", text, max(n_trials or 0, trial))
        self.study.flush()

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

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every writer (again is harmless). A trial still open (the study was interrupted)
        keeps what it wrote, with no end: a resume runs it again from its first epoch, in a fresh run."""
        for writer in self._runs.values():
            writer.close()
        self._runs.clear()
        self.study.close()
        if self._strategy is not None:
            self._strategy.close()


def figure_pixels(fig: Any) -> Any:
    """A matplotlib figure as an RGB image (height, width, 3), as TensorBoard's image cards take it."""
    import numpy as np

    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3]


def write_race_tensorboard(
    root: Path, results: dict[str, list[Trial]], fig: Any, direction: str = "maximize"
) -> None:
    """A race's TensorBoard (`python -m tunetorch.race`): tb/<entrant>, the best score so far (in
    the study's `direction`) under one tag (race/best_score), step = device seconds (TensorBoard
    steps are integers), so the entrants overlay in one chart; tb/figure, race.png (`fig`).

    Rebuilt from the trials each time, so a resumed race does not log its curves twice.
    """
    from torch.utils.tensorboard import SummaryWriter

    from tunetorch.history import best_so_far

    for name, trials in results.items():
        shutil.rmtree(root / name, ignore_errors=True)
        with SummaryWriter(str(root / name)) as w:
            for minutes, best, _ in best_so_far(trials, direction):
                w.add_scalar("race/best_score", best, int(round(minutes * 60)))
    shutil.rmtree(root / "figure", ignore_errors=True)
    with SummaryWriter(str(root / "figure")) as w:
        w.add_image("race/figure", figure_pixels(fig), dataformats="HWC")
