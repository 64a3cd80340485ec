"""/voice skip, stop and leave, driven as slash commands through the sandbox."""

from __future__ import annotations

from tests.discord.voice_support import emulator_wav, voice_world

WAV = emulator_wav("A short clip.")


async def test_skip_by_requester_or_moderator_but_not_by_others(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        await w.join(h.bob)
        assert await w.command("skip", h.alice) == "Nothing is playing in voice chat."
        a1, b1 = w.probe(h.alice, "a1"), w.probe(h.bob, "b1")
        await w.enqueue(h.alice, a1.feed(WAV, finish=False))
        first = await w.wait_playback(a1)
        await w.enqueue(h.bob, b1.feed(WAV, finish=False))

        reply = await w.command("skip", h.bob)
        assert reply == "Only alice (who asked for it) or a moderator can skip this clip."
        assert not first.stopped.is_set()

        assert await w.command("skip", h.alice) == "Skipped “a1”."
        await a1.wait_state("skipped by alice")
        second = await w.wait_playback(b1)
        assert first.stopped.is_set() and first.finished.is_set()

        assert await w.command("skip", h.mo) == "Skipped “b1”."
        await b1.wait_state("skipped by mo")
        assert second.stopped.is_set()
        assert a1.fallbacks == [] and b1.fallbacks == []  # skipping is deliberate: no file
        assert "played in #Lounge" not in a1.states + b1.states


async def test_stop_is_for_moderators_and_clears_the_queue(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        await w.join(h.bob)
        a1, a2, b1 = w.probe(h.alice, "a1"), w.probe(h.alice, "a2"), w.probe(h.bob, "b1")
        await w.enqueue(h.alice, a1.feed(WAV, finish=False))
        playback = await w.wait_playback(a1)
        await w.enqueue(h.alice, a2.feed(WAV))
        await w.enqueue(h.bob, b1.feed(WAV))

        reply = await w.command("stop", h.alice)
        assert reply == "Only moderators (Manage Server or Move Members) can stop voice playback."
        assert not playback.stopped.is_set()

        reply = await w.command("stop", h.mo)
        assert reply == "Stopped the clip that was playing, cleared 2 waiting clips."
        await a1.wait_state("stopped by mo")
        assert a2.states[-1] == b1.states[-1] == "removed from the voice queue by mo"
        assert len(w.lab.playbacks) == 1
        assert await w.command("queue", h.alice) == "Nothing is playing or waiting in voice chat."
        assert w.bot_channel() is h.voice_channel  # stays until idle; /voice leave leaves now
        assert await w.command("stop", h.mo) == "Nothing is playing or waiting in voice chat."


async def test_leave_by_moderator_or_when_only_own_clips_are_left(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        await w.join(h.bob)
        assert await w.command("leave", h.alice) == "I'm not in a voice channel."
        a1, b1 = w.probe(h.alice, "a1"), w.probe(h.bob, "b1")
        await w.enqueue(h.alice, a1.feed(WAV, finish=False))
        await w.wait_playback(a1)
        await w.enqueue(h.bob, b1.feed(WAV))

        reply = await w.command("leave", h.alice)
        assert reply == "Other members' clips are playing or waiting; only a moderator can make me leave now."
        assert w.bot_channel() is h.voice_channel

        assert await w.command("leave", h.mo) == "Left #Lounge."
        await w.wait_bot_channel(None)
        await a1.wait_state("stopped: I left voice chat (mo asked)")
        assert b1.states[-1] == "removed from the voice queue: I left voice chat (mo asked)"
        assert a1.fallbacks == [] and b1.fallbacks == []

        # The next clip rejoins; with only her own clip playing, alice may send the bot away.
        a2 = w.probe(h.alice, "a2")
        await w.enqueue(h.alice, a2.feed(WAV, finish=False))
        await w.wait_playback(a2)
        assert w.bot_channel() is h.voice_channel
        assert await w.command("leave", h.alice) == "Left #Lounge."
        await w.wait_bot_channel(None)
