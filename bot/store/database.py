"""``Database``: the one engine of a process, with read and locked-write transactions.

Every write goes through ``Database.write(fn, lock=...)``, which runs ``fn(connection)`` in one
transaction and commits it. How concurrent writers are kept apart:

- SQLite: each write transaction starts with ``BEGIN IMMEDIATE`` (see ``bot.store.engine``),
  which takes the database's single write lock before the first read. Writers therefore run
  one at a time, across connections and processes, and a check-then-insert inside ``fn`` is
  atomic. A writer that cannot get the lock waits (busy timeout); if SQLite still reports
  "database is locked"/"busy", the whole transaction is rolled back and ``fn`` runs again
  after a short backoff with jitter, so ``fn`` must not have side effects outside the
  database.
- PostgreSQL: ``lock`` names a critical section; the transaction first takes
  ``pg_advisory_xact_lock`` on a 64-bit hash of that name, which is held until commit or
  rollback and is shared by every process using the server. Statements after it run under
  READ COMMITTED and so see everything committed by the previous holder. Callers pick the
  name (the quota service uses one per guild, so a member's limits and the server's budget
  are checked under the same lock).

Faults are waited out, not turned into failures: a lost connection, a server that is
restarting or refusing connections, a serialization failure or a busy SQLite file makes the
whole transaction roll back and run again, with exponential backoff and jitter, for up to
``retry_seconds`` (``DATABASE_RETRY_SECONDS``, default 60) of real time. Past that the call
raises ``DatabaseUnavailable``; callers leave their job open for the reconciler. Errors that
waiting cannot fix (a read-only database, a bug in the SQL, a broken constraint) are raised at
once. Because a transaction may be run twice, ``fn`` must be idempotent with respect to
anything outside the database; and a COMMIT whose answer was lost may have happened, so a
compare-and-set retried after it can report a lost race: callers treat that as "the job is
not mine any more" and the reconciler picks it up from what the database says.
``run_read(fn)`` is the same for reads. ``write_steps`` (SQLite) runs a short transaction of
prepared statements in one call of the driver's thread (``bot.store.driver``), and
``write_statement`` (PostgreSQL) one statement as its own transaction, in one round trip;
both are retried alike.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from bot.store.driver import Step, StepsResult, run_steps
from bot.store.engine import READONLY_OPTION, advisory_key, create_engine
from bot.store.migrate import migrate_engine, revision_of

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_RETRY_SECONDS = 60.0
_BACKOFF_BASE = 0.02
_BACKOFF_MAX = 2.0
# PostgreSQL SQLSTATEs worth waiting for: connection exceptions (class 08), the server
# shutting down or starting (57P01-57P03), too many connections, serialization failures and
# deadlocks (the transaction is simply run again).
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01")
_TRANSIENT_TEXT = (
    "database is locked", "database is busy", "connection is closed", "connection was closed",
    "connection refused", "terminating connection", "the database system is", "server closed",
    "connection reset", "broken pipe", "cannot connect",
    # asyncpg, on a pooled connection whose previous operation died with the server:
    "another operation is in progress",
)


class DatabaseUnavailable(Exception):
    """The database stayed unreachable or busy for longer than ``retry_seconds``."""


def _is_sqlite_busy(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def is_transient(exc: BaseException) -> bool:
    """Whether waiting and running the transaction again can fix ``exc`` (module docstring)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if isinstance(code, str) and code.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
            return True
        text = f"{type(orig).__name__} {orig}".lower()
        return any(needle in text for needle in _TRANSIENT_TEXT) or "connectiondoesnotexist" in text
    return isinstance(exc, OSError | TimeoutError | ConnectionError)


