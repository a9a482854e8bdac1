"""What the journal says about the study as a whole: strategy, metric, direction, search space.

The reports read these once (`study_meta`) instead of each asking the journal for keys and
defaults of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    """The flat search space from meta "space" (config path -> dimension), else from the config's
    `space:` section (older studies); None when neither parses."""
    raw = journal.get_meta("space")
    if raw:
        try:
            return SearchSpace.from_dict(json.loads(raw))
        except (UsageError, ValueError):
            return None
    config = journal.get_meta("config")
    if not config:
        return None
    import yaml  # hydra's own dependency

    try:
        spec = (yaml.safe_load(config) or {}).get("space")
        return SearchSpace.from_dict(flatten_space(spec)) if isinstance(spec, Mapping) else None
    except (UsageError, ValueError, AttributeError, yaml.YAMLError):
        return None


def flatten_space(spec: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML space (leaves carry a `type`) -> flat {config path: dimension}."""
    out: dict[str, Any] = {}
    for key, entry in spec.items():
        path = f"{prefix}{key}"
        if isinstance(entry, Mapping) and "type" not in entry:
            out.update(flatten_space(entry, f"{path}."))
        else:
            out[path] = entry
    return out
