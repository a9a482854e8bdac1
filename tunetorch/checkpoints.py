"""Trials' weights on disk: written by workers, kept or dropped by the driver, in one place.

    checkpoints/trial_NNNN.pt   a trial's weights of its scored epoch (workers write, atomically)
    best.pt, best.trial         a copy of the best trial's weights, and which trial that is

Only the best trial's own file is kept in checkpoints/ (and those of running trials), so a
crash between copying and recording loses nothing: the next call copies it again, and
evaluate can restore best.pt from it.

As a trial finishes, the driver records its file's sha256 in the journal (`bind_weights`;
workers never write the journal): evaluate scores only weights that match that record, so
weights put into a study directory by anyone else are never credited to a trial.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

BEST = "best.pt"
BEST_MARKER = "best.trial"


def trial_path(folder: Path, number: int) -> Path:
    return Path(folder) / f"trial_{number:04d}.pt"


def save_trial_weights(folder: Path, number: int, state_dict: dict[str, Any]) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one.

    A file that cannot be written (a full disk, a read-only folder) is an EnvironmentFault
    naming it, not a failed trial: the worker hands it to the driver, which stops the study with
    that line (the trial stays unfinished in the journal and runs again on resume). The
    half-written temporary file is removed, so it holds no space."""
    import io

    import torch

    from tunetorch.errors import EnvironmentFault

    path = trial_path(folder, number)
    tmp = path.with_suffix(".pt.tmp")
    buffer = io.BytesIO()  # serialised in memory: torch.save reports a failed write without its errno
    torch.save(state_dict, buffer)
    try:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise EnvironmentFault(
            f"study.dir: {Path(folder).parent}: trial {number}'s weights cannot be written to {path} "
            f"({e.strerror or e})"
        ) from None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bind_weights(study_dir: Path, journal: Any, trial: Any) -> None:
    """Record the sha256 of a finished trial's weights file in the journal (a Journal; `trial`
    a Trial). Only a trial that was scored (complete or pruned) has weights of its own."""
    from tunetorch.trial import TrialState

    path = trial_path(Path(study_dir) / "checkpoints", trial.number)
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and path.is_file():
        journal.record_weights(trial.number, file_sha256(path))


def best_marker(study_dir: Path) -> int | None:
    """The trial best.pt holds, as best.trial says (None when missing or unreadable)."""
    try:
        text = (Path(study_dir) / BEST_MARKER).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def install_best(study_dir: Path, number: int) -> None:
    """best.pt := trial `number`'s checkpoint, then best.trial := number; each step atomic, so
    a crash in between leaves a marker that disagrees, which the next call repairs."""
    study_dir = Path(study_dir)
    best_path, marker = study_dir / BEST, study_dir / BEST_MARKER
    tmp = best_path.with_suffix(".pt.tmp")
    shutil.copyfile(trial_path(study_dir / "checkpoints", number), tmp)
    os.replace(tmp, best_path)
    marker_tmp = marker.with_suffix(".trial.tmp")
    marker_tmp.write_text(f"{number}\n")
    os.replace(marker_tmp, marker)


def keep_best(study_dir: Path, best_number: int | None, running: set[int]) -> None:
    """best.pt := the best trial's weights; drop every other finished trial's file."""
    if best_number is None:
        return
    folder = Path(study_dir) / "checkpoints"
    current = (Path(study_dir) / BEST).exists() and best_marker(study_dir) == best_number
    if trial_path(folder, best_number).exists() and not current:
        install_best(study_dir, best_number)
    for f in folder.glob("trial_*.pt"):
        n = int(f.stem.split("_")[1])
        if n != best_number and n not in running:
            f.unlink(missing_ok=True)
