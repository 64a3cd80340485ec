"""Cancel before any POST (full refund, nothing sent) and after (charged chunks committed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.clock import ManualClock, ScaledClock
from bot.gateway.emulator import GatewayEmulator, Outcome
from bot.gateway.models import TTSParams
from bot.quotas import ReservationState, SubmissionsPaused, WalletGuard
from bot.services import Services
from bot.speech.errors import SpeechCancelled
from bot.speech.events import (
    Cancelled,
    DeliveryTarget,
    Requester,
    SpeechEvent,
    Submitted,
    WaitingForSlot,
)
from bot.speech.service import SpeechJob
from bot.store import JobState, PartState
from tests.speech.support import EventLog, speech_settings
from tests.speech.test_chunks import LONG_TEXT

ALICE = Requester(user_id=101, display_name="alice", guild_id=5001)
TARGET = DeliveryTarget(kind="file", channel_id=7001)


async def test_cancel_while_waiting_for_a_slot_refunds_everything_and_sends_nothing(
    services: Services, emulator: GatewayEmulator
) -> None:
    services.limiter.hold(10_000)  # as after a 429: nobody may send
    events = EventLog()
    job = await services.speech.start(ALICE, "Hold on a second, please.", voice_url=None,
                                      params=TTSParams(), target=TARGET, on_event=events)
    waiting = await events.wait_for(WaitingForSlot)
    assert waiting.position == 1

    assert await job.cancel() is True
    assert await job.cancel() is False
    with pytest.raises(SpeechCancelled):
        await job.result()
    cancelled = await events.wait_for(Cancelled)
    assert cancelled.refunded is True

    assert emulator.counts["submit"] == 0
    record = await services.speech.get_job(job.job_id)
    assert record is not None and record.reservation_id is not None
    assert record.status is JobState.CANCELLED
    assert [p.status for p in record.parts] == [PartState.CANCELLED]
    reservation = await services.quotas.get_reservation(record.reservation_id)
    assert reservation.state is ReservationState.REFUNDED and reservation.refunded_requests == 1
    assert services.limiter.waiting == 0  # the waiter left the line


async def test_cancel_after_submit_stops_waiting_and_commits(
    services: Services, emulator: GatewayEmulator
) -> None:
    emulator.script_submit(Outcome("complete", duration=600))
    events = EventLog()
    job = await services.speech.start(ALICE, "This takes a while to make.", voice_url=None,
                                      params=TTSParams(), target=TARGET, on_event=events)
    await events.wait_for(Submitted)
    (request_id,) = emulator.jobs
    await emulator.wait_for_status(request_id, "PROCESSING")

    assert await job.cancel() is True
    with pytest.raises(SpeechCancelled):
        await job.result()
    assert (await events.wait_for(Cancelled)).refunded is False
    assert job.done()

    record = await services.speech.get_job(job.job_id)
    assert record is not None and record.reservation_id is not None
    assert record.status is JobState.CANCELLED
    assert record.parts[0].status is PartState.SUBMITTED and record.parts[0].request_id == request_id
    reservation = await services.quotas.get_reservation(record.reservation_id)
    assert reservation.state is ReservationState.COMMITTED
    assert emulator.counts["submit"] == 1
    # Nothing keeps polling the abandoned job.
    polls = len(emulator.jobs[request_id].status_polls)
    assert await services.speech.resume_pending(_never_deliver, wait=True) == 0
    assert len(emulator.jobs[request_id].status_polls) == polls


async def _never_deliver(*_: object) -> None:
    raise AssertionError("a cancelled job is never delivered")


async def test_cancel_between_chunks_commits_the_submitted_and_refunds_the_rest(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url, chatterbox_chunk_concurrency=1)
    emulator.script_submit(Outcome("complete", duration=600))
    async with await Services.open(settings, clock=scaled_clock) as services:
        events = EventLog()
        job = await services.speech.start(ALICE, LONG_TEXT, voice_url=None, params=TTSParams(),
                                          target=TARGET, on_event=events)
        assert job.plan.requests == 3
        await events.wait_for(Submitted)  # chunk 0; chunks 1 and 2 wait for a free slot
        assert await job.cancel() is True
        assert (await events.wait_for(Cancelled)).refunded is False

        record = await services.speech.get_job(job.job_id)
        assert record is not None and record.reservation_id is not None
        assert [p.status for p in record.parts] == [PartState.SUBMITTED, PartState.CANCELLED,
                                                    PartState.CANCELLED]
        reservation = await services.quotas.get_reservation(record.reservation_id)
        assert (reservation.committed_requests, reservation.refunded_requests) == (1, 2)
        assert emulator.counts["submit"] == 1


async def test_a_listener_may_cancel_its_own_job(services: Services, emulator: GatewayEmulator) -> None:
    services.limiter.hold(10_000)
    handle: list[SpeechJob] = []
    answers: list[bool] = []

    async def on_event(event: SpeechEvent) -> None:
        await events(event)
        if isinstance(event, WaitingForSlot):
            answers.append(await handle[0].cancel())  # must not wait for the job (deadlock)

    events = EventLog()
    handle.append(await services.speech.start(ALICE, "Never mind.", voice_url=None, params=TTSParams(),
                                              target=TARGET, on_event=on_event))
    assert (await events.wait_for(Cancelled)).refunded is True
    assert answers == [True]
    with pytest.raises(SpeechCancelled):
        await handle[0].result()


async def test_a_probe_cancelled_before_its_post_hands_the_probe_back(
    services: Services, emulator: GatewayEmulator, scaled_clock: ScaledClock
) -> None:
    past = ManualClock(scaled_clock.now() - timedelta(hours=1))  # paused long ago: a probe is due
    await WalletGuard(services.db, past, probe_interval=600).record_insufficient_balance("HTTP 402")
    services.limiter.hold(10_000)
    events = EventLog()
    probe = await services.speech.start(ALICE, "Am I the probe?", voice_url=None, params=TTSParams(),
                                        target=TARGET, on_event=events)
    await events.wait_for(WaitingForSlot)
    bob = Requester(user_id=102, display_name="bob", guild_id=ALICE.guild_id)
    with pytest.raises(SubmissionsPaused):  # one probe at a time
        await services.speech.start(bob, "Me too?", voice_url=None, params=TTSParams(), target=TARGET)

    assert await probe.cancel() is True
    # Nothing was sent, so nothing was learned about the wallet: the next request probes now.
    second = await services.speech.start(bob, "Me now?", voice_url=None, params=TTSParams(), target=TARGET)
    assert (await services.wallet.state()).probe_in_flight
    assert await second.cancel() is True
    assert emulator.counts["submit"] == 0
