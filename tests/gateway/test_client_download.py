"""download(): streamed, size-capped, audio/* only; the key never goes to another origin."""

from __future__ import annotations

import asyncio
import io
import wave

import aiohttp
import pytest
from pydantic import SecretStr

from bot.clock import ScaledClock
from bot.gateway import ChatterboxClient, DownloadError, TTSRequest
from bot.gateway.emulator import GatewayEmulator, Outcome
from tests.gateway.client_support import MediaServer, RecordingLimiter
from tests.gateway.conftest import ClientFactory


async def completed_media_url(client: ChatterboxClient, emulator: GatewayEmulator, text: str) -> str:
    emulator.script_submit(Outcome("complete", duration=0.5))
    accepted = await client.submit(TTSRequest(text=text))
    doc = await client.wait(accepted.request_id, text_chars=len(text), max_wait=30)
    return doc.media_urls[0]


async def test_download_from_the_emulator(client: ChatterboxClient, emulator: GatewayEmulator) -> None:
    url = await completed_media_url(client, emulator, "A short sentence to download.")
    audio = await client.download(url, max_bytes=10_000_000)
    (job,) = emulator.jobs.values()
    assert audio == job.media_bytes
    with wave.open(io.BytesIO(audio)) as wav:
        assert wav.getframerate() == 24000


async def test_content_length_over_the_cap_is_refused_before_reading(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    url = await completed_media_url(client, emulator, "Long enough text to make a WAV of some size. " * 4)
    (job,) = emulator.jobs.values()
    assert job.media_bytes is not None
    with pytest.raises(DownloadError) as caught:
        await client.download(url, max_bytes=len(job.media_bytes) - 1)
    assert caught.value.reason == "too_big" and caught.value.refund is False
    assert caught.value.user_message == "The audio is too large to download."
    assert await client.download(url, max_bytes=len(job.media_bytes)) == job.media_bytes  # cap is inclusive


async def test_announced_length_over_the_cap_is_refused_without_reading(client: ChatterboxClient) -> None:
    async with MediaServer() as media:
        async with asyncio.timeout(5):  # hang guard only: the body would trickle for 20 s
            with pytest.raises(DownloadError) as caught:
                await client.download(media.url("/huge"), max_bytes=50_000_000)
    assert caught.value.reason == "too_big"


async def test_streamed_body_without_length_is_cut_at_the_cap(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    async with MediaServer() as media:
        with pytest.raises(DownloadError) as caught:
            await client.download(media.url("/chunked"), max_bytes=100_000)  # body is 200 KiB
        assert caught.value.reason == "too_big"
        assert len(await client.download(media.url("/chunked"), max_bytes=300_000)) == 50 * 4096


async def test_an_endless_body_is_abandoned_at_the_cap(client: ChatterboxClient) -> None:
    async with MediaServer() as media:
        async with asyncio.timeout(20):  # hang guard only: reading everything would never end
            with pytest.raises(DownloadError) as caught:
                await client.download(media.url("/endless"), max_bytes=1_000_000)
        assert caught.value.reason == "too_big"


async def test_wrong_content_type_is_refused(client: ChatterboxClient) -> None:
    async with MediaServer() as media:
        with pytest.raises(DownloadError) as caught:
            await client.download(media.url("/html"), max_bytes=1_000_000)
    assert caught.value.reason == "wrong_type"
    assert caught.value.user_message == "The TTS service sent something that is not audio."


async def test_octet_stream_media_is_accepted_when_it_is_audio(client: ChatterboxClient) -> None:
    async with MediaServer() as media:
        audio = await client.download(media.url("/octet-wav"), max_bytes=1_000_000)
        assert audio.startswith(b"RIFF") and len(audio) == 1000
        with pytest.raises(DownloadError) as caught:
            await client.download(media.url("/octet-junk"), max_bytes=1_000_000)
    assert caught.value.reason == "wrong_type"


async def test_a_media_hosts_429_does_not_hold_everyone(make_client: ClientFactory) -> None:
    limiter = RecordingLimiter()
    client = make_client(limiter=limiter, get_retries=0)
    async with MediaServer() as media:
        with pytest.raises(DownloadError) as caught:
            await client.download(media.url("/busy"), max_bytes=1_000_000)
    assert caught.value.status == 429
    assert limiter.holds == []  # only the gateway's own 429 pauses every member


async def test_missing_media_is_a_download_error(client: ChatterboxClient) -> None:
    async with MediaServer() as media:
        with pytest.raises(DownloadError) as caught:
            await client.download(media.url("/missing"), max_bytes=1_000_000)
    assert (caught.value.reason, caught.value.status, caught.value.refund) == ("http", 404, False)


async def test_plain_http_media_is_refused_unless_allowed(
    session: aiohttp.ClientSession, scaled_clock: ScaledClock
) -> None:
    strict = ChatterboxClient(session, base_url="https://gateway.example", api_key=SecretStr("k"),
                              clock=scaled_clock)
    async with MediaServer() as media:
        with pytest.raises(DownloadError) as caught:
            await strict.download(media.url("/wav"), max_bytes=1_000_000)
        assert caught.value.reason == "bad_url"
        assert media.headers_seen == []  # refused before any request


async def test_the_key_is_not_sent_to_another_origin(make_client: ClientFactory) -> None:
    client = make_client(api_key=SecretStr("origin-bound-key"))
    async with MediaServer() as media:
        assert len(await client.download(media.url("/wav"), max_bytes=1_000_000)) == 1000
    (headers,) = media.headers_seen
    assert "Ocp-Apim-Subscription-Key" not in headers
    assert "origin-bound-key" not in repr(headers)


async def test_redirects_are_followed_without_carrying_the_key_elsewhere(
    session: aiohttp.ClientSession, scaled_clock: ScaledClock
) -> None:
    async with MediaServer() as gateway, MediaServer() as cdn:
        client = ChatterboxClient(session, base_url=gateway.base_url, api_key=SecretStr("hop-key"),
                                  clock=scaled_clock, allow_http=True)
        audio = await client.download(gateway.url("/redirect?to=" + cdn.url("/wav")), max_bytes=10_000)
        assert len(audio) == 1000
        with pytest.raises(DownloadError, match="redirects") as caught:
            await client.download(gateway.url("/redirect"), max_bytes=10_000)  # to itself, forever
    assert caught.value.reason == "http"
    assert len(gateway.headers_seen) == 1 + 6  # the first hop, then the loop up to the limit
    assert gateway.headers_seen[0]["Ocp-Apim-Subscription-Key"] == "hop-key"
    (cdn_headers,) = cdn.headers_seen
    assert "Ocp-Apim-Subscription-Key" not in cdn_headers


async def test_the_key_is_sent_to_the_gateways_own_origin(
    session: aiohttp.ClientSession, scaled_clock: ScaledClock
) -> None:
    async with MediaServer() as media:
        client = ChatterboxClient(session, base_url=media.base_url, api_key=SecretStr("same-origin-key"),
                                  clock=scaled_clock, allow_http=True)
        await client.download(media.url("/wav"), max_bytes=1_000_000)
    (headers,) = media.headers_seen
    assert headers["Ocp-Apim-Subscription-Key"] == "same-origin-key"
