"""The usage ledger: one row per reservation, and the sums the limits are checked against.

What counts as used (DESIGN rule 3: reserved + committed, never refunded):

- requests: ``requests - refunded_requests`` of every row of the day;
- characters: the row's characters unless the whole reservation was refunded;
- cost: the ``cost`` column, kept equal to price * requests not refunded.

A row a moderator forgave (``forgiven_at``, "reset usage") no longer counts against the
member's own daily limits or cooldown, but still counts against the server's budget and cost
cap: that money was spent. "In flight" is a reservation not fully settled yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.tables import usage_ledger as ledger


class ReservationState(StrEnum):
    RESERVED = "reserved"  # not fully settled yet (chunks may be partly settled)
    COMMITTED = "committed"  # fully settled, all charged
    REFUNDED = "refunded"  # fully settled, nothing charged
    PARTIAL = "partial"  # fully settled, some charged and some refunded


@dataclass(frozen=True)
class Reservation:
    id: str
    guild_id: int | None
    user_id: int
    requests: int
    characters: int
    price_per_request: Decimal
    cost: Decimal  # of the requests not refunded
    state: ReservationState
    committed_requests: int
    refunded_requests: int
    job_id: str | None
    created_at: datetime
    settled_at: datetime | None

    @property
    def outstanding(self) -> int:
        """Requests neither committed nor refunded yet."""
        return self.requests - self.committed_requests - self.refunded_requests


def reservation_from_row(row: Row[Any]) -> Reservation:
    return Reservation(
        id=row.id,
        guild_id=row.guild_id,
        user_id=row.user_id,
        requests=row.requests,
        characters=row.characters,
        price_per_request=row.price_per_request,
        cost=row.cost,
        state=ReservationState(row.state),
        committed_requests=row.committed_requests,
        refunded_requests=row.refunded_requests,
        job_id=row.job_id,
        created_at=row.created_at,
        settled_at=row.settled_at,
    )


def guild_is(guild_id: int | None) -> ColumnElement[bool]:
    return ledger.c.guild_id.is_(None) if guild_id is None else ledger.c.guild_id == guild_id


_NOT_REFUNDED = ledger.c.state != ReservationState.REFUNDED.value
_USED_REQUESTS = func.coalesce(func.sum(ledger.c.requests - ledger.c.refunded_requests), 0)
_USED_CHARACTERS = func.coalesce(func.sum(ledger.c.characters), 0)


@dataclass(frozen=True)
class MemberUsage:
    requests: int
    characters: int
    in_flight: int
    last_request_at: datetime | None


async def member_usage(
    conn: AsyncConnection,
    guild_id: int | None,
    user_id: int,
    *,
    day_start: datetime,
    in_flight_since: datetime,
) -> MemberUsage:
    mine = and_(guild_is(guild_id), ledger.c.user_id == user_id)
    counted = and_(mine, _NOT_REFUNDED, ledger.c.forgiven_at.is_(None))
    today = (
        await conn.execute(
            select(_USED_REQUESTS, _USED_CHARACTERS).where(counted, ledger.c.created_at >= day_start)
        )
    ).one()
    last_at = (await conn.execute(select(func.max(ledger.c.created_at)).where(counted))).scalar()
    in_flight = (
        await conn.execute(
            select(func.count()).where(
                mine,
                ledger.c.state == ReservationState.RESERVED.value,
                ledger.c.created_at > in_flight_since,
            )
        )
    ).scalar_one()
    return MemberUsage(
        requests=int(today[0]), characters=int(today[1]), in_flight=int(in_flight), last_request_at=last_at
    )


@dataclass(frozen=True)
class Totals:
    requests: int
    characters: int
    cost: Decimal


async def guild_totals(conn: AsyncConnection, guild_id: int | None, *, day_start: datetime) -> Totals:
    row = (
        await conn.execute(
            select(_USED_REQUESTS, _USED_CHARACTERS, func.sum(ledger.c.cost)).where(
                guild_is(guild_id), _NOT_REFUNDED, ledger.c.created_at >= day_start
            )
        )
    ).one()
    return Totals(requests=int(row[0]), characters=int(row[1]), cost=row[2] or Decimal(0))


@dataclass(frozen=True)
class UserUsage:
    user_id: int
    requests: int
    characters: int
    cost: Decimal


async def top_users(
    conn: AsyncConnection, guild_id: int | None, *, day_start: datetime, limit: int
) -> list[UserUsage]:
    used = func.sum(ledger.c.requests - ledger.c.refunded_requests).label("used")
    characters = func.sum(
        case((ledger.c.state == ReservationState.REFUNDED.value, 0), else_=ledger.c.characters)
    )
    rows = (
        await conn.execute(
            select(ledger.c.user_id, used, characters, func.sum(ledger.c.cost))
            .where(guild_is(guild_id), ledger.c.created_at >= day_start)
            .group_by(ledger.c.user_id)
            .having(used > 0)
            .order_by(used.desc(), ledger.c.user_id)
            .limit(limit)
        )
    ).all()
    return [
        UserUsage(user_id=r[0], requests=int(r[1]), characters=int(r[2]), cost=r[3] or Decimal(0))
        for r in rows
    ]
