"""The reservation in one trip (``QuotaService._reserve_in_one_call``): on SQLite one call of
the driver's thread (``bot.store.driver``), on PostgreSQL one statement that is its own
transaction (``counters.pg_reservation_call``). On both it stores exactly what the usual path
stores and a failing statement writes nothing (nor puts the job's text or secret in its
error); on PostgreSQL a member's refusal after the server's day took undoes the whole
statement; on SQLite it waits for a write lock held elsewhere like any write."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from bot.clock import ManualClock
from bot.quotas import QuotaExceeded, QuotaService, counters
from bot.store import Database
from bot.store.jobs import NewJob
from tests.quotas.conftest import make_settings
from tests.store.dbkit import DbTarget, sqlite_target

GUILD, USER = 4242, 77
SECRET = "whsec-do-not-log-1234"
TABLES = ("usage_ledger", "quota_members", "quota_guild_days", "jobs", "job_parts")


def _job(text: str = "Hello there. Second part.") -> NewJob:
    return NewJob(user_id=USER, user_display="Ann", guild_id=GUILD, channel_id=5, text=text,
                  webhook_secret=SECRET, parts=["Hello there.", "Second part."], voice_url="voice:abc",
                  params={"exaggeration": 0.5},
                  delivery={"kind": "channel", "channel_id": 5}, cached_parts={1: "cache:xyz"})


async def _stored(db: Database, sql: str) -> list[dict[str, Any]]:
    """Rows as the driver returns them: the stored values, not SQLAlchemy's result types."""
    async with db.engine.connect() as conn:
        return [dict(row._mapping) for row in (await conn.exec_driver_sql(sql)).all()]


async def _everything(db: Database) -> list[list[dict[str, Any]]]:
    return [await _stored(db, f"SELECT * FROM {table} ORDER BY 1, 2") for table in TABLES]


async def _verify(db: Database) -> list[str]:
    async with db.read() as conn:
        return await counters.verify(conn)


def _service(db: Database, clock: ManualClock) -> QuotaService:
    return QuotaService(db, make_settings(quota_cooldown_seconds=0), clock)


async def test_the_one_trip_stores_what_the_usual_path_stores(db: Database, clock: ManualClock) -> None:
    warm = _service(db, clock)
    await warm.reserve(guild_id=GUILD, user_id=USER + 1, requests=1, characters=3)  # caches the guild
    fast_job, usual_job = _job(), _job()
    fast = await warm.reserve(guild_id=GUILD, user_id=USER, requests=2, characters=25, job=fast_job)
    # A service with nothing cached takes the usual path (SQLAlchemy's statements).
    usual = await _service(db, clock).reserve(guild_id=GUILD, user_id=USER, requests=2, characters=25,
                                              job=usual_job)

    def strip(row: dict[str, Any], *names: str) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k not in names}

    ledger = {r["id"]: strip(r, "id", "job_id") for r in await _stored(db, "SELECT * FROM usage_ledger")}
    assert ledger[fast.id] == ledger[usual.id]
    jobs = {r["id"]: strip(r, "id", "reservation_id") for r in await _stored(db, "SELECT * FROM jobs")}
    assert jobs[fast_job.id] == jobs[usual_job.id]
    assert jobs[fast_job.id]["status"] == "reserved" and jobs[fast_job.id]["webhook_secret"] == SECRET
    parts = await _stored(db, "SELECT * FROM job_parts ORDER BY job_id, idx")
    by_job = {job_id: [strip(p, "job_id") for p in parts if p["job_id"] == job_id]
              for job_id in (fast_job.id, usual_job.id)}
    assert by_job[fast_job.id] == by_job[usual_job.id]
    assert [(p["status"], p["media_url"]) for p in by_job[fast_job.id]] == [
        ("pending", None), ("cached", "cache:xyz")]
    member = await _stored(
        db, f"SELECT requests, characters, in_flight FROM quota_members WHERE user_id = {USER}")
    assert member == [{"requests": 4, "characters": 50, "in_flight": 2}]
    assert await _verify(db) == []


