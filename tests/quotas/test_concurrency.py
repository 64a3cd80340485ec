"""No over-grant: 100 concurrent reservations against a limit of 10 grant exactly 10.

On SQLite through one engine and through two engines (separate connection pools on one file),
on PostgreSQL in one process, and across two and four processes sharing one PostgreSQL schema
(the counters then still equal the ledger's sums).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.quotas import QuotaExceeded, QuotaService, counters
from bot.store import Database
from bot.store.tables import usage_ledger
from tests.quotas.conftest import make_settings
from tests.quotas.reserve_worker import GUILD, USER, limited_settings, reserve_many
from tests.store.dbkit import DbTarget

ROOT = Path(__file__).resolve().parents[2]


async def ledger_rows(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(usage_ledger))).scalar_one()


async def test_one_hundred_at_once_grant_exactly_ten(db: Database, clock: ManualClock) -> None:
    quotas = QuotaService(db, limited_settings(), clock)
    granted, refused = await reserve_many(quotas, 100)
    assert (granted, refused) == (10, 90)
    assert await ledger_rows(db) == 10
    assert (await quotas.usage(GUILD, USER)).requests_used == 10


async def test_two_engines_on_one_database_grant_exactly_ten(db_target: DbTarget, clock: ManualClock) -> None:
    first, second = await db_target.open(), await db_target.open()
    try:
        results = await asyncio.gather(
            reserve_many(QuotaService(first, limited_settings(), clock), 50),
            reserve_many(QuotaService(second, limited_settings(), clock), 50),
        )
        assert sum(granted for granted, _ in results) == 10
        assert await ledger_rows(first) == 10
    finally:
        await first.close()
        await second.close()


async def test_the_server_budget_is_exact_across_members(db: Database, clock: ManualClock) -> None:
    quotas = QuotaService(db, make_settings(quota_cooldown_seconds=0), clock)
    await quotas.admin.set_daily_budget(GUILD, 10, actor_id=1)

    async def member(user_id: int) -> bool:
        try:
            await quotas.reserve(guild_id=GUILD, user_id=user_id, requests=1, characters=5)
        except QuotaExceeded as error:
            assert error.code == "guild_budget"
            return False
        return True

    results = await asyncio.gather(*(member(user_id) for user_id in range(1000, 1100)))
    assert results.count(True) == 10
    assert (await quotas.guild_usage(GUILD)).requests == 10


@pytest.mark.postgres
@pytest.mark.parametrize("processes", [2, 4])
async def test_several_processes_on_postgres_grant_exactly_ten(
    postgres_target: DbTarget, processes: int
) -> None:
    db = await postgres_target.open()  # migrates the schema the workers share
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.quotas.reserve_worker",
                postgres_target.url, str(postgres_target.schema), str(100 // processes), "5",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
            )
            for _ in range(processes)
        ]
        for worker in workers:
            assert worker.stdout is not None
            assert (await asyncio.wait_for(worker.stdout.readline(), 60)).strip() == b"ready"
        for worker in workers:  # both are connected; start them together
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        outputs = [await asyncio.wait_for(worker.communicate(), 60) for worker in workers]
        assert [worker.returncode for worker in workers] == [0] * processes
        reports = [json.loads(stdout.decode().strip().splitlines()[-1]) for stdout, _ in outputs]
        assert sum(r["granted"] for r in reports) == 10
        assert sum(r["refused"] for r in reports) == 90
        assert await ledger_rows(db) == 10
        async with db.read() as conn:
            assert await counters.verify(conn) == []
    finally:
        await db.close()
