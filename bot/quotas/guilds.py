"""A guild's own settings (budget, cost cap, exempt roles, reset hour, pause, alert channel).

A guild without a row has the defaults below; the row is created on the first change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.tables import guild_settings


def guild_lock(guild_id: int | None) -> str:
    """The lock name serializing quota decisions and settings changes of one guild (or the CLI)."""
    return "quota:cli" if guild_id is None else f"quota:guild:{guild_id}"


@dataclass(frozen=True)
class GuildSettings:
    guild_id: int
    alert_channel_id: int | None = None
    paused: bool = False
    paused_by: int | None = None
    paused_at: datetime | None = None
    pause_reason: str | None = None
    daily_request_budget: int | None = None  # None: no server-wide request budget
    daily_cost_cap: Decimal | None = None  # dollars per quota day; None: no cap
    exempt_role_ids: frozenset[int] = frozenset()
    reset_hour_utc: int | None = None  # None: the bot-wide QUOTA_RESET_HOUR_UTC

    def pause_message(self) -> str | None:
        """What a member is told while the guild is paused (None when it is not)."""
        if not self.paused:
            return None
        message = "The moderators of this server have paused text-to-speech."
        if self.pause_reason:
            message += f" Reason: {self.pause_reason}"
        return message


async def load_guild_settings(conn: AsyncConnection, guild_id: int) -> GuildSettings:
    row = (
        await conn.execute(select(guild_settings).where(guild_settings.c.guild_id == guild_id))
    ).first()
    if row is None:
        return GuildSettings(guild_id=guild_id)
    return GuildSettings(
        guild_id=row.guild_id,
        alert_channel_id=row.alert_channel_id,
        paused=bool(row.paused),
        paused_by=row.paused_by,
        paused_at=row.paused_at,
        pause_reason=row.pause_reason,
        daily_request_budget=row.daily_request_budget,
        daily_cost_cap=row.daily_cost_cap,
        exempt_role_ids=frozenset(int(r) for r in (row.exempt_role_ids or [])),
        reset_hour_utc=row.reset_hour_utc,
    )
