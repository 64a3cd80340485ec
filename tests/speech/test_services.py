"""``Services``: one assembly for the bot and the CLI; what it owns it closes, in order."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bot.clock import ScaledClock
from bot.config import ConfigError
from bot.gateway.emulator import GatewayEmulator
from bot.services import Services
from bot.store import open_database
from tests.speech.support import speech_settings


def _exists(path: Path) -> bool:
    return path.exists()


async def test_missing_api_key_fails_before_anything_is_opened(
    emulator: GatewayEmulator, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}"
    settings = speech_settings(emulator, url, chatterbox_api_key=None)
    with pytest.raises(ConfigError, match="CHATTERBOX_API_KEY"):
        await Services.open(settings)
    assert not _exists(tmp_path / "data")


async def test_owned_parts_are_closed_and_injected_ones_left_open(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url)
    owned = await Services.open(settings, clock=scaled_clock)
    assert owned.db.dialect == "sqlite" and owned.clock is scaled_clock
    assert await owned.db.current_revision() is not None  # migrated at start
    await owned.close()
    await owned.close()  # idempotent
    assert owned.session.closed

    async with aiohttp.ClientSession() as session:
        database = await open_database(database_url)
        try:
            async with await Services.open(settings, session=session, database=database) as services:
                assert services.session is session and services.db is database
            assert not session.closed
            assert await database.current_revision() is not None  # still usable
        finally:
            await database.close()


async def test_one_rate_guard_is_shared_by_the_client_and_the_pipeline(
    services: Services, emulator: GatewayEmulator
) -> None:
    limiter = services.client._limiter  # the wiring itself is under test
    assert limiter is services.limiter
    assert services.client._status_limiter is services.status_limiter is not services.limiter
