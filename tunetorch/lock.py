"""One study, one writer: an exclusive OS lock on the study directory for the whole run.

    with StudyLock(study_dir):          # tune, race and evaluate, for as long as they write
        ...

The lock is `fcntl.flock(LOCK_EX | LOCK_NB)` on `study.lock` in the study directory. The
kernel drops a flock when the last descriptor of its open file goes away, so a process
killed with SIGKILL never leaves a stale lock: the next run simply takes it. The holder's
pid is written into the file, so a refused run can name it.

A study that does not exist yet: the lock file must not turn a refused or failed run into
a half-written study. So the lock file is removed again on release (while still locked, so
that no other process can be holding it), and with `create=True` the study directory is
made here and removed again on release if the run left nothing in it. The caller takes the
lock right after the directory exists and before it writes anything else.

Only processes are excluded, not threads or two locks of one process on two descriptors
(flock conflicts between open files, so those are excluded too). Workers are spawned,
never forked, so they do not inherit the descriptor and cannot keep the lock alive.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from tunetorch.errors import EnvironmentFault, UsageError

LOCK_FILE = "study.lock"


class StudyLock:
    """Exclusive lock on a study directory. Raises UsageError (exit 2) naming the holder's pid
    when another process holds it; EnvironmentFault (exit 1) when the lock file cannot be made."""

    def __init__(self, study_dir: str | Path, create: bool = False):
        self.dir = Path(study_dir)
        self.path = self.dir / LOCK_FILE
        self.create = create
        self._fd: int | None = None
        self._made: list[Path] = []  # directories made here, removed again if left empty

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    def acquire(self) -> None:
        import fcntl

        if self._fd is not None:
            return
        self._prepare_dir()
        # A holder that releases removes the file; whoever opened the old file before that
        # must try again on the new one, so the loop ends once the locked file is the one
        # at the path.
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                self._prepare_dir()  # a releasing holder removed an empty directory it had made
                continue
            except OSError as e:
                self._undo_dir()
                raise EnvironmentFault(
                    f"study.dir: {self.dir} is not writable: cannot create its lock file ({e.strerror})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise EnvironmentFault(f"study.dir: {self.dir}: cannot lock {self.path} ({e})") from None
                self._undo_dir()
                raise UsageError(
                    f"study.dir: {self.dir} is in use by pid {self._holder()} (a running tune, race or "
                    "evaluate); wait for it or use another study.dir"
                ) from None
            if _same_file(fd, self.path):
                os.ftruncate(fd, 0)
                try:  # who holds it, for the message a second process prints; the lock is the flock
                    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    # a full disk: the lock holds all the same; the study's own writes say so
                self._fd = fd
                return
            os.close(fd)  # locked a file that its holder had just removed
        raise EnvironmentFault(f"study.dir: {self.dir}: could not settle on a lock file ({self.path})")

    def release(self) -> None:
        import fcntl

        if self._fd is None:
            return
        # Unlink while still holding the lock: a process that opened this file meanwhile
        # will see that it is no longer the one at the path and try again.
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # an unwritable directory keeps the (unlocked, harmless) file
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        self._undo_dir()

    def _prepare_dir(self) -> None:
        # Other processes may make and remove the directory meanwhile (a holder that made it
        # removes it on release when empty), so make it and look again until it holds still.
        for _ in range(100):
            if self.create and not self.dir.exists():
                missing = [p for p in (self.dir, *self.dir.parents) if not p.exists()]
                try:
                    self.dir.mkdir(parents=True, exist_ok=True)
                except FileExistsError:
                    pass  # a file by that name; refused below
                except OSError as e:
                    raise EnvironmentFault(
                        f"study.dir: {self.dir} cannot be created ({e.strerror})"
                    ) from None
                self._made = [*missing, *(p for p in self._made if p not in missing)]
            if self.dir.is_dir():
                return
            if self.dir.exists() or self.dir.is_symlink():
                raise UsageError(f"study.dir: {self.dir} exists and is not a directory; give a directory")
            if not self.create:
                raise UsageError(f"study.dir: {self.dir} does not exist")
        raise EnvironmentFault(f"study.dir: {self.dir} keeps disappearing while it is being locked")

    def _undo_dir(self) -> None:
        for d in self._made:  # deepest first
            try:
                d.rmdir()  # only when empty: a study that wrote anything is kept
            except OSError:
                break
        self._made = []

    def _holder(self) -> str:
        # The holder writes its pid right after it locks; give it a moment.
        for _ in range(50):
            try:
                text = self.path.read_text().strip()
            except OSError:
                text = ""
            if text.isdigit():
                return text
            time.sleep(0.01)
        return "unknown"


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
