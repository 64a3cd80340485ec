"""Fixtures for the bot's HTTP side: the emulator and ``Services`` with a real HTTP server on
an ephemeral loopback port, sharing one ``ScaledClock`` (20x real time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.clock import ScaledClock
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator
from bot.services import Services
from tests.speech.support import speech_settings

SCALE = 20.0


@pytest.fixture
def scaled_clock() -> ScaledClock:
    return ScaledClock(SCALE)


@pytest.fixture
async def emulator(scaled_clock: ScaledClock) -> AsyncIterator[GatewayEmulator]:
    config = EmulatorConfig(seed=5, jitter=0.0, webhook_duplicate_rate=0.0, allow_http_webhooks=True,
                            clock=scaled_clock)
    async with GatewayEmulator(config) as emu:
        yield emu


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def open_services(emulator: GatewayEmulator, database_url: str, clock: ScaledClock,
                        **overrides: object) -> Services:
    """Services with the HTTP server on a free port; with push, pointed at that port."""
    settings = speech_settings(emulator, database_url, **overrides)
    services = await Services.open(settings, clock=clock, serve_http=True, http_port=0)
    if services.push is not None:
        assert services.web is not None
        services.push.base_url = services.web.base_url
    return services
