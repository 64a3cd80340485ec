"""Hands-free reading through the sandbox: members write in #general, the bot reads in voice.

Member messages arrive as MESSAGE_CREATE / MESSAGE_UPDATE / MESSAGE_DELETE with their content
(the application is allowed the Message Content intent); reactions go back over REST; the
voice layer is the real Voice cog and FFmpeg (``TestVoice`` drains the Opus it produces).
Holding jobs: the emulator runs on a ``ManualClock`` until ``release`` hands it the real clock
(and wakes what it held), or the bot's rate guard is held so nothing is submitted.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import discord
import pytest

from bot.autoread.reader import ReadState
from bot.clock import ManualClock, SystemClock
from cogs.autoread.cog import DISABLED
from tests.discord.autoread_support import ENABLED, MESSAGE_CONTENT, Reading, reading_world
from tests.discord.harness import Harness
from tests.discord.test_voice_transport import sound_span
from tests.discord.voice_support import decode_opus_packets, emulator_wav, peak, seconds_of

#: Opus packets cover the clip within this (FFmpeg adds up to ~2 frames of encoder padding).
TOLERANCE = 0.061
PAUSE = 0.25  # CHATTERBOX_CHUNK_PAUSE_MS


def release(h: Harness, held: ManualClock) -> None:
    """Let the emulator finish what the ManualClock held, and run on real time from now on."""
    h.emulator.clock = SystemClock()
    held.advance(3600)


async def processing(h: Harness, count: int) -> None:
    await h.emulator.wait_until(
        lambda: sum(j.status == "PROCESSING" for j in h.emulator.jobs.values()) >= count
    )


def bot_log(r: Reading, message) -> list[tuple[str, str]]:
    bot_id = r.h.sandbox.bot_user.id
    return [(op, emoji) for op, emoji, user in message.reaction_log if user == bot_id]


async def test_an_opted_in_members_message_is_heard_and_nothing_else_is_read(make_harness) -> None:
    async with reading_world(make_harness) as r:
        h, w = r.h, r.w
        await r.opt_in(h.alice)
        await w.join(h.alice)
        await w.join(h.bob)

        assert (
            await r.handled("message", await h.sandbox.post(h.bob, h.general, "Bob never opted in.")) is None
        )
        assert await r.handled("message", await h.sandbox.post(h.alice, h.general, "!play a song")) is None
        attachment_only = await h.sandbox.post(h.alice, h.general, files=[("cat.png", b"\x89PNG....")])
        assert await r.handled("message", attachment_only) is None

        text = "Hello from the text chat, can you hear me?"
        message = await r.say(h.alice, text)
        await r.wait_marks(message, ["✅"])
        assert bot_log(r, message) == [
            ("add", "⏳"),
            ("remove", "⏳"),
            ("add", "🔊"),
            ("remove", "🔊"),
            ("add", "✅"),
        ]

        # What the voice layer received: the emulator's audio for exactly this text.
        assert len(w.lab.playbacks) == 1
        playback = w.lab.playbacks[0]
        await w.lab.wait_finished(playback)
        duration = seconds_of(emulator_wav(text))
        # At most one chunk pause more: when ``finish`` comes after the last chunk was read,
        # the voice layer sends the pause early (``bot.playback.clip``).
        assert duration - TOLERANCE < playback.seconds < duration + PAUSE + TOLERANCE
        pcm = await asyncio.to_thread(decode_opus_packets, playback.packets, h.bot.ffmpeg)
        assert peak(pcm) > 3000
        assert w.bot_channel() is h.voice_channel  # joined on the first opted-in speaker

        jobs = await h.job_rows()
        assert [(j["user_id"], j["text"], j["delivered"]) for j in jobs] == [(h.alice.id, text, True)]
        assert h.emulator.counts["submit"] == 1
        assert all(bot_log(r, m) == [] for m in h.messages() if m.id != message.id)


@pytest.mark.usefixtures("libopus")  # the voice server decodes what it hears
async def test_a_listener_in_voice_hears_the_message_over_the_real_transport(make_harness) -> None:
    async with reading_world(make_harness, real_voice=True, settings={"voice_connect_timeout": 2.0}) as r:
        h = r.h
        await r.opt_in(h.alice)
        await r.w.join(h.alice)
        message = await r.say(h.alice, "Can everyone in the Lounge hear this?")
        await r.wait_marks(message, ["✅"])
        heard = await h.sandbox.wait_for(
            lambda: (x := h.sandbox.listening(h.voice_channel)).trailing_silence >= 5 and x,
            describe="the message and its closing silence",
        )
        wav = next(iter(h.emulator.jobs.values())).media_bytes
        assert wav is not None
        assert abs(heard.sound_seconds() - sound_span(wav)) <= 0.05 * sound_span(wav)
        assert max(f.peak for f in heard.audio) > 3000  # the emulator's beeps, decoded
        assert heard.sequences_monotonic()


async def test_members_opt_in_and_out_and_moderators_set_up(make_harness) -> None:
    async with reading_world(make_harness, setup={"announce": True}) as r:
        h = r.h
        shown = await r.command("show", h.mo)
        assert f"<#{h.general.id}>" in shown and "(0 so far)" in shown and "(“Alice said”): on" in shown
        assert "Only moderators" in await r.command("setup", h.alice, text_channel=h.general)
        assert "not read aloud" in await r.command("me", h.alice, choice="status")
        await r.opt_in(h.alice)
        assert "are read aloud here" in await r.command("me", h.alice, choice="status")
        assert "(1 so far)" in await r.command("show", h.mo)

        await r.w.join(h.alice)
        first = await r.say(h.alice, "I am speaking now.")
        await r.wait_marks(first, ["✅"])
        second = await r.say(h.alice, "And once more.")
        await r.wait_marks(second, ["✅"])
        assert r.played() == ["I am speaking now.", "And once more."]
        # "alice said" is its own request in the bot's built-in voice, played first in the
        # same clip; the second time it comes from the audio cache: free, nothing sent.
        jobs = [(j["text"], j["voice_url"]) for j in await h.job_rows()]
        assert jobs == [("I am speaking now.", None), ("alice said", None), ("And once more.", None)]
        assert h.emulator.counts["submit"] == 3
        assert [row["requests"] for row in await h.ledger_rows()] == [1, 1, 1]
        said = seconds_of(emulator_wav("alice said"))
        for playback, text in zip(r.w.lab.playbacks, ["I am speaking now.", "And once more."], strict=True):
            await r.w.lab.wait_finished(playback)
            expected = said + PAUSE + seconds_of(emulator_wav(text))
            assert expected - TOLERANCE < playback.seconds < expected + TOLERANCE

        assert await r.command("me", h.alice, choice="off") == "Your messages are no longer read aloud."
        assert await r.handled("message", await h.sandbox.post(h.alice, h.general, "Not any more.")) is None
        assert await r.command("off", h.mo) == "Hands-free reading is off in this server."
        assert "not set up" in await r.command("show", h.mo)


async def test_without_autoread_enabled_nothing_needs_the_intent(make_harness) -> None:
    async with make_harness(privileged_intents=MESSAGE_CONTENT) as h:
        session = h.sandbox.state.hub.live_sessions()[0]
        assert not session.intents & MESSAGE_CONTENT and not session.intents & (1 << 9)
        handle = await h.sandbox.slash("autoread me", user=h.alice, channel=h.general, choice="on")
        assert (await handle.wait_for_original()).content == DISABLED
        # The sandbox keeps Discord's rule: no content for a session without the intent.
        message = await h.sandbox.post(h.alice, h.general, "secret words")
        stripped = h.sandbox.state._content_rule(SimpleNamespace(intents=1 << 9), message.payload())
        assert stripped["content"] == "" and message.payload()["content"] == "secret words"
        allowed = h.sandbox.state._content_rule(SimpleNamespace(intents=MESSAGE_CONTENT), message.payload())
        assert allowed["content"] == "secret words"


async def test_asking_for_the_intent_without_it_allowed_fails_like_discord(make_harness) -> None:
    async with make_harness(settings=ENABLED, start=False) as h:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await h.start_bot()


async def test_an_edit_before_playback_reads_the_new_text(make_harness) -> None:
    held = ManualClock()
    async with reading_world(make_harness, emulator_clock=held) as r:
        h = r.h
        await r.opt_in(h.alice)
        await r.w.join(h.alice)
        m1 = await r.say(h.alice, "The first message stays as it is.")
        m2 = await r.say(h.alice, "The second message before the edit.")
        m3 = await r.say(h.alice, "The third message before the edit.")
        m4 = await r.say(h.alice, "The fourth message, soon a command.")
        await processing(h, 2)  # m1 and m2 are generating; m3 and m4 wait their turn
        assert len(r.reader.queue) == 2

        await h.sandbox.edit(m2, "The second message after the edit.")
        await r.handled("edit", m2)
        await h.sandbox.edit(m3, "The third message after the edit.")
        await r.handled("edit", m3)
        await h.sandbox.edit(m4, "!nevermind")  # now a command for some bot: not read at all
        await r.handled("edit", m4)
        release(h, held)
        await r.wait_marks(m3, ["✅"])

        assert r.played() == [
            "The first message stays as it is.",
            "The second message after the edit.",
            "The third message after the edit.",
        ]
        jobs = [(j["text"], j["status"]) for j in await h.job_rows()]
        assert jobs == [
            ("The first message stays as it is.", "delivered"),
            ("The second message before the edit.", "cancelled"),  # was generating: cancelled
            ("The second message after the edit.", "delivered"),
            ("The third message after the edit.", "delivered"),  # was waiting: never started
        ]
        assert r.marks(m1) == ["✅"] and r.marks(m2) == ["✅"]
        assert r.read_of(m4).state is ReadState.ENDED
        await r.wait_marks(m4, [])
        assert bot_log(r, m4) == [("add", "⏳"), ("remove", "⏳")]


async def test_a_deletion_before_submit_refunds_and_leaves_no_mark(make_harness) -> None:
    async with reading_world(make_harness) as r:
        h = r.h
        await r.opt_in(h.alice)
        await r.w.join(h.alice)
        h.bot.core.limiter.hold(10_000)  # as after a 429: nothing may be submitted
        message = await r.say(h.alice, "Delete me before I am sent.")
        await r.wait_marks(message, ["⏳"])
        [row] = await h.ledger_rows()
        assert row["state"] == "reserved"

        await h.sandbox.delete(message)
        await r.handled("delete", message)
        [row] = await h.ledger_rows()
        assert row["state"] == "refunded" and row["refunded_requests"] == row["requests"] == 1
        assert h.emulator.counts["submit"] == 0
        [job] = await h.job_rows()
        assert job["status"] == "cancelled"
        assert r.read_of(message) is not None and r.read_of(message).state is ReadState.ENDED
        assert bot_log(r, message) == [("add", "⏳")]  # nothing is done to a deleted message
        assert r.w.lab.playbacks == []


async def test_a_member_over_quota_gets_one_note_not_one_per_message(make_harness) -> None:
    async with reading_world(make_harness, settings={"quota_requests_per_day": 1}) as r:
        h = r.h
        await r.opt_in(h.alice)
        await r.w.join(h.alice)
        messages = [await r.say(h.alice, f"Message number {n}.") for n in range(1, 5)]
        await r.wait_reader(lambda reader: len(reader.finished) == 4)
        expected = [["✅"], ["⚠️"], [], []]
        await h.sandbox.wait_for(lambda: [r.marks(m) for m in messages] == expected, describe="the marks")

        assert [r.read_of(m).state for m in messages] == [ReadState.DONE] + [ReadState.REFUSED] * 3
        assert sum(("add", "⚠️") in bot_log(r, m) for m in messages) == 1
        status = await r.command("me", h.alice, choice="status")
        assert "The last one I could not read:" in status and "resets in" in status
        assert len(await h.job_rows()) == 1 and h.emulator.counts["submit"] == 1
        assert not [m for m in h.messages() if m.author.id == h.sandbox.bot_user.id]  # no channel spam


async def test_a_burst_of_twenty_is_read_in_order_round_robin(make_harness) -> None:
    held = ManualClock()
    async with reading_world(make_harness, emulator_clock=held) as r:
        h = r.h
        await r.opt_in(h.alice, h.bob)
        await r.w.join(h.alice)
        await r.w.join(h.bob)
        for n in range(1, 13):
            await r.say(h.alice, f"Alice number {n}.")
        for n in range(1, 9):
            await r.say(h.bob, f"Bob number {n}.")
        await processing(h, 2)
        assert len(r.reader.queue) == 18
        release(h, held)
        await r.wait_reader(lambda reader: len(reader.finished) == 20)

        a = [f"Alice number {n}." for n in range(1, 13)]
        b = [f"Bob number {n}." for n in range(1, 9)]
        # a1 and a2 had started before Bob wrote; from then on the two take turns.
        expected = a[:2] + [x for pair in zip(b, a[2:10], strict=True) for x in pair] + a[10:]
        assert r.played() == expected
        assert all(read.state is ReadState.DONE for read in r.reader.finished)
        assert len(await h.job_rows()) == 20


async def test_ready_clips_of_a_burst_play_back_to_back(make_harness) -> None:
    """The gap half of "20 messages in a burst are read ... without gaps over 1 s between clips
    that are ready", shown without timing anything. Each playback is held at its end until the
    next message's audio is complete (as if the clip took that long to play). Then:

    * the player never waits for a clip between two of them (``waits_for_clip`` is the same at
      all 20 starts): the next clip was already in its queue with all its audio, and the
      worker only stops the finished clip's FFmpeg and starts the next one's;
    * the bot joined voice once (nothing is re-joined between messages);
    * each message is one playback whose Opus stream is exactly its audio: no pause was
      padded in, so the stream never waited for audio.

    The remaining gap (FFmpeg stopping and starting) is measured in real time, next to a naive
    reader, by ``bench/autoread_gaps.py``.
    """
    held = ManualClock()
    async with reading_world(make_harness, emulator_clock=held) as r:
        h, lab = r.h, r.w.lab
        lab.hold_ends = True
        await r.opt_in(h.alice, h.bob)
        await r.w.join(h.alice)
        await r.w.join(h.bob)
        a = [f"Alice number {n}." for n in range(1, 13)]
        b = [f"Bob number {n}." for n in range(1, 9)]
        for text in a:
            await r.say(h.alice, text)
        for text in b:
            await r.say(h.bob, text)
        await processing(h, 2)
        release(h, held)
        player = r.w.cog.player(h.guild.id)

        waits: list[int] = []
        for n in range(20):
            playback = await lab.wait_until(
                lambda n=n: len(lab.playbacks) > n and lab.playbacks[n].drained.is_set() and lab.playbacks[n]
            )
            waits.append(player.waits_for_clip)  # the worker is waiting for this playback to end
            if n < 19:  # the next message is handed to voice, and all its audio is there
                await r.w.wait_player(
                    lambda p: len(p.queue) == 1 and all(c.audio.finished for c in p.queue.positions())
                )
            lab.release(playback)
        await r.wait_reader(lambda reader: len(reader.finished) == 20)

        expected = a[:2] + [x for pair in zip(b, a[2:10], strict=True) for x in pair] + a[10:]
        assert r.played() == expected
        assert waits == [waits[0]] * 20
        assert len(lab.voices) == 1 and len(lab.playbacks) == 20
        for playback, text in zip(lab.playbacks, expected, strict=True):
            duration = seconds_of(emulator_wav(text))
            assert duration - TOLERANCE < playback.seconds < duration + TOLERANCE, text
        assert all(read.state is ReadState.DONE for read in r.reader.finished)


async def test_a_voice_channels_own_chat_can_be_the_reading_channel(make_harness) -> None:
    async with reading_world(make_harness) as r:
        h = r.h
        answer = await r.command("setup", h.mo, text_channel=h.voice_channel, join_on_first_speaker=False)
        assert answer.startswith("Hands-free reading is on.")
        await r.opt_in(h.alice)
        await r.w.join(h.alice)
        # The bot is in no voice channel and may not join on its own: nothing is read.
        assert await r.handled("message", await h.sandbox.post(h.alice, h.voice_channel, "Anyone?")) is None
        # Messages in another channel are not read either.
        assert await r.handled("message", await h.sandbox.post(h.alice, h.general, "Over here.")) is None

        await r.command("setup", h.mo, text_channel=h.voice_channel, join_on_first_speaker=True)
        message = await r.say(h.alice, "Reading the voice chat's own text.", channel=h.voice_channel)
        await r.wait_marks(message, ["✅"])
        assert r.played() == ["Reading the voice chat's own text."]
