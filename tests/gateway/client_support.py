"""Helpers for the client's tests (no tests here).

- ``RecordingClock`` wraps the clock shared with the emulator and records every sleep the
  client asks for, so tests assert *what it decided to wait* (Retry-After, backoff) rather
  than measuring time.
- ``RecordingLimiter`` is a trivial implementation of the client's ``RateLimiter`` protocol.
- ``MediaServer`` is a loopback aiohttp server for the download edge cases the emulator does
  not produce (wrong content type, chunked bodies without Content-Length, endless bodies) and
  for recording the headers a request arrived with.
- ``DrivenClock`` and ``drive`` run the emulator and the client on one manual clock that
  jumps from deadline to deadline, for exact timing assertions over real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web

from bot.clock import Clock, ManualClock
from bot.gateway import SUBMIT_PATH

T = TypeVar("T")


class RecordingClock:
    """Delegates to ``inner``; remembers each ``sleep`` the client requested."""

    def __init__(self, inner: Clock) -> None:
        self.inner = inner
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.inner.now()

    def monotonic(self) -> float:
        return self.inner.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.inner.sleep(seconds)


class RecordingLimiter:
    def __init__(self) -> None:
        self.acquired: list[str] = []
        self.holds: list[float] = []

    async def acquire(self, key: str) -> None:
        self.acquired.append(key)

    def hold(self, seconds: float) -> None:
        self.holds.append(seconds)


class MediaServer:
    """Routes: ``/wav`` (audio/wav, 1000 bytes), ``/html`` (text/html), ``/octet-wav`` and
    ``/octet-junk`` (application/octet-stream: a WAV, and not audio), ``/busy`` (429,
    Retry-After 7), ``/chunked`` (audio/wav,
    200 KiB without Content-Length), ``/endless`` (audio/wav, never ends), ``/huge`` (announces
    1 GB, then trickles), ``/missing`` (404), ``/redirect?to=URL`` (302 to URL;
    without ``to``, to itself), and a submit route that answers 202 with a garbled body.
    ``headers_seen`` holds each request's headers."""

    def __init__(self) -> None:
        self.headers_seen: list[dict[str, str]] = []
        self.endless_chunks_sent = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> MediaServer:
        app = web.Application()
        app.router.add_get("/wav", self._fixed(b"RIFF" + bytes(996), "audio/wav"))
        app.router.add_get("/html", self._fixed(b"<html>oops</html>", "text/html"))
        app.router.add_get("/octet-wav", self._fixed(b"RIFF" + bytes(996), "application/octet-stream"))
        app.router.add_get("/octet-junk", self._fixed(b"<html>" + bytes(994), "application/octet-stream"))
        app.router.add_get("/busy", self._busy)
        app.router.add_get("/missing", self._missing)
        app.router.add_get("/chunked", self._chunked)
        app.router.add_get("/endless", self._endless)
        app.router.add_get("/huge", self._huge)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_post(SUBMIT_PATH, self._garbled_accept)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return self.base_url + path

    def _fixed(self, body: bytes, content_type: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            self.headers_seen.append(dict(request.headers))
            return web.Response(body=body, headers={"Content-Type": content_type})

        return handler

    async def _busy(self, request: web.Request) -> web.Response:
        self.headers_seen.append(dict(request.headers))
        return web.json_response({"error": "Too Many Requests", "message": "slow down"}, status=429,
                                 headers={"Retry-After": "7"})

    async def _missing(self, request: web.Request) -> web.Response:
        self.headers_seen.append(dict(request.headers))
        return web.json_response({"error": "Not Found", "message": "expired"}, status=404)

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        self.headers_seen.append(dict(request.headers))
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(50):
            await response.write(bytes(4096))
        await response.write_eof()
        return response

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        self.headers_seen.append(dict(request.headers))
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            while True:  # until the client hangs up
                await response.write(bytes(16384))
                self.endless_chunks_sent += 1
                await asyncio.sleep(0)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    async def _redirect(self, request: web.Request) -> web.Response:
        self.headers_seen.append(dict(request.headers))
        return web.Response(status=302, headers={"Location": request.query.get("to", "/redirect")})

    async def _garbled_accept(self, request: web.Request) -> web.Response:
        self.headers_seen.append(dict(request.headers))
        return web.Response(status=202, text="<html>Accepted</html>", content_type="text/html")

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        self.headers_seen.append(dict(request.headers))
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        response.content_length = 10**9
        await response.prepare(request)
        try:
            for _ in range(2000):  # a trickle: reading it all would take "forever"
                await response.write(bytes(1024))
                await asyncio.sleep(0.01)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response


async def closed_port_base_url() -> str:
    """An http base URL on a loopback port nothing listens on (connection refused)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return f"http://127.0.0.1:{port}"


class DrivenClock:
    """A ``ManualClock`` shared by the emulator and the client, moved only by ``drive``.

    It knows every pending sleep's deadline, so ``drive`` can jump straight to the next one
    once everything that should be asleep is asleep: each status poll and each completion
    then happens at its exact scheduled instant, whatever the machine's speed.
    """

    def __init__(self) -> None:
        self.inner = ManualClock()
        self.deadlines: list[float] = []

    def now(self) -> datetime:
        return self.inner.now()

    def monotonic(self) -> float:
        return self.inner.monotonic()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await self.inner.sleep(seconds)
            return
        deadline = self.inner.monotonic() + seconds
        self.deadlines.append(deadline)
        try:
            await self.inner.sleep(seconds)
        finally:
            self.deadlines.remove(deadline)


async def drive(clock: DrivenClock, work: Awaitable[T], asleep: Callable[[], int]) -> T:
    """Run ``work``; whenever ``asleep()`` sleepers are parked on ``clock``, jump to the earliest
    deadline. Between jumps it only yields to the event loop (loopback I/O completes there);
    the real-time timeout guards against a hung test, it is not a measurement."""
    task = asyncio.ensure_future(work)
    try:
        async with asyncio.timeout(30):
            while not task.done():
                await asyncio.sleep(0)
                if clock.deadlines and len(clock.deadlines) >= asleep():
                    clock.inner.advance(min(clock.deadlines) - clock.monotonic())
            return task.result()
    finally:
        task.cancel()
