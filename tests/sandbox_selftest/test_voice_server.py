"""The voice server with the unmodified ``discord.VoiceClient``: real TLS websocket, UDP
discovery, encrypted RTP, Opus decoded on the listener's side; moves, region changes, kicks
and close codes as Discord produces them."""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

import discord
import discord.opus
import pytest

from tests.sandbox import DiscordSandbox
from tests.sandbox.voice_server import SAMPLE_RATE, ensure_opus
from tests.sandbox_selftest.conftest import World
from tests.sandbox_selftest.tiny_bot import TinyBot

#: The voice server decodes what it hears with libopus (skipped without it, failed under CI).
pytestmark = pytest.mark.usefixtures("libopus")

FRAMES = 15  # 0.3 s of tone


class ToneSource(discord.AudioSource):
    """``FRAMES`` Opus frames of a 440 Hz tone, encoded with libopus; counts what was read."""

    def __init__(self, frames: int = FRAMES) -> None:
        ensure_opus()
        encoder = discord.opus.Encoder()
        samples = discord.opus.Encoder.SAMPLES_PER_FRAME
        self.packets: list[bytes] = []
        for n in range(frames):
            pcm = bytearray()
            for i in range(samples):
                value = int(8000 * math.sin(2 * math.pi * 440 * (n * samples + i) / SAMPLE_RATE))
                pcm += struct.pack("<hh", value, value)
            self.packets.append(encoder.encode(bytes(pcm), samples))
        self.read_count = 0

    def is_opus(self) -> bool:
        return True

    def read(self) -> bytes:
        if self.read_count >= len(self.packets):
            return b""
        self.read_count += 1
        return self.packets[self.read_count - 1]


@pytest.fixture
async def voice_bot(sandbox: DiscordSandbox, world: World) -> AsyncIterator[TinyBot]:
    async with sandbox.run_bot(TinyBot(connector=sandbox.voice_connector())) as bot:
        yield bot


class ObservedVoiceClient(discord.VoiceClient):
    """The stock client, telling the test when discord.py has let the connection go."""

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        super().__init__(client, channel)
        self.cleaned = asyncio.Event()

    def cleanup(self) -> None:
        super().cleanup()
        self.cleaned.set()


async def _connect(bot: TinyBot, channel_id: int, **kwargs: Any) -> discord.VoiceClient:
    channel = bot.get_channel(channel_id)
    assert isinstance(channel, discord.VoiceChannel)
    kwargs.setdefault("timeout", 10)
    return await channel.connect(self_deaf=True, **kwargs)


async def _play(voice: discord.VoiceClient, source: discord.AudioSource) -> Exception | None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Exception | None] = loop.create_future()
    voice.play(source, after=lambda e: loop.call_soon_threadsafe(done.set_result, e))
    return await asyncio.wait_for(done, 20)


async def test_voice_client_connects_and_is_heard_whole(
    sandbox: DiscordSandbox, world: World, voice_bot: TinyBot
) -> None:
    voice = await _connect(voice_bot, world.voice.id)
    server = sandbox.voice_server
    session = server.live_session(sandbox.bot_user.id)
    assert voice.is_connected() and session is not None
    assert session.discovered and session.secret_key is not None and voice.mode == session.mode
    assert session.channel_id == world.voice.id

    assert await _play(voice, ToneSource()) is None
    heard = await sandbox.wait_for(
        lambda: (h := sandbox.listening(world.voice)).trailing_silence >= 5 and h,
        describe="the tone and discord.py's closing silence",
    )
    assert len(heard.audio) == FRAMES
    assert heard.audio_seconds == pytest.approx(FRAMES * 0.02)
    assert heard.sequences_monotonic()
    assert heard.trailing_silence == 5
    assert 1 in session.speaking  # SPEAKING (voice) before the audio
    await voice.disconnect()
    assert world.guild.voice_channel_of(sandbox.bot_user) is None


async def test_refused_handshake_closes_with_its_code(
    sandbox: DiscordSandbox, world: World, voice_bot: TinyBot
) -> None:
    sandbox.voice_server.refuse_with = 4017
    with pytest.raises(discord.ConnectionClosed) as caught:
        await _connect(voice_bot, world.voice.id, reconnect=False)
    assert caught.value.code == 4017
    assert [s.close_code for s in sandbox.voice_server.sessions] == [4017]


async def test_dave_announced_gets_the_clients_key_package(
    sandbox: DiscordSandbox, world: World, voice_bot: TinyBot
) -> None:
    sandbox.voice_server.dave = "announce"
    voice = await _connect(voice_bot, world.voice.id)
    session = sandbox.voice_server.live_session(sandbox.bot_user.id)
    assert session is not None and session.max_dave_protocol_version >= 1
    await sandbox.wait_for(lambda: session.key_packages, describe="the MLS key package")
    await voice.disconnect()


