"""The gateway emulator on real time (worker processes poll it with their own clocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.gateway.emulator import EmulatorConfig, GatewayEmulator
from tests.store.dbkit import db_target, postgres_target

__all__ = ["db_target", "emulator", "postgres_target"]


@pytest.fixture
async def emulator() -> AsyncIterator[GatewayEmulator]:
    config = EmulatorConfig(seed=7, jitter=0.0, base_seconds=0.3, per_char_seconds=0.004,
                            webhook_duplicate_rate=0.0, balance=__import__("decimal").Decimal("1000"))
    async with GatewayEmulator(config) as emu:
        yield emu
