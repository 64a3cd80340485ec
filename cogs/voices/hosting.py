"""``DiscordClipHost``: saved clips kept as files in the moderators' storage channel.

Used only without ``PUBLIC_BASE_URL`` (see ``bot.voices.urls``). The clip is posted once; before
each job the message is fetched again, because the attachment URL in it is a signed CDN link
that expires within about a day, while a fetched message always carries a current one.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any

import discord

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

log = logging.getLogger(__name__)


class DiscordClipHost:
    """``bot.voices.ClipHost`` over discord.py."""

    def __init__(self, bot: ChatterboxBot) -> None:
        self.bot = bot

    async def _channel(self, channel_id: int) -> Any:
        return self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)

    async def upload(self, channel_id: int, filename: str, data: bytes) -> int:
        channel = await self._channel(channel_id)
        message = await channel.send(
            "Voice clip kept for the voice library (do not delete while the voice is in use).",
            file=discord.File(io.BytesIO(data), filename=filename),
        )
        return message.id

    async def fresh_url(self, channel_id: int, message_id: int) -> str | None:
        try:
            channel = await self._channel(channel_id)
            message = await channel.fetch_message(message_id)
        except discord.NotFound:
            return None
        return message.attachments[0].url if message.attachments else None

    async def delete(self, channel_id: int, message_id: int) -> None:
        """Remove a kept clip (the voice was deleted or its owner forgotten); best effort."""
        try:
            channel = await self._channel(channel_id)
            await channel.get_partial_message(message_id).delete()
        except discord.HTTPException as exc:
            log.warning("could not delete the stored clip message %s in %s: %s", message_id, channel_id, exc)
