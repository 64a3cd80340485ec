"""Telling a server's moderators about a problem, in the channel they chose.

The channel is the guild setting ``alert_channel_id`` (``/quota alerts``). Without one,
or when the bot cannot post there, the alert goes to the log as a warning instead: the bot
never guesses a channel, since alerts may say things members need not see.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

log = logging.getLogger(__name__)


async def alert_moderators(
    bot: ChatterboxBot, guild_id: int, text: str, *, if_unset: Literal["warn", "skip"] = "warn",
    view: discord.ui.View | None = None,
) -> bool:
    """Post ``text`` (with ``view``'s buttons) in the guild's alert channel; False (and a logged
    warning) if impossible.

    ``if_unset="skip"``: a guild without an alert channel is passed over silently (for alerts
    sent to every server, where most may not have chosen one).
    """
    settings = await bot.core.quotas.admin.guild_settings(guild_id)
    channel_id = settings.alert_channel_id
    if channel_id is None:
        if if_unset == "warn":
            log.warning("no moderator alert channel is set in guild %s; alert: %s", guild_id, text)
        return False
    channel = bot.get_channel(channel_id)
    try:
        if channel is None:
            channel = await bot.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise TypeError(f"{type(channel).__name__} cannot hold messages")
        if view is None:
            await channel.send(text)
        else:
            await channel.send(text, view=view)
    except (discord.HTTPException, TypeError) as exc:
        log.warning("could not post in the alert channel %s of guild %s (%s); alert: %s",
                    channel_id, guild_id, exc, text)
        return False
    return True
