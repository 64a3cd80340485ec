"""A PostgreSQL outage under load is waited out: every job completes, in the same process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.gateway.emulator import GatewayEmulator
from bot.store import open_database
from bot.store.tables import job_parts
from tests.chaos import throwaway_pg
from tests.chaos.campaign import audit_run, finish, spawn, wait_ready, worker_command


@pytest.fixture
async def own_postgres() -> AsyncIterator[throwaway_pg.ThrowawayPostgres]:
    problem = throwaway_pg.available()
    if problem:
        pytest.skip(problem)
    server = throwaway_pg.ThrowawayPostgres()
    try:
        await server.init()
        await server.start()
        yield server
    finally:
        await server.destroy()


async def _submitted_parts(url: str) -> int:
    db = await open_database(url, migrate=False, retry_seconds=0)
    try:
        async with db.read() as conn:
            query = select(func.count()).select_from(job_parts).where(job_parts.c.status == "submitted")
            return int((await conn.execute(query)).scalar_one())
    finally:
        await db.close()


async def test_a_postgresql_restart_under_load_delays_jobs_but_fails_none(
    own_postgres: throwaway_pg.ThrowawayPostgres, emulator: GatewayEmulator, tmp_path: Path
) -> None:
    posts = tmp_path / "posts.txt"
    worker = await spawn(worker_command(db=own_postgres.url, schema=None, emulator=emulator, deliveries=posts,
                                        tag="outage", start=6, until_idle=True,
                                        extra=("--db-retry", "60")))
    await wait_ready(worker)
    async with asyncio.timeout(60):
        while True:  # until jobs are in flight (rows of another process: polled)
            if await _submitted_parts(own_postgres.url):
                break
            await asyncio.sleep(0.05)
    await own_postgres.stop()  # fast shutdown: every connection is cut
    await asyncio.sleep(2.0)  # real seconds of outage: leases (1 s) run out meanwhile
    await own_postgres.start()
    status, stderr = await finish(worker)
    assert status == 0, stderr[-3000:]
    audit = await audit_run(db=own_postgres.url, schema=None, emulator=emulator, deliveries=posts)
    assert audit.problems == [], audit.summary()
    assert audit.jobs == 6 and audit.posted == 6  # all completed and posted, none failed
    assert "Traceback" not in stderr
