"""Helpers for the emulator's tests: HTTP calls against it and a loopback helper server.

No tests live here. The helper server plays the other parties the emulator talks to: a webhook
receiver (answers scripted status codes, records what it got) and a host of reference clips.
"""

from __future__ import annotations

import io
import json
import wave
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from bot.clock import Clock, ScaledClock
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator
from tests.gateway.client_support import closed_port_base_url

KEY_HEADER = "Ocp-Apim-Subscription-Key"


def make_config(clock: Clock | None = None, **overrides: Any) -> EmulatorConfig:
    """A deterministic config: seeded, no random duplicates, http webhooks allowed (loopback)."""
    settings: dict[str, Any] = {
        "seed": 7,
        "webhook_duplicate_rate": 0.0,
        "allow_http_webhooks": True,
        "clock": clock or ScaledClock(factor=200),
    }
    settings.update(overrides)
    return EmulatorConfig(**settings)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


async def submit(
    http: aiohttp.ClientSession,
    emulator: GatewayEmulator,
    body: Any = None,
    *,
    key: str | None = "default",
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Answer:
    """POST a submission; ``key="default"`` sends the emulator's default key, None sends none."""
    sent = {"Content-Type": "application/json", "Cache-Control": "no-cache", **(headers or {})}
    if key is not None:
        sent[KEY_HEADER] = emulator.api_key if key == "default" else key
    if raw is None:
        raw = json.dumps({"text": "Hello there."} if body is None else body).encode()
    async with http.post(emulator.submit_url, data=raw, headers=sent) as resp:
        return Answer(resp.status, await resp.json(), dict(resp.headers))


async def get_status(
    http: aiohttp.ClientSession, emulator: GatewayEmulator, request_id: str, *, key: str | None = "default"
) -> Answer:
    sent = {} if key is None else {KEY_HEADER: emulator.api_key if key == "default" else key}
    async with http.get(emulator.status_url(request_id), headers=sent) as resp:
        return Answer(resp.status, await resp.json(), dict(resp.headers))


def tiny_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x01" * 1600)
    return buffer.getvalue()


class HelperServer:
    """A loopback aiohttp server: ``/hook`` records webhook POSTs, ``/clips/*`` serves files.

    ``hook_statuses`` are the answers of the next webhook POSTs in order (then 200).
    """

    def __init__(self) -> None:
        self.received: list[tuple[CIMultiDict[str], Any]] = []
        self.hook_statuses: deque[int] = deque()
        self.clip_requests = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> HelperServer:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_get("/clips/voice.wav", self._clip(tiny_wav(), "audio/wav"))
        app.router.add_get("/clips/voice.ogg", self._clip(b"OggS" + bytes(200), "application/octet-stream"))
        app.router.add_get("/clips/page.html", self._clip(b"<html>not audio</html>", "text/html"))
        app.router.add_get("/clips/empty.wav", self._clip(b"", "application/octet-stream"))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def hook_url(self) -> str:
        return self.base_url + "/hook?secret=per-job-secret"

    def clip_url(self, name: str) -> str:
        return f"{self.base_url}/clips/{name}"

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append((CIMultiDict(request.headers), await request.json()))
        status = self.hook_statuses.popleft() if self.hook_statuses else 200
        return web.Response(status=status, text="ok")

    def _clip(self, body: bytes, content_type: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            self.clip_requests += 1
            return web.Response(body=body, headers={"Content-Type": content_type})

        return handler


async def closed_port_url() -> str:
    """An http URL on a loopback port nothing listens on (connection refused)."""
    return await closed_port_base_url() + "/voice.wav"
