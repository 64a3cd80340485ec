"""Fixtures shared by every test package.

PostgreSQL: tests marked ``postgres`` use the server at ``CHATTERBOX_TEST_POSTGRES_URL``
(default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``), each test run in a fresh
schema that is dropped afterwards. Where the server is absent they are skipped with the
reason, except under ``CI=true``, where an unreachable server fails the run.

libopus: tests that listen to the sandbox's voice server (it decodes what the bot sends) take
the ``libopus`` fixture. The dev extra bundles libopus for Linux x86_64 only; elsewhere,
without the system's libopus, they are skipped with the reason, and under ``CI=true`` fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

from bot.clock import ManualClock

POSTGRES_URL = os.environ.get(
    "CHATTERBOX_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _postgres_problem() -> str | None:
    """None when the test server answers, else why not."""
    import asyncpg

    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"PostgreSQL at {dsn.split('@')[-1]} is not reachable ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(scope="session")
def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a schema made for this test run.

    The schema name travels in the URL query (``?options=-csearch_path=...`` is not
    understood by asyncpg), so consumers read ``schema`` from ``postgres_schema``.
    """
    problem = _postgres_problem()
    if problem:
        _skip_unless_ci(problem, "PostgreSQL")
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    os.environ["CHATTERBOX_TEST_POSTGRES_SCHEMA"] = schema
    try:
        yield POSTGRES_URL
    finally:
        asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


def _skip_unless_ci(problem: str, needed: str) -> None:
    """Skip the test for ``problem``; under ``CI=true`` fail it instead (CI must run it)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{problem}; CI=true requires {needed}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def libopus() -> None:
    """libopus loaded into discord.py, for tests that listen to the sandbox's voice server."""
    from tests.sandbox.voice_server import opus_problem

    problem = opus_problem()
    if problem:
        _skip_unless_ci(problem, "libopus")


@pytest.fixture
def postgres_schema(postgres_schema_url: str) -> str:
    return os.environ["CHATTERBOX_TEST_POSTGRES_SCHEMA"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
