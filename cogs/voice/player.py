"""The per-guild voice player behind ``cogs.voice``: one clip at a time, fair queue, auto-leave.

Design decisions (the user-facing ones are repeated in ``cogs/voice.py``):

* **One worker task per guild** takes the next *ready* clip from the ``FairQueue`` (a clip
  whose first chunk has not arrived keeps its place without blocking the others), joins the
  requester's *current* voice channel (moving the bot there if it is elsewhere), plays,
  reports the outcome on the card, and repeats. The bot connects only when a clip is ready,
  so it never sits in a channel waiting for audio that is still being generated.
* **Audio**: ``ClipOpusSource`` is ``discord.FFmpegOpusAudio`` fed raw PCM through a pipe
  while the chunks arrive. FFmpeg's Ogg muxer is told to flush every packet
  (``-page_duration 20000 -flush_packets 1``), otherwise it holds a second of audio per page
  and only lets go at the end of the input. When no packet is ready (the next chunk is still
  being generated) ``read`` returns an Opus silence frame after one frame's time instead of
  blocking: discord.py's ``AudioPlayer`` paces by frame count, and after a blocked read it
  would send the backlog in a burst that listeners hear as skipped audio.
* **Ending a clip** (skip, stop, abort, bot disconnected, everyone left) records *why* on the
  ``NowPlaying`` and then stops the voice client; the worker turns the reason into the card
  text or the file fallback when the player's ``after`` callback fires. One path, no races.
* **Idle**: after a clip the ``IdleTimer`` (``bot.clock``) runs; when ``VOICE_IDLE_SECONDS``
  pass with nothing playing the bot leaves. Connect/move/leave run under one lock, and a
  clip about to start marks the player busy so a late idle timer cannot leave under it.
* **Joining** is one attempt bounded by ``VOICE_CONNECT_TIMEOUT`` (``cogs.voice.connection``
  says why: discord.py's own retries join and leave the channel up to five times). A clip
  whose requester is in another channel **leaves and joins afresh** rather than
  ``move_to``: discord.py 2.7's in-place move does not complete against Discord's sequence
  (its UDP reader waits on the old socket), and a fresh join takes a fraction of a second.
* **Reconnecting**: the clip's Opus stream is played through ``ResumableSource``, which
  survives the voice client. When the connection ends under a clip (4006, 4009, 4015, a
  network drop) and Discord did not remove the bot, the player joins again and plays on
  from the next packet (``MAX_RECOVERIES`` times per clip). While the voice websocket is
  down the source sends silence instead of audio, so what listeners miss is the gap, not
  the words. A kick or a deleted channel ends the clip: it is posted as a file.
* **Failures never lose audio**: a failed join (permission, channel full, DAVE handshake,
  voice server unreachable, timeout), FFmpeg failing to start, or a playback error calls
  ``clip.give_up(reason)``, and the /speak cog posts the file with that reason.
* **Nothing is lost on a restart**: ``clip.settle()`` runs when the player is done with a
  clip for good, never when the bot shuts down; the /speak cog marks a voice job delivered
  only then, so a restart posts the clips that had not played.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import shlex
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import discord

from bot.audio import AudioError, WavInfo, ffmpeg_raw_input_args
from bot.playback.clip import PcmReader, VoiceClip
from bot.playback.queue import FairQueue, IdleTimer, ordinal
from cogs.voice.connection import PlayerVoiceClient, describe_join_failure

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

log = logging.getLogger(__name__)

#: What discord.py sends for silence (an Opus frame that decodes to 20 ms of nothing).
OPUS_SILENCE = b"\xf8\xff\xfe"
FRAME_SECONDS = 0.02
CLOSE_TIMEOUT = 2.0
#: Times one clip may reconnect after its connection dropped before it is posted instead.
MAX_RECOVERIES = 3
VOICE_BITRATE_KBPS = 64
_HEADER_PACKETS = (b"OpusHead", b"OpusTags")
#: After the input: -loglevel error overrides discord.py's "warning" (FFmpeg warns about the
#: guessed mono layout of raw input); the Ogg options flush each packet as it is encoded.
_OUTPUT_OPTIONS = "-loglevel error -page_duration 20000 -flush_packets 1"


class ClipOpusSource(discord.FFmpegOpusAudio):
    """``FFmpegOpusAudio`` over a clip that is still arriving; never blocks ``read`` for long.

    Build it in a thread (``asyncio.to_thread``): the constructor starts FFmpeg. Counts
    ``audio_packets`` and ``filler_packets`` (silence sent while waiting for audio).
    """

    def __init__(
        self, reader: PcmReader, info: WavInfo, *, executable: str, bitrate: int = VOICE_BITRATE_KBPS
    ) -> None:
        #: The clip's PCM; read by ``_pipe_writer``, which the base constructor starts.
        self.reader = reader
        self._packets: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._ended = False
        self.audio_packets = 0
        self.filler_packets = 0
        self._stderr_file = tempfile.TemporaryFile()
        try:
            super().__init__(
                cast(Any, reader),
                pipe=True,
                executable=executable,
                bitrate=bitrate,
                before_options=shlex.join(ffmpeg_raw_input_args(info)),
                options=_OUTPUT_OPTIONS,
                stderr=self._stderr_file,
            )
        except BaseException:
            reader.close()
            self._stderr_file.close()
            raise
        packets = self._packet_iter
        stdout = self._stdout
        threading.Thread(
            target=self._pump, args=(packets, stdout), daemon=True, name=f"opus-pump:pid-{self._process.pid}"
        ).start()

    def _pipe_writer(self, source: Any) -> None:
        # Replaces discord.py's writer: flush every block (a half-full buffer would hold the
        # end of a chunk back until the next one arrives), and keep our own stdin reference
        # so a concurrent cleanup() cannot pull it away mid-write.
        stdin = self._stdin
        if stdin is None:
            return
        try:
            while data := self.reader.read(self.BLOCKSIZE):
                stdin.write(data)
                stdin.flush()
        except (OSError, ValueError) as exc:
            log.debug("stopped feeding FFmpeg: %s", exc)
        finally:
            with contextlib.suppress(OSError, ValueError):
                stdin.close()

    def _pump(self, packets: Any, stdout: Any) -> None:
        try:
            for packet in packets:
                if not packet.startswith(_HEADER_PACKETS):
                    self._packets.put(packet)
        except Exception as exc:  # a killed FFmpeg leaves a truncated page
            log.debug("Opus stream ended early: %s", exc)
        finally:
            self._packets.put(None)
            with contextlib.suppress(OSError, ValueError):
                stdout.close()

    @property
    def finished(self) -> bool:
        """The whole clip has been read."""
        return self._ended

    def read(self) -> bytes:
        if self._ended:
            return b""
        try:
            packet = self._packets.get(timeout=FRAME_SECONDS)
        except queue.Empty:
            self.filler_packets += 1
            return OPUS_SILENCE
        if packet is None:
            self._ended = True
            self._note_exit()
            return b""
        self.audio_packets += 1
        return packet

    def _note_exit(self) -> None:
        """At the end of the stream: a non-zero FFmpeg exit becomes ``_current_error``,
        which discord.py's player hands to ``after``."""
        process = self._process
        if not process or self._stopped:
            return
        try:
            code = process.wait(timeout=2)
        except Exception:
            return
        if code != 0 and self._current_error is None:
            # For the log (``_report_end``); the member hears of it in plain words.
            self._current_error = discord.FFmpegProcessError(
                f"FFmpeg exited with code {code}: {self.stderr_tail()}"
            )

    def stderr_tail(self) -> str:
        try:
            self._stderr_file.seek(0)
            lines = [ln.strip() for ln in self._stderr_file.read().decode("utf-8", "replace").splitlines()]
        except (OSError, ValueError):
            return "no error output"
        lines = [ln for ln in lines if ln]
        return lines[-1][:300] if lines else "no error output"

    def cleanup(self) -> None:
        self.reader.close()
        super().cleanup()
        with contextlib.suppress(OSError, ValueError):
            self._stderr_file.close()


