"""Facts about the member behind an interaction that several cogs check.

Moderator rights are checked by the bot itself (``moderator_only``), not left to Discord's
permission hint, which a server can change and a stale or modified client can ignore.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

log = logging.getLogger("cogs")


def role_ids(who: discord.User | discord.Member) -> tuple[int, ...]:
    """The member's roles for quota resolution (@everyone never has a role policy; a user
    outside a guild has none)."""
    if not isinstance(who, discord.Member):
        return ()
    return tuple(r.id for r in who.roles if not r.is_default())


class NotModerator(app_commands.CheckFailure):
    """The member lacks Manage Server; the tree's error handler shows this message."""


def is_moderator(interaction: discord.Interaction) -> bool:
    """Manage Server (or Administrator) in this guild, from the member Discord sent along."""
    member = interaction.user
    if interaction.guild_id is None or not isinstance(member, discord.Member):
        return False
    perms = member.guild_permissions
    return perms.administrator or perms.manage_guild


async def _moderator_check(interaction: discord.Interaction) -> bool:
    if is_moderator(interaction):
        return True
    command = interaction.command.qualified_name if interaction.command else "this command"
    log.warning(
        "refused /%s to user %s in guild %s: no Manage Server",
        command,
        interaction.user.id,
        interaction.guild_id,
    )
    raise NotModerator(f"Only moderators (Manage Server permission) can use /{command}.")


moderator_only = app_commands.check(_moderator_check)
