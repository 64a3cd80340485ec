"""Voice chat over the real transport: the bot's unmodified ``discord.VoiceClient`` (through
``cogs.voice.connection``) joins the sandbox's voice server over TLS websockets and UDP on
loopback; the server decrypts and Opus-decodes every packet, so these tests assert what a
member in the channel hears. Clips are short: playback runs in real time (20 ms a frame)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import discord
import pytest

from bot.audio import wav_pcm
from bot.clock import ManualClock
from cogs.voice.cog import Placement
from tests.discord.harness import Harness
from tests.discord.speak_support import card_with, refusal
from tests.discord.voice_support import WAIT_LIMIT, ClipProbe, VoiceLab, emulator_wav, seconds_of
from tests.sandbox import Channel, Member
from tests.sandbox.voice_server import Listening

#: The voice server decodes what it hears with libopus (skipped without it, failed under CI).
pytestmark = pytest.mark.usefixtures("libopus")

#: A clip is heard whole when its decoded duration is within this share of the WAV's.
WHOLE = 0.05


@dataclass
class Transport:
    h: Harness
    lab: VoiceLab

    @property
    def cog(self) -> Any:
        cog = self.h.bot.get_cog("Voice")
        assert cog is not None
        return cog

    def member(self, who: Member) -> discord.Member:
        guild = self.h.bot.get_guild(self.h.guild.id)
        assert guild is not None
        member = guild.get_member(who.id)
        assert member is not None
        return member

    async def join(self, who: Member, channel: Channel | None = None) -> None:
        await self.h.sandbox.move_member(who, channel or self.h.voice_channel)

    async def leave(self, who: Member) -> None:
        await self.h.sandbox.move_member(who, None)

    def probe(self, who: Member, label: str, seconds: float | None = None) -> ClipProbe:
        probe = ClipProbe(self.lab, who, label)
        if seconds is not None:
            probe.feed(wav_of(seconds))
        return probe

    async def enqueue(self, who: Member, probe: ClipProbe) -> Placement:
        return await self.cog.enqueue(self.member(who), probe.clip)

    def heard(self, channel: Channel | None = None) -> Listening:
        return self.h.sandbox.listening(channel or self.h.voice_channel)

    async def wait_heard(self, predicate: Callable[[Listening], bool], channel: Channel | None = None,
                         what: str = "audio") -> Listening:
        def check() -> Listening | None:
            heard = self.heard(channel)
            return heard if predicate(heard) else None

        return await self.h.sandbox.wait_for(check, describe=what)

    def bot_channel(self) -> Channel | None:
        return self.h.guild.voice_channel_of(self.h.sandbox.bot_user)

    def voice_client(self) -> discord.VoiceClient:
        guild = self.h.bot.get_guild(self.h.guild.id)
        assert guild is not None and isinstance(guild.voice_client, discord.VoiceClient)
        return guild.voice_client


def wav_of(seconds: float) -> bytes:
    """An emulator test-signal WAV of about ``seconds`` (0.06 s per character)."""
    return emulator_wav("x" * round(seconds / 0.06))


@asynccontextmanager
async def transport(make_harness: Any, **settings: Any) -> AsyncIterator[Transport]:
    async with make_harness(settings={"voice_connect_timeout": 2.0, **settings}) as h:
        yield Transport(h, VoiceLab())


def sound_span(wav: bytes, threshold: int = 100) -> float:
    """Seconds from the WAV's first to its last sample above ``threshold``."""
    info, pcm = wav_pcm(wav)
    samples = memoryview(pcm).cast("h")
    loud = [i for i, v in enumerate(samples) if abs(v) > threshold]
    return (loud[-1] - loud[0] + 1) / info.sample_rate if loud else 0.0


def joins(h: Harness) -> list[dict[str, Any]]:
    """The bot's op 4 requests to be in a channel (joins and moves), in order."""
    return [r for r in h.sandbox.voice_requests if r["channel_id"] is not None]


def whole(heard: Listening, wav: bytes) -> bool:
    """The listener heard the clip's sound from its start to its end (within ``WHOLE``)."""
    return abs(heard.sound_seconds() - sound_span(wav)) <= WHOLE * sound_span(wav)


