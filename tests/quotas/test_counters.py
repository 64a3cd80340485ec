"""Counters vs ledger: the counter rows always equal the ledger's sums (SQLite and PostgreSQL).

Also: a reservation issues the same statements whatever the ledger's size (O(1)), cached
policies are re-read when another process changes them, and ``db verify`` reports drift.
"""

from __future__ import annotations

import asyncio
import random
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.util import await_only

from bot.clock import ManualClock
from bot.quotas import QuotaExceeded, QuotaService, counters
from bot.store import Database
from bot.store.tables import quota_members
from tests.quotas.conftest import make_settings
from tests.quotas.reserve_worker import GUILD, USER, limited_settings, reserve_many
from tests.store.dbkit import DbTarget

MOD = 900
NOON = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


async def verify(db: Database) -> list[str]:
    async with db.read() as conn:
        return await counters.verify(conn)


async def test_a_random_mix_keeps_counters_equal_to_the_ledger(db: Database, clock: ManualClock) -> None:
    clock.set(NOON)
    quotas = QuotaService(db, make_settings(quota_cooldown_seconds=0, quota_max_in_flight=50), clock)
    await quotas.admin.set_daily_budget(GUILD, 400, actor_id=MOD)
    await quotas.admin.set_cost_cap(GUILD, "3.00", actor_id=MOD)
    rng = random.Random(11)
    open_ids: list[str] = []
    refusals = 0
    for step in range(160):
        choice = rng.random()
        if choice < 0.55 or not open_ids:
            try:
                reservation = await quotas.reserve(
                    guild_id=rng.choice([GUILD, None]), user_id=rng.choice([USER, USER + 1, USER + 2]),
                    requests=rng.randint(1, 4), characters=rng.randint(1, 400),
                )
            except QuotaExceeded:
                refusals += 1
            else:
                open_ids.append(reservation.id)
        elif choice < 0.7:
            await quotas.commit(open_ids.pop(rng.randrange(len(open_ids))))
        elif choice < 0.85:
            await quotas.refund(open_ids.pop(rng.randrange(len(open_ids))))
        elif choice < 0.95:
            reservation = await quotas.get_reservation(rng.choice(open_ids))
            committed = rng.randint(reservation.committed_requests, reservation.requests)
            await quotas.settle(reservation.id, committed=committed,
                                refunded=rng.randint(0, reservation.requests - committed))
        else:
            await quotas.admin.reset_usage(GUILD, rng.choice([USER, USER + 1]), actor_id=MOD)
        if step % 40 == 39:
            clock.advance(9 * 3600)  # cross quota days
        assert await verify(db) == [], f"after step {step}"
    assert refusals > 0  # the limits were reached along the way, too


async def test_one_hundred_contenders_leave_consistent_counters(db: Database, clock: ManualClock) -> None:
    quotas = QuotaService(db, limited_settings(), clock)
    assert await reserve_many(quotas, 100) == (10, 90)
    assert await verify(db) == []


async def test_verify_reports_a_counter_that_drifted(db: Database, clock: ManualClock) -> None:
    quotas = QuotaService(db, make_settings(), clock)
    await quotas.reserve(guild_id=GUILD, user_id=USER, requests=2, characters=30)
    async with db.engine.begin() as conn:
        await conn.execute(update(quota_members).values(requests=7))
    problems = await verify(db)
    assert len(problems) == 1 and "quota_members" in problems[0] and ", 7, 30, 1, " in problems[0]


def count_statements(db: Database) -> list[str]:
    """Every statement the database runs from now on, literals replaced by ``?``.

    On SQLite the reservation sends its statements to the driver itself, past SQLAlchemy's
    cursor events, so there SQLite's own trace callback (installed on each checked-out
    connection, in the driver's thread) is what sees them; on PostgreSQL every statement goes
    through SQLAlchemy's cursor."""
    seen: list[str] = []
    if db.is_sqlite:
        def trace(statement: str) -> None:
            seen.append(_LITERALS.sub("?", statement))

        def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            await_only(dbapi_connection.driver_connection.set_trace_callback(trace))

        event.listen(db.engine.sync_engine.pool, "checkout", checkout)
        return seen

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    return seen


_LITERALS = re.compile(r"'[^']*'|\b\d+(\.\d+)?\b")


async def test_a_reservation_costs_the_same_statements_at_any_ledger_size(
    db: Database, clock: ManualClock
) -> None:
    quotas = QuotaService(db, make_settings(quota_cooldown_seconds=0, quota_max_in_flight=100_000,
                                            quota_requests_per_day=100_000), clock)
    await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)  # warm the cache
    seen = count_statements(db)
    await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)
    empty = list(seen)
    for _ in range(300):
        await quotas.commit((await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)).id)
    seen.clear()
    await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)
    assert seen == empty
    assert any("usage_ledger" in s for s in seen) and any("quota_members" in s for s in seen)
    assert not any("sum(" in s.lower() or "count(" in s.lower() for s in seen)


