"""Spoofed and broken callbacks change nothing and never make the bot fetch an unconfirmed URL.

The emulator and the bot each run on a ``ManualClock`` here: a job stays PROCESSING until the
test moves the emulator's clock, and the bot makes no timed poll until the test moves its own,
so every spoof arrives while the bot is really waiting, and every status GET the emulator
records was caused by a callback. The
attacker is given the real token where a case needs it (taken from the provider's side), the
strongest position short of the provider itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.gateway.emulator import EmulatorConfig, EmulatorJob, GatewayEmulator, Outcome
from bot.gateway.models import TTSParams
from bot.services import Services
from bot.speech.events import DeliveryTarget, Requester
from bot.speech.service import SpeechJob
from bot.store.tables import push_callbacks
from tests.gateway.client_support import MediaServer
from tests.web.conftest import open_services

ALICE = Requester(user_id=101, display_name="alice", guild_id=5001)
TARGET = DeliveryTarget(kind="file", channel_id=7001)
SETTINGS = {"public_base_url": "http://127.0.0.1:9", "chatterbox_push_fallback_seconds": 3000.0}
DURATION = 10.0


@pytest.fixture
def emulator_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def bot_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def held_emulator(emulator_clock: ManualClock) -> AsyncIterator[GatewayEmulator]:
    config = EmulatorConfig(seed=9, jitter=0.0, webhook_duplicate_rate=0.0, allow_http_webhooks=True,
                            clock=emulator_clock)
    async with GatewayEmulator(config) as emu:
        yield emu


@pytest.fixture
async def services(held_emulator: GatewayEmulator, database_url: str,
                   bot_clock: ManualClock) -> AsyncIterator[Services]:
    async with await open_services(held_emulator, database_url, bot_clock, **SETTINGS) as built:
        yield built


async def processing(services: Services, emulator: GatewayEmulator) -> tuple[SpeechJob, EmulatorJob]:
    emulator.script_submit(Outcome("complete", duration=DURATION))
    job = await services.speech.start(ALICE, "Hold on, please.", voice_url=None, params=TTSParams(),
                                      target=TARGET)
    await emulator.wait_until(lambda: any(j.status == "PROCESSING" for j in emulator.jobs.values()))
    (provider_job,) = emulator.jobs.values()
    assert services.push is not None
    async with asyncio.timeout(10):  # a hang guard: the bot starts listening right after the 202
        while not services.push.watching(provider_job.request_id):  # noqa: ASYNC110 (a yield, no timer)
            await asyncio.sleep(0)
    await services.push.idle()  # the token's row has its request_id
    return job, provider_job


async def rows(services: Services) -> list[tuple[Any, ...]]:
    async with services.db.read() as conn:
        return [tuple(r) for r in (await conn.execute(select(push_callbacks))).all()]


async def finish(job: SpeechJob, provider_job: EmulatorJob, emulator_clock: ManualClock,
                 emulator: GatewayEmulator, bot_clock: ManualClock | None = None) -> bytes:
    """Let the provider finish the job; with ``bot_clock``, also let the bot's next poll come."""
    emulator_clock.advance(DURATION)
    await emulator.wait_for_status(provider_job.request_id, "COMPLETED")
    if bot_clock is not None:
        bot_clock.advance(60.0)
    return (await job.result()).audio


def callback_url(services: Services, token: str) -> str:
    assert services.web is not None
    return f"{services.web.base_url}/callbacks/chatterbox/{token}"


def completed_document(emulator: GatewayEmulator, job: EmulatorJob, media_url: str) -> dict[str, Any]:
    document = emulator.status_document(job.request_id)
    document.update(status="COMPLETED", output={"media_url": [media_url], "media_type": "audio/wav"},
                    completed_at="2026-01-01 12:00:05")
    return document


async def test_a_wrong_token_is_404_and_changes_nothing(
    services: Services, held_emulator: GatewayEmulator, emulator_clock: ManualClock,
    http: aiohttp.ClientSession,
) -> None:
    job, provider_job = await processing(services, held_emulator)
    before = await rows(services)
    async with MediaServer() as media:
        document = completed_document(held_emulator, provider_job, media.base_url + "/wav")
        assert provider_job.webhook_url is not None
        real = provider_job.webhook_url.rsplit("/", 1)[1]
        near_miss = real[:-1] + ("Z" if real[-1] != "Z" else "Y")  # one character off, never equal
        for token in ["A" * 32, "short", "x" * 300, near_miss]:
            async with http.post(callback_url(services, token), json=document) as resp:
                assert resp.status == 404
        assert await rows(services) == before
        assert (await finish(job, provider_job, emulator_clock, held_emulator)).startswith(b"RIFF")
        # No GET before the real completion, and the forged URL was never requested.
        assert [status for _, status in provider_job.status_polls] == ["COMPLETED"]
        assert media.headers_seen == []