class ResumableSource(discord.AudioSource):
    """What the voice client plays: a clip's ``ClipOpusSource`` that outlives one voice client.

    ``cleanup`` (called by discord.py's player thread at every end) does nothing: the player
    cleans the clip's source when the clip is over, so after a reconnect it plays on from the
    next packet. While ``gate()`` is False (the voice websocket dropped and discord.py has
    not noticed yet) ``read`` returns silence instead of consuming audio nobody would hear.
    """

    def __init__(self, source: ClipOpusSource, gate: Callable[[], bool]) -> None:
        self.source = source
        self.gate = gate

    @property
    def reader(self) -> PcmReader:
        return self.source.reader

    @property
    def _current_error(self) -> Exception | None:  # read by discord.py's AudioPlayer at the end
        return self.source._current_error

    def is_opus(self) -> bool:
        return True

    def read(self) -> bytes:
        if not self.gate():
            return OPUS_SILENCE
        return self.source.read()

    def cleanup(self) -> None:
        pass


class PlayableVoice(Protocol):
    """What the player needs from a voice connection: ``discord.VoiceClient`` or a test double."""

    channel: Any

    def play(
        self, source: discord.AudioSource, *, after: Callable[[Exception | None], Any] | None = ...
    ) -> None: ...
    def stop(self) -> None: ...
    def is_playing(self) -> bool: ...
    def is_connected(self) -> bool: ...
    async def move_to(self, channel: Any, *, timeout: float | None = ...) -> None: ...  # noqa: ASYNC109
    async def disconnect(self, *, force: bool = ...) -> None: ...
    def cleanup(self) -> None: ...


