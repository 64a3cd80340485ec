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
thread), so one process runs Alembic under ``_ALEMBIC_LOCK``. And on a brand-new SQLite file a
second starter can race the first one's switch to WAL; if its migration then fails, it is run
again, and the retry finds the database at head and does nothing.

``upgrade(url)`` is what ``chatterbox-bot db upgrade`` runs; the command-line ``alembic -c
bot/store/alembic.ini upgrade head`` also works (``migrations/env.py`` then builds its own
engine from ``DATABASE_URL``).
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.engine import READONLY_OPTION, advisory_key, create_engine

PACKAGE_DIR = Path(__file__).resolve().parent
MIGRATION_LOCK = "store:migrations"
SQLITE_MIGRATION_ATTEMPTS = 3
# Alembic's module loading is process-global state; see the module docstring.
_ALEMBIC_LOCK = threading.Lock()


def alembic_config() -> Config:
    """The Alembic configuration shipped in this package."""
    config = Config(str(PACKAGE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(PACKAGE_DIR / "migrations"))
    return config


def head_revision() -> str:
    """The newest revision the shipped migrations know."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def _upgrade_sync(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    with _ALEMBIC_LOCK:
        command.upgrade(config, revision)


def _current_sync(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def lock_for_migrations(conn: AsyncConnection) -> None:
    """On PostgreSQL, serialize migrations between processes (SQLite: BEGIN IMMEDIATE does it)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(advisory_key(MIGRATION_LOCK))))


async def migrate_engine(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Upgrade the database behind ``engine`` to ``revision``; returns the revision reached."""
    attempts = SQLITE_MIGRATION_ATTEMPTS if engine.dialect.name == "sqlite" else 1
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as conn:
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
