"""The few rules of wording every printed line and report follows, in one place.

    count(3, "slot")                     '3 slots'       (never "slot(s)")
    count(1, "time")                     '1 time'
    count(0.5, "GPU minute", fmt="{:.3g}")  '0.5 GPU minutes'
    count(2, "entry", "entries")         '2 entries'
    cost_unit(["cuda:0", "cpu"])          'GPU minutes'   (any GPU: GPU minutes)
    cost_unit(["cpu"])                    'CPU minutes'
    shown_epoch(0)                       1               (people count epochs from 1)
    measure("val_accuracy")              'accuracy'      (a metric as read on either split)
    test_name("val_mse")                 'test mse'
    validation_name("perplexity")        'validation perplexity'

The cost unit: a study is costed in the minutes its trials held a device, "GPU minutes" (the
budget's key is `budget.gpu_minutes`); a study that ran on the CPU only says "CPU minutes" for
the same quantity. Never "device minutes", never "CPU-device minutes".

Epochs: the journal counts a trial's epochs from 0 (its rows, `Trial.best_epoch`); everything a
person reads (the terminal, index.html, trials.csv, summary.json, TensorBoard) counts from 1, and
converts with `shown_epoch` here and nowhere else.

Metrics: a study's metric is named as its validation step names it (study.metric: val_accuracy,
val_mse, perplexity). The test split is scored by the same validation step, so its test value is
the value of the same key there, and both are read under one name, the key less its "val_"
prefix: val_accuracy is "validation accuracy" and "test accuracy", val_mse "test mse", perplexity
"test perplexity". A metric the validation step does not return (train_loss) has no test
counterpart, and every report says so (`no_test_counterpart`) instead of showing another in its
place.

Standard library only: the search loop, the budget and the reports all import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

GPU_MINUTES = "GPU minutes"
CPU_MINUTES = "CPU minutes"


def plural(word: str) -> str:
    """'slot' -> 'slots', 'GPU minute' -> 'GPU minutes', 'entry' -> 'entries', 'pass' -> 'passes'."""
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "sh")) or (word.endswith("ch") and not word.endswith("och")):
        return word + "es"
    return word + "s"


def count(n: float, word: str, many: str | None = None, *, fmt: str | None = None) -> str:
    """`n` and the noun in the right number: '1 trial', '2 trials', '0.5 GPU minutes', '1 GPU minute'.

    `many`: the plural when it is not regular. `fmt`: how to write n (default: ints as they are,
    floats with `:g`). The noun is singular exactly when n is written as "1", so '1 GPU minute'
    but '1.5 GPU minutes' and '0.999 GPU minutes'."""
    if fmt is None:
        fmt = "{:g}" if isinstance(n, float) else "{}"
    text = fmt.format(n)
    return f"{text} {word if text == '1' else (many or plural(word))}"


def cost_unit(devices: Iterable[str | None]) -> str:
    """'GPU minutes' when any of the devices is a GPU ('cuda', 'cuda:1'), else 'CPU minutes'."""
    return GPU_MINUTES if any(str(d or "").startswith("cuda") for d in devices) else CPU_MINUTES


def trials_cost_unit(trials: Iterable[Any]) -> str:
    """The cost unit of a study from its trials' devices (`Trial.device`); 'CPU minutes' when no
    trial ran on a GPU (and for a study with no trial yet)."""
    return cost_unit(getattr(t, "device", None) for t in trials)


def minutes(value: float, unit: str = GPU_MINUTES) -> str:
    """'0.0633 CPU minutes', '1 GPU minute', '12.5 GPU minutes': 3 significant digits."""
    return count(float(value), unit.removesuffix("s"), unit, fmt="{:.3g}")


def shown_epoch(epoch: int | None) -> int | None:
    """The journal's 0-based epoch as people read it (1-based); None stays None."""
    return None if epoch is None else int(epoch) + 1


def times(n: int) -> str:
    """'once', 'twice', '3 times': how often something happened (the looks at the test split)."""
    return {1: "once", 2: "twice"}.get(int(n), count(int(n), "time"))


def measure(metric: str) -> str:
    """A metric as people read it on either split: its name less the validation step's "val_"
    prefix ('val_accuracy' -> 'accuracy', 'val_mse' -> 'mse', 'perplexity' -> 'perplexity')."""
    return metric[len("val_") :] if metric.startswith("val_") and len(metric) > len("val_") else metric


def test_name(metric: str) -> str:
    """'test accuracy' for val_accuracy, 'test mse' for val_mse, 'test perplexity' for perplexity."""
    return f"test {measure(metric)}"


def validation_name(metric: str) -> str:
    """'validation accuracy' for val_accuracy, 'validation mse' for val_mse."""
    return f"validation {measure(metric)}"


def test_parts(
    metric: str, metrics: Mapping[str, float]
) -> tuple[tuple[str, float] | None, list[tuple[str, float]]]:
    """A look's test metrics (`metrics`: what the validation step returned on the test split) as
    people read them: (the study metric's (measure, value), or None where it has no test
    counterpart; the others' (measure, value), in the order the step returned them)."""
    head = (measure(metric), metrics[metric]) if metric in metrics else None
    return head, [(measure(k), v) for k, v in metrics.items() if k != metric]


def no_test_counterpart(metric: str, metrics: Iterable[str]) -> str:
    """Why a look shows no test value of the study's metric, and no optimism."""
    returned = ", ".join(metrics) or "nothing"
    return (
        f"the study's metric {metric} has no test counterpart (the test split is scored by the "
        f"validation step, which returned {returned}), so validation and test are not compared"
    )
