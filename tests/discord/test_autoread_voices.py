"""Hands-free reading in members' default voices, through the sandbox and the emulator.

The voice library keeps clips in a storage channel here (no ``PUBLIC_BASE_URL``): the job's
``audio_url`` is the current CDN link of the stored file, which the emulator fetches, exactly
as for ``/speak``. What the provider was asked for is read from the emulator's received jobs.
"""

from __future__ import annotations

import logging

import pytest

from bot.autoread.reader import ReadState
from bot.gateway.emulator.model import EmulatorJob
from tests.discord.autoread_support import Reading, reading_world
from tests.discord.harness import Harness
from tests.discord.voices_support import add_voice, answer, voices

BUILT_IN = {"exaggeration": 0.5, "temperature": 0.8, "cfg": 0.5}


def received(h: Harness, text: str) -> EmulatorJob:
    [job] = [j for j in h.emulator.jobs.values() if j.text == text]
    return job


async def read_aloud(r: Reading, who, text: str) -> EmulatorJob:
    message = await r.say(who, text)
    await r.wait_marks(message, ["✅"])
    read = r.read_of(message)
    assert read is not None and read.state is ReadState.DONE
    return received(r.h, text)


async def test_messages_are_read_in_the_members_default_voice_and_tuning(
    make_harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.autoread.reader")
    async with reading_world(make_harness) as r:
        h = r.h
        storage = h.guild.add_text_channel("voice-clips")
        await answer(await voices(h, "storage", h.mo, channel=storage), "Voice clips will be kept in")
        await add_voice(h, "Everyday")
        [voice] = await h.bot.core.voices.owned(h.guild.id, h.alice.id)
        await answer(
            await voices(h, "default", name="everyday", exaggeration=0.9, cfg=1.5), "Your /speak defaults"
        )
        await r.opt_in(h.alice, h.bob)
        await r.w.join(h.alice)
        await r.w.join(h.bob)
        status = await r.command("me", h.alice, choice="status")
        assert "read in your default voice “Everyday” (exaggeration 0.9, temperature 0.8, cfg 1.5)" in status

        job = await read_aloud(r, h.alice, "Read me in my own voice, please.")
        [file] = h.messages(storage)[0].attachments
        assert job.audio_url == file.url  # what /speak sends for this voice
        assert job.params == {"exaggeration": 0.9, "temperature": 0.8, "cfg": 1.5}
        assert job.reference_bytes == len(await h.bot.core.voices.clip(voice.id) or b"")
        assert h.emulator.counts["audio_fetch:200"] == 1

        # A member without a default is read in the built-in voice and tuning.
        job = await read_aloud(r, h.bob, "I have no saved voice at all.")
        assert job.audio_url is None and job.params == BUILT_IN
        assert "read in the built-in voice" in await r.command("me", h.bob, choice="status")

        # Revoked: the next message is still read, in the built-in voice with her own tuning
        # (the revoked voice's clip is never fetched again), and the log says why.
        await answer(await voices(h, "revoke", h.mo, name="everyday", reason="impersonation"), "Revoked")
        job = await read_aloud(r, h.alice, "My voice was revoked, read me anyway.")
        assert job.audio_url is None
        assert job.params == {"exaggeration": 0.9, "temperature": 0.8, "cfg": 1.5}
        assert h.emulator.counts["audio_fetch:200"] == 1
        notes = [m for rec in caplog.records if "read in the built-in voice" in (m := rec.getMessage())]
        assert len(notes) == 1 and "revoked" in notes[0] and str(h.alice.id) in notes[0]
        status = await r.command("me", h.alice, choice="status")
        assert "read in the built-in voice" in status and "Your default voice was not used" in status

        jobs = [(j["text"], j["voice_url"] is not None) for j in await h.job_rows()]
        assert jobs == [
            ("Read me in my own voice, please.", True),
            ("I have no saved voice at all.", False),
            ("My voice was revoked, read me anyway.", False),
        ]


async def test_a_deleted_default_voice_reads_in_the_built_in_voice(make_harness) -> None:
    async with reading_world(make_harness) as r:
        h = r.h
        storage = h.guild.add_text_channel("voice-clips")
        await answer(await voices(h, "storage", h.mo, channel=storage), "Voice clips will be kept in")
        await add_voice(h, "Gone soon", h.bob)
        await answer(
            await voices(h, "default", h.bob, name="gone soon", temperature=0.3), "Your /speak defaults"
        )
        await r.opt_in(h.bob)
        await r.w.join(h.bob)
        job = await read_aloud(r, h.bob, "Still my voice for now.")
        assert job.audio_url is not None and job.params == {**BUILT_IN, "temperature": 0.3}

        await answer(await voices(h, "delete", h.bob, name="gone soon"), "Deleted")
        job = await read_aloud(r, h.bob, "And now the built-in one.")
        assert job.audio_url is None and job.params == {**BUILT_IN, "temperature": 0.3}


async def test_a_default_voice_with_nowhere_to_host_its_clip_reads_in_the_built_in_voice(
    make_harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.autoread.reader")
    async with reading_world(make_harness) as r:
        h = r.h
        await add_voice(h, "Homeless")  # no PUBLIC_BASE_URL and no storage channel
        await answer(await voices(h, "default", name="homeless"), "Your /speak defaults")
        await r.opt_in(h.alice)
        await r.w.join(h.alice)
        job = await read_aloud(r, h.alice, "Where would my clip live?")
        assert job.audio_url is None and job.params == BUILT_IN
        assert any(
            "read in the built-in voice" in rec.getMessage() and "/voices storage" in rec.getMessage()
            for rec in caplog.records
        )