class VoiceUnavailable(Exception):
    """Joining or moving failed; the message completes "posted instead because …"."""


@dataclass(frozen=True)
class Ending:
    """Why a clip stopped early: a card text, or a reason to post the file instead (or neither)."""

    card: str | None = None
    fallback: str | None = None


@dataclass
class NowPlaying:
    clip: VoiceClip
    channel: discord.VoiceChannel
    voice: PlayableVoice
    source: ClipOpusSource
    done: asyncio.Future[Exception | None]
    ended_by: Ending | None = None
    #: Times the connection dropped under this clip and was made again.
    recoveries: int = 0


def humans_in(channel: Any) -> list[discord.Member]:
    return [m for m in getattr(channel, "members", []) if not m.bot]


def voice_problem(channel: Any, me: discord.Member) -> str | None:
    """Why the bot cannot play in ``channel`` (a clause for "posted instead because …"), or None."""
    if isinstance(channel, discord.StageChannel):
        return f"I don't speak in stage channels (#{channel.name})"
    if not isinstance(channel, discord.VoiceChannel):
        return "you are not in a voice channel"
    perms = channel.permissions_for(me)
    if not (perms.view_channel and perms.connect):
        return f"I don't have permission to join #{channel.name} (Connect)"
    if not perms.speak:
        return f"I don't have permission to speak in #{channel.name} (Speak)"
    already_there = me.voice is not None and me.voice.channel == channel
    if channel.user_limit and len(channel.members) >= channel.user_limit and not already_there:
        if not perms.move_members:
            return f"#{channel.name} is full"
    if me.is_timed_out():
        return "I am timed out on this server"
    return None


def _removed_by_discord(voice: Any) -> bool:
    return bool(getattr(voice, "removed_by_discord", False))


