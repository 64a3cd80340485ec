"""Settlement per gateway outcome (DESIGN rule 3), over loopback against the emulator.

Each test runs one job to its end and reads what it left: the ledger row (committed or
refunded), the job's state, the events, and the emulator's own counters (how many POSTs).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.audio import wav_info
from bot.gateway.emulator import GatewayEmulator, Outcome
from bot.gateway.errors import (
    BadRequest,
    GatewayError,
    GatewayUnreachable,
    InsufficientBalance,
    JobErrored,
    JobFailed,
    RateLimited,
    ServerError,
)
from bot.gateway.models import TTSParams
from bot.quotas import ReservationState, SubmissionsPaused
from bot.services import Services
from bot.speech.events import (
    ChunkReady,
    Completed,
    DeliveryTarget,
    Failed,
    QuotaReserved,
    Requester,
    Submitted,
)
from bot.store import JobState, PartState
from tests.speech.support import EventLog, count_rows

ALICE = Requester(user_id=101, display_name="alice", guild_id=5001)
TARGET = DeliveryTarget(kind="file", channel_id=7001)


async def start(services: Services, text: str = "Hello there, this is a test.", **kwargs: object):
    events = EventLog()
    job = await services.speech.start(
        ALICE, text, voice_url=None, params=TTSParams(), target=TARGET, on_event=events, **kwargs
    )
    return job, events


async def test_completed_job_is_committed_and_delivered_after_mark(
    services: Services, emulator: GatewayEmulator
) -> None:
    job, events = await start(services)
    result = await job.result()

    info = wav_info(result.audio)
    assert (info.sample_rate, info.channels) == (24000, 1)
    assert result.duration == pytest.approx(info.duration)
    assert result.chunks == 1 and result.cost == Decimal("0.01")
    await events.wait_for(Completed)
    kinds = events.kinds()
    assert kinds[0] == "QuotaReserved" and kinds[-1] == "Completed"
    assert kinds.index("Submitted") < kinds.index("ChunkReady") < kinds.index("Completed")
    assert "Processing" in kinds
    assert events.of(QuotaReserved)[0].plan.requests == 1
    assert events.of(Submitted)[0].submitted_chunks == 1
    assert events.of(ChunkReady)[0].audio == next(iter(emulator.jobs.values())).media_bytes

    reservation = await services.quotas.get_reservation(
        (await services.speech.get_job(job.job_id)).reservation_id  # type: ignore[union-attr]
    )
    assert reservation.state is ReservationState.COMMITTED and reservation.committed_requests == 1
    record = await services.speech.get_job(job.job_id)
    assert record is not None and record.status is JobState.COMPLETED and not record.delivered
    assert record.parts[0].status is PartState.COMPLETED and record.parts[0].request_id in emulator.jobs

    assert await services.speech.mark_delivered(job.job_id) is True
    assert await services.speech.mark_delivered(job.job_id) is False
    record = await services.speech.get_job(job.job_id)
    assert record is not None and record.status is JobState.DELIVERED and record.delivered


# outcome scripted for the POST -> (error raised, ledger state, refunded flag of Failed, POSTs seen)
CASES = {
    "failed": (Outcome("failed", duration=0.5), JobFailed, ReservationState.COMMITTED, False),
    "error": (Outcome("error", duration=0.5), JobErrored, ReservationState.REFUNDED, True),
    "http_400": (Outcome("http_400"), BadRequest, ReservationState.REFUNDED, True),
    "http_429": (Outcome("http_429", retry_after=5000), RateLimited, ReservationState.REFUNDED, True),
    "http_500": (Outcome("http_500"), ServerError, ReservationState.COMMITTED, False),
    "drop_after": (Outcome("drop_after"), GatewayUnreachable, ReservationState.COMMITTED, False),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_settlement_per_outcome(services: Services, emulator: GatewayEmulator, case: str) -> None:
    outcome, error_type, ledger_state, refunded = CASES[case]
    emulator.script_submit(outcome)
    job, events = await start(services)

    with pytest.raises(error_type) as caught:
        await job.result()
    failed = await events.wait_for(Failed)

    assert failed.refunded is refunded
    assert failed.user_message == caught.value.user_message
    assert emulator.counts["submit"] == 1  # never a second POST, whatever happened
    record = await services.speech.get_job(job.job_id)
    assert record is not None
    reservation = await services.quotas.get_reservation(record.reservation_id)  # type: ignore[arg-type]
    assert reservation.state is ledger_state
    # A failure is its own delivery: nothing is left for resume_pending.
    assert record.status is JobState.DELIVERED and record.error == failed.user_message
    assert [p.status for p in record.parts] == [
        PartState.ERROR if refunded else PartState.FAILED
    ]
    if case == "http_429":  # the client told the one shared guard: everyone waits now
        assert services.limiter.held_until is not None


async def test_drop_after_post_is_committed_and_the_emulator_charged_once(
    services: Services, emulator: GatewayEmulator
) -> None:
    emulator.script_submit("drop_after")
    before = emulator.balance
    job, _ = await start(services)
    with pytest.raises(GatewayUnreachable) as caught:
        await job.result()
    assert caught.value.may_have_reached
    assert emulator.counts["submit"] == 1 and len(emulator.jobs) == 1
    assert emulator.balance == before - Decimal("0.01")


async def test_402_pauses_the_wallet_for_everyone_and_alerts_once(
    services: Services, emulator: GatewayEmulator
) -> None:
    emulator.set_balance(0)
    job, events = await start(services)
    with pytest.raises(InsufficientBalance):
        await job.result()
    failed = await events.wait_for(Failed)
    assert failed.refunded is True
    record = await services.speech.get_job(job.job_id)
    assert record is not None
    reservation = await services.quotas.get_reservation(record.reservation_id)  # type: ignore[arg-type]
    assert reservation.state is ReservationState.REFUNDED

    state = await services.wallet.state()
    assert state.paused and state.paused_by == "gateway (402)"
    assert await services.wallet.claim_alert() is True
    assert await services.wallet.claim_alert() is False

    # Everyone is paused now, and a refused start writes nothing.
    rows = await count_rows(services.db)
    other = Requester(user_id=202, display_name="bob", guild_id=5002)
    with pytest.raises(SubmissionsPaused):
        await services.speech.start(other, "Anyone there?", voice_url=None, params=TTSParams(), target=TARGET)
    assert await count_rows(services.db) == rows
    assert emulator.counts["submit"] == 1


async def test_gateway_errors_carry_the_refund_flag_the_settlement_followed(
    services: Services, emulator: GatewayEmulator
) -> None:
    emulator.script_submit(Outcome("http_403"))
    job, events = await start(services)
    with pytest.raises(GatewayError) as caught:
        await job.result()
    assert caught.value.refund is True
    assert (await events.wait_for(Failed)).refunded is True
