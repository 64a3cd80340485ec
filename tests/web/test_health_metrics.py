"""``/healthz`` and ``/metrics`` over real HTTP; when the server runs and when it does not."""

from __future__ import annotations

import re

import aiohttp
import pytest

from bot.clock import ScaledClock
from bot.gateway.emulator import GatewayEmulator
from bot.gateway.models import TTSParams
from bot.quotas import QuotaExceeded
from bot.services import Services
from bot.speech.events import DeliveryTarget, Requester
from bot.store.database import open_database
from bot.web import WebServer
from tests.gateway.client_support import closed_port_base_url
from tests.web.conftest import open_services

ALICE = Requester(user_id=101, display_name="alice", guild_id=5001)
TARGET = DeliveryTarget(kind="file", channel_id=7001)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in ``text`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{([^}]*)\})? (\S+)$", line)
        if match and match.group(1) == name:
            got = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
            if got == wanted:
                return float(match.group(3))
    return 0.0


async def test_healthz_reports_database_and_wallet_and_no_discord_for_the_cli(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock, http: aiohttp.ClientSession
) -> None:
    async with await open_services(emulator, database_url, scaled_clock) as services:
        assert services.web is not None
        async with http.get(services.web.base_url + "/healthz") as resp:
            assert resp.status == 200
            assert await resp.json() == {"ok": True, "discord": None, "database": True,
                                         "gateway_paused": False}
        await services.wallet.record_insufficient_balance("Insufficient Balance")
        async with http.get(services.web.base_url + "/healthz") as resp:
            body = await resp.json()
        assert resp.status == 200 and body["gateway_paused"] is True  # reported, not "unhealthy"


async def test_healthz_is_503_when_discord_is_disconnected(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock, http: aiohttp.ClientSession
) -> None:
    async with await open_services(emulator, database_url, scaled_clock) as services:
        assert services.web is not None
        connected = [True]
        services.web.discord = lambda: connected[0]
        async with http.get(services.web.base_url + "/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["discord"] is True
        connected[0] = False
        async with http.get(services.web.base_url + "/healthz") as resp:
            assert resp.status == 503
            assert await resp.json() == {"ok": False, "discord": False, "database": True,
                                         "gateway_paused": False}


async def test_healthz_is_503_when_the_database_is_unreachable(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock, http: aiohttp.ClientSession
) -> None:
    async with await open_services(emulator, database_url, scaled_clock) as services:
        dead = await closed_port_base_url()
        unreachable = await open_database(dead.replace("http://", "postgresql+asyncpg://") + "/test",
                                          migrate=False)
        server = WebServer(host="127.0.0.1", port=0, db=unreachable, wallet=services.wallet,
                           metrics=services.metrics)
        await server.start()
        try:
            async with http.get(server.base_url + "/healthz") as resp:
                assert resp.status == 503
                body = await resp.json()
            assert body["database"] is False and body["ok"] is False
        finally:
            await server.close()
            await unreachable.close()


async def test_metrics_count_calls_jobs_lag_refusals_and_the_wallet(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock, http: aiohttp.ClientSession
) -> None:
    opened = await open_services(emulator, database_url, scaled_clock, quota_requests_per_day=1)
    async with opened as services:
        assert services.web is not None
        job = await services.speech.start(ALICE, "Hello there, metrics.", voice_url=None, params=TTSParams(),
                                          target=TARGET)
        await job.result()
        with pytest.raises(QuotaExceeded):
            await services.speech.start(ALICE, "Once more.", voice_url=None, params=TTSParams(),
                                        target=TARGET)
        async with http.get(services.web.base_url + "/metrics") as resp:
            assert resp.status == 200 and resp.content_type.startswith("text/plain")
            text = await resp.text()
    assert sample(text, "chatterbox_provider_calls_total", kind="submit", status="202") == 1
    assert sample(text, "chatterbox_provider_calls_total", kind="status", status="200") >= 1
    assert sample(text, "chatterbox_provider_calls_total", kind="download", status="200") == 1
    assert sample(text, "chatterbox_deliveries_total", via="poll") == 1
    assert sample(text, "chatterbox_delivery_lag_seconds_count") == 1
    assert sample(text, "chatterbox_quota_refusals_total", code="requests_per_day") == 1
    assert sample(text, "chatterbox_jobs", state="completed") == 1
    assert sample(text, "chatterbox_wallet_paused") == 0


async def test_no_server_without_serve_http_or_with_port_zero(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    from tests.speech.support import speech_settings

    settings = speech_settings(emulator, database_url)
    async with await Services.open(settings, clock=scaled_clock) as services:
        assert services.web is None  # e.g. `chatterbox-bot speak` without PUBLIC_BASE_URL
    off = speech_settings(emulator, database_url, http_port=0)
    async with await Services.open(off, clock=scaled_clock, serve_http=True) as services:
        assert services.web is None  # HTTP_PORT=0 turns it off even for `run`
