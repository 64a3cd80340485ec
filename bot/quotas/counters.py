"""Quota counters: the ledger's sums kept as rows, so a reservation costs the same at any size.

Three tables (``bot.store.tables``): ``quota_member_days`` (a member's requests and characters
per quota day, forgiven reservations excluded), ``quota_guild_days`` (the server's requests,
characters and cost per quota day, everything counted) and ``quota_members`` (reservations in
flight and the start of the newest counted one, for the cooldown). Rows are keyed by
``guild_key`` (the guild id; 0 for the CLI) and by ``day``, the start of the quota day that the
ledger row records in ``usage_ledger.quota_day``.

The ledger stays the record of truth. Every change of the ledger changes the counters in the
same transaction: a reservation adds (``take_*``: an ``INSERT … ON CONFLICT DO UPDATE … WHERE
used + n <= limit RETURNING``, so a limit is enforced by the row itself), a settlement or a
moderator's "reset usage" subtracts (``apply_delta``). ``verify`` recomputes every counter from
the ledger with GROUP BY and lists the differences; ``chatterbox-bot db verify`` and the tests
run it. The sums follow ``bot.quotas.ledger``: requests not refunded, characters unless the whole
reservation was refunded, the ``cost`` column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.tables import quota_guild_days, quota_member_days, quota_members
from bot.store.tables import usage_ledger as ledger
from bot.store.types import to_money

CLI_GUILD_KEY = 0


def guild_key(guild_id: int | None) -> int:
    return CLI_GUILD_KEY if guild_id is None else guild_id


def _insert(conn: AsyncConnection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


@dataclass(frozen=True)
class DayCount:
    requests: int = 0
    characters: int = 0
    cost: Decimal = Decimal(0)


@dataclass(frozen=True)
class MemberRow:
    in_flight: int = 0
    last_request_at: datetime | None = None


# ---- taking (reservations) -------------------------------------------------------------------


async def take_guild_day(
    conn: AsyncConnection, key: int, day: datetime, *, requests: int, characters: int, cost: Decimal,
    budget: int | None, cap: Decimal | None,
) -> bool:
    """Add to the server's day unless that passes ``budget`` requests or ``cap`` dollars."""
    if (budget is not None and requests > budget) or (cap is not None and cost > cap):
        return False
    t = quota_guild_days.c
    condition: ColumnElement[bool] = true()
    if budget is not None:
        condition = and_(condition, t.requests + requests <= budget)
    if cap is not None:
        condition = and_(condition, t.cost + cost <= cap)
    stmt = _insert(conn, quota_guild_days).values(
        guild_key=key, day=day, requests=requests, characters=characters, cost=cost
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.guild_key, t.day],
        set_={"requests": t.requests + requests, "characters": t.characters + characters,
              "cost": t.cost + cost},
        where=condition,
    ).returning(t.requests)
    return (await conn.execute(stmt)).first() is not None


async def take_member_day(
    conn: AsyncConnection, key: int, user_id: int, day: datetime, *, requests: int, characters: int,
    limits: tuple[int, int] | None,
) -> bool:
    """Add to the member's day unless that passes ``limits`` (requests, characters); None: no limit."""
    t = quota_member_days.c
    condition: ColumnElement[bool] = true()
    if limits is not None:
        if requests > limits[0] or characters > limits[1]:
            return False
        condition = and_(t.requests + requests <= limits[0], t.characters + characters <= limits[1])
    stmt = _insert(conn, quota_member_days).values(
        guild_key=key, user_id=user_id, day=day, requests=requests, characters=characters
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.guild_key, t.user_id, t.day],
        set_={"requests": t.requests + requests, "characters": t.characters + characters},
        where=condition,
    ).returning(t.requests)
    return (await conn.execute(stmt)).first() is not None


async def take_member(
    conn: AsyncConnection, key: int, user_id: int, *, now: datetime,
    max_in_flight: int | None, cooldown_cutoff: datetime | None,
) -> bool:
    """One more reservation in flight, started ``now``, unless the member already has
    ``max_in_flight`` or their newest one started after ``cooldown_cutoff`` (None: no check)."""
    t = quota_members.c
    condition: ColumnElement[bool] = true()
    if max_in_flight is not None:
        condition = and_(condition, t.in_flight < max_in_flight)
    if cooldown_cutoff is not None:
        condition = and_(condition, t.last_request_at.is_(None) | (t.last_request_at <= cooldown_cutoff))
    later = t.last_request_at.is_(None) | (t.last_request_at < now)
    newest = case((later, literal(now, ledger.c.created_at.type)), else_=t.last_request_at)
    stmt = _insert(conn, quota_members).values(
        guild_key=key, user_id=user_id, in_flight=1, last_request_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.guild_key, t.user_id],
        set_={"in_flight": t.in_flight + 1, "last_request_at": newest},
        where=condition,
    ).returning(t.in_flight)
    return (await conn.execute(stmt)).first() is not None


