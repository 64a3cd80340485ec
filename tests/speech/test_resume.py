"""A restarted bot picks up where the last one stopped (DESIGN rule 1): jobs interrupted while
waiting are polled again and delivered exactly once; nothing is POSTed twice."""

from __future__ import annotations

import asyncio

import pytest

from bot.audio import wav_info
from bot.clock import ScaledClock
from bot.gateway.emulator import GatewayEmulator, Outcome
from bot.gateway.models import TTSParams
from bot.quotas import ReservationState
from bot.services import Services
from bot.speech.errors import SpeechInterrupted
from bot.speech.events import DeliveryTarget, Requester, ResumedJob, SpeechResult, Submitted
from bot.speech.service import SpeechService
from bot.store import JobsRepository, JobState, NewJob, PartState
from tests.speech.support import EventLog, speech_settings
from tests.store.dbkit import DbTarget, db_target

__all__ = ["db_target"]

ALICE = Requester(user_id=101, display_name="alice", guild_id=5001)
TARGET = DeliveryTarget(kind="file", channel_id=7001, application_id=42, interaction_token="tok")


class Deliveries:
    """The ``deliver`` callback of the Discord layer, counting calls."""

    def __init__(
        self, *, fail_first: bool = False, gate: asyncio.Event | None = None,
        speech: SpeechService | None = None,
    ) -> None:
        self.calls: list[tuple[ResumedJob, SpeechResult]] = []
        self.states_seen: list[JobState] = []  # the stored state at each call (with ``speech``)
        self.entered = asyncio.Event()
        self._fail_next = fail_first
        self._gate = gate
        self._speech = speech

    async def __call__(self, record: ResumedJob, result: SpeechResult) -> None:
        if self._speech is not None:
            stored = await self._speech.get_job(record.job_id)
            assert stored is not None
            self.states_seen.append(stored.status)
        self.entered.set()
        if self._gate is not None:
            await self._gate.wait()
        if self._fail_next:
            self._fail_next = False
            raise RuntimeError("Discord is down")
        self.calls.append((record, result))


async def test_job_interrupted_mid_wait_is_resumed_and_delivered_once(
    db_target: DbTarget, emulator: GatewayEmulator, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, db_target.url)
    emulator.script_submit(Outcome("complete", duration=40))  # 2 real seconds
    first_db = await db_target.open()
    first = await Services.open(settings, clock=scaled_clock, database=first_db)
    events = EventLog()
    job = await first.speech.start(ALICE, "Please survive a restart.", voice_url=None,
                                   params=TTSParams(), target=TARGET, on_event=events)
    await events.wait_for(Submitted)
    (request_id,) = emulator.jobs
    await emulator.wait_for_status(request_id, "PROCESSING")
    await first.close()
    await first_db.close()
    with pytest.raises(SpeechInterrupted):
        await job.result()
    assert not emulator.jobs[request_id].terminal  # the emulator is still making it

    second_db = await db_target.open()
    try:
        async with await Services.open(settings, clock=scaled_clock, database=second_db) as second:
            record = await second.speech.get_job(job.job_id)
            assert record is not None and record.status is JobState.SUBMITTED
            deliveries = Deliveries(speech=second.speech)
            assert await second.speech.resume_pending(deliveries, wait=True) == 1
            assert await second.speech.resume_pending(deliveries, wait=True) == 0

            assert len(deliveries.calls) == 1
            delivered, result = deliveries.calls[0]
            assert delivered.job_id == job.job_id
            assert deliveries.states_seen == [JobState.COMPLETED]  # delivered once it was completed
            assert delivered.target.interaction_token == "tok"
            media = emulator.jobs[request_id].media_bytes or b""
            assert wav_info(result.audio).frames == wav_info(media).frames
            assert result.text == "Please survive a restart." and result.chunks == 1

            record = await second.speech.get_job(job.job_id)
            assert record is not None and record.status is JobState.DELIVERED and record.delivered
            assert record.reservation_id is not None
            reservation = await second.quotas.get_reservation(record.reservation_id)
            assert reservation.state is ReservationState.COMMITTED
            assert emulator.counts["submit"] == 1  # polled again, never re-POSTed
    finally:
        await second_db.close()