async def test_speak_in_voice_is_heard_whole_and_in_order(make_harness) -> None:
    async with transport(make_harness) as t:
        h = t.h
        await t.join(h.alice)
        text = "Hello over the real voice transport."
        handle = await h.speak(text=text, output="voice")
        card = await card_with(handle, "played in #Lounge")
        assert "posted instead" not in card.content.lower()
        heard = await t.wait_heard(lambda x: x.trailing_silence >= 5, what="the clip and its closing silence")
        wav = next(iter(h.emulator.jobs.values())).media_bytes
        assert whole(heard, wav), (heard.sound_seconds(), sound_span(wav))
        # The decoded duration (every audio frame, quiet ends included) is the WAV's, within 5 %.
        assert abs(heard.audio_seconds - seconds_of(wav)) <= WHOLE * seconds_of(wav), (
            heard.audio_seconds, seconds_of(wav))
        assert heard.sequences_monotonic()
        assert heard.trailing_silence == 5
        assert max(f.peak for f in heard.audio) > 3000  # the emulator's beeps, decoded
        session = h.sandbox.voice_server.live_session(h.sandbox.bot_user.id)
        assert session is not None and session.mode == "aead_xchacha20_poly1305_rtpsize"
        assert 1 in session.speaking
        assert h.audio_messages() == []  # voice only: no file


async def test_fairness_order_is_a1_b1_a2_a3(make_harness) -> None:
    async with transport(make_harness) as t:
        h = t.h
        await t.join(h.alice)
        await t.join(h.bob)
        # Lengths tell the clips apart (the emulator's signal lasts at least 0.5 s).
        wavs = {"a1": wav_of(0.6), "a2": wav_of(0.84), "a3": wav_of(0.96), "b1": wav_of(0.72)}
        probes = {}
        for name in ("a1", "a2", "a3", "b1"):
            who = h.alice if name[0] == "a" else h.bob
            probes[name] = t.probe(who, name).feed(wavs[name])
            await t.enqueue(who, probes[name])
        await t.lab.wait_until(lambda: "played in #Lounge" in probes["a3"].states)
        heard = await t.wait_heard(lambda x: len(x.bursts()) == 4 and x.trailing_silence >= 5)
        spans = [round(b.sound_seconds(), 2) for b in heard.bursts()]
        expected = [round(sound_span(wavs[n]), 2) for n in ("a1", "b1", "a2", "a3")]
        assert all(abs(a - b) <= 0.04 for a, b in zip(spans, expected, strict=True)), (spans, expected)
        assert heard.sequences_monotonic()


