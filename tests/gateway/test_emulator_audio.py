"""The emulator's output WAV and its fetching of reference clips (``audio_url``)."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

from bot.gateway.emulator import GatewayEmulator
from bot.gateway.emulator.audio import looks_like_audio, render_test_signal, signal_seconds
from tests.gateway.test_emulator_support import (
    HelperServer,
    closed_port_url,
    get_status,
    make_config,
    submit,
)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def helper() -> AsyncIterator[HelperServer]:
    async with HelperServer() as server:
        yield server


def wav_facts(data: bytes) -> tuple[int, int, int, float]:
    with wave.open(io.BytesIO(data)) as wav:
        rate = wav.getframerate()
        return rate, wav.getnchannels(), wav.getsampwidth(), wav.getnframes() / rate


async def fetch_media(http: aiohttp.ClientSession, emu: GatewayEmulator, text: str) -> bytes:
    request_id = (await submit(http, emu, {"text": text})).body["request_id"]
    await emu.wait_for_status(request_id, "COMPLETED")
    doc = (await get_status(http, emu, request_id)).body
    async with http.get(doc["output"]["media_url"][0]) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "audio/wav"
        return await resp.read()


async def test_media_is_a_24khz_mono_16bit_wav_as_long_as_the_text(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config(seconds_per_char_audio=0.06)) as emu:
        text = "The quick brown fox jumps over the lazy dog."
        data = await fetch_media(http, emu, text)

    rate, channels, width, seconds = wav_facts(data)
    assert (rate, channels, width) == (24000, 1, 2)
    assert seconds == pytest.approx(len(text) * 0.06, abs=1 / 24000)


async def test_media_is_deterministic_per_text(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        first = await fetch_media(http, emu, "Same words twice.")
        again = await fetch_media(http, emu, "Same words twice.")
        other = await fetch_media(http, emu, "Other words, too.")

    assert first == again
    assert first != other


@pytest.mark.parametrize(("text", "seconds"), [("Hi!", 0.5), ("word " * 400, 40.0)])
def test_signal_length_is_clamped(text: str, seconds: float) -> None:
    assert signal_seconds(text, 0.06) == seconds
    assert wav_facts(render_test_signal(text, 0.06))[3] == pytest.approx(seconds)


def test_signal_is_not_silent_and_spaces_are_silent() -> None:
    with wave.open(io.BytesIO(render_test_signal("a" * 10, 0.06))) as wav:
        tone = wav.readframes(wav.getnframes())
    with wave.open(io.BytesIO(render_test_signal("a" + " " * 9 + "b", 0.06))) as wav:
        gap = wav.readframes(wav.getnframes())

    assert max(abs(int.from_bytes(tone[i : i + 2], "little", signed=True)) for i in range(0, 4000, 2)) > 5000
    third = len(gap) // 6 * 2  # a third of the samples, in bytes, on a sample boundary
    assert gap[third : 2 * third] == bytes(third)
    assert gap[:third] != bytes(third)


@pytest.mark.parametrize(
    ("content_type", "head", "expected"),
    [
        ("audio/mpeg", b"\x00\x00", True),
        ("Audio/WAV; charset=binary", b"", True),
        ("application/octet-stream", b"RIFF\x00\x00\x00\x00WAVE", True),
        (None, b"OggS\x00", True),
        ("application/octet-stream", b"ID3\x04", True),
        ("application/octet-stream", b"fLaC", True),
        ("text/html", b"<html>", False),
        (None, b"", False),
    ],
)
def test_looks_like_audio(content_type: str | None, head: bytes, expected: bool) -> None:
    assert looks_like_audio(content_type, head) is expected


@pytest.mark.parametrize("clip", ["voice.wav", "voice.ogg"])
async def test_audio_url_is_fetched_and_accepted(
    http: aiohttp.ClientSession, helper: HelperServer, clip: str
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        answer = await submit(http, emu, {"text": "clone me", "audio_url": helper.clip_url(clip)})
        job = await emu.wait_for_status(answer.body["request_id"])

        assert job.status == "COMPLETED"
        assert job.reference_bytes is not None and job.reference_bytes > 0
        assert helper.clip_requests == 1
        assert emu.counts["audio_fetch"] == 1 and emu.counts["audio_fetch:200"] == 1


@pytest.mark.parametrize(
    ("clip", "message"),
    [
        ("page.html", "audio_url is not an audio file (Content-Type text/html)."),
        ("empty.wav", "audio_url is empty, not an audio file."),
        ("missing.wav", "audio_url could not be fetched: HTTP 404."),
    ],
)
async def test_unusable_audio_url_fails_the_job_and_is_charged(
    http: aiohttp.ClientSession, helper: HelperServer, clip: str, message: str
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        request_id = (await submit(http, emu, {"text": "clone me", "audio_url": helper.clip_url(clip)})).body[
            "request_id"
        ]
        await emu.wait_for_status(request_id)
        doc = (await get_status(http, emu, request_id)).body

        assert doc["status"] == "FAILED"
        assert doc["error"] == message
        assert emu.jobs[request_id].charged
        assert emu.balance == Decimal("9.99")


async def test_oversized_audio_url_fails_the_job(http: aiohttp.ClientSession, helper: HelperServer) -> None:
    async with GatewayEmulator(make_config(audio_max_bytes=100)) as emu:
        body = {"text": "clone me", "audio_url": helper.clip_url("voice.wav")}
        job = await emu.wait_for_status((await submit(http, emu, body)).body["request_id"])

        assert (job.status, job.error) == ("FAILED", "audio_url is larger than 100 bytes.")


async def test_unreachable_audio_url_fails_the_job(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        url = await closed_port_url()
        request_id = (await submit(http, emu, {"text": "clone me", "audio_url": url})).body["request_id"]
        job = await emu.wait_for_status(request_id)

        assert job.status == "FAILED"
        assert job.error is not None and job.error.startswith("audio_url could not be fetched:")
        assert emu.counts["audio_fetch:error"] == 1
