"""How fast voice playback starts: "audio available" -> first Opus frame out of FFmpeg.

A 30 s, 24 kHz mono WAV (the gateway emulator's test signal) is served over loopback HTTP by
a tiny aiohttp server. For each way of starting, the time from "the audio is available" to
the first Opus audio packet produced by ``discord.FFmpegOpusAudio`` is measured, N times,
and the median is printed against the target (< 150 ms):

* stream (pipe):  GET the URL and feed the body into FFmpeg's stdin as it arrives.
* stream (URL):   give FFmpeg the URL and let it download.
* baseline:       download the whole file first, then start FFmpeg on the bytes.
* bot path:       the bytes are already in memory (the speech pipeline hands the voice
                  player each chunk's WAV), through the player's own ``ClipOpusSource``.

And end to end through the test suite's voice server (``tests/sandbox``): the time from a
member's ``/speak output:voice`` to the first Opus audio packet the voice server decrypts,
with the bot not yet in voice (the join handshake included) and already in the channel,
next to ``/speak output:file`` to the file being posted (what a member gets without voice).

"Available" means: the media URL is known (the job COMPLETED) for the first three, the WAV
bytes are in hand for the bot path. Every run is repeated on a link throttled to
``--throttle-mbps`` (default 8 Mbit/s, a modest connection) to show what streaming buys
when the download is not instant. Not a test: it prints figures and asserts nothing.

    .venv/bin/python bench/voice_start.py [--runs 7] [--throttle-mbps 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import discord
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.audio import find_ffmpeg, wav_info
from bot.gateway.emulator.audio import render_test_signal
from bot.playback.clip import VoiceClip
from cogs.voice.player import _OUTPUT_OPTIONS, OPUS_SILENCE, ClipOpusSource

TARGET_MS = 150.0
SEND_BLOCK = 16 * 1024
#: Tell FFmpeg the input is WAV and to start after a small probe: by default it reads ~200 KB
#: (probing and stream analysis) before the first frame, which on a slow link costs time.
WAV_INPUT = "-f wav -probesize 32 -analyzeduration 0"
_HEADERS = (b"OpusHead", b"OpusTags")


# --------------------------------------------------------------------------- the server


def make_app(wav: bytes) -> web.Application:
    """``/clip.wav`` at full speed; ``/clip.wav?bps=N`` paced to N bytes per second."""

    async def clip(request: web.Request) -> web.StreamResponse:
        bps = float(request.query.get("bps", "0"))
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        response.content_length = len(wav)
        await response.prepare(request)
        start = time.perf_counter()
        try:
            for offset in range(0, len(wav), SEND_BLOCK):
                await response.write(wav[offset : offset + SEND_BLOCK])
                if bps:
                    due = start + (offset + SEND_BLOCK) / bps
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass  # the client stopped reading once it had its first frame
        return response

    app = web.Application()
    app.router.add_get("/clip.wav", clip)
    return app


# --------------------------------------------------------------------------- sources


class ByteFeed:
    """A blocking byte stream written from the loop and read by FFmpeg's stdin writer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._buffer = bytearray()
        self._eof = False

    def write(self, data: bytes) -> None:
        with self._cond:
            self._buffer += data
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        with self._cond:
            while not self._buffer and not self._eof:
                self._cond.wait()
            n = len(self._buffer) if size < 0 else min(size, len(self._buffer))
            data = bytes(self._buffer[:n])
            del self._buffer[:n]
            return data


class FedOpusAudio(discord.FFmpegOpusAudio):
    """``FFmpegOpusAudio`` whose stdin writer flushes each block (as the bot's source does)."""

    def _pipe_writer(self, source: Any) -> None:
        stdin = self._stdin
        if stdin is None:
            return
        try:
            while data := source.read(self.BLOCKSIZE):
                stdin.write(data)
                stdin.flush()
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError, ValueError):
                stdin.close()