async def test_skip_cuts_the_clip_and_stop_silences_the_queue(make_harness) -> None:
    async with transport(make_harness) as t:
        h = t.h
        await t.join(h.alice)
        long, nxt = t.probe(h.alice, "long", 3.0), t.probe(h.alice, "next", 0.6)
        last, later = t.probe(h.alice, "last", 3.0), t.probe(h.alice, "later", 0.6)
        await t.enqueue(h.alice, long)
        await t.enqueue(h.alice, nxt)
        await t.wait_heard(lambda x: len(x.audio) >= 10, what="the long clip playing")
        handle = await h.sandbox.slash("voice skip", user=h.alice, channel=h.general)
        assert (await handle.wait_for_original()).content == "Skipped “long”."
        await t.lab.wait_until(lambda: "played in #Lounge" in nxt.states)
        heard = await t.wait_heard(lambda x: len(x.bursts()) == 2 and x.trailing_silence >= 5)
        first, second = heard.bursts()
        assert first.audio_seconds < 2.5 and whole(second, wav_of(0.6))
        assert long.states[-1] == "skipped by alice" and long.fallbacks == []

        await t.enqueue(h.alice, last)
        await t.enqueue(h.alice, later)
        before = len(t.heard().audio)
        await t.wait_heard(lambda x: len(x.audio) >= before + 10, what="the last clip playing")
        handle = await h.sandbox.slash("voice stop", user=h.mo, channel=h.general)
        assert (await handle.wait_for_original()).content.startswith("Stopped the clip that was playing")
        await t.lab.wait_until(lambda: "stopped by mo" in last.states)
        await t.lab.wait_until(lambda: later.states and "removed from the voice queue" in later.states[-1])
        assert "playing in #Lounge" not in later.states
        # The card says "stopped" once discord.py's player thread has sent its last packet (the
        # closing silence comes before ``after``); the bot stays connected, so its client's RTP
        # sequence is that packet's. Once the listener has it, everything sent so far arrived.
        voice = t.voice_client()
        last_sent = voice.sequence
        n = await h.sandbox.wait_for(
            lambda: next((i + 1 for i, f in enumerate(t.heard().frames) if f.sequence == last_sent), None),
            describe="the last packet before the stop",
        )
        stopped_at = t.heard()
        assert stopped_at.trailing_silence >= 5 and stopped_at.frames[n - 1].silence
        assert stopped_at.bursts()[-1].audio_seconds < 2.5  # "last" was cut
        # Nothing more of "last" (or "later"): the next sound the listener hears is a new clip.
        marker = t.probe(h.alice, "marker", 0.6)
        await t.enqueue(h.alice, marker)
        await t.lab.wait_until(lambda: "played in #Lounge" in marker.states)
        def since_stop(heard: Listening) -> Listening:
            return Listening(heard.frames[n:])

        def marker_heard(heard: Listening) -> bool:
            return bool(since_stop(heard).audio) and since_stop(heard).trailing_silence >= 5

        rest = since_stop(await t.wait_heard(marker_heard, what="the marker clip"))
        assert len(rest.bursts()) == 1 and whole(rest, wav_of(0.6)), rest.audio_seconds


async def test_next_clip_plays_in_its_requesters_channel(make_harness) -> None:
    async with transport(make_harness) as t:
        h = t.h
        gaming = h.guild.add_voice_channel("Gaming")
        await h.sandbox.sync()
        await t.join(h.alice)
        await t.join(h.bob, gaming)
        a1, b1 = t.probe(h.alice, "a1", 0.6), t.probe(h.bob, "b1", 0.9)
        await t.enqueue(h.alice, a1)
        await t.enqueue(h.bob, b1)
        await t.lab.wait_until(lambda: "played in #Gaming" in b1.states)
        assert a1.states[-1] == "played in #Lounge" and b1.fallbacks == []
        assert t.bot_channel() is gaming
        lounge = await t.wait_heard(lambda x: x.trailing_silence >= 5)
        in_gaming = await t.wait_heard(lambda x: x.trailing_silence >= 5, gaming)
        assert whole(lounge, wav_of(0.6)) and whole(in_gaming, wav_of(0.9))
        assert in_gaming.sequences_monotonic()


async def test_dave_refusal_falls_back_at_once_without_flapping(make_harness) -> None:
    # A connect timeout far beyond the test's waits: falling back only when it ran out (or
    # retrying within it) would fail ``wait_fallback`` instead of passing slowly.
    assert WAIT_LIMIT * 2 < 60
    async with transport(make_harness, voice_connect_timeout=60.0) as t:
        h = t.h
        h.sandbox.voice_server.refuse_with = 4017
        await t.join(h.alice)
        probe = t.probe(h.alice, "a1", 0.3)
        await t.enqueue(h.alice, probe)
        reason = await probe.wait_fallback()
        assert reason == "the voice server required end-to-end encryption (DAVE) and the handshake failed"
        await h.sandbox.wait_for(lambda: t.bot_channel() is None, describe="the bot out of voice")
        async with asyncio.timeout(WAIT_LIMIT):  # the player is done with the clip: no retry to come
            await t.cog.wait_until(lambda: t.cog.player(h.guild.id).is_empty())
        await h.sandbox.sync()
        assert len(joins(h)) == 1  # one attempt: no join/leave flapping
        assert [s.close_code for s in h.sandbox.voice_server.sessions] == [4017]


