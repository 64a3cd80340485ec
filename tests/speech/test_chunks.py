"""Long text: split into chunks, generated in parallel, delivered in order, joined with pauses."""

from __future__ import annotations

import pytest

from bot.audio import wav_info
from bot.clock import ScaledClock
from bot.config import Settings
from bot.gateway.emulator import GatewayEmulator, Outcome
from bot.gateway.errors import BadRequest
from bot.gateway.models import TTSParams
from bot.quotas import ReservationState
from bot.services import Services
from bot.speech.events import ChunkReady, Completed, DeliveryTarget, Failed, Requester, SpeechEvent
from bot.store import PartState
from tests.speech.support import EventLog, emulator_job_for, speech_settings

ALICE = Requester(user_id=101, display_name="alice", guild_id=5001)
TARGET = DeliveryTarget(kind="file", channel_id=7001)
# Three sentences of 40-55 characters: with 60-character chunks, one chunk each.
LONG_TEXT = (
    "The first sentence is short and sweet. "
    "The second sentence takes a little longer to say. "
    "And the third one closes this small test."
)


async def test_long_text_is_split_reserved_per_chunk_and_joined_with_pauses(
    services: Services, emulator: GatewayEmulator, settings: Settings
) -> None:
    plan = services.speech.plan(LONG_TEXT)
    assert plan.requests == 3 and plan.characters == len(LONG_TEXT)
    assert all(len(chunk) <= settings.chatterbox_chunk_chars for chunk in plan.chunks)

    events = EventLog()
    job = await services.speech.start(ALICE, LONG_TEXT, voice_url=None, params=TTSParams(),
                                      target=TARGET, on_event=events)
    result = await job.result()

    assert sorted(j.text for j in emulator.jobs.values()) == sorted(plan.chunks)
    chunk_frames = [wav_info(emulator_job_for(emulator, c).media_bytes or b"").frames for c in plan.chunks]
    joined = wav_info(result.audio)
    pause_frames = round(joined.sample_rate * settings.chatterbox_chunk_pause_ms / 1000)
    assert pause_frames > 0
    assert joined.frames == sum(chunk_frames) + 2 * pause_frames
    assert (joined.sample_rate, joined.channels) == (24000, 1)
    assert result.chunks == 3

    record = await services.speech.get_job(job.job_id)
    assert record is not None and record.reservation_id is not None
    reservation = await services.quotas.get_reservation(record.reservation_id)
    assert (reservation.requests, reservation.characters) == (3, len(LONG_TEXT))
    assert reservation.state is ReservationState.COMMITTED and reservation.committed_requests == 3
    assert result.cost == reservation.cost == plan.cost


async def test_chunks_are_ready_in_order_and_the_first_before_the_last_finishes(
    services: Services, emulator: GatewayEmulator
) -> None:
    # POSTs go out in chunk order: chunk 0 is quick, chunk 1 slow, chunk 2 quick.
    emulator.script_submit(Outcome("complete", duration=0.5), Outcome("complete", duration=40),
                           Outcome("complete", duration=1.0))
    plan = services.speech.plan(LONG_TEXT)
    slow_status_at_first_chunk: list[str] = []

    def snapshot(event: SpeechEvent) -> None:
        if isinstance(event, ChunkReady) and event.index == 0:
            slow_status_at_first_chunk.append(emulator_job_for(emulator, plan.chunks[1]).status)

    events = EventLog(snapshot)
    job = await services.speech.start(ALICE, LONG_TEXT, voice_url=None, params=TTSParams(),
                                      target=TARGET, on_event=events)
    result = await job.result()
    await events.wait_for(Completed)

    ready = events.of(ChunkReady)
    assert [e.index for e in ready] == [0, 1, 2]
    # Chunk 0 reached the listener while the slow chunk was still being made ...
    assert slow_status_at_first_chunk and slow_status_at_first_chunk[0] != "COMPLETED"
    # ... and chunk 2, finished before chunk 1, was held back until chunk 1 was ready.
    quick, slow = emulator_job_for(emulator, plan.chunks[2]), emulator_job_for(emulator, plan.chunks[1])
    assert quick.completed_mono is not None and slow.completed_mono is not None
    assert quick.completed_mono < slow.completed_mono
    assert [e.audio for e in ready] == [emulator_job_for(emulator, c).media_bytes for c in plan.chunks]
    assert result.chunks == 3


async def test_a_failed_chunk_stops_the_rest_refunding_what_was_never_sent(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url, chatterbox_chunk_concurrency=1)
    emulator.script_submit(Outcome("complete", duration=0.5), "http_400")
    async with await Services.open(settings, clock=scaled_clock) as services:
        events = EventLog()
        job = await services.speech.start(ALICE, LONG_TEXT, voice_url=None, params=TTSParams(),
                                          target=TARGET, on_event=events)
        with pytest.raises(BadRequest):
            await job.result()
        failed = await events.wait_for(Failed)
        assert failed.refunded is False  # chunk 0 was made and charged

        assert emulator.counts["submit"] == 2  # chunk 2 was never POSTed
        record = await services.speech.get_job(job.job_id)
        assert record is not None and record.reservation_id is not None
        assert [p.status for p in record.parts] == [PartState.COMPLETED, PartState.ERROR, PartState.CANCELLED]
        reservation = await services.quotas.get_reservation(record.reservation_id)
        assert (reservation.committed_requests, reservation.refunded_requests) == (1, 2)
        assert reservation.state is ReservationState.PARTIAL
