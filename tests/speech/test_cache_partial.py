"""Per-chunk cache hits: a request of which some chunks are cached makes and pays only the others.

The gateway emulator over HTTP, real SQLite and PostgreSQL (``db_target``), cache files on disk.
Each sentence below is its own chunk (``chatterbox_chunk_chars`` is 60 in these tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.audio import join_wavs
from bot.cache import cache_key, cache_ref
from bot.clock import ScaledClock
from bot.config import Settings
from bot.gateway.emulator import GatewayEmulator, Outcome
from bot.gateway.models import TTSParams
from bot.quotas import ReservationState
from bot.services import Services
from bot.speech.events import (
    ChunkReady,
    Completed,
    DeliveryTarget,
    QuotaReserved,
    Requester,
    ResumedJob,
    SpeechResult,
    Submitted,
)
from bot.speech.runner import CACHED_PART_GONE
from bot.store import JobsRepository, JobState, NewJob, PartState
from bot.store.tables import usage_ledger
from tests.speech.support import EventLog, speech_settings
from tests.store.dbkit import DbTarget, db_target

__all__ = ["db_target"]

ALICE = Requester(user_id=101, display_name="alice", guild_id=5001)
TARGET = DeliveryTarget(kind="file", channel_id=7001)
FIRST = "The first sentence is new and has to be made."
MIDDLE = "The middle sentence was said before, by someone."
LAST = "The last sentence is new as well, and paid for."
TEXT = f"{FIRST} {MIDDLE} {LAST}"


@asynccontextmanager
async def opened(settings: Settings, clock: ScaledClock, target: DbTarget) -> AsyncIterator[Services]:
    db = await target.open()
    try:
        async with await Services.open(settings, clock=clock, database=db) as services:
            yield services
    finally:
        await db.close()


async def speak(services: Services, text: str, events: EventLog | None = None) -> SpeechResult:
    job = await services.speech.start(ALICE, text, voice_url=None, params=TTSParams(), target=TARGET,
                                      on_event=events)
    result = await job.result()
    await services.speech.mark_delivered(job.job_id)
    return result


async def ledger(services: Services) -> list[dict[str, Any]]:
    async with services.db.read() as conn:
        rows = await conn.execute(select(usage_ledger).order_by(usage_ledger.c.created_at))
        return [dict(r._mapping) for r in rows]


def submitted_texts(emulator: GatewayEmulator) -> list[str]:
    return [job.text for job in emulator.jobs.values()]


async def test_a_partly_cached_text_posts_and_pays_only_the_missing_chunks(
    db_target: DbTarget, emulator: GatewayEmulator, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, db_target.url)
    async with opened(settings, scaled_clock, db_target) as services:
        assert services.speech.plan(TEXT).chunks == (FIRST, MIDDLE, LAST)
        earlier = await speak(services, MIDDLE)  # an earlier request cached chunk 1
        assert emulator.counts["submit"] == 1

        events = EventLog()
        result = await speak(services, TEXT, events)

        # Exactly two more POSTs, for the two chunks that were not cached.
        assert emulator.counts["submit"] == 3
        assert submitted_texts(emulator) == [MIDDLE, FIRST, LAST]
        # The ledger reserved and charged those two requests and their characters only.
        first_row, row = await ledger(services)
        assert first_row["requests"] == 1
        assert (row["requests"], row["characters"]) == (2, len(FIRST) + len(LAST))
        assert (row["state"], row["committed_requests"], row["refunded_requests"]) == ("committed", 2, 0)
        assert row["cost"] == Decimal("0.02") == result.cost
        # All three chunks, in order, in the events and in the result.
        [reserved] = events.of(QuotaReserved)
        assert reserved.plan.from_cache == (1,) and reserved.plan.requests == 2
        assert reserved.plan.cost == Decimal("0.02") and not reserved.plan.cached
        ready = events.of(ChunkReady)
        assert [e.index for e in ready] == [0, 1, 2] and all(e.chunks == 3 for e in ready)
        assert ready[1].audio == earlier.audio  # the cached take, not a new one
        assert result.audio == join_wavs([e.audio for e in ready],
                                         pause_ms=settings.chatterbox_chunk_pause_ms)
        assert (result.chunks, result.cached_chunks, result.cached) == (3, 1, False)
        # The job's parts: two made (committed), one cached (neither sent nor charged).
        record = await services.speech.get_job(result.job_id)
        assert record is not None and record.status is JobState.DELIVERED
        assert [p.status for p in record.parts] == [PartState.COMPLETED, PartState.CACHED,
                                                    PartState.COMPLETED]
        assert record.parts[1].request_id is None
        model = await services.cache.current_model()
        assert model is not None
        assert record.parts[1].media_url == cache_ref(cache_key(MIDDLE, "", TTSParams(), model))

        # The made chunks were cached too: the whole text is now a free replay.
        again = await speak(services, TEXT)
        assert again.cached and again.cost == 0 and emulator.counts["submit"] == 3
        assert again.audio == result.audio
        assert len(await ledger(services)) == 2


async def test_a_cached_first_chunk_is_ready_before_anything_is_sent(
    services: Services, emulator: GatewayEmulator
) -> None:
    await speak(services, FIRST)
    emulator.script_submit(Outcome("complete", duration=10), Outcome("complete", duration=10))
    events = EventLog()
    job = await services.speech.start(ALICE, TEXT, voice_url=None, params=TTSParams(), target=TARGET,
                                      on_event=events)
    first = await events.wait_for(ChunkReady)
    assert first.index == 0
    # Ready at once: no event of the made parts came before it.
    assert events.kinds()[:2] == ["QuotaReserved", "ChunkReady"]
    result = await job.result()
    assert [e.index for e in events.of(ChunkReady)] == [0, 1, 2]
    assert events.kinds().index("ChunkReady") < events.kinds().index("Submitted")
    assert result.cached_chunks == 1 and result.cost == Decimal("0.02")
    assert emulator.counts["submit"] == 3


async def test_with_the_cache_off_nothing_changes(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url, cache_max_mb=0)
    async with await Services.open(settings, clock=scaled_clock) as services:
        await speak(services, MIDDLE)
        events = EventLog()
        result = await speak(services, TEXT, events)

        assert emulator.counts["submit"] == 4  # every chunk made, the middle one again
        _, row = await ledger(services)
        assert (row["requests"], row["characters"], row["committed_requests"]) == (3, len(TEXT), 3)
        [reserved] = events.of(QuotaReserved)
        assert reserved.plan.from_cache == () and reserved.plan.requests == 3
        assert (result.cost, result.cached_chunks) == (Decimal("0.03"), 0)
        record = await services.speech.get_job(result.job_id)
        assert record is not None
        assert [p.status for p in record.parts] == [PartState.COMPLETED] * 3
        assert await services.cache.usage() == (0, 0)


# --- crash and restart ----------------------------------------------------------------------


class Deliveries:
    def __init__(self) -> None:
        self.calls: list[tuple[ResumedJob, SpeechResult]] = []
        self.failures: list[tuple[ResumedJob, str]] = []

    async def __call__(self, job: ResumedJob, result: SpeechResult) -> None:
        self.calls.append((job, result))

    async def on_failed(self, job: ResumedJob, message: str) -> None:
        self.failures.append((job, message))


async def resume(services: Services, deliveries: Deliveries) -> int:
    return await services.speech.resume_pending(deliveries, wait=True, on_failed=deliveries.on_failed)


async def crash_mid_wait(
    settings: Settings, clock: ScaledClock, target: DbTarget, emulator: GatewayEmulator,
    before_crash: Callable[[Services], Awaitable[None]] | None = None,
) -> tuple[str, SpeechResult]:
    """Cache chunk 1, start the whole text, and stop the process while its two made chunks
    are being made (both POSTed, the cached part recorded with the job)."""
    async with opened(settings, clock, target) as first:
        earlier = await speak(first, MIDDLE)
        emulator.script_submit(Outcome("complete", duration=40), Outcome("complete", duration=40))
        events = EventLog()
        job = await first.speech.start(ALICE, TEXT, voice_url=None, params=TTSParams(), target=TARGET,
                                       on_event=events)
        async with asyncio.timeout(20):
            while len(events.of(Submitted)) < 2:
                await events.wait_for(Submitted)
                await asyncio.sleep(0)
        record = await first.speech.get_job(job.job_id)
        assert record is not None and record.status is JobState.SUBMITTED
        assert [p.status for p in record.parts] == [PartState.SUBMITTED, PartState.CACHED,
                                                    PartState.SUBMITTED]
        if before_crash is not None:
            await before_crash(first)
    assert emulator.counts["submit"] == 3
    return job.job_id, earlier


async def test_a_job_with_a_cached_part_survives_a_restart_and_is_charged_once(
    db_target: DbTarget, emulator: GatewayEmulator, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, db_target.url)
    job_id, earlier = await crash_mid_wait(settings, scaled_clock, db_target, emulator)

    async with opened(settings, scaled_clock, db_target) as second:
        deliveries = Deliveries()
        assert await resume(second, deliveries) == 1
        assert await resume(second, deliveries) == 0

        [(delivered, result)] = deliveries.calls  # delivered once
        assert delivered.job_id == job_id and deliveries.failures == []
        assert (result.chunks, result.cached_chunks, result.cost) == (3, 1, Decimal("0.02"))
        made = [emulator.jobs[r].media_bytes or b"" for r in emulator.jobs if emulator.jobs[r].text != MIDDLE]
        assert result.audio == join_wavs([made[0], earlier.audio, made[1]],
                                         pause_ms=settings.chatterbox_chunk_pause_ms)
        assert emulator.counts["submit"] == 3  # polled again, never re-POSTed
        record = await second.speech.get_job(job_id)
        assert record is not None and record.status is JobState.DELIVERED and record.reservation_id
        reservation = await second.quotas.get_reservation(record.reservation_id)
        assert reservation.state is ReservationState.COMMITTED
        assert (reservation.requests, reservation.committed_requests) == (2, 2)
        assert reservation.refunded_requests == 0 and reservation.cost == Decimal("0.02")


async def test_a_cached_part_gone_before_the_restart_fails_the_job_once_with_the_made_parts_charged(
    db_target: DbTarget, emulator: GatewayEmulator, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, db_target.url)

    def unlink_all() -> None:
        for path in Path(settings.cache_dir).rglob("*.wav"):
            path.unlink()

    async def delete_cache_files(_: Services) -> None:
        await asyncio.to_thread(unlink_all)

    job_id, _ = await crash_mid_wait(settings, scaled_clock, db_target, emulator, delete_cache_files)

    async with opened(settings, scaled_clock, db_target) as second:
        deliveries = Deliveries()
        assert await resume(second, deliveries) == 1
        assert await resume(second, deliveries) == 0

        assert deliveries.calls == []
        [(failed, message)] = deliveries.failures  # the member is told once
        assert failed.job_id == job_id and message == CACHED_PART_GONE and not failed.refunded
        record = await second.speech.get_job(job_id)
        assert record is not None and record.status is JobState.DELIVERED and record.reservation_id
        assert [p.status for p in record.parts] == [PartState.SUBMITTED, PartState.CACHED,
                                                    PartState.SUBMITTED]
        reservation = await second.quotas.get_reservation(record.reservation_id)
        # The two POSTed parts were charged by the provider: committed, once; nothing re-sent.
        assert (reservation.committed_requests, reservation.refunded_requests) == (2, 0)
        assert emulator.counts["submit"] == 3


async def crashed_before_posting(services: Services, clock: ScaledClock, *, cached_key: str) -> NewJob:
    """What a crash right after the reservation leaves: part 0 pending, part 1 cached."""
    job = NewJob(user_id=ALICE.user_id, user_display="alice", guild_id=ALICE.guild_id, channel_id=7001,
                 text=f"{FIRST} {MIDDLE}", parts=[FIRST, MIDDLE],
                 delivery={"kind": "file", "channel_id": 7001},
                 cached_parts={1: cache_ref(cached_key)})
    await services.quotas.reserve(guild_id=ALICE.guild_id, user_id=ALICE.user_id, requests=1,
                                  characters=len(FIRST), job=job)
    record = await JobsRepository(services.db, clock).get(job.id)
    assert record is not None and [p.status for p in record.parts] == [PartState.PENDING, PartState.CACHED]
    return job


async def test_a_job_left_reserved_with_a_cached_part_makes_the_rest_and_is_delivered_once(
    services: Services, emulator: GatewayEmulator, scaled_clock: ScaledClock
) -> None:
    earlier = await speak(services, MIDDLE)
    model = await services.cache.current_model()
    assert model is not None
    job = await crashed_before_posting(services, scaled_clock,
                                       cached_key=cache_key(MIDDLE, "", TTSParams(), model))
    deliveries = Deliveries()
    assert await resume(services, deliveries) == 1

    [(_, result)] = deliveries.calls
    assert emulator.counts["submit"] == 2 and submitted_texts(emulator) == [MIDDLE, FIRST]
    made = emulator.jobs[list(emulator.jobs)[-1]].media_bytes or b""
    pause_ms = services.settings.chatterbox_chunk_pause_ms
    assert result.audio == join_wavs([made, earlier.audio], pause_ms=pause_ms)
    assert (result.cached_chunks, result.cost) == (1, Decimal("0.01"))
    record = await services.speech.get_job(job.id)
    assert record is not None and record.delivered and record.reservation_id
    reservation = await services.quotas.get_reservation(record.reservation_id)
    assert (reservation.requests, reservation.committed_requests, reservation.state) == (
        1, 1, ReservationState.COMMITTED)


async def test_a_job_left_reserved_whose_cached_part_is_gone_is_refunded_and_sends_nothing(
    services: Services, emulator: GatewayEmulator, scaled_clock: ScaledClock
) -> None:
    job = await crashed_before_posting(services, scaled_clock, cached_key="0" * 64)  # never cached
    deliveries = Deliveries()
    assert await resume(services, deliveries) == 1

    assert deliveries.calls == [] and emulator.counts["submit"] == 0
    [(failed, message)] = deliveries.failures
    assert failed.refunded and message == CACHED_PART_GONE
    record = await services.speech.get_job(job.id)
    assert record is not None and record.status is JobState.DELIVERED and record.reservation_id
    assert [p.status for p in record.parts] == [PartState.CANCELLED, PartState.CACHED]
    reservation = await services.quotas.get_reservation(record.reservation_id)
    assert reservation.state is ReservationState.REFUNDED and reservation.cost == 0


@pytest.mark.parametrize("cached", [FIRST, MIDDLE], ids=["first-cached", "middle-cached"])
async def test_a_cancel_refunds_the_unsent_parts_and_never_counts_the_cached_one(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock, cached: str
) -> None:
    # One chunk in flight at a time: the second made part waits for the first, unsent.
    settings = speech_settings(emulator, database_url, chatterbox_chunk_concurrency=1)
    async with await Services.open(settings, clock=scaled_clock) as services:
        await speak(services, cached)
        emulator.script_submit(Outcome("complete", duration=600))
        events = EventLog()
        job = await services.speech.start(ALICE, TEXT, voice_url=None, params=TTSParams(), target=TARGET,
                                          on_event=events)
        await events.wait_for(Submitted)
        assert await job.cancel()
        _, row = await ledger(services)
        # Two reserved: the first made part was sent (charged), the other never was (refunded).
        assert (row["requests"], row["committed_requests"], row["refunded_requests"]) == (2, 1, 1)
        assert row["state"] == "partial" and events.of(Completed) == []
        assert emulator.counts["submit"] == 2
        record = await services.speech.get_job(job.job_id)
        assert record is not None and record.status is JobState.CANCELLED
        assert PartState.CACHED in [p.status for p in record.parts]


async def test_a_completed_job_whose_cached_part_is_gone_is_closed_at_once_not_at_its_deadline(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url)
    async with await Services.open(settings, clock=scaled_clock) as first:
        await speak(first, MIDDLE)
        job = await first.speech.start(ALICE, TEXT, voice_url=None, params=TTSParams(), target=TARGET)
        await job.result()  # completed; the bot stops before it is delivered

    def unlink_all() -> None:
        for path in Path(settings.cache_dir).rglob("*.wav"):
            path.unlink()

    await asyncio.to_thread(unlink_all)
    async with await Services.open(settings, clock=scaled_clock) as second:
        deliveries = Deliveries()
        assert await resume(second, deliveries) == 1
        assert await resume(second, deliveries) == 0
        assert deliveries.calls == []
        [(failed, message)] = deliveries.failures
        assert failed.job_id == job.job_id and message == CACHED_PART_GONE and not failed.refunded
        record = await second.speech.get_job(job.job_id)
        assert record is not None and record.status is JobState.DELIVERED and record.reservation_id
        reservation = await second.quotas.get_reservation(record.reservation_id)
        assert (reservation.committed_requests, reservation.state) == (2, ReservationState.COMMITTED)
        assert emulator.counts["submit"] == 3


async def test_the_daily_quota_counts_only_the_chunks_to_make(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url, quota_requests_per_day=3)
    async with await Services.open(settings, clock=scaled_clock) as services:
        await speak(services, MIDDLE)  # 1 of 3 used
        result = await speak(services, TEXT)  # 3 chunks, 2 to make: fits in the 2 left
        assert result.cached_chunks == 1
        usage = await services.quotas.usage(ALICE.guild_id, ALICE.user_id)
        assert usage.requests_used == 3
        assert usage.characters_used == len(MIDDLE) + len(FIRST) + len(LAST)
