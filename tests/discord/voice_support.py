"""Voice test kit: a ``VoiceProtocol`` that joins through the sandbox's gateway and consumes
audio in a thread, plus Opus checks (packet durations, decoding through an Ogg container).

``VoiceLab`` is one test's view of voice: ``lab.voice_cls`` is the class the cog connects
with (``channel.connect(cls=...)``), ``lab.playbacks`` records every ``play`` in order, and
``lab.wait_until(...)`` waits for a condition, re-checked whenever a voice thread or the
gateway side reports progress. Failure knobs: ``connect_error`` (raised by ``connect``).
``hold_ends`` keeps each playback at its end until ``lab.release(playback)``, so a test can
let the next clip's audio complete "while this one plays" without any real time passing.

Only the voice UDP transport is replaced: joining and leaving are real op 4 voice state
updates answered by the sandbox, and ``play`` drains the real ``AudioSource`` (FFmpeg
encoding real WAVs into Opus) as fast as it produces, so tests take no real time per clip.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import struct
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.audio import wav_info
from bot.gateway.emulator.audio import render_test_signal
from cogs.voice.cog import VoiceClip, VoiceCog
from cogs.voice.player import OPUS_SILENCE
from tests.discord.harness import Harness
from tests.sandbox import Channel, Member

#: Safety limit for waits (a hang fails the test instead of blocking the run).
WAIT_LIMIT = 20.0


@dataclass
class Playback:
    """One ``play`` call: the Opus packets it produced (silence fillers counted apart)."""

    voice: TestVoice
    channel_id: int
    source: discord.AudioSource
    packets: list[bytes] = field(default_factory=list)
    fillers: int = 0
    error: Exception | None = None
    stopped: threading.Event = field(default_factory=threading.Event)
    #: The source is drained (set before ``after`` runs, as in discord.py's AudioPlayer).
    ended: threading.Event = field(default_factory=threading.Event)
    #: ``after`` has run too.
    finished: threading.Event = field(default_factory=threading.Event)
    #: With ``VoiceLab.hold_ends``: the source is drained and the playback waits for ``release``.
    drained: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    #: Of ``fillers``, those before the first audio packet (FFmpeg starting up).
    leading_fillers: int = 0

    def plays(self, clip: Any) -> bool:
        """Whether this playback is ``clip``'s audio (a ``VoiceClip``)."""
        reader = getattr(self.source, "reader", None)
        return reader is not None and reader.audio is clip.audio

    @property
    def seconds(self) -> float:
        return sum(opus_packet_seconds(p) for p in self.packets)


