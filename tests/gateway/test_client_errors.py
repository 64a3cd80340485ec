"""Every gateway error -> its type, user message and refund flag; Retry-After; no double POST.

POSTs are counted at the emulator (``counts["submit"]``): a POST that may have reached the
gateway is never sent twice (DESIGN rule 2); only a 429 (refused) is retried.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import SecretStr

from bot.gateway import (
    BadRequest,
    ChatterboxClient,
    Forbidden,
    GatewayUnreachable,
    InsufficientBalance,
    JobStatus,
    RateLimited,
    ServerError,
    TTSRequest,
    Unauthorized,
)
from bot.gateway.emulator import GatewayEmulator, Outcome
from tests.gateway.client_support import RecordingClock, RecordingLimiter, closed_port_base_url
from tests.gateway.conftest import ClientFactory

HELLO = TTSRequest(text="Hello there.")


async def test_400_is_bad_request_refunded_with_the_gateway_reason(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    emulator.script_submit(Outcome("http_400", error="Model not found."))
    with pytest.raises(BadRequest) as caught:
        await client.submit(HELLO)
    assert (caught.value.status, caught.value.refund) == (400, True)
    assert caught.value.user_message == BadRequest.default_user_message
    assert "Model not found" in str(caught.value)  # the provider's words: for the log only
    assert emulator.counts["submit"] == 1 and not emulator.jobs


async def test_401_is_unauthorized_refunded(make_client: ClientFactory, emulator: GatewayEmulator) -> None:
    client = make_client(api_key=SecretStr("not-a-valid-key"))
    with pytest.raises(Unauthorized) as caught:
        await client.submit(HELLO)
    assert (caught.value.status, caught.value.refund) == (401, True)
    # Only a 402 alerts the moderators; a 401 must not claim that anyone was told.
    assert caught.value.user_message.endswith("only the bot's owner can fix that.")
    assert emulator.counts["submit:401"] == 1


async def test_402_is_insufficient_balance_refunded(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    emulator.set_balance(Decimal("0"))
    with pytest.raises(InsufficientBalance) as caught:
        await client.submit(HELLO)
    error = caught.value
    assert (error.status, error.refund, error.required) == (402, True, "0.01")
    assert error.user_message == InsufficientBalance.default_user_message
    assert not emulator.jobs and emulator.balance == Decimal("0")


async def test_403_is_forbidden_refunded(make_client: ClientFactory, emulator: GatewayEmulator) -> None:
    client = make_client(api_key=SecretStr("forbidden-key"))
    with pytest.raises(Forbidden) as caught:
        await client.submit(HELLO)
    assert (caught.value.status, caught.value.refund) == (403, True)
    assert "refused access" in caught.value.user_message


async def test_429_is_retried_after_retry_after_seconds_then_succeeds(
    client: ChatterboxClient, emulator: GatewayEmulator, recording_clock: RecordingClock,
    limiter: RecordingLimiter,
) -> None:
    emulator.script_submit(Outcome("http_429", retry_after=3), Outcome("complete", duration=0.5))
    accepted = await client.submit(HELLO)
    assert accepted.status is JobStatus.QUEUED
    assert emulator.counts["submit"] == 2 and len(emulator.jobs) == 1
    assert recording_clock.sleeps == [3.0]
    assert limiter.holds == [3.0]  # everyone is held, not just this request


async def test_429_with_an_http_date_is_relative_to_the_clock(
    client: ChatterboxClient, emulator: GatewayEmulator, recording_clock: RecordingClock
) -> None:
    emulator.script_submit(Outcome("http_429", retry_after=5, retry_after_date=True), "complete")
    await client.submit(HELLO)
    (slept,) = recording_clock.sleeps
    assert 3.0 <= slept <= 5.0  # the date has whole seconds; our clock moved on a little


async def test_repeated_429_raises_rate_limited_refunded_after_a_couple_of_retries(
    client: ChatterboxClient, emulator: GatewayEmulator, recording_clock: RecordingClock
) -> None:
    emulator.script_submit(*[Outcome("http_429", retry_after=2)] * 3)
    with pytest.raises(RateLimited) as caught:
        await client.submit(HELLO)
    error = caught.value
    assert (error.status, error.refund, error.retry_after) == (429, True, 2.0)
    assert error.user_message == "The TTS service is busy right now; please try again in about 2 seconds."
    assert emulator.counts["submit"] == 3 and not emulator.jobs
    assert recording_clock.sleeps == [2.0, 2.0]


async def test_429_longer_than_max_retry_after_is_not_waited_for(
    make_client: ClientFactory, emulator: GatewayEmulator, recording_clock: RecordingClock,
    limiter: RecordingLimiter,
) -> None:
    client = make_client(max_retry_after=60)
    emulator.script_submit(Outcome("http_429", retry_after=3600, retry_after_date=True))
    with pytest.raises(RateLimited) as caught:
        await client.submit(HELLO)
    assert caught.value.retry_after == 60.0  # bounded
    assert "about 60 minutes" in caught.value.user_message  # the gateway's own wait, told honestly
    assert emulator.counts["submit"] == 1 and recording_clock.sleeps == []
    assert limiter.holds == [60.0]


async def test_500_on_submit_is_not_retried_and_not_refunded(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    emulator.script_submit("http_500")
    with pytest.raises(ServerError) as caught:
        await client.submit(HELLO)
    assert (caught.value.status, caught.value.refund) == (500, False)
    assert emulator.counts["submit"] == 1


async def test_connection_dropped_after_the_job_was_created_is_not_reposted(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    emulator.script_submit("drop_after")
    with pytest.raises(GatewayUnreachable) as caught:
        await client.submit(HELLO)
    assert caught.value.may_have_reached is True and caught.value.refund is False
    assert emulator.counts["submit"] == 1
    (job,) = emulator.jobs.values()
    assert job.charged  # this is why it must not be sent again


async def test_connection_dropped_before_an_answer_is_charged_maybe(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    emulator.script_submit("drop_before")
    with pytest.raises(GatewayUnreachable) as caught:
        await client.submit(HELLO)
    # we cannot know the gateway did nothing: no retry, no refund
    assert caught.value.may_have_reached is True and caught.value.refund is False
    assert emulator.counts["submit"] == 1


async def test_timeout_after_sending_is_not_reposted(
    make_client: ClientFactory, emulator: GatewayEmulator
) -> None:
    client = make_client(http_timeout=0.2)  # real seconds; the emulator answers after 5 scaled = 0.5 real
    emulator.script_submit("slow")
    with pytest.raises(GatewayUnreachable) as caught:
        await client.submit(HELLO)
    assert caught.value.may_have_reached is True and caught.value.refund is False
    # The request was sent; on a loaded machine the emulator may take it up only after the
    # client gave up: wait for it to arrive, then check it arrived once and was never re-sent.
    await emulator.wait_until(lambda: emulator.counts["submit"] >= 1 and len(emulator.jobs) >= 1)
    assert emulator.counts["submit"] == 1 and len(emulator.jobs) == 1


async def test_connection_refused_is_refunded(make_client: ClientFactory) -> None:
    client = make_client(base_url=await closed_port_base_url())
    with pytest.raises(GatewayUnreachable) as caught:
        await client.submit(HELLO)
    assert caught.value.may_have_reached is False and caught.value.refund is True
    assert caught.value.user_message == "Couldn't reach the TTS service."


# --- GET retries -------------------------------------------------------------------------


async def test_status_recovers_from_500s_with_jittered_backoff(
    client: ChatterboxClient, emulator: GatewayEmulator, recording_clock: RecordingClock
) -> None:
    emulator.script_submit(Outcome("complete", duration=0.5))
    accepted = await client.submit(HELLO)
    await emulator.wait_for_status(accepted.request_id)
    emulator.script_status("http_500", "http_500", "ok")
    doc = await client.status(accepted.request_id)
    assert doc.status is JobStatus.COMPLETED
    assert emulator.counts["status:500"] == 2 and emulator.counts["status:200"] == 1
    first, second = recording_clock.sleeps
    assert 0 <= first <= 0.5 and 0 <= second <= 1.0  # full jitter under base * 2**attempt


async def test_status_recovers_from_dropped_connections(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    emulator.script_submit(Outcome("complete", duration=0.5))
    accepted = await client.submit(HELLO)
    emulator.script_status("drop", "drop", "ok")
    doc = await client.wait(accepted.request_id, text_chars=12, max_wait=30)
    assert doc.status is JobStatus.COMPLETED
    assert emulator.counts["status:dropped"] == 2


async def test_status_429_waits_retry_after_and_holds_the_read_budget_only(
    client: ChatterboxClient, emulator: GatewayEmulator, recording_clock: RecordingClock,
    limiter: RecordingLimiter, status_limiter: RecordingLimiter,
) -> None:
    emulator.script_submit(Outcome("complete", duration=0.5))
    accepted = await client.submit(HELLO)
    emulator.script_status(Outcome("http_429", retry_after=2), "ok")
    await client.status(accepted.request_id)
    assert recording_clock.sleeps == [2.0] and status_limiter.holds == [2.0]
    assert limiter.holds == []  # members' submissions are not slowed by a read 429
    assert emulator.counts["status:429"] == 1


async def test_status_gives_up_after_get_retries_without_refund(
    make_client: ClientFactory, emulator: GatewayEmulator, recording_clock: RecordingClock
) -> None:
    client = make_client(get_retries=3)
    emulator.script_submit(Outcome("complete", duration=0.5))
    accepted = await client.submit(HELLO)
    emulator.script_status(*["http_500"] * 4)
    with pytest.raises(ServerError) as caught:
        await client.status(accepted.request_id)
    assert caught.value.refund is False  # the job exists; it may complete and be charged
    assert emulator.counts["status"] == 4 and len(recording_clock.sleeps) == 3
    bounds = [0.5, 1.0, 2.0]
    assert all(0 <= slept <= bound for slept, bound in zip(recording_clock.sleeps, bounds, strict=True))


async def test_a_401_while_polling_is_not_refunded(
    client: ChatterboxClient, make_client: ClientFactory, emulator: GatewayEmulator
) -> None:
    accepted = await client.submit(HELLO)
    other = make_client(api_key=SecretStr("rotated-key"))
    with pytest.raises(Unauthorized) as caught:
        await other.status(accepted.request_id)
    assert caught.value.refund is False and emulator.counts["status:401"] == 1