async def test_move_follows_discords_sequence(
    sandbox: DiscordSandbox, world: World, voice_bot: TinyBot
) -> None:
    """A move is answered with VOICE_STATE_UPDATE, a fresh VOICE_SERVER_UPDATE and the old
    voice socket closed with 4014; discord.py then opens a new voice session for the new
    channel. (Its in-place move still does not complete: the new UDP socket's discovery
    reply is never read, because discord.py's socket reader keeps waiting on the old socket.
    That is why the bot reconnects afresh instead of relying on ``move_to``.)"""
    other = world.guild.add_voice_channel("Other")
    voice = await _connect(voice_bot, world.voice.id)
    server = sandbox.voice_server
    first = server.live_session(sandbox.bot_user.id)
    await voice.move_to(voice_bot.get_channel(other.id), timeout=0.5)  # type: ignore[arg-type]
    assert world.guild.voice_channel_of(sandbox.bot_user) is other
    assert first is not None and first.closed and first.close_code == 4014
    second = await sandbox.wait_for(
        lambda: (s := server.live_session(sandbox.bot_user.id)) is not None and s.discovered and s,
        describe="a new voice session for the new channel",
    )
    assert second is not first and second.channel_id == other.id
    assert not voice.is_connected()  # see the docstring
    await voice.disconnect(force=True)


async def test_move_that_keeps_the_old_socket_does_not_complete(
    sandbox: DiscordSandbox, world: World, voice_bot: TinyBot
) -> None:
    """What the bot must survive: discord.py's move waits for a 4014 that never comes."""
    other = world.guild.add_voice_channel("Other")
    sandbox.set_voice_moves("keep-socket")
    voice = await _connect(voice_bot, world.voice.id)
    await voice.move_to(voice_bot.get_channel(other.id), timeout=0.2)  # type: ignore[arg-type]
    assert not voice.is_connected()
    await voice.disconnect(force=True)


async def test_region_change_reconnects_to_the_new_server(
    sandbox: DiscordSandbox, world: World, voice_bot: TinyBot
) -> None:
    voice = await _connect(voice_bot, world.voice.id)
    await sandbox.set_rtc_region(world.voice, "rotterdam")
    new_server = sandbox.voice_servers["rotterdam"]
    session = await sandbox.wait_for(
        lambda: (s := new_server.live_session(sandbox.bot_user.id)) is not None and s.secret_key and s,
        describe="the bot on the new region's server",
    )
    await sandbox.wait_for(voice.is_connected, describe="the voice client connected again")
    assert await _play(voice, ToneSource()) is None
    await sandbox.wait_for(lambda: len(session.frames) >= FRAMES, describe="audio on the new server")
    await voice.disconnect()


@pytest.mark.parametrize("code", [4006, 4009, 4015])
async def test_close_codes_reach_the_client(
    sandbox: DiscordSandbox, world: World, voice_bot: TinyBot, code: int
) -> None:
    """A close on demand ends the session with that code; a client without reconnect ends
    (for 4015 discord.py first tries to resume, for up to its connect timeout)."""
    voice = await _connect(voice_bot, world.voice.id, reconnect=False, cls=ObservedVoiceClient, timeout=1)
    assert isinstance(voice, ObservedVoiceClient)
    session = sandbox.voice_server.live_session(sandbox.bot_user.id)
    assert session is not None
    await session.close(code, "on demand")
    await asyncio.wait_for(voice.cleaned.wait(), 10)
    assert session.close_code == code


async def test_network_drop_cuts_the_connection(
    sandbox: DiscordSandbox, world: World, voice_bot: TinyBot
) -> None:
    voice = await _connect(voice_bot, world.voice.id, reconnect=False, cls=ObservedVoiceClient)
    assert isinstance(voice, ObservedVoiceClient)
    session = sandbox.voice_server.live_session(sandbox.bot_user.id)
    assert session is not None
    session.drop()
    await asyncio.wait_for(voice.cleaned.wait(), 10)
    assert session.close_code == 1006  # abnormal closure: no close frame was sent


async def test_kick_ends_the_voice_client(sandbox: DiscordSandbox, world: World, voice_bot: TinyBot) -> None:
    voice = await _connect(voice_bot, world.voice.id, cls=ObservedVoiceClient)
    assert isinstance(voice, ObservedVoiceClient)
    session = sandbox.voice_server.live_session(sandbox.bot_user.id)
    await sandbox.move_member(world.guild.bot_member, None)
    await asyncio.wait_for(voice.cleaned.wait(), 10)
    guild = voice_bot.get_guild(world.guild.id)
    assert guild is not None and guild.voice_client is None
    await sandbox.wait_for(lambda: session is not None and session.closed, describe="the session to end")
    assert not voice.is_connected()


async def test_silent_server_and_lost_discovery_time_out(
    sandbox: DiscordSandbox, world: World, voice_bot: TinyBot
) -> None:
    server = sandbox.voice_server
    server.drop_discovery = True
    with pytest.raises(TimeoutError):
        await _connect(voice_bot, world.voice.id, reconnect=False, timeout=0.3)
    assert server.discovery_requests == 1 and not server.sessions[0].discovered
    server.drop_discovery = False
    server.silent = True
    with pytest.raises(TimeoutError):
        await _connect(voice_bot, world.voice.id, reconnect=False, timeout=0.3)
    assert server.sessions[1].grant is None
