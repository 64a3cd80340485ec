"""ClipOpusSource: real FFmpeg turning a clip's chunks into Opus packets as they arrive."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.audio import find_ffmpeg, wav_info
from bot.gateway.emulator.audio import render_test_signal
from bot.playback.clip import VoiceClip
from cogs.voice.player import OPUS_SILENCE, ClipOpusSource
from tests.discord.voice_support import decode_opus_packets, opus_packet_seconds, peak

FFMPEG = find_ffmpeg()
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="FFmpeg is not available")


def drain(source: ClipOpusSource, *, until: int | None = None) -> list[bytes]:
    """Read audio packets (skipping fillers) to the end, or until ``until`` packets."""
    packets: list[bytes] = []
    while until is None or len(packets) < until:
        packet = source.read()
        if not packet:
            break
        if packet != OPUS_SILENCE:
            packets.append(packet)
    return packets


async def test_packets_follow_the_chunks_and_decode_to_the_clip() -> None:
    assert FFMPEG is not None
    first = render_test_signal("The first chunk of speech.", 0.06)
    second = render_test_signal("The second chunk.", 0.06)
    clip = VoiceClip("j", 1, "alice", "x")
    clip.push(first)
    source = await asyncio.to_thread(ClipOpusSource, clip.audio.open(250), wav_info(first), executable=FFMPEG)
    try:
        head = await asyncio.to_thread(drain, source, until=round(wav_info(first).duration / 0.02))
        clip.push(second)
        clip.finish()
        rest = await asyncio.to_thread(drain, source)
    finally:
        await asyncio.to_thread(source.cleanup)
    packets = head + rest
    expected = wav_info(first).duration + 0.25 + wav_info(second).duration
    assert abs(sum(map(opus_packet_seconds, packets)) - expected) < 0.061
    assert source.audio_packets == len(packets)
    assert source._current_error is None
    pcm = await asyncio.to_thread(decode_opus_packets, packets, FFMPEG)
    assert abs(len(pcm) / 2 / 48_000 - expected) < 0.061
    assert peak(pcm) > 3000


async def test_while_waiting_for_audio_read_returns_silence_instead_of_blocking() -> None:
    assert FFMPEG is not None
    wav = render_test_signal("Short.", 0.06)
    clip = VoiceClip("j", 1, "alice", "x")
    clip.push(wav)
    source = await asyncio.to_thread(ClipOpusSource, clip.audio.open(0), wav_info(wav), executable=FFMPEG)
    try:
        await asyncio.to_thread(drain, source, until=round(wav_info(wav).duration / 0.02))
        fillers_before = source.filler_packets
        reads = await asyncio.to_thread(lambda: [source.read() for _ in range(10)])
        assert reads.count(OPUS_SILENCE) >= 5  # at most a few flushed tail packets, then silence
        assert source.filler_packets >= fillers_before + 5
    finally:
        await asyncio.to_thread(source.cleanup)


async def test_cleanup_mid_stream_ends_reads_and_leaves_no_threads() -> None:
    assert FFMPEG is not None
    wav = render_test_signal("Cut short.", 0.06)
    clip = VoiceClip("j", 1, "alice", "x")
    clip.push(wav)  # never finished: FFmpeg's input stays open
    before = set(threading.enumerate())
    source = await asyncio.to_thread(ClipOpusSource, clip.audio.open(0), wav_info(wav), executable=FFMPEG)
    await asyncio.to_thread(drain, source, until=5)
    await asyncio.to_thread(source.cleanup)
    assert source.reader.closed
    started = [
        t for t in threading.enumerate()
        if t not in before and t.name.startswith(("opus-pump", "popen-stdin-writer"))
    ]
    assert len(started) <= 2
    for thread in started:
        await asyncio.to_thread(thread.join, 5)
    assert not any(t.is_alive() for t in started)


async def test_a_failing_ffmpeg_is_reported_to_the_player() -> None:
    assert FFMPEG is not None
    wav = render_test_signal("Bad input.", 0.06)
    clip = VoiceClip("j", 1, "alice", "x")
    clip.push(wav)
    clip.finish()
    info = wav_info(wav)
    # Claim a sample rate FFmpeg rejects, so it exits with an error.
    bad = type(info)(0, info.channels, info.sample_width, info.frames, info.duration, info.size)
    source = await asyncio.to_thread(ClipOpusSource, clip.audio.open(0), bad, executable=FFMPEG)
    try:
        packets = await asyncio.to_thread(drain, source)
    finally:
        await asyncio.to_thread(source.cleanup)
    assert packets == []
    assert source._current_error is not None and "FFmpeg exited with code" in str(source._current_error)
