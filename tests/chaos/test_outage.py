"""A PostgreSQL outage under load is waited out: every job completes, in the same process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.clock import ScaledClock
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator, Outcome
from bot.gateway.models import TTSParams
from bot.services import Services
from bot.speech.errors import SpeechInterrupted
from bot.speech.events import (
    CatchingUp,
    DeliveryTarget,
    Failed,
    Requester,
    ResumedJob,
    SpeechResult,
    Submitted,
)
from bot.store import JobRecord, JobState, open_database
from bot.store.tables import job_parts
from tests.chaos import throwaway_pg
from tests.chaos.campaign import audit_run, finish, spawn, wait_ready, worker_command
from tests.chaos.tcp_cut import CuttablePath
from tests.speech.support import EventLog, speech_settings
from tests.store.dbkit import DbTarget


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


async def _jobs_in_flight(url: str, jobs: int) -> bool:
    """All ``jobs`` reserved (a /speak during the outage would be refused, not lost) and some
    part already accepted by the gateway."""
    db = await open_database(url, migrate=False, retry_seconds=0)
    try:
        async with db.read() as conn:
            made = (await conn.execute(select(func.count(func.distinct(job_parts.c.job_id))))).scalar_one()
            query = select(func.count()).select_from(job_parts).where(job_parts.c.status == "submitted")
            return made >= jobs and int((await conn.execute(query)).scalar_one()) > 0
    finally:
        await db.close()



async def _delivered(services: Services, job_id: str) -> JobRecord:
    """The job's record once the reconciler delivered it (a hung test fails after 60 s)."""
    async with asyncio.timeout(60):
        while True:
            record = await services.speech.get_job(job_id)
            if record is not None and record.status is JobState.DELIVERED:
                return record
            await asyncio.sleep(0.05)  # the database is the only witness: read it again

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
            if await _jobs_in_flight(own_postgres.url, 6):
                break
            await asyncio.sleep(0.05)
    await own_postgres.stop()  # fast shutdown: every connection is cut
    await asyncio.sleep(2.0)  # real seconds of outage: leases (1 s) run out meanwhile
    await own_postgres.start()
    status, stderr = await finish(worker)
    ours = [line for line in stderr.splitlines() if "/work/" in line and ".venv" not in line]
    assert status == 0, "\n".join(ours[-20:]) + stderr[-1500:]
    audit = await audit_run(db=own_postgres.url, schema=None, emulator=emulator, deliveries=posts)
    assert audit.problems == [], audit.summary()
    assert audit.jobs == 6 and audit.posted == 6  # all completed and posted, none failed
    assert "Traceback" not in stderr


async def test_an_outage_longer_than_the_retry_budget_leaves_the_job_to_the_reconciler(
    own_postgres: throwaway_pg.ThrowawayPostgres,
) -> None:
    """Past DATABASE_RETRY_SECONDS the job is not failed: the member's card hears that the bot
    is catching up, and the same process's reconciler delivers it once the database is back."""
    clock = ScaledClock(20.0)
    config = EmulatorConfig(seed=3, jitter=0.0, webhook_duplicate_rate=0.0, clock=clock)
    async with GatewayEmulator(config) as emulator:
        emulator.script_submit(Outcome("complete", duration=60))  # 3 real seconds
        settings = speech_settings(emulator, own_postgres.url, database_retry_seconds=0.3)
        delivered: list[str] = []

        async def deliver(job: ResumedJob, result: SpeechResult) -> None:
            delivered.append(job.job_id)

        async with await Services.open(settings, clock=clock) as services:
            services.speech.start_reconciler(deliver)
            events = EventLog()
            job = await services.speech.start(Requester(1, "ann", 5), "Through an outage.", voice_url=None,
                                              params=TTSParams(), target=DeliveryTarget(channel_id=7),
                                              on_event=events)
            await events.wait_for(Submitted)
            await own_postgres.stop()
            with pytest.raises(SpeechInterrupted):
                await job.result()  # the completion could not be recorded: left open
            catching_up = await events.wait_for(CatchingUp)
            assert "catching up" in catching_up.message and events.of(Failed) == []
            await own_postgres.start()
            record = await _delivered(services, job.job_id)
            assert delivered == [job.job_id] and record.error is None
            assert emulator.counts["submit"] == 1  # taken over by polling, never re-POSTed


class _MendWhenTheRunGivesUp(logging.Handler):
    """Ends the outage at the first thing a job's run logs at WARNING or above: the moment it
    gave up on the database (past DATABASE_RETRY_SECONDS), before it writes anything else."""

    def __init__(self, path: CuttablePath) -> None:
        super().__init__(logging.WARNING)
        self.path = path
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.path.mend()


@pytest.mark.postgres
@pytest.mark.parametrize("moment", ["writing-submitting", "recording-completed"])
async def test_an_outage_ending_just_past_the_retry_budget_fails_no_job(
    postgres_target: DbTarget, moment: str
) -> None:
    """The database goes away right before the part's ``submitting`` write (nothing POSTed yet)
    or before its completion is recorded, and comes back the instant the run gives up on it:
    every later write of that run would work, yet the job must not be failed (issue 9: "no job
    fails because the database blinked"). It stays open, the card says the bot is catching up,
    and the reconciler finishes it: POSTed exactly once, delivered once, charged once."""
    clock = ScaledClock(20.0)
    config = EmulatorConfig(seed=5, jitter=0.0, webhook_duplicate_rate=0.0, clock=clock)
    server = make_url(postgres_target.url)
    async with GatewayEmulator(config) as emulator, \
            CuttablePath(server.host or "127.0.0.1", server.port or 5432) as path:
        emulator.script_submit(Outcome("complete", duration=20))  # 1 real second
        url = server.set(host="127.0.0.1", port=path.port).render_as_string(hide_password=False)
        db = await open_database(url, schema=postgres_target.schema, retry_seconds=0.3)
        settings = speech_settings(emulator, url, database_retry_seconds=0.3, job_lease_seconds=10,
                                   job_reconcile_seconds=1)
        delivered: list[str] = []

        async def deliver(job: ResumedJob, result: SpeechResult) -> None:
            delivered.append(job.job_id)

        mender = _MendWhenTheRunGivesUp(path)
        runner_log = logging.getLogger("bot.speech.runner")
        runner_log.addHandler(mender)
        try:
            async with await Services.open(settings, clock=clock, database=db) as services:
                services.speech.start_reconciler(deliver)
                events = EventLog()
                job = await services.speech.start(Requester(1, "ann", 5), "A blink of the database.",
                                                  voice_url=None, params=TTSParams(),
                                                  target=DeliveryTarget(channel_id=7), on_event=events)
                if moment == "writing-submitting":
                    path.cut()  # the run has not started: its first write is the part's `submitting`
                else:
                    await events.wait_for(Submitted)  # recorded; the next write is `completed`
                    path.cut()
                with pytest.raises(SpeechInterrupted):
                    await job.result()
                catching_up = await events.wait_for(CatchingUp)
                assert "catching up" in catching_up.message and events.of(Failed) == []
                assert path.dropped > 0 and not path.cut_now  # it was down, and it is back
                assert [r.levelno for r in mender.records] == [logging.WARNING]  # no part failed
                record = await _delivered(services, job.job_id)
                assert delivered == [job.job_id] and record.error is None
                assert emulator.counts["submit"] == 1  # POSTed once: by the run or the reconciler
                assert record.reservation_id is not None
                reservation = await services.quotas.get_reservation(record.reservation_id)
                assert (reservation.committed_requests, reservation.refunded_requests) == (1, 0)
        finally:
            runner_log.removeHandler(mender)
            await db.close()
