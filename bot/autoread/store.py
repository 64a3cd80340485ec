"""``AutoreadStore``: the servers' hands-free settings and the members' opt-ins (tables
``autoread_settings`` and ``autoread_members``, migration 0009).

Decisions: turning reading off deletes the server's row, and opting out deletes the member's
row, so nothing is kept about a member who does not want to be read (the README's "what is
stored" list names both tables). Every write is one transaction through ``Database.write``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.store.database import Database
from bot.store.tables import autoread_members, autoread_settings


@dataclass(frozen=True)
class AutoreadSettings:
    """One server's hands-free reading setup."""

    guild_id: int
    text_channel_id: int
    voice_channel_id: int | None = None
    announce: bool = False
    join_on_first_speaker: bool = True


class AutoreadStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def settings(self, guild_id: int) -> AutoreadSettings | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(autoread_settings).where(autoread_settings.c.guild_id == guild_id))
            ).first()
        if row is None:
            return None
        m = row._mapping
        return AutoreadSettings(
            guild_id=m["guild_id"],
            text_channel_id=m["text_channel_id"],
            voice_channel_id=m["voice_channel_id"],
            announce=bool(m["announce"]),
            join_on_first_speaker=bool(m["join_on_first_speaker"]),
        )

    async def save(self, settings: AutoreadSettings, *, actor_id: int) -> AutoreadSettings:
        values = {
            "text_channel_id": settings.text_channel_id,
            "voice_channel_id": settings.voice_channel_id,
            "announce": settings.announce,
            "join_on_first_speaker": settings.join_on_first_speaker,
            "updated_by": actor_id,
            "updated_at": self._clock.now(),
        }

        async def write(conn: AsyncConnection) -> None:
            table = autoread_settings
            changed = await conn.execute(
                update(table).where(table.c.guild_id == settings.guild_id).values(**values)
            )
            if changed.rowcount == 0:
                await conn.execute(table.insert().values(guild_id=settings.guild_id, **values))

        await self._db.write(write, lock=f"autoread:{settings.guild_id}")
        return settings

    async def turn_off(self, guild_id: int) -> bool:
        """Forget the server's setup; False when it had none. Members' opt-ins are kept."""

        async def write(conn: AsyncConnection) -> int:
            result = await conn.execute(
                delete(autoread_settings).where(autoread_settings.c.guild_id == guild_id)
            )
            return result.rowcount

        return await self._db.write(write, lock=f"autoread:{guild_id}") > 0

    async def opted_in(self, guild_id: int, user_id: int) -> bool:
        table = autoread_members
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(table.c.user_id).where(table.c.guild_id == guild_id, table.c.user_id == user_id)
                )
            ).first()
        return row is not None

    async def set_opt_in(self, guild_id: int, user_id: int, on: bool) -> bool:
        """Opt in (``on``) or out; returns whether anything changed."""
        table = autoread_members

        async def write(conn: AsyncConnection) -> bool:
            where = (table.c.guild_id == guild_id, table.c.user_id == user_id)
            present = (await conn.execute(select(table.c.user_id).where(*where))).first() is not None
            if on and not present:
                await conn.execute(
                    table.insert().values(guild_id=guild_id, user_id=user_id, opted_in_at=self._clock.now())
                )
                return True
            if not on and present:
                await conn.execute(delete(table).where(*where))
                return True
            return False

        return await self._db.write(write, lock=f"autoread:{guild_id}")

    async def opted_in_count(self, guild_id: int) -> int:
        table = autoread_members
        async with self._db.read() as conn:
            rows = (await conn.execute(select(table.c.user_id).where(table.c.guild_id == guild_id))).all()
        return len(rows)
