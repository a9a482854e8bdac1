"""The journal: a study's single source of truth, in SQLite.

One file, `journal.sqlite`, in the study directory. WAL mode and one transaction per
state change, so that a crash (even `kill -9`) at any moment leaves every completed
trial on disk. summary.json, trials.csv and the plots are all derived from it.

Faults of the environment are EnvironmentFault (one line, exit 1), never a traceback: a full
disk, a read-only folder, an I/O error, a damaged file. A failed write changes nothing (its
transaction is rolled back), so every trial journaled before it stays, and the same command
resumes the study once the fault is gone. A journal is checked (`PRAGMA quick_check`) before it
is opened for writing: a damaged one is refused and left byte for byte as it is. A file that is
not an SQLite database, or not a tunetorch journal, is bad input instead (exit 2): the user
named the wrong folder.

Formats: a journal of the current layout (FORMAT, 4) is read and written as it is. A journal of
format 3, the layout before the test split's every metric was recorded, is migrated when it is
opened (every Journal is opened for writing; the study's lock is held by then): in one transaction
the evaluations table gains its `metrics` and `value` columns and the format becomes 4; a fault
half-way (a full disk) rolls it all back, leaving format 3 as it was. No record is rewritten (the
looks are evaluate.py's to write): a completed look without `metrics` is one format 3 recorded,
and `evaluations` reads it as format 3 meant it, metrics {"val_loss": loss, "val_accuracy":
accuracy} and value the one of the two that is the study's metric (else None: format 3 kept no
other). Read-only readers (`read_meta`, identity's check) read only meta and trials, which the
two formats share. Older layouts (1, 2) are refused with one line.

Over 350 lines as one concept: the schema, each record's reads and writes, and the mapping of
SQLite's faults, which must sit beside the writes they guard.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunetorch.errors import EnvironmentFault, UsageError
from tunetorch.trial import Trial, TrialState

FORMAT = "tunetorch-journal/4"
# Journals of the layout before this one, migrated as they are opened (the module's docstring).
MIGRATED_FORMATS = ("tunetorch-journal/3",)
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
    accuracy REAL,                 -- the rest is filled in when the look completes: metrics'
    loss REAL,                     --   val_accuracy and val_loss where the validation step returned them
    test_hash TEXT,                -- sha256 of the test split that was evaluated
    completed_time REAL,
    metrics TEXT,                  -- JSON: every metric the validation step returned on the test split
    value REAL                     -- the study's metric on the test split (NULL: it has no test counterpart)
);
"""


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        existed = self.path.exists()
        if existed:
            _check_journal_file(self.path, integrity=True)  # before anything can write to it
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as e:
            raise fault(self.path, e) from None
        self._db = _Connection(conn, self.path)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            if not existed:
                # The tables and the format in one transaction: a new journal is whole or absent.
                with self._tx():
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (FORMAT,))
        except EnvironmentFault:
            conn.close()
            if not existed:  # a half-made journal would be refused as foreign by the next run
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            raise
        if existed:
            try:
                check_format(self.get_meta("format"), self.path)
                self._migrate()
            except (EnvironmentFault, UsageError):
                conn.close()
                raise

    def _migrate(self) -> None:
        """A format-3 journal becomes format 4, whole or not at all (the module's docstring)."""
        if self.get_meta("format") not in MIGRATED_FORMATS:
            return  # a current journal is opened without a write: it may be read-only
        with self._tx():
            if self.get_meta("format") not in MIGRATED_FORMATS:  # read again under the write lock
                return
            self._db.execute("ALTER TABLE evaluations ADD COLUMN metrics TEXT")
            self._db.execute("ALTER TABLE evaluations ADD COLUMN value REAL")
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'format'", (FORMAT,))

    def close(self) -> None:
        self._db.close()

    def _tx(self):
        return _Transaction(self._db)

    # --- meta: the study's configuration, the test split's hash -----------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._db.fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

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
        rows = self._db.fetchall(f"SELECT {', '.join(_TRIAL_COLUMNS)} FROM trials ORDER BY number")
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
        rows = self._db.fetchall("SELECT epoch, metrics FROM epochs WHERE trial = ? ORDER BY epoch", (trial,))
        return [{"epoch": e, **json.loads(m)} for e, m in rows]

    def clear_epochs(self, trial: int) -> None:
        """A re-run trial starts its curves afresh."""
        with self._tx():
            self._db.execute("DELETE FROM epochs WHERE trial = ?", (trial,))

    def all_epochs(self) -> dict[int, list[dict[str, float]]]:
        """Every trial's curve in one read: trial number -> `epochs(trial)` (the study rebuilds
        its scheduler's rung values from this)."""
        out: dict[int, list[dict[str, float]]] = {}
        for t, e, m in self._db.fetchall("SELECT trial, epoch, metrics FROM epochs ORDER BY trial, epoch"):
            out.setdefault(t, []).append({"epoch": e, **json.loads(m)})
        return out

    # --- each trial's weights, bound by their hash ------------------------------------------
    def record_weights(self, trial: int, sha256: str) -> None:
        """The sha256 of trial `trial`'s weights file, recorded as the trial finishes (a re-run's
        replaces it): evaluate scores only weights that match it."""
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO weights VALUES (?, ?)", (trial, sha256))

    def weights_hash(self, trial: int) -> str | None:
        rows = self._db.fetchall("SELECT sha256 FROM weights WHERE trial = ?", (trial,))
        return rows[0][0] if rows else None

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

    def complete_evaluation(
        self, evaluation: int, metrics: Mapping[str, float], value: float | None, test_hash: str
    ) -> None:
        """The look's result: every metric the validation step returned on the test split, and
        `value`, the study's metric among them (None: it has no test counterpart)."""
        with self._tx():
            cur = self._db.execute(
                "UPDATE evaluations SET status = 'completed', metrics = ?, value = ?, accuracy = ?,"
                " loss = ?, test_hash = ?, completed_time = ? WHERE id = ? AND status = 'started'",
                (
                    json.dumps(dict(metrics)),
                    value,
                    metrics.get("val_accuracy"),
                    metrics.get("val_loss"),
                    test_hash,
                    time.time(),
                    evaluation,
                ),
            )
            if cur.rowcount != 1:
                raise ValueError(f"evaluation {evaluation} is not a started evaluation of this journal")

    def evaluations(self) -> list[dict[str, Any]]:
        """Every look, oldest first: trial, weights_hash, forced, status ('started' | 'completed'),
        time, and, None while started: metrics (name -> value, as the validation step returned
        them on the test split), value (the study's metric among them; None where it has none),
        accuracy and loss (metrics' val_accuracy and val_loss, None where absent), test_hash.
        A look format 3 recorded reads as the module's docstring says."""
        keys = (
            "trial",
            "weights_hash",
            "forced",
            "status",
            "time",
            "metrics",
            "value",
            "accuracy",
            "loss",
            "test_hash",
        )
        rows = self._db.fetchall(f"SELECT {', '.join(keys)} FROM evaluations ORDER BY id")
        looks = [dict(zip(keys, r, strict=True)) | {"forced": bool(r[2])} for r in rows]
        metric = self.get_meta("metric") if any(e["metrics"] is None for e in looks) else None
        for e in looks:
            if e["metrics"] is not None:
                e["metrics"] = json.loads(e["metrics"])
            elif e["status"] == "completed":  # format 3's record: accuracy and loss
                e["metrics"] = {"val_loss": e["loss"], "val_accuracy": e["accuracy"]}  # validate()'s order
                e["value"] = e["metrics"].get(metric or "")
        return looks


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
    """BEGIN IMMEDIATE ... COMMIT: one state change, all or nothing. A COMMIT that fails (a
    full disk) is rolled back, so the connection is left as before the change."""

    def __init__(self, db: _Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return False
            except BaseException:
                self._rollback()
                raise
        self._rollback()
        return False

    def _rollback(self) -> None:
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except EnvironmentFault:
                pass  # the failure that brought us here is the one to report


class _Connection:
    """An sqlite3 connection whose faults of the environment are EnvironmentFault (see `fault`);
    every read fetches all its rows at once, so a damaged page cannot surface mid-iteration."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn, self._path = conn, path

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as e:
            raise fault(self._path, e) from None

    def fetchall(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise fault(self._path, e) from None

    def close(self) -> None:
        self._conn.close()


# SQLite's primary result codes that are the environment's doing, not a bug of ours.
_FULL, _DAMAGED = {13}, {11, 26}  # SQLITE_FULL; SQLITE_CORRUPT, SQLITE_NOTADB
_UNWRITABLE = {3, 8, 14}  # SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN
_OTHER = {5, 6, 7, 10, 15}  # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_IOERR, SQLITE_PROTOCOL
_BY_TEXT = (  # Python 3.10 has no sqlite_errorcode: the same codes by their messages
    ("disk is full", 13),
    ("malformed", 11),
    ("not a database", 26),
    ("readonly database", 8),
    ("unable to open", 14),
    ("disk i/o error", 10),
    ("database is locked", 5),
)


def fault(path: Path, e: sqlite3.Error) -> Exception:
    """The exception to raise for sqlite3 error `e` on journal `path`: an EnvironmentFault of one
    line for a full disk, an unwritable folder or file, an I/O error or a damaged file; `e`
    itself otherwise (a bug keeps its traceback)."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is None:
        code = next((c for text, c in _BY_TEXT if text in str(e).lower()), -1)
    code &= 0xFF
    study_dir = Path(path).parent

    def resume(once: str) -> str:
        return f"completed trials are kept in it: once {once}, the same command resumes the study"

    if code in _FULL:
        return EnvironmentFault(
            f"study.dir: {study_dir}: the disk is full, the journal cannot be written ({e}); "
            f"{resume('space is freed')}"
        )
    if code in _DAMAGED:
        return EnvironmentFault(
            f"study.dir: {path} is damaged ({e}); it was left as it is: restore it from a copy, "
            "or start again in a new study.dir"
        )
    if code in _UNWRITABLE:
        return EnvironmentFault(
            f"study.dir: {study_dir}: the journal cannot be opened or written ({e}); "
            f"{resume('the folder and the journal are writable')}"
        )
    if code in _OTHER:
        return EnvironmentFault(
            f"study.dir: {study_dir}: the journal cannot be read or written ({e}); {resume('that is fixed')}"
        )
    return e


def check_format(fmt: str | None, path: Path) -> None:
    """Refuse a journal of an older layout, or a file that is no tunetorch journal: the rule for
    the Journal opening a file and for identity's read before anything is opened. A format the
    Journal migrates as it opens it passes."""
    if fmt in OLDER_FORMATS:
        raise UsageError(
            f"study.dir: {path.parent} was made by an older tunetorch layout ({fmt}); "
            "start it again in a new study.dir"
        )
    if fmt != FORMAT and fmt not in MIGRATED_FORMATS:
        raise UsageError(f"study.dir: {path} is not a tunetorch journal (format {fmt!r}, expected {FORMAT})")


def read_meta(path: str | Path, key: str) -> str | None:
    """One meta value, read without changing the file (no WAL or lock files are created)."""
    _check_journal_file(Path(path))
    try:
        db = _read_only(Path(path))
        try:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error as e:
        raise fault(Path(path), e) from None
    return row[0] if row else None


def holds_trials(path: str | Path) -> bool:
    """Whether the journal at `path` holds any trial, read without changing the file."""
    _check_journal_file(Path(path))
    try:
        db = _read_only(Path(path))
        try:
            return db.execute("SELECT 1 FROM trials LIMIT 1").fetchone() is not None
        finally:
            db.close()
    except sqlite3.Error as e:
        raise fault(Path(path), e) from None


def _read_only(path: Path) -> sqlite3.Connection:
    # A cleanly closed journal has no -wal file: open it immutable, which creates no files
    # beside it. After a crash the -wal holds committed trials, so it must be read too.
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.exists() else "immutable=1"
    return sqlite3.connect(f"file:{path.absolute()}?{mode}", uri=True)


def _check_journal_file(path: Path, integrity: bool = False) -> None:
    """Refuse a file that is not a tunetorch journal (UsageError: the wrong folder was named)
    and, with `integrity`, one whose pages are damaged (EnvironmentFault: the disk's doing);
    reads only."""
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
            problem = db.execute("PRAGMA quick_check(1)").fetchone()[0] if integrity else "ok"
        finally:
            db.close()
    except sqlite3.Error as e:
        raise fault(path, e) from None
    if problem != "ok":
        problem = " ".join(ln.strip() for ln in str(problem).splitlines() if ln.strip() and "***" not in ln)
        raise EnvironmentFault(
            f"study.dir: {path} is damaged (quick_check: {problem}); it was left as it is: restore it "
            "from a copy, or start again in a new study.dir"
        )
    if "meta" not in names or "trials" not in names:
        raise UsageError(
            f"study.dir: {path} is not a tunetorch journal (tables {sorted(names)}); use a new study.dir"
        )
