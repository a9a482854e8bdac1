"""The journal: a study's single source of truth, in SQLite.

One file, `journal.sqlite`, in the study directory. WAL mode and one transaction per
state change, so that a crash (even `kill -9`) at any moment leaves every completed
trial on disk. summary.json, trials.csv and the plots are all derived from it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from tunetorch.errors import UsageError
from tunetorch.trial import Trial, TrialState

FORMAT = "tunetorch-journal/3"
# Journals of an older layout are refused with one line instead of being misread: format 1 (flat
# parameter names, a fixed epoch table), format 2 (no sha256 of each trial's weights, so nothing
# binds best.pt to the trial it claims to be; and a study's identity written by the command line
# only).
OLDER_FORMATS = ("tunetorch-journal/1", "tunetorch-journal/2")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    params TEXT NOT NULL,          -- JSON: config path -> value
    state TEXT NOT NULL,
    score REAL,
    device TEXT,
    device_name TEXT,
    device_seconds REAL,
    wall_seconds REAL,
    node TEXT,
    epochs INTEGER,
    best_epoch INTEGER,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    info TEXT NOT NULL DEFAULT '{}', -- JSON
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS epochs (
    trial INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    metrics TEXT NOT NULL,         -- JSON: train_loss, val_loss, val_accuracy, seconds, the user's metrics
    PRIMARY KEY (trial, epoch)
);
CREATE TABLE IF NOT EXISTS weights (
    trial INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL           -- of checkpoints/trial_NNNN.pt as its worker wrote it
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trial INTEGER NOT NULL,
    weights_hash TEXT NOT NULL,    -- sha256 of the weights file that is scored
    forced INTEGER NOT NULL,       -- 1: an earlier look (started or completed) existed
    status TEXT NOT NULL,          -- started (written before the test split is read) | completed
    time REAL NOT NULL,            -- when the look started
    accuracy REAL,                 -- the rest is filled in when the look completes
    loss REAL,
    test_hash TEXT,                -- sha256 of the test split that was evaluated
    completed_time REAL
);
"""


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        existed = self.path.exists()
        if existed:
            _check_journal_file(self.path)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        if not existed:
            self._db.executescript(_SCHEMA)
            self.set_meta("format", FORMAT)
        else:
            fmt = self.get_meta("format")
            if fmt in OLDER_FORMATS:
                raise UsageError(
                    f"study.dir: {self.path.parent} was made by an older tunetorch layout ({fmt}); "
                    "start it again in a new study.dir"
                )
            if fmt != FORMAT:
                raise UsageError(
                    f"study.dir: {self.path} is not a tunetorch journal (format {fmt!r}, expected {FORMAT})"
                )

    def close(self) -> None:
        self._db.close()

    def _tx(self):
        return _Transaction(self._db)

    # --- meta: the study's configuration, the test split's hash -----------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- trials --------------------------------------------------------------------------
    def put_trial(self, trial: Trial) -> None:
        row = {f: getattr(trial, f) for f in _TRIAL_COLUMNS}
        row["params"] = json.dumps(trial.params)
        row["state"] = trial.state.value
        row["info"] = json.dumps(trial.info, default=float)
        columns = ", ".join((*_TRIAL_COLUMNS, "updated"))
        marks = ", ".join("?" * (len(_TRIAL_COLUMNS) + 1))
        with self._tx():
            self._db.execute(
                f"INSERT OR REPLACE INTO trials ({columns}) VALUES ({marks})",
                (*row.values(), time.time()),
            )

    def trials(self) -> list[Trial]:
        rows = self._db.execute(f"SELECT {', '.join(_TRIAL_COLUMNS)} FROM trials ORDER BY number").fetchall()
        out = []
        for r in rows:
            row = dict(zip(_TRIAL_COLUMNS, r, strict=True))
            row["params"] = json.loads(row["params"])
            row["state"] = TrialState(row["state"])
            row["info"] = json.loads(row["info"])
            out.append(Trial(**row))
        return out

    # --- per-epoch curves --------------------------------------------------------------
    def add_epoch(self, trial: int, epoch: int, metrics: dict[str, float]) -> None:
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO epochs VALUES (?, ?, ?)",
                (trial, epoch, json.dumps({k: v for k, v in metrics.items() if k != "epoch"})),
            )

    def epochs(self, trial: int) -> list[dict[str, float]]:
        """One dict per recorded epoch of `trial`, in order: {"epoch": e, metric: value, ...}."""
        rows = self._db.execute(
            "SELECT epoch, metrics FROM epochs WHERE trial = ? ORDER BY epoch", (trial,)
        ).fetchall()
        return [{"epoch": e, **json.loads(m)} for e, m in rows]

    def clear_epochs(self, trial: int) -> None:
        """A re-run trial starts its curves afresh."""
        with self._tx():
            self._db.execute("DELETE FROM epochs WHERE trial = ?", (trial,))

    def all_epochs(self) -> dict[int, list[dict[str, float]]]:
        """Every trial's curve in one read: trial number -> `epochs(trial)` (the study rebuilds
        its scheduler's rung values from this)."""
        out: dict[int, list[dict[str, float]]] = {}
        for t, e, m in self._db.execute("SELECT trial, epoch, metrics FROM epochs ORDER BY trial, epoch"):
            out.setdefault(t, []).append({"epoch": e, **json.loads(m)})
        return out

    # --- each trial's weights, bound by their hash ------------------------------------------
    def record_weights(self, trial: int, sha256: str) -> None:
        """The sha256 of trial `trial`'s weights file, recorded as the trial finishes (a re-run's
        replaces it): evaluate scores only weights that match it."""
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO weights VALUES (?, ?)", (trial, sha256))

    def weights_hash(self, trial: int) -> str | None:
        row = self._db.execute("SELECT sha256 FROM weights WHERE trial = ?", (trial,)).fetchone()
        return row[0] if row else None

    # --- the sealed test split -----------------------------------------------------------
    # A look at the test split is two rows' worth of state: "started" is committed before the
    # split is read, "completed" after it was scored. A look that never completed (killed,
    # crashed) still counts: its result may have been seen.
    def start_evaluation(self, trial: int, weights_hash: str, forced: bool) -> int:
        """Record that the test split is about to be read; returns the evaluation's id."""
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO evaluations (trial, weights_hash, forced, status, time)"
                " VALUES (?, ?, ?, 'started', ?)",
                (trial, weights_hash, int(forced), time.time()),
            )
        return int(cur.lastrowid)

    def complete_evaluation(self, evaluation: int, accuracy: float, loss: float, test_hash: str) -> None:
        with self._tx():
            cur = self._db.execute(
                "UPDATE evaluations SET status = 'completed', accuracy = ?, loss = ?, test_hash = ?,"
                " completed_time = ? WHERE id = ? AND status = 'started'",
                (accuracy, loss, test_hash, time.time(), evaluation),
            )
            if cur.rowcount != 1:
                raise ValueError(f"evaluation {evaluation} is not a started evaluation of this journal")

    def evaluations(self) -> list[dict[str, Any]]:
        """Every look, oldest first: trial, weights_hash, forced, status ('started' | 'completed'),
        time, and accuracy, loss, test_hash (None while started)."""
        keys = ("trial", "weights_hash", "forced", "status", "time", "accuracy", "loss", "test_hash")
        rows = self._db.execute(f"SELECT {', '.join(keys)} FROM evaluations ORDER BY id").fetchall()
        return [dict(zip(keys, r, strict=True)) | {"forced": bool(r[2])} for r in rows]


