"""When the bot leaves voice: idle (injected clock), alone, disconnected; moving between channels."""

from __future__ import annotations

import pytest

from bot.clock import ManualClock
from tests.discord.voice_support import emulator_wav, voice_world

WAV = emulator_wav("A short clip.")


async def test_idle_leave_follows_the_bot_clock(make_harness) -> None:
    clock = ManualClock()
    async with voice_world(make_harness, clock=clock, settings={"voice_idle_seconds": 30}) as w:
        h = w.h
        await w.join(h.alice)
        probe = w.probe(h.alice)
        await w.enqueue(h.alice, probe.feed(WAV))
        await probe.wait_state("played in #Lounge")
        player = await w.wait_player(lambda p: p.idle_armed and p)

        clock.advance(29)
        assert player.idle.remaining() == pytest.approx(1)
        await h.sandbox.sync()
        assert w.bot_channel() is h.voice_channel and w.guild.voice_client is not None

        clock.advance(1)
        await w.wait_bot_channel(None)
        assert h.sandbox.voice_requests[-1]["channel_id"] is None

        # Activity re-arms the timer from the new clip's end, and a new clip rejoins.
        again = w.probe(h.alice)
        await w.enqueue(h.alice, again.feed(WAV))
        await again.wait_state("played in #Lounge")
        await w.wait_player(lambda p: p.idle_armed)
        assert player.idle.remaining() == pytest.approx(30)
        assert w.bot_channel() is h.voice_channel


async def test_leaves_when_no_human_is_left_and_posts_what_was_playing(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        probe = w.probe(h.alice)
        await w.enqueue(h.alice, probe.feed(WAV))
        await probe.wait_state("played in #Lounge")
        await h.sandbox.move_member(h.alice, None)  # idle, alone: leave at once
        await w.wait_bot_channel(None)

        await w.join(h.alice)
        await w.join(h.bob)
        held = w.probe(h.alice)
        await w.enqueue(h.alice, held.feed(WAV, finish=False))
        playback = await w.wait_playback(held)
        await h.sandbox.move_member(h.alice, None)
        await h.sandbox.sync()
        assert w.bot_channel() is h.voice_channel  # bob is still listening
        assert not playback.stopped.is_set()

        await h.sandbox.move_member(h.bob, None)
        assert await held.wait_fallback() == "everyone left #Lounge"
        await w.wait_bot_channel(None)
        assert playback.stopped.is_set()


async def test_after_a_moderator_disconnects_the_bot_the_next_clip_rejoins(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        held = w.probe(h.alice, "held")
        await w.enqueue(h.alice, held.feed(WAV, finish=False))
        await w.wait_playback(held)

        await h.sandbox.move_member(h.guild.bot_member, None)  # "Disconnect" in Discord's menu
        assert await held.wait_fallback() == "I was disconnected from voice chat"
        await w.wait_bot_channel(None)

        after = w.probe(h.alice, "after")
        await w.enqueue(h.alice, after.feed(WAV))
        await after.wait_state("played in #Lounge")
        assert w.bot_channel() is h.voice_channel
        assert after.fallbacks == []
        assert len(w.lab.voices) == 2  # a fresh connection


async def test_clip_waits_its_turn_then_the_bot_moves_to_its_channel(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        gaming = h.guild.add_voice_channel("Gaming")
        await h.sandbox.sync()
        await w.join(h.alice)
        await w.join(h.bob, gaming)
        a1 = w.probe(h.alice, "a1")
        await w.enqueue(h.alice, a1.feed(WAV, finish=False))
        await w.wait_playback(a1)

        b1 = w.probe(h.bob, "b1")
        placement = await w.enqueue(h.bob, b1.feed(WAV))
        assert (placement.kind, placement.position) == ("queued", 1)
        assert w.bot_channel() is h.voice_channel

        a1.clip.finish()
        await b1.wait_state("played in #Gaming")
        assert b1.states == ["queued (1st)", "playing in #Gaming", "played in #Gaming"]
        assert w.bot_channel() is gaming
        assert [p.channel_id for p in w.lab.playbacks] == [h.voice_channel.id, gaming.id]
        # Left and joined afresh (discord.py's in-place move does not complete on Discord).
        assert len(w.lab.voices) == 2 and not w.lab.voices[0].is_connected()


async def test_a_requester_who_left_voice_before_their_turn_gets_the_file(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        await w.join(h.bob)
        a1, b1 = w.probe(h.alice, "a1"), w.probe(h.bob, "b1")
        await w.enqueue(h.alice, a1.feed(WAV, finish=False))
        await w.wait_playback(a1)
        await w.enqueue(h.bob, b1.feed(WAV))
        await h.sandbox.move_member(h.bob, None)

        a1.clip.finish()
        assert await b1.wait_fallback() == "you left voice chat before your clip's turn"
        assert len(w.lab.playbacks) == 1
