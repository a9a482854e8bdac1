"""TensorBoard's HParams for a study: the experiment (every searched dimension with its declared
domain, and the metrics) and each trial's session (its parameters, then its end status).

Values are in the user's units, as the config writes them:
- A float searched on a log scale is logged as itself (optimizer.lr 0.0093, not log10 -2.03) with
  its declared interval low..high. The log axis is an option of the view, not a change of value:
  Parallel Coordinates offers Linear / Logarithmic / Quantile for every numeric axis (HParamInfo has
  no scale of its own), and the description says the dimension was searched on a log scale.
- An integer with a few values (at most MAX_DISCRETE_INT: depth 1..4) and a categorical of whole
  numbers (batch size 32, 64, 128) are logged as text: the table writes every number with five
  digits (3 reads "3.0000"), text as it is. Shorter numbers get leading spaces, which a browser does
  not draw, so that the table and the axis, which sort text, still sort them as numbers. A wide
  integer range (16..512) keeps a numeric axis, for the interval filter and the log scale.
- The metrics are the trial's single values (score, its epoch and that epoch's validation loss,
  epochs trained, device seconds), written once as the trial ends (tunetorch/reports/tensorboard.py).

There is no `state` hyperparameter: each session ends with TensorBoard's own status (COMPLETE:
success, FAIL: failure, PRUNED: unknown, as TensorBoard has no "stopped early"; `epochs` tells
pruned trials apart). A running trial has no end yet and is listed as unknown.
"""

from __future__ import annotations

import time
from typing import Any

from tunetorch.space import Categorical, Float, Int, SearchSpace
from tunetorch.trial import Trial, TrialState

MAX_DISCRETE_INT = 16  # small ints get a discrete domain (every value a tick); wider ones an interval
GROUP = "trials"  # tag group of the single values: one point per trial run, at its trial number


def display_names(space: SearchSpace) -> dict[str, str]:
    """Axis labels: the last part of each config path ("lr" for "optimizer.lr"), the whole path where
    the last part is not unique. Full names stay the keys."""
    last = [d.name.rsplit(".", 1)[-1] for d in space.dims]
    return {
        d.name: tail if last.count(tail) == 1 else d.name for d, tail in zip(space.dims, last, strict=True)
    }


def _whole(values: list[Any]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)


def _as_text(dim) -> list[Any] | None:
    """The values of a dimension logged as text (see the module's docstring), or None."""
    if isinstance(dim, Int) and dim.low >= 0 and dim.high - dim.low + 1 <= MAX_DISCRETE_INT:
        return list(range(dim.low, dim.high + 1))
    if isinstance(dim, Categorical) and _whole(list(dim.choices)):
        return list(dim.choices)
    return None


def hparam_value(dim, value: Any) -> Any:
    """`value` of `dim` as HParams holds it: numbers as they are, small whole numbers as text padded
    to the widest value (so that text order is number order), other choices as text."""
    whole = _as_text(dim)
    if whole is not None and isinstance(value, int) and not isinstance(value, bool):
        return str(value).rjust(max(len(str(v)) for v in whole))
    if isinstance(dim, Categorical):
        return value if isinstance(value, (bool, str)) else str(value)
    if isinstance(dim, Float):
        return float(value)
    return value


def metric_tags(metric: str) -> list[tuple[str, str, str]]:
    """(tag in each trial's run, short name for the HParams columns, description)."""
    return [
        (f"{GROUP}/{metric}", metric, f"the trial's score: {metric} at its scored epoch"),
        (f"{GROUP}/val_loss_at_scored_epoch", "val_loss (scored epoch)", "validation loss at that epoch"),
        (f"{GROUP}/scored_epoch", "scored epoch", "the best epoch (the last if trainer.score=last), from 1"),
        (f"{GROUP}/epochs", "epochs", "epochs trained (fewer for pruned trials)"),
        (f"{GROUP}/device_seconds", "device s", "device seconds charged to the trial"),
    ]  # fmt: skip


def experiment_proto(space: SearchSpace, metric: str):
    """The HParams experiment: every dimension with its declared domain, and the metrics."""
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams import summary_v2 as hp

    short = display_names(space)
    hparams = []
    for d in space.dims:
        log = (
            " (searched on a log scale: choose Logarithmic for its axis)" if getattr(d, "log", False) else ""
        )
        whole = _as_text(d)
        if whole is not None:
            domain = hp.Discrete([hparam_value(d, v) for v in whole])
            about = (
                f"integer {d.low}..{d.high}" if isinstance(d, Int) else "one of " + ", ".join(map(str, whole))
            )
            about += " (a small range of whole numbers, shown as written)"
        elif isinstance(d, Float):
            domain = hp.RealInterval(float(d.low), float(d.high))
            about = f"{d.low:g}..{d.high:g}{log}"
        elif isinstance(d, Int):
            domain = hp.IntInterval(d.low, d.high)
            about = f"integer {d.low}..{d.high}{log}"
        else:
            values = [hparam_value(d, c) for c in d.choices]
            domain = hp.Discrete(values)
            about = "one of " + ", ".join(map(str, values))
        hparams.append(hp.HParam(d.name, domain, display_name=short[d.name], description=about))
    metrics = [
        hp.Metric(tag, display_name=name, description=about) for tag, name, about in metric_tags(metric)
    ]
    summary = hp.hparams_config_pb(hparams, metrics)
    # Every searched dimension varies by design: without `differs`, TensorBoard marks them
    # "differs: false" and sorts them as if constant.
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


def session_start(trial: Trial, space: SearchSpace | None, start: float):
    """The trial's HParams session as it starts: its parameters."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    dims = {d.name: d for d in space.dims} if space is not None else {}
    values = {}
    for name, value in trial.params.items():
        d = dims.get(name)
        if d is not None:
            values[name] = hparam_value(d, value)
        else:
            values[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return hp.hparams_pb(values, trial_id=f"trial {trial.number:04d}", start_time_secs=start)


def session_end(trial: Trial):
    """The trial's end: TensorBoard's status for its state. TensorBoard keeps the first end it
    reads, so this is written once, when the trial has finished."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    status = {
        TrialState.COMPLETE: api_pb2.STATUS_SUCCESS,
        TrialState.FAIL: api_pb2.STATUS_FAILURE,
    }.get(trial.state, api_pb2.STATUS_UNKNOWN)
    return _plugin_summary(
        metadata.SESSION_END_INFO_TAG,
        session_end_info=plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time()),
    )
