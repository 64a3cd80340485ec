"""Facts about the member behind an interaction that several cogs check."""

from __future__ import annotations

import discord


def role_ids(who: discord.User | discord.Member) -> tuple[int, ...]:
    """The member's roles for quota resolution (@everyone never has a role policy; a user
    outside a guild has none)."""
    if not isinstance(who, discord.Member):
        return ()
    return tuple(r.id for r in who.roles if not r.is_default())
