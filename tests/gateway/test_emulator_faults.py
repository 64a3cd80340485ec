"""Failure injection, billing and the rate limit of the emulator, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

from bot.clock import ManualClock
from bot.gateway.emulator import GatewayEmulator, Outcome
from tests.gateway.test_emulator_support import get_status, make_config, submit

INSUFFICIENT = {"error": "Insufficient Balance", "message": "Insufficient balance. Required: $0.01"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [
        ("http_400", 400, "Bad Request"),
        ("http_402", 402, "Insufficient Balance"),
        ("http_403", 403, "Forbidden"),
        ("http_429", 429, "Too Many Requests"),
        ("http_500", 500, "Internal Server Error"),
    ],
)
async def test_scripted_http_answers_create_no_job(
    http: aiohttp.ClientSession, kind: str, status: int, error: str
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        emu.script_submit(kind)
        answer = await submit(http, emu)
        after = await submit(http, emu)

        assert answer.status == status
        assert set(answer.body) == {"error", "message"}
        assert answer.body["error"] == error
        assert after.status == 202, "a script entry answers exactly one request"
        assert len(emu.jobs) == 1
        assert emu.balance == Decimal("9.99")


async def test_scripted_402_has_the_provider_body(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        emu.script_submit("http_402")
        answer = await submit(http, emu)

        assert answer.body == INSUFFICIENT


async def test_drop_before_closes_the_connection_and_creates_no_job(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        emu.script_submit("drop_before")

        with pytest.raises(aiohttp.ServerDisconnectedError):
            await submit(http, emu)

        assert emu.jobs == {}
        assert emu.balance == Decimal("10.00")
        assert emu.counts["submit"] == 1 and emu.counts["submit:dropped"] == 1


async def test_drop_after_creates_and_charges_a_job_the_client_never_hears_of(
    http: aiohttp.ClientSession,
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        emu.script_submit("drop_after")

        with pytest.raises(aiohttp.ServerDisconnectedError):
            await submit(http, emu, {"text": "lost answer"})

        (job,) = emu.jobs.values()
        assert job.text == "lost answer" and job.charged
        assert emu.balance == Decimal("9.99")
        assert (await emu.wait_for_status(job.request_id)).status == "COMPLETED"
        assert job.charged
        assert emu.counts["submit:dropped"] == 1 and emu.counts["submit:202"] == 0


async def test_slow_submit_answers_only_after_slow_seconds(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with GatewayEmulator(make_config(clock, slow_seconds=5.0)) as emu:
        emu.script_submit("slow")
        pending = asyncio.create_task(submit(http, emu))
        await emu.wait_until(lambda: len(emu.jobs) == 1)
        assert emu.counts["submit:202"] == 0

        clock.advance(5.0)
        answer = await pending

        assert answer.status == 202
        assert answer.body["request_id"] in emu.jobs


@pytest.mark.parametrize(("kind", "status"), [("failed", "FAILED"), ("error", "ERROR")])
async def test_scripted_job_outcomes_with_custom_error(
    http: aiohttp.ClientSession, kind: str, status: str
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        emu.script_submit(Outcome(kind, error="voice reference too noisy"))
        request_id = (await submit(http, emu)).body["request_id"]
        await emu.wait_for_status(request_id)

        doc = (await get_status(http, emu, request_id)).body

        assert doc["status"] == status
        assert doc["error"] == "voice reference too noisy"
        assert doc["output"] is None
        assert doc["completed_at"] is not None


async def test_billing_charges_completed_and_failed_but_not_error(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config(balance=Decimal("1.00"), price=Decimal("0.25"))) as emu:
        emu.script_submit("complete", "failed", "error")
        ids = [(await submit(http, emu)).body["request_id"] for _ in range(3)]
        assert emu.balance == Decimal("0.25"), "the price is reserved at submit"

        jobs = [await emu.wait_for_status(request_id) for request_id in ids]

        assert [job.status for job in jobs] == ["COMPLETED", "FAILED", "ERROR"]
        assert [job.charged for job in jobs] == [True, True, False]
        assert emu.balance == Decimal("0.50")


async def test_402_when_the_balance_is_below_the_price(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config(balance=Decimal("0.01"))) as emu:
        assert (await submit(http, emu)).status == 202
        empty = await submit(http, emu)
        emu.set_balance(Decimal("0.005"))
        short = await submit(http, emu)
        emu.set_balance("0.02")
        refilled = await submit(http, emu)

        assert empty.status == 402 and empty.body == INSUFFICIENT
        assert short.status == 402
        assert refilled.status == 202
        assert len(emu.jobs) == 2
        assert emu.counts["submit:402"] == 2


async def test_402_message_names_the_configured_price(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config(balance=Decimal("0"), price=Decimal("0.035"))) as emu:
        answer = await submit(http, emu)

        assert answer.body["message"] == "Insufficient balance. Required: $0.035"


async def test_rate_limit_answers_429_with_retry_after_and_refills(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    config = make_config(clock, rate_per_second=0.5, rate_burst=2, api_keys=("key-a", "key-b"))
    async with GatewayEmulator(config) as emu:
        allowed = [await submit(http, emu, key="key-a") for _ in range(2)]
        limited = await submit(http, emu, key="key-a")
        other_key = await submit(http, emu, key="key-b")

        assert [a.status for a in allowed] == [202, 202]
        assert limited.status == 429
        assert limited.headers["Retry-After"] == "2"
        assert limited.body["error"] == "Too Many Requests"
        assert other_key.status == 202, "the bucket is per key"
        assert len(emu.jobs) == 3

        clock.advance(2.0)
        assert (await submit(http, emu, key="key-a")).status == 202


async def test_status_polls_are_not_rate_limited_unless_configured(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with GatewayEmulator(make_config(clock, rate_per_second=1.0, rate_burst=1)) as emu:
        request_id = (await submit(http, emu)).body["request_id"]
        polls = [await get_status(http, emu, request_id) for _ in range(3)]
        assert [p.status for p in polls] == [200, 200, 200]

    config = make_config(clock, rate_per_second=1.0, rate_burst=1, rate_limit_status=True)
    async with GatewayEmulator(config) as emu:
        request_id = (await submit(http, emu)).body["request_id"]
        assert (await get_status(http, emu, request_id)).status == 429


async def test_scripted_status_answers(http: aiohttp.ClientSession, clock: ManualClock) -> None:
    async with GatewayEmulator(make_config(clock)) as emu:
        request_id = (await submit(http, emu)).body["request_id"]
        # aiohttp's client retries an idempotent request once after a disconnect, so a client
        # sees a dropped poll only when two drops come in a row.
        emu.script_status(
            "http_500",
            Outcome("http_429", retry_after=3),
            Outcome("http_429", retry_after=30, retry_after_date=True),
            "drop",
            "drop",
            "ok",
        )

        server_error = await get_status(http, emu, request_id)
        seconds = await get_status(http, emu, request_id)
        dated = await get_status(http, emu, request_id)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get_status(http, emu, request_id)
        ok = await get_status(http, emu, request_id)

        assert server_error.status == 500 and set(server_error.body) == {"error", "message"}
        assert (seconds.status, seconds.headers["Retry-After"]) == (429, "3")
        assert dated.status == 429
        when = email.utils.parsedate_to_datetime(dated.headers["Retry-After"])
        assert (when - clock.now()).total_seconds() == pytest.approx(30, abs=1)
        assert ok.status == 200
        assert len(emu.jobs[request_id].status_polls) == 1, "only answered polls are recorded"
        assert emu.counts["status"] == 6
        assert emu.counts["status:dropped"] == 2 and emu.counts["status:500"] == 1


async def test_slow_status_answers_after_slow_seconds(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with GatewayEmulator(make_config(clock, slow_seconds=4.0)) as emu:
        request_id = (await submit(http, emu)).body["request_id"]
        emu.script_status("slow")
        pending = asyncio.create_task(get_status(http, emu, request_id))
        await emu.wait_until(lambda: emu.counts["status"] == 1)
        assert emu.counts["status:200"] == 0

        clock.advance(4.0)
        answer = await pending

        assert answer.status == 200
        assert emu.jobs[request_id].status_polls[0][0] == 4.0


async def test_scripts_reject_unknown_outcomes() -> None:
    emu = GatewayEmulator(make_config())
    with pytest.raises(ValueError, match="unknown outcome"):
        emu.script_submit("explode")
    with pytest.raises(ValueError, match="unknown outcome"):
        emu.script_status("failed")


async def test_random_rates_fail_error_500_and_drop(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        emu.set_rates(fail_rate=1.0)
        failed = (await submit(http, emu)).body["request_id"]
        emu.set_rates(fail_rate=0.0, error_rate=1.0)
        errored = (await submit(http, emu)).body["request_id"]
        emu.set_rates(error_rate=0.0, http500_rate=1.0)
        server_error = await submit(http, emu)
        emu.set_rates(http500_rate=0.0, drop_rate=1.0)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await submit(http, emu)

        assert (await emu.wait_for_status(failed)).status == "FAILED"
        assert (await emu.wait_for_status(errored)).status == "ERROR"
        assert server_error.status == 500
        assert emu.counts["submit:dropped"] == 1


async def test_set_rates_rejects_unknown_names_and_bad_values() -> None:
    emu = GatewayEmulator(make_config())
    with pytest.raises(ValueError, match="unknown rate"):
        emu.set_rates(explode_rate=0.5)
    with pytest.raises(ValueError, match="probability"):
        emu.set_rates(fail_rate=1.5)
    assert emu.config.fail_rate == 0.0


async def test_the_same_seed_gives_the_same_outcomes(http: aiohttp.ClientSession) -> None:
    async def run() -> list[tuple[str, str, float]]:
        config = make_config(seed=1234, fail_rate=0.3, error_rate=0.3, http500_rate=0.2)
        async with GatewayEmulator(config) as emu:
            answers = [await submit(http, emu, {"text": f"line {n}"}) for n in range(20)]
            ids = [a.body["request_id"] for a in answers if a.status == 202]
            jobs = [await emu.wait_for_status(request_id) for request_id in ids]
            return [(j.request_id, j.status, j.duration) for j in jobs] + [
                ("answer", str(a.status), 0.0) for a in answers
            ]

    first, second = await run(), await run()

    assert first == second
    statuses = {status for _, status, _ in first}
    assert {"COMPLETED", "FAILED", "ERROR", "500"} <= statuses
