"""One bot process per SQLite file: an exclusive lock file next to the database.

SQLite serialises writers, but it cannot tell two bots apart: two ``chatterbox-bot run`` on
one file would both reconcile the same jobs (leases guard writes, yet two processes with
one Discord token on one file is never what an owner wants). So a bot working on SQLite
takes ``<database>.lock`` with ``fcntl.flock(LOCK_EX | LOCK_NB)`` at start and holds it for
its whole life; a second one gets ``InstanceLocked`` and exits with one line that says to
use PostgreSQL for several processes.

Why ``flock`` by hand and not a library: it is six lines of the standard library, the lock
dies with the process (a crash or ``kill -9`` never leaves a stale lock to clean up, unlike
lock files that hold a PID), and the bot runs on Linux (Docker) only. The file's content is
the holder's PID, for an owner who wonders who holds it; the lock, not the content, decides.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url


class InstanceLocked(Exception):
    """Another process holds the database's instance lock; ``str()`` is one line for a terminal."""


class InstanceLock:
    """An exclusive, process-lifetime lock on ``path`` (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @classmethod
    def for_database(cls, database_file: Path) -> InstanceLock:
        return cls(database_file.with_name(database_file.name + ".lock"))

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InstanceLocked(
                f"another chatterbox-bot is already running on {self.path.with_suffix('')} "
                "(it holds the instance lock); SQLite serves one bot process: stop the other one, "
                "or use PostgreSQL (DATABASE_URL=postgresql+asyncpg://…) to run several."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def acquire_for_url(url: str) -> InstanceLock | None:
    """Take the instance lock of a SQLite ``DATABASE_URL`` (None for PostgreSQL or memory)."""
    from bot.store.engine import sqlite_file

    try:
        parsed = make_url(url)
    except Exception:
        return None  # create_engine reports the bad URL
    if not parsed.drivername.startswith("sqlite"):
        return None
    path = sqlite_file(parsed)
    if path is None:
        return None
    lock = InstanceLock.for_database(path.resolve())
    lock.acquire()
    return lock