# ---- reading -----------------------------------------------------------------------------------


async def read_guild_day(conn: AsyncConnection, key: int, day: datetime) -> DayCount:
    t = quota_guild_days.c
    row = (
        await conn.execute(select(t.requests, t.characters, t.cost).where(t.guild_key == key, t.day == day))
    ).first()
    return DayCount() if row is None else DayCount(int(row[0]), int(row[1]), row[2])


async def read_member_day(conn: AsyncConnection, key: int, user_id: int, day: datetime) -> DayCount:
    t = quota_member_days.c
    row = (
        await conn.execute(
            select(t.requests, t.characters).where(t.guild_key == key, t.user_id == user_id, t.day == day)
        )
    ).first()
    return DayCount() if row is None else DayCount(int(row[0]), int(row[1]))


async def read_member(conn: AsyncConnection, key: int, user_id: int) -> MemberRow:
    t = quota_members.c
    row = (
        await conn.execute(
            select(t.in_flight, t.last_request_at).where(t.guild_key == key, t.user_id == user_id)
        )
    ).first()
    return MemberRow() if row is None else MemberRow(int(row[0]), row[1])


def _mine(key: int, user_id: int) -> ColumnElement[bool]:
    guild = ledger.c.guild_id.is_(None) if key == CLI_GUILD_KEY else ledger.c.guild_id == key
    return and_(guild, ledger.c.user_id == user_id)


async def exact_in_flight(conn: AsyncConnection, key: int, user_id: int, *, since: datetime) -> int:
    """Reservations of the member not settled and started after ``since``, from the ledger.

    Only asked when the counter says the member is at their limit: a reservation whose job
    died without settling stays in the counter but stops counting after a while.
    """
    return (
        await conn.execute(
            select(func.count()).where(
                _mine(key, user_id), ledger.c.state == "reserved", ledger.c.created_at > since
            )
        )
    ).scalar_one()


async def newest_counted(conn: AsyncConnection, key: int, user_id: int) -> datetime | None:
    """The start of the member's newest reservation that counts (walks the index from the end)."""
    return (
        await conn.execute(
            select(ledger.c.created_at)
            .where(_mine(key, user_id), ledger.c.state != "refunded", ledger.c.forgiven_at.is_(None))
            .order_by(ledger.c.created_at.desc())
            .limit(1)
        )
    ).scalar()


# ---- changing (settlement, forgiveness) -------------------------------------------------------


async def apply_delta(
    conn: AsyncConnection, key: int, user_id: int, day: datetime, *, requests: int, characters: int,
    cost: Decimal, member_day: bool,
) -> None:
    """Add (usually negative) amounts to the guild's day and, with ``member_day``, the member's."""
    g = quota_guild_days.c
    await conn.execute(
        update(quota_guild_days)
        .where(g.guild_key == key, g.day == day)
        .values(requests=g.requests + requests, characters=g.characters + characters, cost=g.cost + cost)
    )
    if member_day:
        m = quota_member_days.c
        await conn.execute(
            update(quota_member_days)
            .where(m.guild_key == key, m.user_id == user_id, m.day == day)
            .values(requests=m.requests + requests, characters=m.characters + characters)
        )


async def set_member(
    conn: AsyncConnection, key: int, user_id: int, *, in_flight_delta: int = 0,
    set_last: bool = False, last_request_at: datetime | None = None,
) -> None:
    """Change the member row: ``in_flight`` by a delta; ``last_request_at`` with ``set_last``."""
    t = quota_members.c
    values: dict[str, Any] = {"in_flight": t.in_flight + in_flight_delta}
    if set_last:
        values["last_request_at"] = last_request_at
    await conn.execute(update(quota_members).where(t.guild_key == key, t.user_id == user_id).values(**values))


