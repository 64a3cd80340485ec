"""The image's HEALTHCHECK (`python -m bot.healthcheck`) against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.healthcheck import healthz_url
from tests.gateway.client_support import closed_port_base_url


@pytest.fixture
async def healthz() -> AsyncIterator[tuple[int, dict[str, int]]]:
    """A /healthz that answers with the status the test puts in the returned dict."""
    state = {"status": 200}

    async def handler(_request: web.Request) -> web.Response:
        return web.json_response({"discord": state["status"] == 200}, status=state["status"])

    app = web.Application()
    app.router.add_get("/healthz", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, state
    finally:
        await runner.cleanup()


async def _run_check(**env: str) -> tuple[int, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("HTTP_HOST", "HTTP_PORT")} | env
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.healthcheck", env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert err == b"", err
    assert proc.returncode is not None
    return proc.returncode, out.decode().strip()


async def test_healthy_bot_passes(healthz: tuple[int, dict[str, int]]) -> None:
    port, _ = healthz
    status, line = await _run_check(HTTP_HOST="0.0.0.0", HTTP_PORT=str(port))
    assert status == 0
    assert line == 'healthy: {"discord": true}'


async def test_unhealthy_bot_fails_with_the_reason(healthz: tuple[int, dict[str, int]]) -> None:
    port, state = healthz
    state["status"] = 503
    status, line = await _run_check(HTTP_PORT=str(port))
    assert status == 1
    assert line == 'unhealthy (503): {"discord": false}'


async def test_no_server_fails() -> None:
    port = (await closed_port_base_url()).rsplit(":", 1)[1]
    status, line = await _run_check(HTTP_PORT=port)
    assert status == 1
    assert line.startswith(f"no answer from http://127.0.0.1:{port}/healthz")


def test_addresses() -> None:
    assert healthz_url({}) == "http://127.0.0.1:8080/healthz"
    assert healthz_url({"HTTP_PORT": "0"}) is None
    assert healthz_url({"HTTP_HOST": "::", "HTTP_PORT": "9000"}) == "http://[::1]:9000/healthz"
    assert healthz_url({"HTTP_HOST": "10.1.2.3"}) == "http://10.1.2.3:8080/healthz"
    assert healthz_url({"HTTP_HOST": "fd00::5"}) == "http://[fd00::5]:8080/healthz"


async def test_server_turned_off_is_reported_not_failed() -> None:
    status, line = await _run_check(HTTP_PORT="0")
    assert (status, line) == (0, "the HTTP server is off (HTTP_PORT=0): health is not checked")