async def test_the_right_token_with_another_request_id_is_404(
    services: Services, held_emulator: GatewayEmulator, emulator_clock: ManualClock,
    http: aiohttp.ClientSession,
) -> None:
    job, provider_job = await processing(services, held_emulator)
    assert provider_job.webhook_url is not None
    document = held_emulator.status_document(provider_job.request_id)
    document.update(request_id="someone-elses-request", status="COMPLETED")
    before = await rows(services)
    async with http.post(provider_job.webhook_url, json=document) as resp:
        assert resp.status == 404
    assert await rows(services) == before
    await finish(job, provider_job, emulator_clock, held_emulator)
    assert [status for _, status in provider_job.status_polls] == ["COMPLETED"]


async def test_a_forged_completed_document_never_makes_the_bot_fetch_its_url(
    services: Services, held_emulator: GatewayEmulator, emulator_clock: ManualClock,
    bot_clock: ManualClock, http: aiohttp.ClientSession,
) -> None:
    job, provider_job = await processing(services, held_emulator)
    assert provider_job.webhook_url is not None
    async with MediaServer() as media:
        forged = completed_document(held_emulator, provider_job, media.base_url + "/wav")
        async with http.post(provider_job.webhook_url, json=forged) as resp:
            assert resp.status == 200  # the right token: accepted, then checked
        await held_emulator.wait_until(lambda: len(provider_job.status_polls) == 1)
        assert provider_job.status_polls[0][1] == "PROCESSING"  # the status GET refuted it
        assert not job.done()
        audio = await finish(job, provider_job, emulator_clock, held_emulator, bot_clock)
        assert audio == provider_job.media_bytes  # the confirmed document's media only
        assert media.headers_seen == []  # the forged URL was never requested


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"request_id": 5}', b"", b"\xff\xfe"])
async def test_malformed_bodies_are_400_and_change_nothing(
    services: Services, held_emulator: GatewayEmulator, emulator_clock: ManualClock,
    http: aiohttp.ClientSession, body: bytes,
) -> None:
    job, provider_job = await processing(services, held_emulator)
    assert provider_job.webhook_url is not None
    before = await rows(services)
    async with http.post(provider_job.webhook_url, data=body,
                         headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    assert await rows(services) == before
    await finish(job, provider_job, emulator_clock, held_emulator)
    assert [status for _, status in provider_job.status_polls] == ["COMPLETED"]


async def test_a_10_mb_body_is_refused_unread(
    services: Services, held_emulator: GatewayEmulator, emulator_clock: ManualClock,
    http: aiohttp.ClientSession,
) -> None:
    job, provider_job = await processing(services, held_emulator)
    assert provider_job.webhook_url is not None
    before = await rows(services)
    huge = b'{"request_id": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    for token_url in (provider_job.webhook_url, callback_url(services, "B" * 32)):
        try:
            async with http.post(token_url, data=huge, headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 413
        except aiohttp.ClientOSError:
            pass  # the server may close the connection while a body that size is still being sent
    assert await rows(services) == before
    await finish(job, provider_job, emulator_clock, held_emulator)
    assert [status for _, status in provider_job.status_polls] == ["COMPLETED"]


async def test_a_flood_of_callbacks_costs_at_most_one_status_get(
    services: Services, held_emulator: GatewayEmulator, emulator_clock: ManualClock,
    bot_clock: ManualClock, http: aiohttp.ClientSession,
) -> None:
    job, provider_job = await processing(services, held_emulator)
    assert provider_job.webhook_url is not None
    async with MediaServer() as media:
        forged = completed_document(held_emulator, provider_job, media.base_url + "/wav")

        async def post(url: str) -> int:
            async with http.post(url, json=forged) as resp:
                return resp.status

        wrong = [callback_url(services, f"{n:032d}") for n in range(500)]
        statuses = await asyncio.gather(*(post(u) for u in [provider_job.webhook_url] * 500 + wrong))
        assert set(statuses[:500]) == {200} and set(statuses[500:]) == {404}
        await held_emulator.wait_until(lambda: len(provider_job.status_polls) >= 1)
        assert [status for _, status in provider_job.status_polls] == ["PROCESSING"]  # refuted once
        assert not job.done() and media.headers_seen == []
        audio = await finish(job, provider_job, emulator_clock, held_emulator, bot_clock)
        assert audio == provider_job.media_bytes and media.headers_seen == []


async def test_no_callback_token_reaches_the_log(
    services: Services, held_emulator: GatewayEmulator, emulator_clock: ManualClock,
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    job, provider_job = await processing(services, held_emulator)
    assert provider_job.webhook_url is not None
    token = provider_job.webhook_url.rsplit("/", 1)[1]
    async with http.post(provider_job.webhook_url, data=b"{broken") as resp:
        assert resp.status == 400
    await finish(job, provider_job, emulator_clock, held_emulator)
    await held_emulator.wait_until(lambda: any(d.ok for d in held_emulator.webhook_deliveries))
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "callbacks/chatterbox/<redacted>" in text  # the access log saw the callbacks ...
    assert token not in text  # ... but never the token
