"""Voice playback through the real cog, sandbox voice states and FFmpeg (only UDP is faked)."""

from __future__ import annotations

import asyncio

from cogs.voice.cog import Placement
from tests.audio.wavs import speechlike_wav
from tests.discord.voice_support import (
    decode_opus_packets,
    emulator_wav,
    peak,
    seconds_of,
    voice_world,
)

#: Opus packets cover the clip within this (FFmpeg adds up to ~2 frames of encoder padding).
TOLERANCE = 0.061


async def test_clip_plays_in_the_members_channel_as_decodable_opus(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        probe = w.probe(h.alice, "hello voice")
        wav = emulator_wav("Hello from the voice test, one two three.")

        placement = await w.enqueue(h.alice, probe)
        assert placement == Placement("playing")
        assert w.bot_channel() is None  # no audio yet: the bot does not sit in voice waiting
        probe.feed(wav)

        playback = await w.wait_playback(probe)
        await w.lab.wait_finished(playback)
        await probe.wait_state("played in #Lounge")
        assert probe.states == ["playing in #Lounge", "played in #Lounge"]
        assert probe.fallbacks == []
        assert w.bot_channel() is h.voice_channel
        assert h.sandbox.voice_requests[0]["channel_id"] == h.voice_channel.id
        assert h.sandbox.voice_requests[0]["self_deaf"] is True
        assert playback.error is None

        duration = seconds_of(wav)
        assert abs(playback.seconds - duration) < TOLERANCE
        pcm = await asyncio.to_thread(decode_opus_packets, playback.packets, h.bot.ffmpeg)
        assert abs(len(pcm) / 2 / 48_000 - duration) < TOLERANCE
        assert peak(pcm) > 3000  # the emulator's beeps, not silence


async def test_long_text_starts_playing_before_its_last_chunk_exists(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        first = emulator_wav("The first sentence of a long text.")
        second = emulator_wav("And the second one.")
        probe = w.probe(h.alice, "long text")
        await w.enqueue(h.alice, probe)

        probe.feed(first, finish=False)
        playback = await w.wait_playback(probe)
        frames_of_first = round(seconds_of(first) / 0.02)
        await w.lab.wait_until(lambda: len(playback.packets) >= frames_of_first - 2)
        assert not playback.finished.is_set()
        assert probe.states == ["playing in #Lounge"]

        probe.feed(second)
        await w.lab.wait_finished(playback)
        pause = h.settings.chatterbox_chunk_pause_ms / 1000
        expected = seconds_of(first) + pause + seconds_of(second)
        assert abs(playback.seconds - expected) < TOLERANCE
        await probe.wait_state("played in #Lounge")
        assert len(w.lab.playbacks) == 1  # one continuous stream, not one per chunk


async def test_speak_with_voice_output_plays_the_generated_chunks(make_harness) -> None:
    async with voice_world(make_harness, settings={"chatterbox_chunk_chars": 60}) as w:
        h = w.h
        await w.join(h.alice)
        text = "This is the first sentence of the text. Here comes a second sentence too."
        handle = await h.speak(text=text, output="voice")
        await w.lab.wait_for_playbacks(1)
        playback = w.lab.playbacks[0]
        await w.lab.wait_finished(playback)
        card = await handle.wait_for_original(lambda m: "**Voice:** played in #Lounge" in m.content)
        assert any("**Voice:** playing in #Lounge" in revision.content for revision in card.history)

        media = [job.media_bytes for job in h.emulator.jobs.values()]
        assert len(media) == 2 and all(media)
        pause = h.settings.chatterbox_chunk_pause_ms / 1000
        expected = sum(seconds_of(m) for m in media if m) + pause
        assert abs(playback.seconds - expected) < TOLERANCE
        assert h.audio_messages() == []  # output voice: no file


async def test_a_chunk_that_cannot_be_streamed_stops_playback_and_posts_the_file(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        probe = w.probe(h.alice)
        await w.enqueue(h.alice, probe.feed(emulator_wav("The first chunk is fine."), finish=False))
        playback = await w.wait_playback(probe)
        probe.feed(speechlike_wav(0.2, rate=16_000))  # a different format: not joinable
        reason = await probe.wait_fallback()
        assert reason == "its audio could not be streamed"  # the format details are in the log
        await w.lab.wait_finished(playback)
        assert playback.stopped.is_set()
        assert "played in #Lounge" not in probe.states
