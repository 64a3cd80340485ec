"""Alembic migrations, run programmatically on the async engine.

The migration scripts live in this package (``bot/store/migrations``) next to
``alembic.ini``, so an installed bot can migrate itself. At start ``open_database`` calls
``migrate_engine``: Alembic's synchronous API runs inside ``AsyncConnection.run_sync`` (on the
engine's own connection, so the event loop is never blocked by a second, synchronous engine),
in ONE transaction:

- SQLite: that transaction begins with ``BEGIN IMMEDIATE``, so a second process starting at
  the same moment waits and then finds the database already at head.
- PostgreSQL: the transaction first takes an advisory lock for the same reason; DDL is
  transactional there, so a failed migration leaves the database at its previous revision.

Two guards make concurrent starts boring. Alembic loads the migration scripts as Python
modules, which is not safe from two threads at once (each aiosqlite connection has its own
thread), so one process runs Alembic under ``_ALEMBIC_LOCK``. ``run_sync`` runs Alembic in a
greenlet on the event loop's own thread, so two migrations started together on one loop would
deadlock on that thread lock (the second blocks the loop the first needs to finish): on each
loop they first queue on an ``asyncio.Lock`` (``_loop_lock``), and the thread lock only ever
waits for another thread. And on a brand-new SQLite file a
second starter can race the first one's switch to WAL; if its migration then fails, it is run
again, and the retry finds the database at head and does nothing.

Starting against a database that is already current does not import Alembic at all (it is
the slowest import of a short-lived ``chatterbox-bot speak``): ``migrate_engine`` first reads
``alembic_version`` with one plain query and compares it with the newest revision named by the
shipped scripts (``shipped_head``, read from their ``revision``/``down_revision`` lines; a test
checks that it agrees with Alembic's own answer). Only a database behind that runs Alembic.

``upgrade(url)`` is what ``chatterbox-bot db upgrade`` runs; the command-line ``alembic -c
bot/store/alembic.ini upgrade head`` also works (``migrations/env.py`` then builds its own
engine from ``DATABASE_URL``).
"""

from __future__ import annotations

import asyncio
import re
import threading
import weakref
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.engine import READONLY_OPTION, advisory_key, create_engine

if TYPE_CHECKING:
    from alembic.config import Config

PACKAGE_DIR = Path(__file__).resolve().parent
MIGRATION_LOCK = "store:migrations"
SQLITE_MIGRATION_ATTEMPTS = 3
# Alembic's module loading is process-global state; see the module docstring.
_ALEMBIC_LOCK = threading.Lock()
_LOOP_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _loop_lock() -> asyncio.Lock:
    """This event loop's lock around Alembic runs (see the module docstring)."""
    loop = asyncio.get_running_loop()
    lock = _LOOP_LOCKS.get(loop)
    if lock is None:
        lock = _LOOP_LOCKS[loop] = asyncio.Lock()
    return lock


_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*=\s*(None|['\"]([^'\"]+)['\"])", re.MULTILINE)


@cache
def shipped_head() -> str | None:
    """The newest revision of the shipped scripts, without importing Alembic (None if unsure)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (PACKAGE_DIR / "migrations" / "versions").glob("*.py"):
        found = dict((m.group(1), m.group(3)) for m in _REVISION_LINE.finditer(script.read_text()))
        if found.get("revision"):
            revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return next(iter(heads)) if len(heads) == 1 else None


def alembic_config() -> Config:
    """The Alembic configuration shipped in this package."""
    from alembic.config import Config

    config = Config(str(PACKAGE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(PACKAGE_DIR / "migrations"))
    return config


def head_revision() -> str:
    """The newest revision the shipped migrations know."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def _upgrade_sync(connection: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    with _ALEMBIC_LOCK:
        command.upgrade(config, revision)


def _current_sync(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def lock_for_migrations(conn: AsyncConnection) -> None:
    """On PostgreSQL, serialize migrations between processes (SQLite: BEGIN IMMEDIATE does it)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(advisory_key(MIGRATION_LOCK))))


async def _stored_revision(engine: AsyncEngine) -> str | None:
    """``alembic_version`` read with one plain query (None: no such table or no row)."""
    try:
        async with engine.connect() as conn:
            await conn.execution_options(**{READONLY_OPTION: True})
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except (OperationalError, ProgrammingError, DBAPIError):
        return None


async def migrate_engine(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Upgrade the database behind ``engine`` to ``revision``; returns the revision reached."""
    if revision == "head":
        head = shipped_head()
        if head is not None and await _stored_revision(engine) == head:
            return head  # already current: Alembic is not even imported
    attempts = SQLITE_MIGRATION_ATTEMPTS if engine.dialect.name == "sqlite" else 1
    for attempt in range(1, attempts + 1):
        try:
            async with _loop_lock(), engine.begin() as conn:
                await lock_for_migrations(conn)
                await conn.run_sync(_upgrade_sync, revision)
                return await conn.run_sync(_current_sync)
        except OperationalError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


async def revision_of(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        await conn.execution_options(**{READONLY_OPTION: True})
        return await conn.run_sync(_current_sync)


async def upgrade(url: str, *, schema: str | None = None, revision: str = "head") -> str | None:
    """Migrate the database at ``url`` to ``revision`` (default: newest); returns the revision."""
    engine = create_engine(url, schema=schema)
    try:
        return await migrate_engine(engine, revision)
    finally:
        await engine.dispose()


async def current_revision(url: str, *, schema: str | None = None) -> str | None:
    """The revision the database at ``url`` is at (None for an empty database)."""
    engine = create_engine(url, schema=schema)
    try:
        return await revision_of(engine)
    finally:
        await engine.dispose()
