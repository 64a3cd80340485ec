"""The Discord side of a ``GuildReader``: clips to the voice player, states as reactions.

Decisions:

* **Reactions instead of a card**: ⏳ queued, 🔊 playing, ✅ done, ⚠️ refused (only on the one
  message per member and hour whose refusal is shown; ``/autoread me status`` gives the reason).
  The previous state's reaction is removed, so a message carries one mark at a time.
* **Never blocking the reader or the player**: reactions go through one queue per bot and a
  worker task applies them in order. Discord rate-limits reactions (about 4 per second per
  channel); discord.py waits those limits out in the worker, not in the voice player.
* A failed reaction (no Add Reactions permission, the message is gone) is logged at INFO and
  dropped: reading does not depend on it. Except ⚠️: a refusal the member is to be shown
  (the first in the hour) whose mark cannot be added becomes a private note instead, a direct
  message with the reason (logged and dropped when the member does not accept DMs). So the
  refusal reaches the member once per hour, as a reaction or a private note, never in the
  channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import discord

from bot.autoread.reader import Read, ReadState
from bot.playback.clip import VoiceClip
from bot.playback.queue import Placement

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

log = logging.getLogger(__name__)

MARKS: dict[ReadState, str] = {
    ReadState.QUEUED: "⏳",
    ReadState.PLAYING: "🔊",
    ReadState.DONE: "✅",
    ReadState.REFUSED: "⚠️",
}

#: (the read, emoji to remove or None, emoji to add or None)
Change = tuple[Read, str | None, str | None]


class DiscordOutlet:
    """``ReadOutlet`` for one bot."""

    def __init__(self, bot: ChatterboxBot) -> None:
        self.bot = bot
        self._changes: asyncio.Queue[Change] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    async def enqueue(self, read: Read, clip: VoiceClip) -> Placement:
        voice = self.bot.voice_output
        guild = self.bot.get_guild(read.message.guild_id)
        member = guild.get_member(read.message.author_id) if guild is not None else None
        if voice is None:
            return Placement.refused("voice chat is not available on this bot")
        if member is None:
            return Placement.refused("the author is not in the server any more")
        return await voice.enqueue(member, clip)

    def show(self, read: Read, previous: ReadState | None) -> None:
        if self._closed or read.deleted:
            return  # a deleted message gets no more reactions
        old = MARKS.get(previous) if previous is not None else None
        new = MARKS.get(read.state)
        if read.state is ReadState.REFUSED and not read.noted:
            new = None
        if old == new:
            return
        self._changes.put_nowait((read, old, new))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._apply(), name="autoread-reactions")

    def idle(self) -> bool:
        """Every queued reaction change has been applied (for tests)."""
        return self._changes.empty() and (self._worker is None or self._worker.done())

    async def applied(self) -> None:
        """Return once every reaction change queued so far has been tried (for tests)."""
        while (worker := self._worker) is not None and not worker.done():
            await asyncio.wait([worker])  # a change shown meanwhile may start the next worker

    async def _apply(self) -> None:
        while not self._changes.empty():
            read, old, new = self._changes.get_nowait()
            if read.deleted:
                continue
            message_id = read.message.message_id
            channel = self.bot.get_partial_messageable(read.message.channel_id)
            message = channel.get_partial_message(message_id)
            try:
                if old is not None and self.bot.user is not None:
                    await message.remove_reaction(old, self.bot.user)
                if new is not None:
                    await message.add_reaction(new)
            except discord.HTTPException as exc:
                log.info("could not mark message %s (%s -> %s): %s", message_id, old, new, exc)
                if new == MARKS[ReadState.REFUSED]:
                    await self._note_privately(read)

    async def _note_privately(self, read: Read) -> None:
        """The refusal as a direct message, when its ⚠️ could not be put on the message."""
        message = read.message
        reason = (read.reason or "it was refused").rstrip(".")
        text = (
            f"I could not read your message in <#{message.channel_id}> aloud: {reason}. "
            "`/autoread me status` shows the latest reason; I send this note at most once an hour."
        )
        try:
            user = self.bot.get_user(message.author_id) or await self.bot.fetch_user(message.author_id)
            await user.send(text)
        except discord.HTTPException as exc:
            log.info("could not tell user %s why message %s was not read: %s", message.author_id,
                     message.message_id, exc)

    async def close(self) -> None:
        self._closed = True
        worker = self._worker
        if worker is not None and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