_TRIAL_COLUMNS = (
    "number",
    "params",
    "state",
    "score",
    "device",
    "device_name",
    "device_seconds",
    "wall_seconds",
    "node",
    "epochs",
    "best_epoch",
    "error",
    "attempts",
    "info",
)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT: one state change, all or nothing."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def read_meta(path: str | Path, key: str) -> str | None:
    """One meta value, read without changing the file (no WAL or lock files are created)."""
    _check_journal_file(Path(path))
    db = _read_only(Path(path))
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


def _read_only(path: Path) -> sqlite3.Connection:
    # A cleanly closed journal has no -wal file: open it immutable, which creates no files
    # beside it. After a crash the -wal holds committed trials, so it must be read too.
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.exists() else "immutable=1"
    return sqlite3.connect(f"file:{path.absolute()}?{mode}", uri=True)


def _check_journal_file(path: Path) -> None:
    with open(path, "rb") as f:
        header = f.read(16)
    if header and header != b"SQLite format 3\x00":
        raise UsageError(
            f"study.dir: {path} is not an SQLite journal (corrupt or foreign file); use a new study.dir"
        )
    try:
        db = _read_only(path)
        try:
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise UsageError(f"study.dir: {path} is unreadable ({e}); use a new study.dir") from None
    if "meta" not in names or "trials" not in names:
        raise UsageError(
            f"study.dir: {path} is not a tunetorch journal (tables {sorted(names)}); use a new study.dir"
        )
