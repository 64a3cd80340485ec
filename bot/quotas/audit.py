"""The audit log: who changed what, written in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.tables import audit_log


@dataclass(frozen=True)
class AuditEntry:
    id: int
    guild_id: int | None
    actor_id: int | None
    action: str
    details: dict[str, Any]
    at: datetime


async def write_audit(
    conn: AsyncConnection,
    *,
    guild_id: int | None,
    actor_id: int | None,
    action: str,
    details: Mapping[str, Any],
    at: datetime,
) -> None:
    await conn.execute(
        audit_log.insert().values(
            guild_id=guild_id, actor_id=actor_id, action=action, details=dict(details), at=at
        )
    )


async def read_audit(conn: AsyncConnection, guild_id: int | None, limit: int) -> list[AuditEntry]:
    """Newest first."""
    condition = audit_log.c.guild_id.is_(None) if guild_id is None else audit_log.c.guild_id == guild_id
    rows = (
        await conn.execute(
            select(audit_log)
            .where(condition)
            .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
            .limit(limit)
        )
    ).all()
    return [
        AuditEntry(
            id=row.id,
            guild_id=row.guild_id,
            actor_id=row.actor_id,
            action=row.action,
            details=dict(row.details or {}),
            at=row.at,
        )
        for row in rows
    ]