async def test_a_change_in_another_process_reaches_the_cached_policy(
    db_target: DbTarget, clock: ManualClock
) -> None:
    first, second = await db_target.open(), await db_target.open()
    try:
        bot = QuotaService(first, make_settings(quota_cooldown_seconds=0), clock)
        other = QuotaService(second, make_settings(), clock)
        await bot.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)  # cached now
        await other.admin.set_user_policy(GUILD, USER, actor_id=MOD, requests_per_day=1)
        try:
            await bot.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)
        except QuotaExceeded as error:
            assert error.code == "requests_per_day"
        else:
            raise AssertionError("the new policy was not seen")
        await other.admin.block(GUILD, USER + 1, actor_id=MOD)
        try:
            await bot.reserve(guild_id=GUILD, user_id=USER + 1, requests=1, characters=5)
        except QuotaExceeded as error:
            assert error.code == "blocked"
        else:
            raise AssertionError("the block was not seen")
    finally:
        await first.close()
        await second.close()


async def test_concurrent_settlements_and_reservations_stay_consistent(
    db: Database, clock: ManualClock
) -> None:
    quotas = QuotaService(db, make_settings(quota_cooldown_seconds=0, quota_max_in_flight=1000,
                                            quota_requests_per_day=1000), clock)

    async def life(user_id: int) -> None:
        for n in range(5):
            reservation = await quotas.reserve(guild_id=GUILD, user_id=user_id, requests=2, characters=9)
            await (quotas.commit if n % 2 else quotas.refund)(reservation.id)

    await asyncio.gather(*(life(USER + i) for i in range(20)))
    assert await verify(db) == []
    usage = await quotas.guild_usage(GUILD)
    assert (usage.requests, usage.characters) == (20 * 2 * 2, 20 * 2 * 9)


async def test_a_new_reset_hour_keeps_the_running_day_and_the_counters_exact(
    db: Database, clock: ManualClock
) -> None:
    quotas = QuotaService(db, make_settings(quota_cooldown_seconds=0, quota_requests_per_day=3,
                                            quota_max_in_flight=10), clock)
    clock.set(datetime(2026, 3, 3, 5, 0, tzinfo=UTC))
    for _ in range(2):
        await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)
    await quotas.admin.set_reset_hour(GUILD, 4, actor_id=MOD)  # today now began at 04:00
    assert await verify(db) == []
    assert (await quotas.usage(GUILD, USER)).requests_used == 2
    await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)
    try:
        await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=5)
    except QuotaExceeded as error:
        assert error.code == "requests_per_day"
    else:
        raise AssertionError("the running day lost its usage")
    await quotas.admin.set_reset_hour(GUILD, 6, actor_id=MOD)  # 05:00 now belongs to yesterday
    assert await verify(db) == []
    assert (await quotas.usage(GUILD, USER)).requests_used == 3


async def test_a_refusal_by_either_counter_changes_neither(db: Database, clock: ManualClock) -> None:
    """The reservation's writes run as one statement on PostgreSQL and one after another on
    SQLite; a refusal by the second counter must also undo what the first one took."""
    clock.set(NOON)
    quotas = QuotaService(db, make_settings(quota_cooldown_seconds=0, quota_requests_per_day=3), clock)
    await quotas.admin.set_daily_budget(GUILD, 5, actor_id=MOD)
    for _ in range(3):
        await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=10)
    # The server's day has room (3 of 5), the member's has none: the member's row refuses.
    try:
        await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=10)
    except QuotaExceeded as refusal:
        assert refusal.code == "requests_per_day"
    else:
        raise AssertionError("the member's fourth request was granted")
    assert (await quotas.guild_usage(GUILD)).requests == 3
    assert await verify(db) == []
    await quotas.reserve(guild_id=GUILD, user_id=USER + 1, requests=2, characters=10)
    # Now the server's day refuses first (5 of 5); the other member's row stays as it was.
    try:
        await quotas.reserve(guild_id=GUILD, user_id=USER + 1, requests=1, characters=10)
    except QuotaExceeded as refusal:
        assert refusal.code == "guild_budget"
    else:
        raise AssertionError("the server's budget was passed")
    assert (await quotas.usage(GUILD, USER + 1)).requests_used == 2
    assert (await quotas.guild_usage(GUILD)).requests == 5
    assert await verify(db) == []
