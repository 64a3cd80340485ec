"""The image's HEALTHCHECK command against the bot's own HTTP server (bot/web.py)."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from bot.clock import ScaledClock
from bot.gateway.emulator import GatewayEmulator
from tests.web.conftest import open_services


async def test_the_healthcheck_passes_against_the_real_healthz(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    async with await open_services(emulator, database_url, scaled_clock) as services:
        assert services.web is not None
        port = services.web.base_url.rsplit(":", 1)[1]
        env = {k: v for k, v in os.environ.items() if k not in ("HTTP_HOST",)} | {"HTTP_PORT": port}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.healthcheck", env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
    assert proc.returncode == 0
    line = out.decode().strip()
    assert line.startswith("healthy: ")
    assert json.loads(line.removeprefix("healthy: "))["database"] is True