async def test_completed_but_undelivered_job_is_fetched_again_and_delivered_once(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url)
    async with await Services.open(settings, clock=scaled_clock) as first:
        job = await first.speech.start(ALICE, "Delivered after the crash.", voice_url=None,
                                       params=TTSParams(), target=TARGET)
        original = await job.result()
        # The bot stops before the Discord layer could deliver and call mark_delivered.

    async with await Services.open(settings, clock=scaled_clock) as second:
        gate = asyncio.Event()
        deliveries = Deliveries(fail_first=True, gate=gate)
        first_call = asyncio.create_task(second.speech.resume_pending(deliveries, wait=True))
        await deliveries.entered.wait()
        # While the first call is delivering, a second call does not take the job again.
        assert await second.speech.resume_pending(deliveries, wait=True) == 0
        gate.set()
        assert await first_call == 1
        assert deliveries.calls == []  # that delivery failed
        record = await second.speech.get_job(job.job_id)
        assert record is not None and record.status is JobState.COMPLETED and not record.delivered

        assert await second.speech.resume_pending(deliveries, wait=True) == 1
        assert len(deliveries.calls) == 1 and deliveries.calls[0][1].audio == original.audio
        assert await second.speech.resume_pending(deliveries, wait=True) == 0
        record = await second.speech.get_job(job.job_id)
        assert record is not None and record.delivered
        assert emulator.counts["submit"] == 1


async def test_jobs_left_reserved_are_settled_by_whether_a_post_may_have_left(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url)
    async with await Services.open(settings, clock=scaled_clock) as first:
        # What a crash leaves: part 0 was being POSTed (submitting), part 1 never was.
        job = NewJob(user_id=ALICE.user_id, user_display="alice", guild_id=ALICE.guild_id,
                     channel_id=7001, text="One. Two.", parts=["One.", "Two."],
                     delivery={"kind": "file", "channel_id": 7001})
        await first.quotas.reserve(guild_id=ALICE.guild_id, user_id=ALICE.user_id, requests=2,
                                   characters=9, job=job)
        await JobsRepository(first.db, scaled_clock).update_part(job.id, 0, status=PartState.SUBMITTING)
        cli_job = NewJob(user_id=0, user_display="cli", guild_id=None, channel_id=None, text="Hi.",
                         parts=["Hi."], delivery={"kind": "file"})
        await first.quotas.reserve(guild_id=None, user_id=0, requests=1, characters=3, job=cli_job)

    async with await Services.open(settings, clock=scaled_clock) as second:
        deliveries = Deliveries()
        failures: list[tuple[str, str]] = []

        async def on_failed(resumed: ResumedJob, message: str) -> None:
            failures.append((resumed.job_id, message))

        assert await second.speech.resume_pending(deliveries, wait=True, on_failed=on_failed) == 1
        assert deliveries.calls == []
        assert [job_id for job_id, _ in failures] == [job.id]  # its card can be closed
        record = await second.speech.get_job(job.id)
        assert record is not None and record.reservation_id is not None
        assert record.status is JobState.DELIVERED  # failed; nothing to hand over
        assert [p.status for p in record.parts] == [PartState.FAILED, PartState.CANCELLED]
        reservation = await second.quotas.get_reservation(record.reservation_id)
        assert (reservation.committed_requests, reservation.refunded_requests) == (1, 1)
        # The CLI's job has no Discord destination: it is not the bot's to resume.
        cli_record = await second.speech.get_job(cli_job.id)
        assert cli_record is not None and cli_record.status is JobState.RESERVED
        assert emulator.counts["submit"] == 0
