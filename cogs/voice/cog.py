"""Voice chat: plays /speak results in the member's voice channel, one per-guild queue.

``/speak output: voice`` (or ``both``) hands a ``VoiceClip`` to ``VoiceCog.enqueue``; the
/speak cog pushes the chunks into it as they are generated and posts the file when the clip
is refused or ``clip.fallback(reason)`` is called. Commands: ``/voice skip``, ``/voice stop``,
``/voice queue``, ``/voice leave`` (guild only; replies are ephemeral, mentions off).

Decisions a server owner may want to know:

* **Where it plays.** The bot plays a clip in the voice channel its requester is in *when the
  clip's turn comes*. A member must be in a voice channel to ask for voice, and the bot needs
  View Channel, Connect and Speak there (checked with ``permissions_for(guild.me)`` before
  queueing and again before joining); otherwise the clip is refused and /speak posts the file
  with the reason. If the bot is busy in another channel of the server, the clip **waits its
  turn and then the bot goes** to the requester's channel (it leaves and joins afresh; see
  ``cogs.voice.player``): one player per server, so changing channels is the only way to
  serve members in different channels, and refusing would lose the member's place. A
  requester who left voice before their turn gets the file instead.
* **Fair queue.** Round-robin between members (``bot.playback.queue.FairQueue``): one member's
  five clips never block everyone. At most ``VOICE_MAX_QUEUED_PER_MEMBER`` clips wait per
  member (the one playing does not count). A clip whose audio is still being generated keeps
  its place but does not hold up ready ones. Cards show "queued (2nd)", "playing in
  #Lounge", "played in #Lounge", "skipped by …" or "posted instead because …".
* **Streaming.** Long texts start playing when their first chunk is ready and continue chunk
  by chunk, with the same pause between chunks as the file (``CHATTERBOX_CHUNK_PAUSE_MS``).
* **Commands.** Moderators are members with Manage Server or Move Members (who can already
  disconnect the bot in Discord). ``skip``: the requester of the current clip or a moderator.
  ``stop``: moderators; stops the current clip and clears the queue, the bot stays until idle.
  ``leave``: a moderator, or anyone when nothing of another member's is playing or waiting;
  stops, clears the queue and disconnects. Skipped, stopped and cleared clips are not posted
  as files (a person chose to end them); clips that fail in voice are.
* **Leaving.** The bot connects only when a clip is ready to play, leaves after
  ``VOICE_IDLE_SECONDS`` with nothing playing (timed on ``bot.clock``), and leaves at once
  when no human is left in its channel (the clip playing is then posted as a file). A
  moderator who drags the bot to another channel mid-clip moves the clip with it: discord.py
  follows the move, the clip plays on there and its card names that channel (dragged into an
  empty channel, the bot leaves and posts the clip). A
  dropped voice connection (4006, 4009, 4015, a network cut) is rejoined and the clip plays
  on; a kick or a deleted channel posts the clip that was playing as a file, and the next
  clip joins afresh.
* **Failures never lose audio.** No permission, a full channel, a DAVE (voice end-to-end
  encryption) handshake refused, an unreachable voice server, a join that takes longer than
  ``VOICE_CONNECT_TIMEOUT``, FFmpeg missing or failing: the file is posted at once with a
  one-line reason naming it (``cogs.voice.connection``). FFmpeg missing is also logged.
* **Limits.** ``VOICE_MAX_QUEUED_PER_MEMBER`` counts clips waiting here; the quota's
  ``max_in_flight`` counts generation in progress. A refusal names the limit that applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import send_ephemeral
from bot.formats import plural
from bot.playback.clip import VoiceClip
from bot.playback.queue import Placement, QueueFull
from cogs.voice.player import Ending, GuildPlayer, humans_in, log_ffmpeg_missing, voice_problem

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

__all__ = ["Placement", "VoiceClip", "VoiceCog"]

log = logging.getLogger(__name__)

QUEUE_LINES = 15


def is_voice_moderator(member: discord.Member | discord.User) -> bool:
    """Manage Server, Move Members or Administrator in the guild."""
    if not isinstance(member, discord.Member):
        return False
    perms = member.guild_permissions
    return perms.administrator or perms.manage_guild or perms.move_members


def _label(clip: VoiceClip) -> str:
    return discord.utils.escape_markdown(" ".join(clip.label.split()) or "(no text)")


@app_commands.guild_only()
class VoiceCog(
    commands.GroupCog,
    name="Voice",
    group_name="voice",
    group_description="Voice chat playback of /speak",
):
    """The voice player (see the module docstring); ``enqueue`` is the /speak cog's entry."""

    def __init__(self, bot: ChatterboxBot, *, voice_cls: type[discord.VoiceProtocol] | None = None) -> None:
        self.bot = bot
        self.voice_cls = voice_cls
        self._players: dict[int, GuildPlayer] = {}
        self._changed = asyncio.Event()

    # -- the /speak cog's entry -------------------------------------------------------------

    async def enqueue(self, member: discord.Member, clip: VoiceClip) -> Placement:
        """Queue ``clip`` for ``member``'s voice channel, or refuse with a reason.

        ``"playing"``: nothing is ahead, it starts as soon as its first chunk is ready;
        ``"queued"``: ``position`` clips ahead of it (1 = next); ``"refused"``: ``reason``
        completes "posted instead because …". Failures after this call ``clip.fallback``.
        """
        guild = member.guild
        if self.bot.ffmpeg is None:
            log_ffmpeg_missing(clip.job_id)
            return Placement.refused("voice chat is not available on this bot")
        channel = member.voice.channel if member.voice is not None else None
        if channel is None:
            return Placement.refused("you are not in a voice channel")
        problem = voice_problem(channel, guild.me)
        if problem is not None:
            log.info("voice refused for job %s in guild %s: %s", clip.job_id, guild.id, problem)
            return Placement.refused(problem)
        player = self.player(guild.id)
        try:
            position = player.add(clip)
        except QueueFull as exc:
            return Placement.refused(
                f"you already have {exc.cap} clips waiting for voice chat (the most one member may queue)"
            )
        ahead = player.current is not None or player.busy or position > 1
        await player.announce_positions()
        if not ahead:
            return Placement.playing()
        return Placement.queued(position)

    # -- players and observation ------------------------------------------------------------

    def player(self, guild_id: int) -> GuildPlayer:
        """The guild's player, created on first use."""
        player = self._players.get(guild_id)
        if player is None:
            player = GuildPlayer(self.bot, guild_id, voice_cls=self.voice_cls, changed=self._notify)
            self._players[guild_id] = player
        return player

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], Any]) -> Any:
        """Return ``predicate()`` once truthy, re-checked after each player change (for tests;
        wrap it in ``asyncio.timeout``)."""
        while not (value := predicate()):
            await self._changed.wait()
        return value

    async def cog_load(self) -> None:
        self.bot.voice_output = self

    async def cog_unload(self) -> None:
        if self.bot.voice_output is self:
            self.bot.voice_output = None
        players, self._players = list(self._players.values()), {}
        for player in players:
            await player.close()

    # -- Discord events ---------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        player = self._players.get(member.guild.id)
        if player is None:
            return
        me = self.bot.user
        if me is not None and member.id == me.id:
            if after.channel is None and before.channel is not None:
                await player.on_bot_disconnected()
            elif after.channel is not None and before.channel != after.channel:
                moved = before.channel is not None  # else the bot's own join
                if not humans_in(after.channel):
                    await player.on_channel_emptied(moved=moved)  # e.g. dragged into an empty channel
                elif moved:
                    player.on_bot_moved(after.channel)
            return
        if before.channel is not None and before.channel != after.channel and player.voice is not None:
            await player.on_channel_emptied()

    # -- commands ---------------------------------------------------------------------------

    @app_commands.command(name="skip", description="Skip the clip playing now (its requester or a moderator)")
    async def skip(self, interaction: discord.Interaction) -> None:
        player = self._players.get(interaction.guild_id or 0)
        now = player.current if player is not None else None
        if player is None or now is None or now.ended_by is not None:
            await send_ephemeral(interaction, "Nothing is playing in voice chat.")
            return
        user = interaction.user
        if now.clip.requester_id != user.id and not is_voice_moderator(user):
            name = discord.utils.escape_markdown(now.clip.requester_name)
            await send_ephemeral(
                interaction, f"Only {name} (who asked for it) or a moderator can skip this clip."
            )
            return
        player.end_current(Ending(card=f"skipped by {user.display_name}"))
        log.info("user %s skipped job %s in guild %s", user.id, now.clip.job_id, interaction.guild_id)
        await send_ephemeral(interaction, f"Skipped “{_label(now.clip)}”.")

    @app_commands.command(name="stop", description="Stop playback and clear the voice queue (moderators)")
    async def stop(self, interaction: discord.Interaction) -> None:
        user = interaction.user
        if not is_voice_moderator(user):
            await send_ephemeral(
                interaction, "Only moderators (Manage Server or Move Members) can stop voice playback."
            )
            return
        player = self._players.get(interaction.guild_id or 0)
        if player is None or player.is_empty():
            await send_ephemeral(interaction, "Nothing is playing or waiting in voice chat.")
            return
        stopped = player.end_current(Ending(card=f"stopped by {user.display_name}"))
        cleared = player.clear_queue(f"removed from the voice queue by {user.display_name}")
        log.info("user %s stopped voice in guild %s (%d waiting cleared)", user.id, interaction.guild_id,
                 len(cleared))
        parts = ["Stopped the clip that was playing"] if stopped else []
        if cleared:
            parts.append(f"cleared {plural(len(cleared), 'waiting clip')}")
        await send_ephemeral(interaction, (", ".join(parts) or "Nothing was playing") + ".")

    @app_commands.command(name="queue", description="Show what is playing and waiting in voice chat")
    async def queue(self, interaction: discord.Interaction) -> None:
        player = self._players.get(interaction.guild_id or 0)
        if player is None or (player.current is None and len(player.queue) == 0):
            await send_ephemeral(interaction, "Nothing is playing or waiting in voice chat.")
            return
        lines: list[str] = []
        now = player.current
        if now is not None:
            who = discord.utils.escape_markdown(now.clip.requester_name)
            lines.append(f"▶️ Playing in #{now.channel.name}: “{_label(now.clip)}” — {who}")
        waiting = player.queue.waiting()
        for index, clip in enumerate(waiting[:QUEUE_LINES], start=1):
            who = discord.utils.escape_markdown(clip.requester_name)
            note = "" if clip.has_audio else " (audio not ready yet)"
            lines.append(f"{index}. “{_label(clip)}” — {who}{note}")
        if len(waiting) > QUEUE_LINES:
            lines.append(f"… and {len(waiting) - QUEUE_LINES} more")
        if not waiting:
            lines.append("Nothing is waiting.")
        await send_ephemeral(interaction, "\n".join(lines))

    @app_commands.command(name="leave", description="Stop, clear the voice queue and leave the voice channel")
    async def leave(self, interaction: discord.Interaction) -> None:
        user = interaction.user
        player = self._players.get(interaction.guild_id or 0)
        voice = player.voice if player is not None else None
        if player is None or voice is None:
            await send_ephemeral(interaction, "I'm not in a voice channel.")
            return
        others = [c for c in player.queue.waiting() if c.requester_id != user.id]
        if player.current is not None and player.current.clip.requester_id != user.id:
            others.append(player.current.clip)
        if others and not is_voice_moderator(user):
            await send_ephemeral(
                interaction,
                "Other members' clips are playing or waiting; only a moderator can make me leave now.",
            )
            return
        name = getattr(voice.channel, "name", "the voice channel")
        player.clear_queue(f"removed from the voice queue: I left voice chat ({user.display_name} asked)")
        await player.leave(ending=Ending(card=f"stopped: I left voice chat ({user.display_name} asked)"))
        log.info("user %s made the bot leave voice in guild %s", user.id, interaction.guild_id)
        await send_ephemeral(interaction, f"Left #{name}.")