class VoiceLab:
    """Per-test voice state; see the module docstring."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.voices: list[TestVoice] = []
        self.playbacks: list[Playback] = []
        self.connect_error: BaseException | None = None
        #: Hold every playback at its end (source drained, ``after`` not yet called) until
        #: ``release(playback)``: as if the clip took long to play, without any real time.
        self.hold_ends = False
        self._changed = asyncio.Event()
        lab = self

        class BoundTestVoice(TestVoice):
            def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
                super().__init__(client, channel, lab)

        self.voice_cls: type[TestVoice] = BoundTestVoice

    def notify(self) -> None:
        """Wake waiters; callable from any thread."""
        self.loop.call_soon_threadsafe(self._notify)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], Any]) -> Any:
        """``predicate()`` once truthy (a safety timeout, not an assertion on time)."""
        async with asyncio.timeout(WAIT_LIMIT):
            while not (value := predicate()):
                await self._changed.wait()
        return value

    async def wait_for_playbacks(self, count: int) -> list[Playback]:
        await self.wait_until(lambda: len(self.playbacks) >= count)
        return self.playbacks[:count]

    def release(self, playback: Playback) -> None:
        """Let a playback held by ``hold_ends`` end (its ``after`` runs)."""
        playback.release.set()

    async def wait_finished(self, playback: Playback) -> Playback:
        await self.wait_until(playback.finished.is_set)
        return playback


class TestVoice(discord.VoiceProtocol):
    """Joins and leaves with op 4 (the sandbox answers like Discord); plays by draining the source."""

    __test__ = False  # not a pytest class

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable, lab: VoiceLab) -> None:
        super().__init__(client, channel)
        self.lab = lab
        self._connected = False
        self._server_update = asyncio.Event()
        self._state_channel: int | None = None
        self._state_changed = asyncio.Event()
        self.playback: Playback | None = None
        self.state_updates: list[dict[str, Any]] = []
        #: As ``cogs.voice.connection.PlayerVoiceClient``: Discord removed the bot while connected.
        self.removed_by_discord = False
        self._leaving = False
        lab.voices.append(self)

    @property
    def guild(self) -> discord.Guild:
        channel = self.channel
        assert isinstance(channel, discord.VoiceChannel)
        return channel.guild

    # -- gateway events (discord.py calls these for the bot's own voice state) ----------

    async def on_voice_state_update(self, data: Any, /) -> None:
        self.state_updates.append(data)
        raw = data.get("channel_id")
        self._state_channel = None if raw is None else int(raw)
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        if raw is None:
            # Disconnected (by us or by a moderator): stop and forget, as VoiceClient does.
            if self._connected and not self._leaving:
                self.removed_by_discord = True
            self._connected = False
            self.stop()
            self.cleanup()
        else:
            moved = self.guild.get_channel(int(raw))
            if moved is not None:
                self.channel = moved  # type: ignore[assignment]
        self.lab.notify()

    async def on_voice_server_update(self, data: Any, /) -> None:
        self._server_update.set()

    async def _wait_state(self, channel_id: int | None, limit: float) -> None:
        async with asyncio.timeout(limit):
            while self._state_channel != channel_id:
                await self._state_changed.wait()

    # -- VoiceProtocol ------------------------------------------------------------------

    async def connect(
        self,
        *,
        timeout: float,  # noqa: ASYNC109  (discord.py's signature)
        reconnect: bool,
        self_deaf: bool = False,
        self_mute: bool = False,
    ) -> None:
        if self.lab.connect_error is not None:
            raise self.lab.connect_error
        channel = self.channel
        assert isinstance(channel, discord.VoiceChannel)
        await self.guild.change_voice_state(channel=channel, self_deaf=self_deaf, self_mute=self_mute)
        async with asyncio.timeout(timeout):
            await self._server_update.wait()
        await self._wait_state(channel.id, timeout)
        self._connected = True
        self.lab.notify()

    async def move_to(self, channel: Any, *, timeout: float | None = 30.0) -> None:  # noqa: ASYNC109
        await self.guild.change_voice_state(channel=channel, self_deaf=True)
        await self._wait_state(channel.id, timeout or 30.0)
        self.channel = channel
        self.lab.notify()

    async def disconnect(self, *, force: bool = False) -> None:
        self.stop()
        self._leaving = True
        if self._connected:
            await self.guild.change_voice_state(channel=None)
            await self._wait_state(None, 10.0)
        self._connected = False
        self.cleanup()
        self.lab.notify()

    def is_connected(self) -> bool:
        return self._connected

    # -- playing ------------------------------------------------------------------------

    def play(
        self, source: discord.AudioSource, *, after: Callable[[Exception | None], Any] | None = None
    ) -> None:
        if not self._connected:
            raise discord.ClientException("Not connected to voice.")
        if self.is_playing():
            raise discord.ClientException("Already playing audio.")
        channel = self.channel
        assert isinstance(channel, discord.VoiceChannel)
        playback = Playback(self, channel.id, source)
        self.playback = playback
        self.lab.playbacks.append(playback)
        threading.Thread(target=self._drain, args=(playback, after), daemon=True, name="test-voice").start()
        self.lab.notify()

    def _drain(self, playback: Playback, after: Callable[[Exception | None], Any] | None) -> None:
        source = playback.source
        error: Exception | None = None
        try:
            while not playback.stopped.is_set():
                data = source.read()
                if not data:
                    error = getattr(source, "_current_error", None)
                    break
                if data == OPUS_SILENCE:
                    playback.fillers += 1
                    if not playback.packets:
                        playback.leading_fillers += 1
                else:
                    playback.packets.append(data)
                    self.lab.notify()
        except Exception as exc:
            error = exc
        finally:
            if self.lab.hold_ends:
                playback.drained.set()
                self.lab.notify()
                playback.release.wait(WAIT_LIMIT)
            playback.ended.set()
            source.cleanup()
            playback.error = error
            if after is not None:
                after(error)
            playback.finished.set()
            self.lab.notify()

    def is_playing(self) -> bool:
        playback = self.playback
        return playback is not None and not playback.ended.is_set() and not playback.stopped.is_set()

    def stop(self) -> None:
        if self.playback is not None:
            self.playback.stopped.set()
            self.playback.release.set()


# --------------------------------------------------------------------------- Opus checks

_SILK_MS = (10, 20, 40, 60)
_CELT_MS = (2.5, 5, 10, 20)


def opus_packet_seconds(packet: bytes) -> float:
    """Audio duration of one Opus packet, from its TOC byte (RFC 6716, section 3.1)."""
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        frame_ms: float = _SILK_MS[config & 3]
    elif config < 16:
        frame_ms = 10 if config & 1 == 0 else 20
    else:
        frame_ms = _CELT_MS[config & 3]
    code = toc & 3
    frames = 1 if code == 0 else 2 if code in (1, 2) else packet[1] & 0x3F
    return frames * frame_ms / 1000


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _ogg_page(packet: bytes, *, granule: int, seq: int, flags: int) -> bytes:
    lacing = [255] * (len(packet) // 255) + [len(packet) % 255]
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, 0x0C1D, seq, 0, len(lacing))
    page = header + bytes(lacing) + packet
    crc = _ogg_crc(page)
    return page[:22] + struct.pack("<I", crc) + page[26:]


def ogg_opus(packets: list[bytes], *, channels: int = 2) -> bytes:
    """Wrap raw Opus packets (as sent to Discord) into an Ogg Opus file (RFC 7845)."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 312, 48000, 0, 0)
    vendor = b"chatterbox-tests"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    pages = [_ogg_page(head, granule=0, seq=0, flags=2), _ogg_page(tags, granule=0, seq=1, flags=0)]
    granule = 0
    for index, packet in enumerate(packets):
        granule += round(opus_packet_seconds(packet) * 48000)
        last = index == len(packets) - 1
        pages.append(_ogg_page(packet, granule=granule, seq=index + 2, flags=4 if last else 0))
    return b"".join(pages)


