"""When voice cannot play, the file is posted with a one-line reason (through /speak)."""

from __future__ import annotations

import logging

import discord
import pytest

from tests.discord.voice_support import emulator_wav, voice_world

WAV = emulator_wav("A short clip.")


async def test_member_not_in_voice_gets_the_file_with_the_reason(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        handle = await h.speak(text="Nobody is listening in voice.", output="voice")
        card = await handle.wait_for_original(lambda m: "done" in m.content)
        assert "Posted instead because you are not in a voice channel." in card.content
        [audio] = await h.sandbox.wait_for(lambda: h.audio_messages(), describe="the audio file")
        assert audio.attachments[0].filename.endswith(".wav")
        assert h.sandbox.voice_requests == [] and w.lab.playbacks == []


async def test_missing_speak_permission_posts_the_file_instead(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        no_speak = {h.guild.bot_role: discord.PermissionOverwrite(speak=False)}
        muted = h.guild.add_voice_channel("Quiet", overwrites=no_speak)
        await h.sandbox.sync()
        await w.join(h.alice, muted)
        handle = await h.speak(text="I cannot be heard in there.", output="voice")
        card = await handle.wait_for_original(lambda m: "done" in m.content)
        assert "Posted instead because I don't have permission to speak in #Quiet (Speak)." in card.content
        assert len(h.audio_messages()) == 1
        assert h.sandbox.voice_requests == []  # it did not even join


async def test_ffmpeg_missing_posts_the_file_and_logs_clearly(
    make_harness, caplog: pytest.LogCaptureFixture
) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        h.bot.ffmpeg = None
        with caplog.at_level(logging.WARNING, logger="cogs.voice.player"):
            handle = await h.speak(text="No encoder on this machine.", output="voice")
            card = await handle.wait_for_original(lambda m: "done" in m.content)
        reason = "voice chat is not available on this bot"  # why exactly is the operator's, in the log
        assert f"Posted instead because {reason}." in card.content
        assert len(h.audio_messages()) == 1
        assert any("voice playback is off: FFmpeg was not found" in r.getMessage() for r in caplog.records)
        assert h.sandbox.voice_requests == []


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RuntimeError("davey library needed in order to use voice"),
         "voice encryption (DAVE) is not available on this bot"),
        (TimeoutError(), "Discord did not let me join #Lounge within 8 s"),
        (discord.ClientException("voice handshake failed"), "I couldn't connect to #Lounge"),
    ],
)
async def test_a_failed_join_falls_back_and_the_next_clip_joins_cleanly(
    make_harness, error: BaseException, reason: str
) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        w.lab.connect_error = error
        failed = w.probe(h.alice)
        assert (await w.enqueue(h.alice, failed.feed(WAV))).kind == "playing"
        assert await failed.wait_fallback() == reason
        assert failed.states == []
        assert w.guild.voice_client is None  # nothing half-open is left behind

        w.lab.connect_error = None
        works = w.probe(h.alice)
        await w.enqueue(h.alice, works.feed(WAV))
        await works.wait_state("played in #Lounge")
        assert w.bot_channel() is h.voice_channel


async def test_a_failed_join_through_speak_posts_the_file(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        w.lab.connect_error = RuntimeError("davey library needed in order to use voice")
        handle = await h.speak(text="Encryption is missing.", output="voice")
        card = await handle.wait_for_original(
            lambda m: "Posted instead because voice encryption (DAVE) is not available" in m.content
            and "done" in m.content
        )
        assert "posted below" in card.content
        await h.sandbox.wait_for(lambda: h.audio_messages(), describe="the audio file")
