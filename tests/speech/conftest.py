"""Fixtures: the gateway emulator and the services sharing one ``ScaledClock`` (20x real
time, so a 20 s job takes 1 real second while every timestamp on both sides agrees), and a
real SQLite file database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import ScaledClock
from bot.config import Settings
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator
from bot.services import Services
from tests.speech.support import speech_settings

SCALE = 20.0


@pytest.fixture
def scaled_clock() -> ScaledClock:
    return ScaledClock(SCALE)


@pytest.fixture
async def emulator(scaled_clock: ScaledClock) -> AsyncIterator[GatewayEmulator]:
    config = EmulatorConfig(seed=11, jitter=0.0, webhook_duplicate_rate=0.0, clock=scaled_clock)
    async with GatewayEmulator(config) as emu:
        yield emu


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}"


@pytest.fixture
def settings(emulator: GatewayEmulator, database_url: str) -> Settings:
    return speech_settings(emulator, database_url)


@pytest.fixture
async def services(settings: Settings, scaled_clock: ScaledClock) -> AsyncIterator[Services]:
    async with await Services.open(settings, clock=scaled_clock) as built:
        yield built