def decode_opus_packets(packets: list[bytes], ffmpeg: str) -> bytes:
    """Decode Opus packets with FFmpeg (through an Ogg container) to 48 kHz mono s16le PCM.

    Synchronous: call it through ``asyncio.to_thread``. Raises if FFmpeg rejects the stream.
    """
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "ogg", "-i", "pipe:0",
         "-ac", "1", "-ar", "48000", "-f", "s16le", "pipe:1"],
        input=ogg_opus(packets),
        capture_output=True,
        check=False,
    )
    if result.returncode != 0 or result.stderr.strip():
        raise AssertionError(f"FFmpeg could not decode the Opus packets: {result.stderr.decode()[-300:]}")
    return result.stdout


def peak(pcm: bytes) -> int:
    """Largest absolute sample of s16le PCM."""
    samples = array.array("h", pcm)
    return max((abs(v) for v in samples), default=0)


# --------------------------------------------------------------------------- test worlds


def emulator_wav(text: str) -> bytes:
    """The WAV the gateway emulator returns for ``text`` (0.06 s per character)."""
    return render_test_signal(text, 0.06)


def seconds_of(wav: bytes) -> float:
    return wav_info(wav).duration


class ClipProbe:
    """A ``VoiceClip`` whose card states and fallbacks are recorded (and wake the lab)."""

    _ids = itertools.count(1)

    def __init__(self, lab: VoiceLab, member: Member, label: str) -> None:
        self.lab = lab
        self.states: list[str] = []
        self.fallbacks: list[str] = []
        self.clip = VoiceClip(
            job_id=f"job-{next(self._ids)}",
            requester_id=member.id,
            requester_name=member.name,
            label=label,
            text_channel_id=None,
            on_state=self._on_state,
            fallback=self._on_fallback,
        )

    async def _on_state(self, text: str) -> None:
        self.states.append(text)
        self.lab.notify()

    async def _on_fallback(self, reason: str) -> None:
        self.fallbacks.append(reason)
        self.lab.notify()

    def feed(self, *wavs: bytes, finish: bool = True) -> ClipProbe:
        for n, wav in enumerate(wavs, 1):
            # The last chunk finishes the clip in the same step (as /speak does), so a reader
            # already at its end never pads the stream with a "next chunk is late" pause.
            self.clip.push(wav, last=finish and n == len(wavs))
        if finish and not wavs:
            self.clip.finish()
        return self

    async def wait_state(self, text: str) -> None:
        await self.lab.wait_until(lambda: text in self.states)

    async def wait_fallback(self) -> str:
        return await self.lab.wait_until(lambda: self.fallbacks and self.fallbacks[0])


