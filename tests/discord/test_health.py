"""``chatterbox-bot run``'s HTTP server: ``/healthz`` reports Discord's connection (from the bot)."""

from __future__ import annotations

import socket

import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_healthz_shows_the_discord_connection_of_the_running_bot(make_harness) -> None:
    port = free_port()
    async with make_harness(start=False, settings={"http_port": port}) as h:
        bot = h.new_bot()
        bot.serve_http = True  # what run_bot does
        await h.start_bot(bot)
        await bot.wait_until_ready()
        assert bot.core.web is not None and bot.core.web.port == port
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body == {"ok": True, "discord": True, "database": True, "gateway_paused": False}
        await h.stop_bot()
        async with aiohttp.ClientSession() as http:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz"):
                    raise AssertionError("the server should be closed with the bot")
            except aiohttp.ClientConnectorError:
                pass