class Database:
    """One ``AsyncEngine`` plus the transaction helpers every repository uses."""

    def __init__(
        self, engine: AsyncEngine, *, schema: str | None = None, retry_seconds: float = DEFAULT_RETRY_SECONDS
    ) -> None:
        self.engine = engine
        self.schema = schema
        self.retry_seconds = retry_seconds

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (a plain deferred transaction, rolled back at the end)."""
        async with self.engine.connect() as conn:
            await conn.execution_options(**{READONLY_OPTION: True})
            yield conn

    async def write(
        self, fn: Callable[[AsyncConnection], Awaitable[T]], *, lock: str | None = None
    ) -> T:
        """Run ``fn`` in one committed write transaction (see the module docstring)."""

        async def transaction() -> T:
            async with self.engine.begin() as conn:
                if lock is not None and self.dialect == "postgresql":
                    await conn.execute(select(func.pg_advisory_xact_lock(advisory_key(lock))))
                return await fn(conn)

        return await self._retrying(transaction, "write")

    async def write_steps(self, steps: Sequence[Step]) -> StepsResult:
        """SQLite only: ``steps`` as one write transaction in one call of the driver's thread
        (``bot.store.driver``), retried like ``write``. A step whose ``accept`` says no rolls it
        all back (``StepsResult.refused_at``)."""
        if not self.is_sqlite:
            raise RuntimeError("write_steps is for SQLite; use write")

        async def transaction() -> StepsResult:
            # The pool's connection itself: SQLAlchemy's Connection would add nothing here but
            # its own bookkeeping (a third of such a transaction's time).
            raw = await self.engine.raw_connection()
            try:
                return await run_steps(raw.driver_connection, steps)
            finally:
                await greenlet_spawn(raw.close)  # back to the pool (``bot.store.engine``'s reset)

        return await self._retrying(transaction, "write")

    async def write_statement(self, sql: str, args: Sequence[Any]) -> Any:
        """PostgreSQL only: ``sql`` as a transaction of its own (autocommit: no BEGIN or COMMIT
        round trips, and atomic as every single statement is), its first row (None if none);
        retried like ``write``."""
        if self.is_sqlite:
            raise RuntimeError("write_statement is for PostgreSQL; use write or write_steps")

        async def transaction() -> Any:
            async with self.engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                return (await autocommit.exec_driver_sql(sql, tuple(args))).first()

        return await self._retrying(transaction, "write")

    async def run_read(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``fn`` on a read connection, retried like ``write``."""

        async def reading() -> T:
            async with self.read() as conn:
                return await fn(conn)

        return await self._retrying(reading, "read")

    async def _retrying(self, attempt_once: Callable[[], Awaitable[T]], what: str) -> T:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await attempt_once()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                waited = time.monotonic() - started
                if waited >= self.retry_seconds:
                    raise DatabaseUnavailable(
                        f"database {what} failed for {waited:.1f} s ({type(exc).__name__})"
                    ) from exc
                delay = min(_BACKOFF_MAX, _BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)
                delay = min(delay, max(0.0, self.retry_seconds - waited))
                log.log(logging.DEBUG if attempt < 3 else logging.WARNING,
                        "database %s failed (%s, attempt %d); retrying in %.2f s",
                        what, type(exc).__name__, attempt, delay)
                await asyncio.sleep(delay)

    async def current_revision(self) -> str | None:
        """The Alembic revision this database is at (None when it was never migrated)."""
        return await revision_of(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def open_database(
    url: str,
    *,
    schema: str | None = None,
    migrate: bool = True,
    echo: bool = False,
    retry_seconds: float = DEFAULT_RETRY_SECONDS,
) -> Database:
    """Create the engine for ``url`` and (by default) migrate the database to the newest revision.

    Safe to call from several processes at once: migrations run in one transaction under a
    lock (see ``bot.store.migrate``).
    """
    engine = create_engine(url, schema=schema, echo=echo)
    try:
        if migrate:
            await migrate_engine(engine)
    except BaseException:
        await engine.dispose()
        raise
    return Database(engine, schema=schema, retry_seconds=retry_seconds)
