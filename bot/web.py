"""The bot's HTTP server (``aiohttp.web``, in the bot's own process and event loop).

Routes:

- ``POST /callbacks/chatterbox/{token}`` — the provider's webhook callbacks, handed to a
  ``CallbackReceiver`` (``bot.push.PushHub``); only mounted when push is on.
- ``GET /healthz`` — ``{"ok", "discord", "database", "gateway_paused"}``: 200 when Discord is
  connected (or not applicable: the CLI has no Discord) and the database answers; 503
  otherwise. A bot-wide 402 pause is reported but is not "unhealthy": the process works and
  restarting it would not bring credit back.
- ``GET /metrics`` — Prometheus text format (``bot.metrics.Metrics``).

Design decisions:

- No discord import here (the layering rule): Discord's state comes through
  ``DiscordStatus``, a zero-argument callable ``bot.app`` supplies.
- Bodies are capped (``client_max_size`` = 64 KiB): a callback is a few hundred bytes, and a
  larger body is refused with 413 before it is read into memory.
- The access log never shows a callback token: ``RedactingAccessLogger`` writes the path
  with the token replaced by ``<redacted>`` (the token is the callback's only credential).
- The server is built and closed by ``bot.services.Services``; ``port`` 0 here means "any free
  port" (tests); the setting ``HTTP_PORT=0`` (no server at all) is applied by ``Services``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Protocol

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy import text

from bot.metrics import CONTENT_TYPE_LATEST, Metrics
from bot.quotas.wallet import WalletGuard
from bot.store.database import Database

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "/callbacks/chatterbox/"
MAX_BODY_BYTES = 64 * 1024
_HEALTH_TIMEOUT = 2.0
_TOKEN_IN_PATH = re.compile(r"(/callbacks/chatterbox/)[^/?\s]+")

#: Discord's state for /healthz: True connected, False not; None = no Discord in this process.
DiscordStatus = Callable[[], bool | None]


class CallbackReceiver(Protocol):
    async def receive(self, token: str, body: bytes) -> int:
        """Handle one callback; the HTTP status to answer (200, 400, 404)."""
        ...


def redact_path(path: str) -> str:
    return _TOKEN_IN_PATH.sub(r"\1<redacted>", path)


class RedactingAccessLogger(AbstractAccessLogger):
    """aiohttp's access log, minus callback tokens."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %d %.4fs', request.remote, request.method,
                         redact_path(request.path), response.status, time)


class WebServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        db: Database,
        wallet: WalletGuard,
        metrics: Metrics,
        callbacks: CallbackReceiver | None = None,
        discord: DiscordStatus | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._db = db
        self._wallet = wallet
        self._metrics = metrics
        self._callbacks = callbacks
        self.discord = discord
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port, once started

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_route)
        if self._callbacks is not None:
            app.router.add_post(CALLBACK_PREFIX + "{token}", self._callback)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.build_app(), access_log_class=RedactingAccessLogger,
                               handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        addresses = runner.addresses  # the bound socket, to learn the port when 0 was asked
        self.port = int(addresses[0][1]) if addresses else self._port
        log.info("HTTP server listening on %s:%s", self._host, self.port)

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # --- routes ---------------------------------------------------------------------------
    async def _healthz(self, request: web.Request) -> web.Response:
        discord = self.discord() if self.discord is not None else None
        database = await self._database_ok()
        paused: bool | None = None
        if database:
            try:
                paused = (await self._wallet.state()).paused
            except Exception:
                log.warning("healthz: could not read the wallet state", exc_info=True)
        ok = database and discord is not False
        body = {"ok": ok, "discord": discord, "database": database, "gateway_paused": paused}
        return web.json_response(body, status=200 if ok else 503)

    async def _database_ok(self) -> bool:
        try:
            async with asyncio.timeout(_HEALTH_TIMEOUT):
                async with self._db.read() as conn:
                    await conn.execute(text("SELECT 1"))
            return True
        except Exception as exc:
            log.warning("healthz: database unreachable (%s)", type(exc).__name__)
            return False

    async def _metrics_route(self, request: web.Request) -> web.Response:
        try:
            await self._metrics.refresh(self._db)
        except Exception as exc:  # still serve the counters; the gauges keep their last value
            log.warning("metrics: could not read the database (%s)", type(exc).__name__)
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _callback(self, request: web.Request) -> web.Response:
        assert self._callbacks is not None
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            self._metrics.callback("too_large")
            return web.json_response({"error": "body too large"}, status=413)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._metrics.callback("too_large")
            return web.json_response({"error": "body too large"}, status=413)
        status = await self._callbacks.receive(request.match_info["token"], body)
        return web.json_response({"ok": status == 200}, status=status)