async def test_a_failing_one_trip_writes_nothing_and_names_no_secret(
    db: Database, clock: ManualClock
) -> None:
    quotas = _service(db, clock)
    job = _job()
    await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5, job=job)
    before = await _everything(db)
    with pytest.raises(IntegrityError) as one_trip:  # the same job id twice: its INSERT fails last
        await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5, job=job)
    with pytest.raises(IntegrityError) as usual:  # nothing cached: SQLAlchemy's statements
        await _service(db, clock).reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5, job=job)
    for error in (one_trip.value, usual.value):  # errors reach the log: no secret, no text
        assert SECRET not in str(error) and "Second part" not in str(error)
    assert await _everything(db) == before
    assert await _verify(db) == []
    await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)  # nothing left locked


async def test_the_one_call_waits_for_a_write_lock_held_elsewhere(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = await sqlite_target(tmp_path).open()
    try:
        quotas = _service(db, clock)
        await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)
        other = sqlite3.connect(str(tmp_path / "data" / "bot.db"), isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # as another writer would
            pending = asyncio.create_task(
                quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)
            )
            for _ in range(20):
                await asyncio.sleep(0)
            assert not pending.done()  # it cannot write while the lock is held
            other.execute("ROLLBACK")
            reservation = await pending
        finally:
            other.close()
        rows = await _stored(db, "SELECT id FROM usage_ledger")
        assert len(rows) == 2 and reservation.id in {r["id"] for r in rows}
        assert await _verify(db) == []
    finally:
        await db.close()


@pytest.mark.postgres
async def test_a_member_refusal_after_the_servers_day_took_undoes_the_one_statement(
    postgres_target: DbTarget, clock: ManualClock
) -> None:
    db = await postgres_target.open()
    undone: list[str] = []

    def on_error(context: Any) -> None:  # SQLAlchemy's own error event: what the database said
        if counters.undone_in_one_call(context.sqlalchemy_exception):
            undone.append(context.statement)

    event.listen(db.engine.sync_engine, "handle_error", on_error)
    try:
        quotas = QuotaService(db, make_settings(quota_cooldown_seconds=0, quota_max_in_flight=1), clock)
        await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)  # in flight: 1 of 1
        before = await _everything(db)
        with pytest.raises(QuotaExceeded) as refused:
            await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5, job=_job())
        assert refused.value.code == "max_in_flight"
        assert len(undone) == 1 and "INSERT INTO jobs" in undone[0]  # the server's day took, then undone
        assert await _everything(db) == before
        assert await _verify(db) == []
        await quotas.reserve(guild_id=GUILD, user_id=USER + 1, requests=1, characters=5)  # others go on
    finally:
        await db.close()


@pytest.mark.postgres
async def test_a_retry_that_meets_its_own_committed_statement_reports_it_written(
    postgres_target: DbTarget, clock: ManualClock
) -> None:
    """The one statement is its own transaction: when the connection is cut after the server
    committed it, ``Database``'s retry runs it again and meets its own rows. That is the same
    reservation, written once, not a failure (which would invite the member to pay twice).
    The retry is run here as ``Database`` would, with the same values."""
    db = await postgres_target.open()
    try:
        quotas = _service(db, clock)
        await quotas.reserve(guild_id=GUILD, user_id=USER + 1, requests=1, characters=3)  # caches the guild
        cached = quotas._configs.peek(GUILD)
        now = clock.now()
        job = _job()
        values = quotas._ledger_row(cached, GUILD, USER, 1, 25, job.id, now)
        decision = quotas._decide(cached, USER, (), now=now, characters=25, member_limits=True)
        first = await quotas._reserve_in_one_statement(GUILD, USER, values, decision, job, now)
        retried = await quotas._reserve_in_one_statement(GUILD, USER, values, decision, job, now)
        assert first is not None and retried == first
        rows = await _stored(db, f"SELECT id FROM usage_ledger WHERE user_id = {USER}")
        assert rows == [{"id": first.id}]
        assert await _verify(db) == []
    finally:
        await db.close()