async def test_unreachable_voice_server_is_named(make_harness) -> None:
    async with transport(make_harness, voice_connect_timeout=0.3) as t:
        h = t.h
        h.sandbox.voice_server.drop_discovery = True
        await t.join(h.alice)
        probe = t.probe(h.alice, "a1", 0.3)
        await t.enqueue(h.alice, probe)
        unreachable = "Discord's voice server was unreachable (no UDP reply within 0.3 s)"
        assert await probe.wait_fallback() == unreachable
        assert len(joins(h)) == 1


async def test_a_voice_server_that_never_answers_is_named(make_harness) -> None:
    async with transport(make_harness, voice_connect_timeout=0.3) as t:
        h = t.h
        server = h.sandbox.voice_server
        server.silent = True
        await t.join(h.alice)
        probe = t.probe(h.alice, "a1", 0.3)
        await t.enqueue(h.alice, probe)
        assert await probe.wait_fallback() == "Discord's voice server did not answer within 0.3 s"
        assert len(joins(h)) == 1
        assert len(server.sessions) == 1 and server.sessions[0].grant is None  # dialled, never identified
        await h.sandbox.wait_for(lambda: t.bot_channel() is None, describe="the bot out of voice")


@pytest.mark.parametrize("refusal", ["full", "no-connect"])
async def test_a_channel_the_bot_may_not_join_is_named(make_harness, refusal: str) -> None:
    async with transport(make_harness) as t:
        h = t.h
        if refusal == "full":
            room = h.guild.add_voice_channel("Booth", user_limit=1)
            expected = "#Booth is full"
        else:
            deny = {h.guild.bot_role: discord.PermissionOverwrite(connect=False)}
            room = h.guild.add_voice_channel("Booth", overwrites=deny)
            expected = "I don't have permission to join #Booth (Connect)"
        await h.sandbox.sync()
        await t.join(h.alice, room)
        handle = await h.speak(text="Nobody can let me in there.", output="voice")
        card = await card_with(handle, "done")
        assert f"Posted instead because {expected}." in card.content
        assert len(h.audio_messages()) == 1
        # Told apart before asking: Discord would ignore the join, and the bot would wait it out.
        assert h.sandbox.voice_requests == [] and h.sandbox.voice_server.sessions == []


@pytest.mark.parametrize("drop", [4006, 4009, 4015, "network"])
async def test_a_dropped_connection_mid_clip_reconnects_and_plays_on(make_harness, drop: int | str) -> None:
    """4006/4009 end the session, 4015 is the voice server crashing (discord.py tries to
    resume for up to the connect timeout first), "network" cuts TCP without a close frame."""
    async with transport(make_harness, voice_connect_timeout=1.0) as t:
        h = t.h
        await t.join(h.alice)
        wav = wav_of(1.5)
        probe = t.probe(h.alice, "a1")
        probe.feed(wav)
        await t.enqueue(h.alice, probe)
        server = h.sandbox.voice_server
        await t.wait_heard(lambda x: len(x.audio) >= 15, what="the first part of the clip")
        first = server.live_session(h.sandbox.bot_user.id)
        assert first is not None
        if drop == "network":
            first.drop()
        else:
            await first.close(int(drop), "on demand")
        await t.lab.wait_until(lambda: "played in #Lounge" in probe.states)
        assert probe.fallbacks == []
        heard = await t.wait_heard(lambda x: x.trailing_silence >= 5)
        sessions = server.sessions_of(h.sandbox.bot_user.id)
        assert len(sessions) == 2 and sessions[1].frames  # the rest came through a new connection
        # Played on from where it was cut: nothing repeated, at most a few frames missing.
        assert sound_span(wav) - 0.1 <= heard.sound_seconds() <= sound_span(wav) * (1 + WHOLE)


async def test_the_member_leaving_makes_the_bot_leave(make_harness) -> None:
    async with transport(make_harness) as t:
        h = t.h
        await t.join(h.alice)
        probe = t.probe(h.alice, "a1", 3.0)
        await t.enqueue(h.alice, probe)
        await t.wait_heard(lambda x: len(x.audio) >= 5, what="the clip playing")
        await t.leave(h.alice)
        assert await probe.wait_fallback() == "everyone left #Lounge"
        await h.sandbox.wait_for(lambda: t.bot_channel() is None, describe="the bot to leave")