def first_audio_packet(source: discord.AudioSource) -> float:
    """Block until the first Opus audio packet; returns ``perf_counter()`` at that moment."""
    while True:
        packet = source.read()
        if not packet:
            raise RuntimeError(f"FFmpeg produced no audio ({getattr(source, '_current_error', None)})")
        if packet != OPUS_SILENCE and not packet.startswith(_HEADERS):
            return time.perf_counter()


# --------------------------------------------------------------------------- the runs


async def stream_pipe(session: aiohttp.ClientSession, url: str, ffmpeg: str) -> float:
    start = time.perf_counter()
    feed = ByteFeed()
    source = await asyncio.to_thread(
        FedOpusAudio, feed, pipe=True, executable=ffmpeg, bitrate=64,
        before_options=WAV_INPUT, options=_OUTPUT_OPTIONS,
    )
    first = asyncio.create_task(asyncio.to_thread(first_audio_packet, source))
    try:
        async with session.get(url) as response:
            async for block in response.content.iter_any():
                feed.write(block)
                if first.done():
                    break
        feed.close()
        return (await first) - start
    finally:
        feed.close()
        await asyncio.to_thread(source.cleanup)


async def stream_url(session: aiohttp.ClientSession, url: str, ffmpeg: str) -> float:
    start = time.perf_counter()
    source = await asyncio.to_thread(
        FedOpusAudio, url, executable=ffmpeg, bitrate=64, before_options=WAV_INPUT, options=_OUTPUT_OPTIONS
    )
    try:
        return (await asyncio.to_thread(first_audio_packet, source)) - start
    finally:
        await asyncio.to_thread(source.cleanup)


async def baseline(session: aiohttp.ClientSession, url: str, ffmpeg: str) -> float:
    start = time.perf_counter()
    async with session.get(url) as response:
        data = await response.read()
    feed = ByteFeed()
    feed.write(data)
    feed.close()
    source = await asyncio.to_thread(
        FedOpusAudio, feed, pipe=True, executable=ffmpeg, bitrate=64,
        before_options=WAV_INPUT, options=_OUTPUT_OPTIONS,
    )
    try:
        return (await asyncio.to_thread(first_audio_packet, source)) - start
    finally:
        await asyncio.to_thread(source.cleanup)


async def bot_path(wav: bytes, ffmpeg: str) -> float:
    start = time.perf_counter()
    clip = VoiceClip(job_id="bench", requester_id=0, requester_name="bench", label="bench")
    clip.push(wav)
    clip.finish()
    info = clip.audio.info
    assert info is not None
    source = await asyncio.to_thread(ClipOpusSource, clip.audio.open(250), info, executable=ffmpeg)
    try:
        return (await asyncio.to_thread(first_audio_packet, source)) - start
    finally:
        await asyncio.to_thread(source.cleanup)


async def speak_to_first_packet(runs: int) -> None:
    """/speak -> first decrypted audio packet at the voice server, and /speak -> file posted."""
    import tempfile

    from tests.discord.harness import open_harness

    with tempfile.TemporaryDirectory() as tmp:
        async with open_harness(Path(tmp), settings={"voice_idle_seconds": 3600}) as h:
            await h.sandbox.move_member(h.alice, h.voice_channel)
            server = h.sandbox.voice_server
            me = h.sandbox.bot_user.id

            async def heard_after(count: int) -> None:
                await h.sandbox.wait_for(
                    lambda: len(h.sandbox.listening(h.voice_channel).audio) > count, describe="audio"
                )

            async def voice(cold: bool) -> float:
                if cold and h.guild.voice_channel_of(h.sandbox.bot_user) is not None:
                    await h.sandbox.move_member(h.guild.bot_member, None)  # start out of voice
                    await h.sandbox.wait_for(lambda: server.live_session(me) is None, describe="left")
                count = len(h.sandbox.listening(h.voice_channel).audio)
                start = time.perf_counter()
                handle = await h.speak(text="Benchmark line for voice.", output="voice")
                await heard_after(count)
                elapsed = time.perf_counter() - start
                await handle.wait_for_original(lambda m: "played in" in m.content)
                return elapsed

            async def file() -> float:
                before = len(h.audio_messages())
                start = time.perf_counter()
                await h.speak(text="Benchmark line for voice.", output="file")
                await h.sandbox.wait_for(lambda: len(h.audio_messages()) > before, describe="the file")
                return time.perf_counter() - start

            print("== /speak end to end (sandbox + gateway emulator + voice server on loopback)")
            for name, run in (
                ("/speak voice, bot not in voice: first packet heard", lambda: voice(True)),
                ("/speak voice, bot already there: first packet", lambda: voice(False)),
                ("/speak file: file posted (the peer)", file),
            ):
                med, low, high = await median_ms(run, runs)
                print(f"  {name:<52} {med:7.1f} ms  ({low:.1f}-{high:.1f})")


