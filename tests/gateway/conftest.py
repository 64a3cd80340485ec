"""Fixtures for the client's integration tests: one aiohttp session per test, the emulator on
loopback sharing a ``ScaledClock`` with the client, and a client factory.

The clock runs 10x real time: a 6 s job takes 0.6 real seconds, while every timestamp and
every sleep on both sides is in the same scaled time, so assertions read the emulator's own
records. (The ``clock`` fixture of tests/conftest.py is a ManualClock; these are separate.)
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.clock import ScaledClock
from bot.gateway import ChatterboxClient, ObservedDurations
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator
from tests.gateway.client_support import RecordingClock, RecordingLimiter

SCALE = 10.0

ClientFactory = Callable[..., ChatterboxClient]


@pytest.fixture
def scaled_clock() -> ScaledClock:
    return ScaledClock(SCALE)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def emulator_config(clock: ScaledClock, **overrides: Any) -> EmulatorConfig:
    settings: dict[str, Any] = {
        "seed": 3,
        "jitter": 0.0,
        "webhook_duplicate_rate": 0.0,
        "allow_http_webhooks": True,
        "clock": clock,
    }
    settings.update(overrides)
    return EmulatorConfig(**settings)


@pytest.fixture
async def emulator(scaled_clock: ScaledClock) -> AsyncIterator[GatewayEmulator]:
    async with GatewayEmulator(emulator_config(scaled_clock)) as emu:
        yield emu


@pytest.fixture
def recording_clock(scaled_clock: ScaledClock) -> RecordingClock:
    return RecordingClock(scaled_clock)


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def status_limiter() -> RecordingLimiter:
    """The read budget (status GETs), separate from the submissions' ``limiter``."""
    return RecordingLimiter()


@pytest.fixture
def make_client(
    session: aiohttp.ClientSession,
    emulator: GatewayEmulator,
    recording_clock: RecordingClock,
    limiter: RecordingLimiter,
    status_limiter: RecordingLimiter,
) -> ClientFactory:
    """``make_client(**overrides)``: a client for the emulator (http allowed, seeded jitter)."""

    def build(**overrides: Any) -> ChatterboxClient:
        options: dict[str, Any] = {
            "base_url": emulator.base_url,
            "api_key": SecretStr(emulator.api_key),
            "clock": recording_clock,
            "limiter": limiter,
            "status_limiter": status_limiter,
            "durations": ObservedDurations(),
            "allow_http": True,
            "http_timeout": 10,
            "rng": random.Random(0),
        }
        options.update(overrides)
        return ChatterboxClient(session, **options)

    return build


@pytest.fixture
def client(make_client: ClientFactory) -> ChatterboxClient:
    return make_client()