@dataclass
class VoiceWorld:
    """The harness, the voice lab and the bot's Voice cog, with shortcuts."""

    h: Harness
    lab: VoiceLab

    @property
    def cog(self) -> VoiceCog:
        cog = self.h.bot.get_cog("Voice")
        # load_extension executes cogs/voice.py afresh, so its classes are not this module's.
        assert cog is not None and type(cog).__name__ == VoiceCog.__name__
        return cog  # type: ignore[return-value]

    @property
    def guild(self) -> discord.Guild:
        guild = self.h.bot.get_guild(self.h.guild.id)
        assert guild is not None
        return guild

    def member(self, who: Member) -> discord.Member:
        member = self.guild.get_member(who.id)
        assert member is not None, f"{who.name} is not cached (not in voice?)"
        return member

    async def join(self, who: Member, channel: Channel | None = None) -> None:
        await self.h.sandbox.move_member(who, channel or self.h.voice_channel)

    def probe(self, who: Member, label: str = "hello") -> ClipProbe:
        return ClipProbe(self.lab, who, label)

    async def enqueue(self, who: Member, probe: ClipProbe) -> Any:
        return await self.cog.enqueue(self.member(who), probe.clip)

    def bot_channel(self) -> Channel | None:
        """Where Discord (the sandbox) has the bot in voice."""
        return self.h.guild.voice_channel_of(self.h.sandbox.bot_user)

    async def wait_bot_channel(self, channel: Channel | None) -> None:
        await self.h.sandbox.wait_for(lambda: self.bot_channel() is channel, describe="the bot in voice")
        await self.lab.wait_until(lambda: (self.guild.voice_client is None) == (channel is None))

    async def wait_player(self, predicate: Callable[[Any], Any]) -> Any:
        """Wait until ``predicate(the guild's player)`` holds (woken by player changes)."""
        cog = self.cog
        player = cog.player(self.guild.id)
        async with asyncio.timeout(WAIT_LIMIT):
            return await cog.wait_until(lambda: predicate(player))

    def playback_of(self, probe: ClipProbe) -> Playback | None:
        return next((p for p in self.lab.playbacks if p.plays(probe.clip)), None)

    async def wait_playback(self, probe: ClipProbe) -> Playback:
        return await self.lab.wait_until(lambda: self.playback_of(probe))

    async def command(self, name: str, who: Member) -> str:
        """Run ``/voice <name>`` as ``who``; the ephemeral reply's text."""
        handle = await self.h.sandbox.slash(f"voice {name}", user=who, channel=self.h.general)
        message = await handle.wait_for_original()
        assert message.ephemeral
        return message.content


def voice_world(make_harness: Callable[..., AbstractAsyncContextManager[Harness]], **knobs: Any) -> Any:
    """``async with voice_world(make_harness, settings={...}) as w:`` — a harness whose bot
    connects to voice through ``TestVoice``."""

    @asynccontextmanager
    async def opened() -> AsyncIterator[VoiceWorld]:
        lab = VoiceLab()
        async with make_harness(voice_cls=lab.voice_cls, **knobs) as h:
            yield VoiceWorld(h, lab)

    return opened()
