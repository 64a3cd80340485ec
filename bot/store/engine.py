"""Creating the async engine for a ``DATABASE_URL``.

SQLite (``sqlite+aiosqlite:///path``): the parent folder is created; every connection runs in
WAL mode (readers never block the writer) with a busy timeout, foreign keys on. The sqlite3
driver's own transaction handling is switched off (``isolation_level = None``) and SQLAlchemy's
``begin`` event emits the BEGIN itself: ``BEGIN IMMEDIATE`` for write transactions (the write
lock is taken first, so two writers can never both read a quota and both insert — the second
waits at BEGIN), plain ``BEGIN`` for read-only ones (marked with the ``chatterbox_readonly``
execution option by ``Database.read``). This is the recipe from SQLAlchemy's SQLite docs,
with the BEGIN sent straight to the driver (``run_async``, one call of its thread) and the
pool's rollback on return done only when a transaction is still open, or when a BEGIN was
interrupted while it waited for the lock (it still runs on the driver's thread, so the
rollback is queued behind it) (SQLAlchemy's "custom reset-on-return" recipe): a short write
transaction costs three calls of the driver's thread plus its statements, not six.

PostgreSQL (``postgresql+asyncpg://…``): an optional ``schema`` becomes the connection's
``search_path`` through asyncpg's ``server_settings`` (tests use a fresh schema per run).
Connections are not pinged before use (``create_engine`` says why).

Both engines hide statement parameters in their errors (``hide_parameters``): a failed insert
of a job would otherwise put the member's text and the job's webhook secret into the log.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolResetState, StaticPool

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
        # No ``pool_pre_ping``: it costs a round trip per transaction (a third of a short write's
        # time), and ``Database`` already waits out what it guards against: a pooled
        # connection that died with the server fails at its first statement, before anything
        # was written, SQLAlchemy invalidates it (and every connection older than it), and the
        # transaction runs again on a fresh one.
        return create_async_engine(parsed, connect_args=connect_args, echo=echo, hide_parameters=True)
    raise DatabaseUrlError(
        f"unsupported database {backend!r}: use sqlite+aiosqlite:///… or postgresql+asyncpg://…"
    )


_BEGIN_INTERRUPTED = "chatterbox_begin_interrupted"  # a connection record's info key


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
        hide_parameters=True,
        pool_reset_on_return=None,  # ``_on_reset`` below does it, only when needed
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
        sql = "BEGIN" if conn.get_execution_options().get(READONLY_OPTION, False) else "BEGIN IMMEDIATE"
        # One call of the driver's thread (``exec_driver_sql`` takes three: cursor, execute,
        # close). Errors come out as SQLAlchemy's, as they would from ``exec_driver_sql``.
        try:
            conn.connection.dbapi_connection.run_async(lambda driver: driver.execute_fetchall(sql))
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, (), exc, sqlite3.Error) from exc
        except BaseException:
            # Interrupted (a cancelled task) while the BEGIN waited for the lock on the
            # driver's thread: it still runs there, later, and no transaction of SQLAlchemy's
            # will end it. ``_on_reset`` must roll back after it, not judge from now.
            conn.connection.info[_BEGIN_INTERRUPTED] = True
            raise

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
        # SQLAlchemy's own reset-on-return rolls back every connection coming back to the pool,
        # also right after its transaction committed: a call of the driver's thread for
        # nothing. The recipe of SQLAlchemy's pooling docs ("custom reset-on-return") with
        # the one check that matters here: the driver (no implicit transactions, see
        # ``_on_connect``) says whether a transaction is still open.
        # An interrupted BEGIN (``_on_begin``) may still be waiting on that thread, so then
        # the rollback is queued behind it instead.
        interrupted = record.info.pop(_BEGIN_INTERRUPTED, False)
        open_transaction = interrupted or dbapi_connection.driver_connection.in_transaction
        if state.asyncio_safe and not state.terminate_only and open_transaction:
            dbapi_connection.rollback()

    return engine
