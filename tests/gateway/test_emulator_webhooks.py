"""Webhook callbacks from the emulator to a loopback receiver: modes, retries, duplicates."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.clock import ManualClock
from bot.gateway.emulator import GatewayEmulator, Outcome
from tests.gateway.test_emulator_support import HelperServer, closed_port_url, make_config, submit


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def helper() -> AsyncIterator[HelperServer]:
    async with HelperServer() as server:
        yield server


async def test_terminal_mode_posts_the_final_status_document_once(
    http: aiohttp.ClientSession, helper: HelperServer
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        answer = await submit(http, emu, headers={"X-Webhook-URL": helper.hook_url})
        request_id = answer.body["request_id"]
        await emu.wait_for_status(request_id, "COMPLETED")
        await emu.wait_until(lambda: len(emu.webhook_deliveries) == 1)

        (delivery,) = emu.webhook_deliveries
        assert delivery.ok and delivery.attempt == 1 and not delivery.duplicate
        assert delivery.url == helper.hook_url
        assert delivery.body == emu.status_document(request_id)
        assert delivery.body["status"] == "COMPLETED"
        headers, body = helper.received[0]
        assert body == delivery.body
        assert headers["X-Request-Id"] == request_id
        assert headers["Content-Type"] == "application/json"
        assert len(helper.received) == 1, "earlier statuses would have been delivered first"
        assert emu.counts["webhook"] == 1 and emu.counts["webhook:200"] == 1


async def test_terminal_mode_reports_failures_with_the_error(
    http: aiohttp.ClientSession, helper: HelperServer
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        emu.script_submit(Outcome("failed", error="unsupported language"))
        await submit(http, emu, headers={"X-Webhook-URL": helper.hook_url, "X-Webhook-Mode": "terminal"})
        await emu.wait_until(lambda: len(emu.webhook_deliveries) == 1)

        body = emu.webhook_deliveries[0].body
        assert (body["status"], body["error"], body["output"]) == ("FAILED", "unsupported language", None)


async def test_sync_mode_posts_every_status_change_in_order(
    http: aiohttp.ClientSession, helper: HelperServer
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        headers = {"X-Webhook-URL": helper.hook_url, "X-Webhook-Mode": "sync"}
        request_id = (await submit(http, emu, headers=headers)).body["request_id"]
        await emu.wait_until(lambda: len(emu.webhook_deliveries) == 3)

        assert [d.body["status"] for d in emu.webhook_deliveries] == ["QUEUED", "PROCESSING", "COMPLETED"]
        assert [body["status"] for _, body in helper.received] == ["QUEUED", "PROCESSING", "COMPLETED"]
        assert {d.body["request_id"] for d in emu.webhook_deliveries} == {request_id}
        assert emu.webhook_deliveries[-1].body["output"]["media_type"] == "audio/wav"
        assert all(d.headers["X-Webhook-Mode"] == "sync" for d in emu.webhook_deliveries)


async def test_the_job_keeps_the_request_headers_without_the_key(
    http: aiohttp.ClientSession, helper: HelperServer
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        headers = {"X-Webhook-URL": helper.hook_url, "X-Webhook-Mode": "sync"}
        job = emu.jobs[(await submit(http, emu, headers=headers)).body["request_id"]]

        assert job.request_headers["x-webhook-url"] == helper.hook_url
        assert job.request_headers["X-WEBHOOK-MODE"] == "sync"
        assert job.request_headers["Cache-Control"] == "no-cache"
        assert job.webhook_url == helper.hook_url and job.webhook_mode == "sync"
        assert job.request_headers["Ocp-Apim-Subscription-Key"].startswith("sha256:")
        assert emu.api_key not in repr(job)


async def test_failed_deliveries_are_retried_with_backoff(
    http: aiohttp.ClientSession, helper: HelperServer
) -> None:
    helper.hook_statuses.extend([500, 503])
    async with GatewayEmulator(make_config(webhook_backoff_seconds=1.0)) as emu:
        await submit(http, emu, headers={"X-Webhook-URL": helper.hook_url})
        await emu.wait_until(lambda: len(emu.webhook_deliveries) == 3)

        deliveries = emu.webhook_deliveries
        assert [d.attempt for d in deliveries] == [1, 2, 3]
        assert [d.http_status for d in deliveries] == [500, 503, 200]
        assert deliveries[1].sent_mono - deliveries[0].sent_mono >= 1.0 - 1e-3
        assert deliveries[2].sent_mono - deliveries[1].sent_mono >= 2.0 - 1e-3
        assert len(helper.received) == 3


async def test_delivery_gives_up_after_the_last_attempt(
    http: aiohttp.ClientSession, helper: HelperServer, clock: ManualClock
) -> None:
    helper.hook_statuses.extend([500, 500, 500])
    config = make_config(clock, webhook_max_attempts=2, webhook_backoff_seconds=5.0)
    async with GatewayEmulator(config) as emu:
        emu.script_submit(Outcome("complete", duration=0.0))
        await submit(http, emu, headers={"X-Webhook-URL": helper.hook_url})
        await emu.wait_until(lambda: len(emu.webhook_deliveries) == 1)
        assert clock.sleepers == 1, "the sender waits out its backoff"

        clock.advance(5.0)
        await emu.wait_until(lambda: len(emu.webhook_deliveries) == 2)

        assert clock.sleepers == 0, "no third attempt is scheduled"
        assert [d.ok for d in emu.webhook_deliveries] == [False, False]
        assert emu.counts["webhook:500"] == 2


async def test_unreachable_https_receiver_is_recorded_as_an_error(http: aiohttp.ClientSession) -> None:
    url = (await closed_port_url()).replace("http://", "https://")
    config = make_config(allow_http_webhooks=False, webhook_max_attempts=1)
    async with GatewayEmulator(config) as emu:
        answer = await submit(http, emu, headers={"X-Webhook-URL": url})
        await emu.wait_until(lambda: len(emu.webhook_deliveries) == 1)

        (delivery,) = emu.webhook_deliveries
        assert answer.status == 202
        assert delivery.http_status is None and delivery.error
        assert emu.counts["webhook:error"] == 1


async def test_duplicates_are_delivered_when_the_rate_says_so(
    http: aiohttp.ClientSession, helper: HelperServer
) -> None:
    async with GatewayEmulator(make_config(webhook_duplicate_rate=1.0)) as emu:
        await submit(http, emu, headers={"X-Webhook-URL": helper.hook_url})
        await emu.wait_until(lambda: len(emu.webhook_deliveries) == 2)

        first, second = emu.webhook_deliveries
        assert (first.duplicate, second.duplicate) == (False, True)
        assert first.body == second.body
        assert helper.received[0][1] == helper.received[1][1]
        assert helper.received[1][0]["X-Webhook-Attempt"] == "2"
