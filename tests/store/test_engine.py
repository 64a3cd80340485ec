"""The engine's shortcuts keep the transaction rules: ``bot.store.engine``.

SQLite: ``BEGIN IMMEDIATE`` goes straight to the driver and the pool rolls a connection back
on return only when a transaction is still open. PostgreSQL: connections are not pinged
before use, so a connection the server cut must be replaced by the write's own retry.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import Database
from tests.store.dbkit import DbTarget, asyncpg_dsn, sqlite_target


async def _count(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(text("SELECT count(*) FROM probe"))).scalar_one()


async def _make_probe(db: Database) -> None:
    await db.write(lambda conn: conn.execute(text("CREATE TABLE probe (n INTEGER)")))


async def _insert(db: Database, n: int) -> None:
    await db.write(lambda conn: conn.execute(text("INSERT INTO probe (n) VALUES (:n)"), {"n": n}))


async def test_a_sqlite_write_leaves_no_transaction_or_lock_behind(tmp_path: Path) -> None:
    target = sqlite_target(tmp_path)
    db = await target.open()
    try:
        await _make_probe(db)
        await _insert(db, 1)

        async def fails(conn: AsyncConnection) -> None:
            await conn.execute(text("INSERT INTO probe (n) VALUES (2)"))
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await db.write(fails)
        # Another connection (as another process would) gets the write lock at once: neither
        # the committed nor the rolled-back transaction is still open on a pooled connection.
        other = sqlite3.connect(str(tmp_path / "data" / "bot.db"), timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert await _count(db) == 1
    finally:
        await db.close()


async def test_a_write_cancelled_while_begin_waits_leaves_no_transaction_behind(tmp_path: Path) -> None:
    """A task cancelled while its BEGIN IMMEDIATE waits for the lock on the driver's thread:
    the BEGIN still happens there after the cancel, and the pooled connection must not keep
    that transaction (it would hold the write lock for good). Seen at shutdown, where
    cancelled tasks are the rule."""
    target = sqlite_target(tmp_path)
    db = await target.open()
    try:
        await _make_probe(db)
        other = sqlite3.connect(str(tmp_path / "data" / "bot.db"), isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another writer holds the lock

            def release_at_check_in(*_: Any) -> None:
                # The other writer finishes just as the cancelled write's connection comes back
                # to the pool: its BEGIN is still waiting on the driver's thread then.
                if other.in_transaction:
                    other.execute("ROLLBACK")

            event.listen(db.engine.sync_engine.pool, "reset", release_at_check_in, insert=True)
            waiting = asyncio.create_task(_insert(db, 1))
            for _ in range(50):
                await asyncio.sleep(0)  # the BEGIN is on the driver's thread, waiting
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        finally:
            other.close()
        await _insert(db, 2)  # the pooled connection is usable: no transaction was left open
        assert await _count(db) == 1
        free = sqlite3.connect(str(tmp_path / "data" / "bot.db"), timeout=0, isolation_level=None)
        try:
            free.execute("BEGIN IMMEDIATE")  # and nobody holds the lock
            free.execute("ROLLBACK")
        finally:
            free.close()
    finally:
        await db.close()

async def test_a_connection_returned_inside_a_transaction_is_rolled_back(tmp_path: Path) -> None:
    """A transaction SQLAlchemy does not know of (begun on the driver) is still ended when
    the connection goes back to the pool: its write and its lock are gone."""
    target = sqlite_target(tmp_path)
    db = await target.open()
    try:
        await _make_probe(db)
        async with db.engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            await driver.execute_fetchall("BEGIN IMMEDIATE")
            await driver.execute_fetchall("INSERT INTO probe (n) VALUES (7)")
            assert driver.in_transaction
        other = sqlite3.connect(str(tmp_path / "data" / "bot.db"), timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # would raise "database is locked" if still held
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert await _count(db) == 0
        await _insert(db, 1)  # the pooled connection is usable again
        assert await _count(db) == 1
    finally:
        await db.close()


async def test_a_failing_sqlite_begin_is_raised_as_sqlalchemys_error(tmp_path: Path) -> None:
    """``BEGIN IMMEDIATE`` sent to the driver fails like any statement: as SQLAlchemy's
    ``OperationalError`` (which ``Database`` sorts into transient and not)."""
    db = await sqlite_target(tmp_path).open()
    try:
        async with db.engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            await driver.execute_fetchall("BEGIN")  # behind SQLAlchemy's back
            with pytest.raises(OperationalError, match="within a transaction"):
                await conn.begin()
            await driver.execute_fetchall("ROLLBACK")
    finally:
        await db.close()


@pytest.mark.postgres
async def test_a_postgresql_connection_cut_by_the_server_is_replaced_and_the_write_runs_once(
    postgres_target: DbTarget,
) -> None:
    db = await postgres_target.open()
    try:
        await _make_probe(db)
        await _insert(db, 1)  # leaves a connection in the pool
        async with db.read() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        admin = await asyncpg.connect(asyncpg_dsn(postgres_target.url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()

        await _insert(db, 2)  # the pooled connection is dead: the write's retry takes a new one

        async with db.read() as conn:
            rows = (await conn.execute(text("SELECT n FROM probe ORDER BY n"))).scalars().all()
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
        assert rows == [1, 2]
    finally:
        await db.close()
