"""A study's identity: the keys that define it, and whether a study directory holds it.

    journal, resumed = open_journal(study_dir, cfg, plan)   # a new study, or the same one resumed

Resuming with any identity key changed would mix two searches, so it is refused, naming the
first key that differs (a name or `_target_` before its options). Budget, tuner and
study.evaluate may change between runs, e.g. to extend a study.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tunetorch.errors import UsageError

# Keys that define a study: resuming with any of them changed would mix two searches. Budget,
# tuner and study.evaluate may change between runs (e.g. to extend a study).
IDENTITY_KEYS = (
    "strategy",
    "scheduler",
    "space",
    "model",
    "dataset",
    "optimizer",
    "lr_scheduler",
    "loss",
    "trainer",
    "study.seed",
    "study.metric",
    "study.direction",
)


def identity(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    out = {}
    for k in IDENTITY_KEYS:
        v = OmegaConf.select(cfg, k)
        out[k] = OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
    return out


def first_difference(a: Any, b: Any, key: str = "") -> str | None:
    """The first key whose value differs, names before options (strategy.name before its n_candidates)."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b), key=lambda k: (k not in ("name", "_target_"), k))
        for k in keys:
            d = first_difference(a.get(k), b.get(k), f"{key}.{k}" if key else k)
            if d:
                return d
        return None
    return None if a == b else f"{key}: {a!r} -> {b!r}"


def check_resumable(study_dir: Path, cfg: Any) -> bool:
    """True when study_dir holds this same study (to resume), False when it holds none yet.
    Refuses a journal of an older layout or of a different study, naming the first key that
    differs. Reads without writing: a refused resume leaves the files untouched."""
    from tunetorch.journal import check_format, read_meta

    path = study_dir / "journal.sqlite"
    if not path.exists():
        return False
    check_format(read_meta(path, "format"), path)
    stored = read_meta(path, "identity")
    if stored is None:
        raise UsageError(f"study.dir: {path} holds no study identity; use a new study.dir")
    diff = first_difference(json.loads(stored), identity(cfg))
    if diff:
        raise UsageError(
            f"study.dir: {study_dir} holds a different study ({diff}); "
            "use a new study.dir, or the study's own settings to resume it"
        )
    return True


def open_journal(study_dir: Path, cfg: Any, plan: Any = None):
    """The study's journal: a new one, or the existing one if it holds this same study.
    (`plan` is no longer read: the Study writes what it held.)"""
    from omegaconf import OmegaConf

    from tunetorch.journal import Journal

    if check_resumable(study_dir, cfg):
        return Journal(study_dir / "journal.sqlite"), True
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
        journal = Journal(study_dir / "journal.sqlite")
    except (OSError, sqlite3.OperationalError) as e:
        raise UsageError(f"study.dir: {study_dir} is not writable ({e})") from None
    # The command line's identity: the config keys that define the study, and the config itself.
    # The Study writes its own (direction, metric, space, strategy, scheduler) when it opens the journal.
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    journal.set_meta("identity", json.dumps(identity(cfg)))
    journal.set_meta("config", config_yaml)
    (study_dir / "config.yaml").write_text(config_yaml)
    return journal, False