async def test_a_kick_ends_the_clip_and_posts_it(make_harness) -> None:
    async with transport(make_harness) as t:
        h = t.h
        await t.join(h.alice)
        probe = t.probe(h.alice, "a1", 3.0)
        await t.enqueue(h.alice, probe)
        await t.wait_heard(lambda x: len(x.audio) >= 5, what="the clip playing")
        await h.sandbox.move_member(h.guild.bot_member, None)
        assert await probe.wait_fallback() == "I was disconnected from voice chat"
        await h.sandbox.sync()
        assert len(joins(h)) == 1  # no rejoin


async def test_a_restart_during_playback_posts_what_had_not_played(make_harness) -> None:
    async with transport(make_harness) as t:
        h = t.h
        await t.join(h.alice)
        long_text = "A long line that is playing when the bot restarts, " * 2
        playing = await h.speak(text=long_text, output="voice")
        await card_with(playing, "playing in #Lounge")
        waiting = await h.speak(text="A second line that waits its turn.", output="voice")
        await card_with(waiting, "done")  # generated, and waiting for voice
        await t.wait_heard(lambda x: len(x.audio) >= 5, what="the first clip playing")
        assert h.audio_messages() == []
        await h.restart_bot()
        posted = await h.sandbox.wait_for(
            lambda: h.audio_messages() if len(h.audio_messages()) == 2 else None, describe="both clips posted"
        )
        assert all("Delivered after a restart" in m.content for m in posted)


async def test_default_limits_let_a_member_queue_three_clips(make_harness) -> None:
    """QUOTA_MAX_IN_FLIGHT and VOICE_MAX_QUEUED_PER_MEMBER agree by default: three quick
    /speak calls all wait for voice while they are generated; a fourth is refused by the
    in-progress limit, and says so."""
    emulator_clock = ManualClock()
    async with make_harness(emulator_clock=emulator_clock) as h:
        assert h.settings.quota_max_in_flight == h.settings.voice_max_queued_per_member == 3
        await h.sandbox.move_member(h.alice, h.voice_channel)
        handles = [await h.speak(text=f"Clip {n} here.", output="voice") for n in (1, 2, 3)]
        await h.emulator.wait_until(lambda: len(h.emulator.jobs) == 3)
        fourth = await h.speak(text="One clip too many.", output="voice")
        refused = await refusal(fourth, "in progress")
        assert refused.content.startswith("You already have 3 requests in progress")
        cog: Any = h.bot.get_cog("Voice")
        player = cog.player(h.guild.id)
        assert len(player.queue) == 3
        emulator_clock.advance(60)
        for handle in handles:
            await card_with(handle, "played in #Lounge")
        assert h.audio_messages() == []


async def test_a_region_change_mid_clip_moves_to_the_new_server_and_plays_on(make_harness) -> None:
    async with transport(make_harness) as t:
        h = t.h
        await t.join(h.alice)
        wav = wav_of(1.5)
        probe = t.probe(h.alice, "a1").feed(wav)
        await t.enqueue(h.alice, probe)
        await t.wait_heard(lambda x: len(x.audio) >= 15, what="the first part of the clip")
        await h.sandbox.set_rtc_region(h.voice_channel, "rotterdam")
        await t.lab.wait_until(lambda: "played in #Lounge" in probe.states)
        assert probe.fallbacks == []
        # Wait for the whole clip's sound, not for discord.py's closing silence: discord.py
        # sends that only if its client counts as connected at the very end, and after a move
        # between voice servers on a loaded machine it was sometimes missing (cause unproven).
        heard = await t.wait_heard(lambda x: x.sound_seconds() >= sound_span(wav) - 0.1,
                                   what="the whole clip, on either server")
        rotterdam = h.sandbox.voice_servers["rotterdam"]
        assert rotterdam.sessions_of(h.sandbox.bot_user.id)[0].frames
        assert sound_span(wav) - 0.1 <= heard.sound_seconds() <= sound_span(wav) * (1 + WHOLE)

        # The client is still connected after the server move: the next clip is heard there.
        before = len(rotterdam.listening(h.voice_channel.id).frames)
        second = t.probe(h.alice, "a2", 0.6)
        await t.enqueue(h.alice, second)
        await t.lab.wait_until(lambda: second.states and second.states[-1] == "played in #Lounge")
        assert second.fallbacks == []
        def second_heard() -> Listening | None:
            heard = Listening(rotterdam.listening(h.voice_channel.id).frames[before:])
            return heard if heard.audio and heard.trailing_silence >= 5 else None

        again = await h.sandbox.wait_for(second_heard, describe="the second clip on the new server")
        assert whole(again, wav_of(0.6)) and again.sequences_monotonic()
        assert len(joins(h)) == 1  # the same connection, moved: no leave and rejoin


