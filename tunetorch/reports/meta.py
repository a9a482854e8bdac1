"""What the journal says about the study as a whole: strategy, metric, direction, search space.

The reports read these once (`study_meta`) instead of each asking the journal for keys and
defaults of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tunetorch.errors import UsageError
from tunetorch.journal import Journal
from tunetorch.space import SearchSpace


@dataclass(frozen=True)
class StudyMeta:
    strategy: str
    metric: str  # the study's score, e.g. "val_accuracy"
    direction: str  # "maximize" | "minimize"
    space: SearchSpace | None  # None when the journal does not hold it (the plots then infer axes)


def study_meta(journal: Journal, strategy: str | None = None) -> StudyMeta:
    return StudyMeta(
        strategy=journal.get_meta("strategy") or strategy or "?",
        metric=journal.get_meta("metric") or "val_accuracy",
        direction=journal.get_meta("direction") or "maximize",
        space=study_space(journal),
    )


def study_space(journal: Journal) -> SearchSpace | None:
    """The flat search space the Study wrote into meta "space" (config path -> dimension); None
    when it does not parse (a journal from elsewhere: the plots then infer their axes)."""
    raw = journal.get_meta("space")
    if not raw:
        return None
    try:
        return SearchSpace.from_dict(json.loads(raw))
    except (UsageError, ValueError):
        return None
