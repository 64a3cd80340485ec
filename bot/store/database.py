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
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.engine import READONLY_OPTION, advisory_key, create_engine
from bot.store.migrate import migrate_engine, revision_of

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_WRITE_ATTEMPTS = 8
_BACKOFF_BASE = 0.02
_BACKOFF_MAX = 1.0


def _is_sqlite_busy(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


class Database:
    """One ``AsyncEngine`` plus the transaction helpers every repository uses."""

    def __init__(self, engine: AsyncEngine, *, schema: str | None = None) -> None:
        self.engine = engine
        self.schema = schema

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
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.engine.begin() as conn:
                    if lock is not None and self.dialect == "postgresql":
                        await conn.execute(select(func.pg_advisory_xact_lock(advisory_key(lock))))
                    return await fn(conn)
            except OperationalError as exc:
                if not (self.is_sqlite and _is_sqlite_busy(exc)) or attempt >= SQLITE_WRITE_ATTEMPTS:
                    raise
                delay = min(_BACKOFF_MAX, _BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)
                log.debug("SQLite busy (attempt %d); retrying in %.3f s", attempt, delay)
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
    url: str, *, schema: str | None = None, migrate: bool = True, echo: bool = False
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
    return Database(engine, schema=schema)
