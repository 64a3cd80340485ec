"""The per-guild queue: round-robin fairness, the per-member cap, positions, readiness, abort."""

from __future__ import annotations

from cogs.voice.cog import Placement
from tests.discord.voice_support import ClipProbe, VoiceWorld, emulator_wav, voice_world

WAV = emulator_wav("A short clip.")


def labels(w: VoiceWorld, *probes: ClipProbe) -> list[str]:
    """The labels of the clips in the order they were played."""
    return [next(p.clip.label for p in probes if playback.plays(p.clip)) for playback in w.lab.playbacks]


async def test_round_robin_cap_positions_and_the_queue_command(make_harness) -> None:
    async with voice_world(make_harness, settings={"voice_max_queued_per_member": 2}) as w:
        h = w.h
        await w.join(h.alice)
        await w.join(h.bob)
        a1 = w.probe(h.alice, "a1")
        assert await w.enqueue(h.alice, a1) == Placement("playing")
        a1.feed(emulator_wav("Alice's first clip keeps playing."), finish=False)
        await w.wait_playback(a1)

        a2, a3, a4 = w.probe(h.alice, "a2"), w.probe(h.alice, "a3"), w.probe(h.alice, "a4")
        assert await w.enqueue(h.alice, a2.feed(WAV)) == Placement.queued(1)
        assert await w.enqueue(h.alice, a3.feed(WAV)) == Placement.queued(2)
        full = Placement.refused(
            "you already have 2 clips waiting for voice chat (the most one member may queue)"
        )
        assert await w.enqueue(h.alice, a4) == full
        b1 = w.probe(h.bob, "b1")
        # Bob has had no turn yet: he goes before Alice's second clip.
        assert await w.enqueue(h.bob, b1.feed(WAV)) == Placement.queued(1)
        assert a2.states == ["queued (1st)", "queued (2nd)"]
        assert a3.states == ["queued (2nd)", "queued (3rd)"]
        assert b1.states == ["queued (1st)"]

        listing = await w.command("queue", h.bob)
        assert listing.splitlines() == [
            "▶️ Playing in #Lounge: “a1” — alice",
            "1. “b1” — bob",
            "2. “a2” — alice",
            "3. “a3” — alice",
        ]

        a1.clip.finish()
        await a3.wait_state("played in #Lounge")
        assert labels(w, a1, a2, a3, b1) == ["a1", "b1", "a2", "a3"]
        assert all(p.fallbacks == [] for p in (a1, a2, a3, b1))
        assert await w.command("queue", h.alice) == "Nothing is playing or waiting in voice chat."


async def test_unready_clip_keeps_its_place_without_blocking_and_aborts_are_dropped(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        for member in (h.alice, h.bob, h.mo):
            await w.join(member)
        a1 = w.probe(h.alice, "a1")
        await w.enqueue(h.alice, a1.feed(WAV, finish=False))
        await w.wait_playback(a1)

        b1 = w.probe(h.bob, "b1")  # still being generated
        m1 = w.probe(h.mo, "m1")
        a2 = w.probe(h.alice, "a2")
        assert await w.enqueue(h.bob, b1) == Placement.queued(1)
        assert await w.enqueue(h.mo, m1.feed(WAV)) == Placement.queued(2)
        assert await w.enqueue(h.alice, a2.feed(WAV)) == Placement.queued(3)
        m1.clip.abort("cancelled")  # the job was cancelled while waiting
        await a2.wait_state("queued (2nd)")

        a1.clip.finish()
        await a2.wait_state("played in #Lounge")  # b1 had no audio: a2 did not wait for it
        assert labels(w, a1, a2) == ["a1", "a2"]
        b1.feed(WAV)
        await b1.wait_state("played in #Lounge")
        assert labels(w, a1, a2, b1) == ["a1", "a2", "b1"]
        assert m1.states == ["queued (2nd)"] and m1.fallbacks == []

        # Aborted while playing: playback stops at once, nothing is posted instead.
        a3 = w.probe(h.alice, "a3")
        await w.enqueue(h.alice, a3.feed(WAV, finish=False))
        playback = await w.wait_playback(a3)
        a3.clip.abort("the job failed")
        await w.lab.wait_finished(playback)
        await w.wait_player(lambda player: player.current is None and not player.busy)
        assert a3.states == ["playing in #Lounge"] and a3.fallbacks == []
