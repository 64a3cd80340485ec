"""GETs of an accepted job are patient (retried inside the job's time), downloads are bounded.

A loopback server plays the provider's bad moments: status documents that do not parse or
name an unknown status, media that is 404 for a moment after COMPLETED, a body that trickles
forever. Every wait is on the injected clock; a ``RecordingClock`` shows the sleeps the
client chose, so the backoff after a bad answer is asserted as a decision, not a duration."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.clock import ScaledClock
from bot.gateway import ChatterboxClient, DownloadError
from bot.gateway.errors import WaitTimeout
from tests.audio.wavs import speechlike_wav
from tests.gateway.client_support import RecordingClock

WAV = speechlike_wav(0.1)


class Provider:
    def __init__(self) -> None:
        self.status_answers: list[tuple[int, str]] = []
        self.status_requests = 0
        self.media_misses = 0
        self.media_requests = 0
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    def document(self, status: str, *, media: bool = True) -> str:
        output = {"media_url": [f"{self.base_url}/media.wav"] if media else [], "media_type": "audio/wav"}
        return json.dumps({"request_id": "req-1", "status": status, "error": None, "output": output})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/requests/status/{rid}", self._status)
        app.router.add_get("/media.wav", self._media)
        app.router.add_get("/trickle.wav", self._trickle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _status(self, request: web.Request) -> web.Response:
        self.status_requests += 1
        answer = self.status_answers.pop(0) if self.status_answers else (200, self.document("COMPLETED"))
        status, body = answer
        return web.Response(status=status, text=body, content_type="application/json")

    async def _media(self, request: web.Request) -> web.Response:
        self.media_requests += 1
        if self.media_requests <= self.media_misses:
            return web.json_response({"error": "Not Found", "message": "not yet"}, status=404)
        return web.Response(body=WAV, content_type="audio/wav")

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(b"RIFF")
            while True:  # one byte now and then: each read is quick, the whole never ends
                await asyncio.sleep(0.02)
                await response.write(b"\x00")
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    server = Provider()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock(ScaledClock(200.0))


@pytest.fixture
async def client(provider: Provider, clock: RecordingClock) -> AsyncIterator[ChatterboxClient]:
    async with aiohttp.ClientSession() as session:
        yield ChatterboxClient(session, base_url=provider.base_url, api_key=SecretStr("k"),
                               clock=clock, allow_http=True, download_timeout=2.0, rng=random.Random(3))


def _waits_between_polls(clock: RecordingClock) -> list[float]:
    """The sleeps ``wait`` chose before each poll (the status GET's own retries are backoffs
    of ``_get``: with a status GET that answers 200 there are none)."""
    return list(clock.sleeps)


async def test_unreadable_and_unknown_status_documents_are_polled_through(
    client: ChatterboxClient, provider: Provider
) -> None:
    provider.status_answers = [
        (200, "{not json"), (200, provider.document("SOMETHING_NEW")), (500, "{}"),
        (200, provider.document("PROCESSING")),
    ]
    doc = await client.wait("req-1", text_chars=10, max_wait=600)
    assert doc.status.value == "COMPLETED" and provider.status_answers == []


async def test_each_unusable_answer_is_followed_by_a_backoff_not_an_immediate_poll(
    client: ChatterboxClient, provider: Provider, clock: RecordingClock
) -> None:
    provider.status_answers = [(200, "{not json"), (200, provider.document("SOMETHING_NEW")),
                               (200, "[]")]
    doc = await client.wait("req-1", text_chars=10, max_wait=600)
    assert doc.status.value == "COMPLETED" and provider.status_requests == 4
    waits = _waits_between_polls(clock)  # one before each poll
    assert len(waits) == 4
    # After the 1st, 2nd and 3rd bad answer in a row: at least half of 1, 2 and 4 seconds.
    assert [w >= floor for w, floor in zip(waits[1:], (0.5, 1.0, 2.0), strict=True)] == [True] * 3


async def test_a_completed_document_without_a_media_url_is_polled_again(
    client: ChatterboxClient, provider: Provider, clock: RecordingClock
) -> None:
    """A media URL may be published a moment after COMPLETED: such a document is unusable,
    not the end of a charged job."""
    provider.status_answers = [(200, provider.document("COMPLETED", media=False))] * 2
    doc = await client.wait("req-1", text_chars=10, max_wait=600)
    assert doc.media_urls == [f"{provider.base_url}/media.wav"] and provider.status_requests == 3
    assert all(w >= 0.5 for w in _waits_between_polls(clock)[1:])


async def test_a_status_that_stays_unreadable_ends_at_max_wait_after_few_polls(
    client: ChatterboxClient, provider: Provider
) -> None:
    provider.status_answers = [(200, "garbage")] * 1000
    with pytest.raises(WaitTimeout):
        await client.wait("req-1", text_chars=10, max_wait=120)
    # Backoffs of at least 0.5, 1, 2, 4, 8 and then 15 s: at most 12 polls in 120 s of the
    # clock, however fast loopback answers (a busy loop made thousands).
    assert 3 <= provider.status_requests <= 12


async def test_media_that_is_404_for_a_moment_is_fetched_when_it_appears(
    client: ChatterboxClient, provider: Provider
) -> None:
    provider.media_misses = 3
    assert await client.download(provider.base_url + "/media.wav", max_bytes=10**7) == WAV
    assert provider.media_requests == 4


async def test_a_download_that_trickles_forever_hits_the_total_deadline(
    client: ChatterboxClient, provider: Provider
) -> None:
    with pytest.raises(DownloadError) as caught:
        await client.download(provider.base_url + "/trickle.wav", max_bytes=10**7)
    assert caught.value.reason == "timeout" and caught.value.refund is False