class GuildPlayer:
    """One guild's voice player. Owned by ``VoiceCog``; all methods run on the bot's loop."""

    def __init__(
        self,
        bot: ChatterboxBot,
        guild_id: int,
        *,
        voice_cls: type[discord.VoiceProtocol] | None,
        changed: Callable[[], None],
    ) -> None:
        settings = bot.settings
        self.bot = bot
        self.guild_id = guild_id
        self.voice_cls = voice_cls
        self._changed = changed
        self.queue: FairQueue[VoiceClip] = FairQueue(settings.voice_max_queued_per_member)
        self.idle = IdleTimer(bot.clock, settings.voice_idle_seconds, on_wait=changed)
        self.pause_ms: int = settings.chatterbox_chunk_pause_ms
        self.connect_timeout: float = settings.voice_connect_timeout
        self.current: NowPlaying | None = None
        self._closing = False
        #: Set while a clip is being started (joining, starting FFmpeg), so idle cannot leave.
        self.busy = False
        self._announced: dict[VoiceClip, int] = {}
        #: Times the worker found no clip ready to play and waited for one. Between two clips
        #: it stays the same when the next one was ready: the worker went straight on (tests
        #: prove back-to-back playback with it, without timing anything).
        self.waits_for_clip = 0
        self._wake = asyncio.Event()
        self._voice_lock = asyncio.Lock()
        self._idle_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._worker = asyncio.create_task(self._run(), name=f"voice-player:{guild_id}")

    # -- views ------------------------------------------------------------------------------

    @property
    def guild(self) -> discord.Guild | None:
        return self.bot.get_guild(self.guild_id)

    @property
    def voice(self) -> PlayableVoice | None:
        guild = self.guild
        return None if guild is None else cast(PlayableVoice | None, guild.voice_client)

    @property
    def idle_armed(self) -> bool:
        """The idle timer is sleeping on the clock (for tests and /voice queue)."""
        return self.idle.waiting

    def is_empty(self) -> bool:
        return self.current is None and not self.busy and len(self.queue) == 0

    # -- queueing ---------------------------------------------------------------------------

    def add(self, clip: VoiceClip) -> int:
        """Queue ``clip``; returns its position. Raises ``QueueFull``."""
        position = self.queue.add(clip.requester_id, clip)
        clip.subscribe(self._on_clip_change)
        self._wake.set()
        self._changed()
        return position

    def _on_clip_change(self, clip: VoiceClip) -> None:
        now = self.current
        if clip in self.queue:
            if clip.aborted is not None:
                self.queue.remove(clip)
                self._announced.pop(clip, None)
                clip.unsubscribe(self._on_clip_change)
                self._spawn(clip.settle())
                self._spawn(self.announce_positions())
            self._wake.set()
        elif now is not None and now.clip is clip:
            if clip.aborted is not None:
                self.end_current(Ending())
            elif clip.failure is not None:
                self.end_current(Ending(fallback=clip.failure))
        self._changed()

    async def announce_positions(self) -> None:
        """Tell every waiting clip whose place changed: "queued (2nd)"."""
        something_ahead = self.current is not None or self.busy
        for clip, position in self.queue.positions().items():
            if position == 1 and not something_ahead:
                continue
            if self._announced.get(clip) != position:
                self._announced[clip] = position
                await clip.report(f"queued ({ordinal(position)})")

    # -- control ----------------------------------------------------------------------------

    def end_current(self, ending: Ending) -> bool:
        """Stop the clip that is playing, for ``ending``'s reason; False if none is playing."""
        now = self.current
        if now is None or now.ended_by is not None:
            return False
        now.ended_by = ending
        now.voice.stop()
        return True

    def clear_queue(self, card: str | None) -> list[VoiceClip]:
        """Drop every waiting clip (each card shows ``card``); returns them."""
        cleared = self.queue.clear()
        for clip in cleared:
            clip.unsubscribe(self._on_clip_change)
            self._announced.pop(clip, None)
            self._spawn(self._report_and_settle(clip, card))
        self._changed()
        return cleared

    async def _report_and_settle(self, clip: VoiceClip, card: str | None) -> None:
        if card:
            await clip.report(card)
        await clip.settle()

    async def leave(self, *, ending: Ending | None = None) -> bool:
        """Stop what plays (for ``ending``'s reason) and disconnect; False if not connected."""
        if ending is not None:
            self.end_current(ending)
        async with self._voice_lock:
            self._cancel_idle()
            voice = self.voice
            if voice is None:
                return False
            await self._drop(voice)
        self._changed()
        return True

    async def on_bot_disconnected(self) -> None:
        """Discord says the bot is not in voice. The voice client ends itself (discord.py
        disconnects on that event) and a clip playing decides from how its connection ended
        (a kick ends the clip, a drop reconnects: see ``_play``); here only the idle timer
        goes. Disconnecting here too would wait for an answer Discord never sends."""
        self._cancel_idle()
        self._changed()

    def on_bot_moved(self, channel: Any) -> None:
        """Discord moved the bot to ``channel`` (a moderator dragged it; the player itself
        never moves, it leaves and joins afresh). discord.py follows the move on the same
        client (it closes the old voice socket and connects to the new server), so the clip
        playing goes on there: from now on it is playing in ``channel``."""
        now = self.current
        if now is not None and isinstance(channel, discord.VoiceChannel) and now.channel != channel:
            log.info("moved from #%s to #%s in guild %s during job %s",
                     now.channel.name, channel.name, self.guild_id, now.clip.job_id)
            now.channel = channel
            self._changed()

    async def on_channel_emptied(self, *, moved: bool = False) -> None:
        """Someone left a channel (or, ``moved``, Discord moved the bot): if no human is left
        where the bot is, leave now and post the clip that was playing. Checked under the voice
        lock, against Discord's view of the bot's channel, so a move in progress is not
        mistaken for an empty channel."""
        async with self._voice_lock:
            voice, guild = self.voice, self.guild
            if voice is None or guild is None:
                return
            state = guild.me.voice
            channel = state.channel if state is not None else None
            if channel is None or humans_in(channel):
                return
            log.info("nobody is listening in #%s in guild %s; leaving voice", channel.name, self.guild_id)
            reason = (
                f"I was moved to #{channel.name}, where nobody is listening" if moved
                else f"everyone left #{channel.name}"
            )
            self.end_current(Ending(fallback=reason))
            self._cancel_idle()
            await self._drop(voice)
        self._changed()

    async def close(self) -> None:
        """Stop everything (cog unload / bot shutdown); posts nothing and settles nothing, so
        the jobs of clips that did not play are delivered as files after a restart."""
        self._closing = True
        now = self.current
        self.end_current(Ending())
        self._worker.cancel()
        self._cancel_idle()
        await asyncio.gather(self._worker, return_exceptions=True)
        if now is not None:
            # Let the player thread finish (and call ``after``) while the loop still runs.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(now.done), CLOSE_TIMEOUT)
        voice = self.voice
        if voice is not None:
            await self._drop(voice)

    # -- the worker -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            clip = self.queue.pop_next(lambda c: c.settled)
            if clip is None:
                self.waits_for_clip += 1
                await self._wake.wait()
                continue
            self._announced.pop(clip, None)
            self.busy = True
            try:
                await self._play(clip)
            except Exception:
                log.exception("voice playback of job %s failed", clip.job_id)
                await clip.give_up("voice playback failed")
            finally:
                self.busy = False
                self.current = None
                clip.unsubscribe(self._on_clip_change)
                self._start_idle()
                self._changed()
            if not self._closing:
                await clip.settle()
            await self.announce_positions()

    async def _play(self, clip: VoiceClip) -> None:
        if clip.aborted is not None:
            return
        if clip.failure is not None:
            await clip.give_up(clip.failure)
            return
        if not clip.has_audio:
            return  # finished without any audio: nothing to play
        ffmpeg = self.bot.ffmpeg
        source: ClipOpusSource | None = None
        recoveries = 0
        try:
            while True:
                channel = await self._requester_channel(clip, resumed=source is not None)
                if channel is None:
                    return
                if ffmpeg is None:
                    log_ffmpeg_missing(clip.job_id)
                    await clip.give_up("voice chat is not available on this bot right now")
                    return
                now = await self._start(clip, channel, source, ffmpeg, recoveries)
                if now is None:
                    return
                source = now.source
                if recoveries == 0:
                    self._changed()
                    await self.announce_positions()
                    await clip.report(f"playing in #{channel.name}")
                error = await asyncio.shield(now.done)  # a cancelled worker must not cancel ``done``
                self.current = None
                self.idle.touch()
                self._changed()
                if self._cut_short(now, error):
                    if _removed_by_discord(now.voice):
                        where = now.channel  # where it was playing: a moderator may have moved it
                        gone = self.guild is None or self.guild.get_channel(where.id) is None
                        kicked = "I was disconnected from voice chat"
                        now.ended_by = Ending(fallback=f"#{where.name} was deleted" if gone else kicked)
                    elif recoveries < MAX_RECOVERIES:
                        recoveries += 1
                        log.info(
                            "voice connection dropped during job %s in #%s; reconnecting (%d)",
                            clip.job_id, channel.name, recoveries,
                        )
                        continue
                    else:
                        now.ended_by = Ending(fallback="the voice connection kept dropping")
                # FFmpeg is stopped before the card says how it ended (the player is idle then).
                source, finished = None, source
                await asyncio.to_thread(finished.cleanup)
                await self._report_end(now, error)
                return
        finally:
            if source is not None:
                await asyncio.to_thread(source.cleanup)

    def _cut_short(self, now: NowPlaying, error: Exception | None) -> bool:
        """Playback ended before the clip did, and not because anyone asked."""
        return (
            now.ended_by is None
            and error is None
            and not now.source.finished
            and now.clip.failure is None
            and now.clip.aborted is None
        )

    async def _requester_channel(self, clip: VoiceClip, *, resumed: bool) -> discord.VoiceChannel | None:
        """The requester's voice channel if the bot may play there; else give up and None."""
        guild = self.guild
        if guild is None:
            return None
        member = guild.get_member(clip.requester_id)
        channel = member.voice.channel if member is not None and member.voice is not None else None
        if channel is None:
            left = "you left voice chat before your clip finished" if resumed else (
                "you left voice chat before your clip's turn"
            )
            await clip.give_up(left)
            return None
        problem = voice_problem(channel, guild.me)
        if problem is not None:
            await clip.give_up(problem)
            return None
        assert isinstance(channel, discord.VoiceChannel)
        return channel

    async def _start(
        self,
        clip: VoiceClip,
        channel: discord.VoiceChannel,
        source: ClipOpusSource | None,
        ffmpeg: str,
        recoveries: int,
    ) -> NowPlaying | None:
        """Join ``channel`` and start (or resume) ``clip``; None if it was handed to the file."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Exception | None] = loop.create_future()

        def after(error: Exception | None) -> None:
            # Runs in the player thread, possibly after shutdown closed the loop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, done, error)

        async with self._voice_lock:
            self._cancel_idle()
            try:
                voice = await self._connect(channel)
            except VoiceUnavailable as exc:
                await clip.give_up(str(exc))
                return None
            if source is None:
                try:
                    source = await asyncio.to_thread(
                        ClipOpusSource, clip.audio.open(self.pause_ms), _info(clip), executable=ffmpeg
                    )
                except (discord.ClientException, OSError, AudioError) as exc:
                    log.error(
                        "FFmpeg (%s) could not start for voice playback of job %s: %s",
                        ffmpeg, clip.job_id, exc,
                    )
                    await clip.give_up("voice playback could not be started")
                    return None
            gate = getattr(voice, "transport_open", None)
            try:
                voice.play(ResumableSource(source, gate or (lambda: True)), after=after)
            except Exception as exc:
                log.warning("could not start playback of job %s in #%s: %s", clip.job_id, channel.name, exc)
                if recoveries == 0:
                    await asyncio.to_thread(source.cleanup)
                await clip.give_up("voice playback could not start")
                return None
            now = NowPlaying(clip, channel, voice, source, done, recoveries=recoveries)
            self.current = now
            self.idle.touch()
        return now

    async def _report_end(self, now: NowPlaying, error: Exception | None) -> None:
        clip = now.clip
        ending = now.ended_by
        if ending is None and clip.failure is not None:
            ending = Ending(fallback=clip.failure)
        if ending is None and error is not None:
            log.warning("voice playback of job %s in #%s failed: %s", clip.job_id, now.channel.name, error)
            ending = Ending(fallback="voice playback failed")
        if ending is None:
            if clip.aborted is None:
                await clip.report(f"played in #{now.channel.name}")
        elif ending.fallback is not None:
            await clip.give_up(ending.fallback)
        elif ending.card is not None:
            await clip.report(ending.card)

    # -- voice connection (call with _voice_lock held) --------------------------------------

    async def _connect(self, channel: discord.VoiceChannel) -> PlayableVoice:
        """The connected voice client in ``channel``: the current one if it is there and
        connected, else a fresh join (after leaving wherever the bot was)."""
        voice = self.voice
        if voice is not None and voice.is_connected() and getattr(voice.channel, "id", None) == channel.id:
            return voice
        if voice is not None:
            await self._drop(voice)
        attempts: list[PlayerVoiceClient] = []

        def fresh_client(client: discord.Client, target: discord.abc.Connectable) -> PlayerVoiceClient:
            attempt = PlayerVoiceClient(client, target, on_cleanup=lambda _: self._changed())
            attempts.append(attempt)
            return attempt

        factory: Any = self.voice_cls or fresh_client
        timeout = self.connect_timeout
        try:
            connected = await asyncio.wait_for(
                channel.connect(timeout=timeout, reconnect=False, self_deaf=True, cls=factory),
                timeout + CLOSE_TIMEOUT,
            )
            return cast(PlayableVoice, connected)
        except Exception as exc:
            log.warning(
                "could not join voice channel #%s in guild %s: %s: %s",
                channel.name,
                self.guild_id,
                type(exc).__name__,
                exc,
            )
            leftover = self.voice
            if leftover is not None:
                await self._drop(leftover)
            attempt = attempts[-1] if attempts else None
            raise VoiceUnavailable(describe_join_failure(exc, attempt, channel.name, timeout)) from exc

    async def _drop(self, voice: PlayableVoice) -> None:
        """Disconnect and forget ``voice``, whatever state it is in. A client that is not
        connected gets a short bound: discord.py waits for Discord to confirm the leave, and
        Discord says nothing when the bot was not in a channel."""
        bound = self.connect_timeout if voice.is_connected() else CLOSE_TIMEOUT
        try:
            await asyncio.wait_for(voice.disconnect(force=True), bound)
        except Exception as exc:
            log.warning("voice disconnect in guild %s failed: %s", self.guild_id, exc)
        guild = self.guild
        if guild is not None and guild.voice_client is voice:
            voice.cleanup()

    # -- idle -------------------------------------------------------------------------------

    def _start_idle(self) -> None:
        if self._closing or (self._idle_task is not None and not self._idle_task.done()):
            return
        if self.voice is None:
            return
        self._idle_task = asyncio.create_task(self._leave_when_idle(), name=f"voice-idle:{self.guild_id}")

    def _cancel_idle(self) -> None:
        task = self._idle_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        self._idle_task = None

    async def _leave_when_idle(self) -> None:
        await self.idle.wait()
        async with self._voice_lock:
            if self.current is not None or self.busy:
                return
            voice = self.voice
            if voice is None:
                return
            log.info("voice idle for %ss in guild %s; leaving", self.idle.idle_seconds, self.guild_id)
            await self._drop(voice)
        self._changed()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name=f"voice-{getattr(coro, '__name__', 'task')}:{self.guild_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _resolve(future: asyncio.Future[Exception | None], error: Exception | None) -> None:
    if not future.done():
        future.set_result(error)


def _info(clip: VoiceClip) -> WavInfo:
    info = clip.audio.info
    assert info is not None
    return info


def log_ffmpeg_missing(job_id: str) -> None:
    log.warning(
        "voice playback is off: FFmpeg was not found (install ffmpeg, or the imageio-ffmpeg package, "
        "or set FFMPEG_PATH); job %s is posted as a file instead",
        job_id,
    )
