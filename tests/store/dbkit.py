"""Database fixtures shared by tests/store and tests/quotas.

``db_target`` is parametrized over a SQLite file in ``tmp_path`` and PostgreSQL. Each
PostgreSQL test gets its own schema (named after the run's schema from tests/conftest.py)
that is dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from bot.store import Database, open_database


@dataclass(frozen=True)
class DbTarget:
    kind: str  # "sqlite" or "postgres"
    url: str
    schema: str | None = None

    async def open(self, *, migrate: bool = True) -> Database:
        return await open_database(self.url, schema=self.schema, migrate=migrate)


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def pg_execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def sqlite_target(tmp_path: Path, name: str = "bot.db") -> DbTarget:
    return DbTarget("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'data' / name}")


@contextmanager
def fresh_postgres_schema(request: pytest.FixtureRequest) -> Iterator[DbTarget]:
    """A schema of its own inside this run's PostgreSQL schema namespace, dropped afterwards.

    Synchronous on purpose: the PostgreSQL fixtures of tests/conftest.py use asyncio.run().
    """
    url = request.getfixturevalue("postgres_schema_url")
    run_schema = request.getfixturevalue("postgres_schema")
    schema = f"{run_schema}_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_execute(url, f'CREATE SCHEMA "{schema}"'))
    try:
        yield DbTarget("postgres", url, schema)
    finally:
        asyncio.run(pg_execute(url, f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbTarget]:
    if request.param == "sqlite":
        yield sqlite_target(tmp_path)
        return
    with fresh_postgres_schema(request) as target:
        yield target


@pytest.fixture
def postgres_target(request: pytest.FixtureRequest) -> Iterator[DbTarget]:
    """PostgreSQL only (mark the test ``postgres``)."""
    with fresh_postgres_schema(request) as target:
        yield target


@pytest.fixture
async def db(db_target: DbTarget) -> AsyncIterator[Database]:
    database = await db_target.open()
    try:
        yield database
    finally:
        await database.close()