async def median_ms(run: Callable[[], Awaitable[float]], runs: int) -> tuple[float, float, float]:
    await run()  # warm-up (page cache, first FFmpeg start)
    times = [await run() * 1000 for _ in range(runs)]
    return statistics.median(times), min(times), max(times)


def verdict(ms: float) -> str:
    return "meets target" if ms < TARGET_MS else "over target"


async def main(runs: int, throttle_mbps: float) -> None:
    ffmpeg = await asyncio.to_thread(find_ffmpeg, None)
    if ffmpeg is None:
        print("FFmpeg not found (install it or imageio-ffmpeg); nothing to measure.")
        return
    wav = render_test_signal("x" * 500, 0.06)  # 500 characters -> 30 s
    info = wav_info(wav)
    runner = web.AppRunner(make_app(wav), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    bps = throttle_mbps * 1_000_000 / 8
    print(f"clip: {info.duration:.1f} s, {info.describe()}, {len(wav) / 1e6:.2f} MB WAV; FFmpeg: {ffmpeg}")
    print(f"time from 'audio available' to the first Opus frame, median of {runs} runs (min-max); "
          f"target < {TARGET_MS:.0f} ms\n")
    try:
        async with aiohttp.ClientSession() as session:
            for title, query in (("loopback, full speed", ""), (f"throttled to {throttle_mbps:g} Mbit/s",
                                                                 f"?bps={bps:.0f}")):
                url = f"http://127.0.0.1:{port}/clip.wav{query}"
                print(f"== {title}")
                cases: list[tuple[str, Callable[[], Awaitable[float]]]] = [
                    (
                        "(a) streaming, pipe fed as bytes arrive",
                        lambda u=url: stream_pipe(session, u, ffmpeg),
                    ),
                    ("(a) streaming, FFmpeg reads the URL", lambda u=url: stream_url(session, u, ffmpeg)),
                    ("(b) baseline: download all, then FFmpeg", lambda u=url: baseline(session, u, ffmpeg)),
                ]
                for name, run in cases:
                    med, low, high = await median_ms(run, runs)
                    print(f"  {name:<44} {med:7.1f} ms  ({low:.1f}-{high:.1f})  {verdict(med)}")
            print("== the bot's path (WAV bytes in memory -> ClipOpusSource)")
            med, low, high = await median_ms(lambda: bot_path(wav, ffmpeg), runs)
            print(f"  {'(c) in-memory chunk, as the player does it':<44} {med:7.1f} ms  "
                  f"({low:.1f}-{high:.1f})  {verdict(med)}")
    finally:
        await runner.cleanup()
    await speak_to_first_packet(runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="runs per case (median is printed)")
    parser.add_argument("--throttle-mbps", type=float, default=8.0, help="bandwidth of the throttled link")
    args = parser.parse_args()
    asyncio.run(main(max(1, args.runs), args.throttle_mbps))
