"""Creating the async engine for a ``DATABASE_URL``.

SQLite (``sqlite+aiosqlite:///path``): the parent folder is created; every connection runs in
WAL mode (readers never block the writer) with a busy timeout, foreign keys on. The sqlite3
driver's own transaction handling is switched off (``isolation_level = None``) and SQLAlchemy's
``begin`` event emits the BEGIN itself: ``BEGIN IMMEDIATE`` for write transactions (the write
lock is taken first, so two writers can never both read a quota and both insert — the second
waits at BEGIN), plain ``BEGIN`` for read-only ones (marked with the ``chatterbox_readonly``
execution option by ``Database.read``). This is the recipe from SQLAlchemy's SQLite docs.

PostgreSQL (``postgresql+asyncpg://…``): an optional ``schema`` becomes the connection's
``search_path`` through asyncpg's ``server_settings`` (tests use a fresh schema per run).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 30_000
READONLY_OPTION = "chatterbox_readonly"
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class DatabaseUrlError(ValueError):
    """The database URL (or schema) is not one this bot can use; the message says why."""


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's ``pg_advisory_xact_lock`` from a lock name."""
    digest = hashlib.blake2b(f"chatterbox:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names, or None for an in-memory database."""
    if _is_memory(url) or (url.database or "").startswith("file:"):
        return None
    return Path(url.database or "")


def create_engine(url: str, *, schema: str | None = None, echo: bool = False) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url`` set up as the module docstring describes."""
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseUrlError(
            "DATABASE_URL is not a database URL (expected sqlite+aiosqlite:///path/to/file.db "
            "or postgresql+asyncpg://user:password@host/dbname)"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise DatabaseUrlError(f"schema {schema!r} is not a plain SQL identifier")
    if backend == "sqlite":
        if driver != "aiosqlite":
            raise DatabaseUrlError("DATABASE_URL for SQLite must start with sqlite+aiosqlite:///")
        if schema is not None:
            raise DatabaseUrlError("a schema can only be given for PostgreSQL")
        return _sqlite_engine(parsed, echo=echo)
    if backend == "postgresql":
        if driver != "asyncpg":
            raise DatabaseUrlError("DATABASE_URL for PostgreSQL must start with postgresql+asyncpg://")
        connect_args: dict[str, Any] = {}
        if schema is not None:
            connect_args["server_settings"] = {"search_path": schema}
        return create_async_engine(parsed, connect_args=connect_args, echo=echo, pool_pre_ping=True)
    raise DatabaseUrlError(
        f"unsupported database {backend!r}: use sqlite+aiosqlite:///… or postgresql+asyncpg://…"
    )


def _sqlite_engine(url: URL, *, echo: bool) -> AsyncEngine:
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    if _is_memory(url):
        extra["poolclass"] = StaticPool
    engine = create_async_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        echo=echo,
        **extra,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get(READONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine
