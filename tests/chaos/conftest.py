"""The gateway emulator on real time (worker processes poll it with their own clocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.gateway.emulator import GatewayEmulator
from tests.chaos.campaign import campaign_emulator_config
from tests.store.dbkit import db_target, postgres_target

__all__ = ["db_target", "emulator", "postgres_target"]


@pytest.fixture
async def emulator() -> AsyncIterator[GatewayEmulator]:
    async with GatewayEmulator(campaign_emulator_config(seed=7, faults=False)) as emu:
        yield emu


@pytest.fixture
async def faulty_emulator() -> AsyncIterator[GatewayEmulator]:
    """The campaign's emulator with its seeded faults (``campaign_emulator_config``)."""
    async with GatewayEmulator(campaign_emulator_config(seed=7)) as emu:
        yield emu