async def force_member(conn: AsyncConnection, key: int, user_id: int, *, now: datetime) -> None:
    """``take_member`` without its checks (the caller has decided under the guild's lock)."""
    await take_member(conn, key, user_id, now=now, max_in_flight=None, cooldown_cutoff=None)


async def move_day(
    conn: AsyncConnection, key: int, user_id: int, *, old: datetime, new: datetime,
    requests: int, characters: int, cost: Decimal, member_day: bool,
) -> None:
    """Move one reservation's counted amounts from quota day ``old`` to ``new``."""
    await apply_delta(conn, key, user_id, old, requests=-requests, characters=-characters, cost=-cost,
                      member_day=member_day)
    await take_guild_day(conn, key, new, requests=requests, characters=characters, cost=cost,
                         budget=None, cap=None)
    if member_day:
        await take_member_day(conn, key, user_id, new, requests=requests, characters=characters,
                              limits=None)


# ---- verifying ---------------------------------------------------------------------------------

_KEY = func.coalesce(ledger.c.guild_id, 0)
_COUNTED = ledger.c.state != "refunded"
_REQ = func.sum(case((_COUNTED, ledger.c.requests - ledger.c.refunded_requests), else_=0))
_CHARS = func.sum(case((_COUNTED, ledger.c.characters), else_=0))
_COST = func.sum(case((_COUNTED, ledger.c.cost), else_=0))


async def expected_counters(conn: AsyncConnection) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Every counter as the ledger says it should be (keys without usage are left out)."""
    member_days = await conn.execute(
        select(_KEY, ledger.c.user_id, ledger.c.quota_day, _REQ, _CHARS)
        .where(ledger.c.forgiven_at.is_(None))
        .group_by(_KEY, ledger.c.user_id, ledger.c.quota_day)
    )
    guild_days = await conn.execute(
        select(_KEY, ledger.c.quota_day, _REQ, _CHARS, _COST).group_by(_KEY, ledger.c.quota_day)
    )
    members = await conn.execute(
        select(
            _KEY, ledger.c.user_id,
            func.sum(case((ledger.c.state == "reserved", 1), else_=0)),
            func.max(case((and_(_COUNTED, ledger.c.forgiven_at.is_(None)), ledger.c.created_at))),
        ).group_by(_KEY, ledger.c.user_id)
    )
    return {
        "quota_member_days": {(int(r[0]), int(r[1]), _day(r[2])): (int(r[3]), int(r[4]))
                              for r in member_days},
        "quota_guild_days": {(int(r[0]), _day(r[1])): (int(r[2]), int(r[3]), _money(r[4]))
                             for r in guild_days},
        "quota_members": {(int(r[0]), int(r[1])): (int(r[2]), _day(r[3])) for r in members},
    }


async def stored_counters(conn: AsyncConnection) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    g, p = quota_guild_days.c, quota_members.c
    return {
        "quota_member_days": {
            (r.guild_key, r.user_id, r.day): (r.requests, r.characters)
            for r in await conn.execute(select(quota_member_days))
        },
        "quota_guild_days": {
            (r.guild_key, r.day): (r.requests, r.characters, r.cost)
            for r in await conn.execute(select(g.guild_key, g.day, g.requests, g.characters, g.cost))
        },
        "quota_members": {
            (r.guild_key, r.user_id): (r.in_flight, r.last_request_at)
            for r in await conn.execute(select(p.guild_key, p.user_id, p.in_flight, p.last_request_at))
        },
    }


def _day(value: Any) -> datetime | None:
    """Grouped and aggregated timestamps, as aware UTC datetimes on both databases."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _money(value: Any) -> Decimal:
    """Sums of ``Money`` come back already typed; an empty sum is zero."""
    return Decimal(0) if value is None else to_money(value)


def _is_zero(values: tuple[Any, ...]) -> bool:
    return all(v in (0, None) or v == Decimal(0) for v in values)


async def verify(conn: AsyncConnection) -> list[str]:
    """Every difference between the counters and the ledger's sums (empty: they agree)."""
    expected, stored = await expected_counters(conn), await stored_counters(conn)
    problems: list[str] = []
    for table, want in expected.items():
        have = stored[table]
        for key in sorted(set(want) | set(have), key=repr):
            a, b = want.get(key), have.get(key)
            if a == b or (a is None and b is not None and _is_zero(b)) or (b is None and a is not None
                                                                            and _is_zero(a)):
                continue
            problems.append(f"{table} {key}: counter {b}, ledger {a}")
    return problems