async def test_deleting_the_channel_ends_the_clip_and_posts_it(make_harness) -> None:
    async with transport(make_harness) as t:
        h = t.h
        await t.join(h.alice)
        probe = t.probe(h.alice, "a1", 3.0)
        await t.enqueue(h.alice, probe)
        await t.wait_heard(lambda x: len(x.audio) >= 5, what="the clip playing")
        await h.sandbox.delete_channel(h.voice_channel)
        assert await probe.wait_fallback() == "#Lounge was deleted"
        assert len(joins(h)) == 1  # no rejoin


@pytest.mark.parametrize("sequence", ["discord", "keep-socket"])
async def test_a_moderator_dragging_the_bot_mid_clip_keeps_it_playing_there(
    make_harness, sequence: Literal["discord", "keep-socket"]
) -> None:
    """discord.py follows a move Discord makes (voice state, then voice server update: it
    closes the old voice socket and connects to the new one): the clip plays on where the
    moderator put the bot, and the card names that channel."""
    async with transport(make_harness) as t:
        h = t.h
        h.sandbox.set_voice_moves(sequence)
        gaming = h.guild.add_voice_channel("Gaming")
        await h.sandbox.sync()
        await t.join(h.alice)
        await t.join(h.bob, gaming)
        wav = wav_of(1.5)
        probe = t.probe(h.alice, "a1").feed(wav)
        await t.enqueue(h.alice, probe)
        await t.wait_heard(lambda x: len(x.audio) >= 15, what="the first part of the clip")
        await h.sandbox.move_member(h.guild.bot_member, gaming)
        await t.lab.wait_until(lambda: "played in #Gaming" in probe.states)
        assert probe.fallbacks == [] and probe.states == ["playing in #Lounge", "played in #Gaming"]
        in_gaming = await t.wait_heard(lambda x: x.trailing_silence >= 5, gaming)
        in_lounge = t.heard()
        assert in_lounge.audio and in_gaming.audio
        # Played on from where it was: every frame once (the beeps' gaps make sound spans of
        # the two parts unreliable at the cut, so count all audio), at most a few lost.
        total = in_lounge.audio_seconds + in_gaming.audio_seconds
        assert seconds_of(wav) - 0.1 <= total <= seconds_of(wav) * (1 + WHOLE), total
        assert in_gaming.sequences_monotonic()
        assert t.bot_channel() is gaming and len(joins(h)) == 1  # it did not go back, nor rejoin


async def test_a_moderator_dragging_the_bot_into_an_empty_channel_makes_it_leave(make_harness) -> None:
    async with transport(make_harness) as t:
        h = t.h
        gaming = h.guild.add_voice_channel("Gaming")
        await h.sandbox.sync()
        await t.join(h.alice)
        probe = t.probe(h.alice, "a1", 3.0)
        await t.enqueue(h.alice, probe)
        await t.wait_heard(lambda x: len(x.audio) >= 5, what="the clip playing")
        await h.sandbox.move_member(h.guild.bot_member, gaming)
        assert await probe.wait_fallback() == "I was moved to #Gaming, where nobody is listening"
        await h.sandbox.wait_for(lambda: t.bot_channel() is None, describe="the bot to leave")
        assert len(joins(h)) == 1
