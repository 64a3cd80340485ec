"""Display names for the mentions in a text, for ``bot.speech.cleanup`` (its ``Names``).

The bot runs without the privileged members intent, so the member cache is thin: names come
first from what the message itself carries (a message's ``mentions``, ``role_mentions`` and
``channel_mentions`` are resolved by Discord with the message), then from the server's cache;
an id nobody knows reads as "someone" / "a role" / "a channel" (the cleanup's defaults).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import discord


@dataclass
class GuildNames:
    """``Names`` from a server's cache plus what a message resolved."""

    guild: discord.Guild | None
    users: dict[int, str] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)
    channels: dict[int, str] = field(default_factory=dict)

    @classmethod
    def for_message(cls, guild: discord.Guild | None, message: discord.Message) -> GuildNames:
        names = cls(guild)
        for user in message.mentions:
            names.users[user.id] = user.display_name
        for role in message.role_mentions:
            names.roles[role.id] = role.name
        for channel in message.channel_mentions:
            names.channels[channel.id] = channel.name
        return names

    def user(self, user_id: int) -> str | None:
        if user_id in self.users:
            return self.users[user_id]
        member = self.guild.get_member(user_id) if self.guild is not None else None
        return member.display_name if member is not None else None

    def role(self, role_id: int) -> str | None:
        if role_id in self.roles:
            return self.roles[role_id]
        role = self.guild.get_role(role_id) if self.guild is not None else None
        return role.name if role is not None else None

    def channel(self, channel_id: int) -> str | None:
        if channel_id in self.channels:
            return self.channels[channel_id]
        channel = self.guild.get_channel_or_thread(channel_id) if self.guild is not None else None
        return channel.name if channel is not None else None
