"""Settling reservations: per chunk, per gateway outcome, idempotent."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from bot.clock import ManualClock
from bot.quotas import (
    QuotaService,
    ReservationState,
    SettlementError,
    UnknownReservation,
)

GUILD, USER, MOD = 500, 600, 900


@pytest.fixture
async def quotas_free(quotas: QuotaService) -> QuotaService:
    await quotas.admin.set_guild_default(GUILD, actor_id=MOD, cooldown_seconds=0, max_in_flight=100)
    return quotas


async def reserve(quotas: QuotaService, requests: int = 1, characters: int = 100) -> str:
    reservation = await quotas.reserve(
        guild_id=GUILD, user_id=USER, requests=requests, characters=characters
    )
    return reservation.id


async def used(quotas: QuotaService) -> tuple[int, int, int]:
    summary = await quotas.usage(GUILD, USER)
    return summary.requests_used, summary.characters_used, summary.in_flight


async def test_commit_on_completed_or_failed_keeps_the_usage(quotas_free: QuotaService,
                                                             clock: ManualClock) -> None:
    rid = await reserve(quotas_free)
    assert await used(quotas_free) == (1, 100, 1)
    clock.advance(3)
    settled = await quotas_free.commit(rid)
    assert settled.state is ReservationState.COMMITTED and settled.settled_at == clock.now()
    assert settled.cost == Decimal("0.01")
    assert await used(quotas_free) == (1, 100, 0)


async def test_refund_on_error_gives_everything_back(quotas_free: QuotaService) -> None:
    rid = await reserve(quotas_free, requests=2)
    settled = await quotas_free.refund(rid)
    assert settled.state is ReservationState.REFUNDED and settled.cost == Decimal("0")
    assert await used(quotas_free) == (0, 0, 0)
    assert (await quotas_free.guild_usage(GUILD)).cost == Decimal("0")


async def test_chunks_settle_one_by_one_into_a_partial(quotas_free: QuotaService) -> None:
    rid = await reserve(quotas_free, requests=3, characters=600)
    step = await quotas_free.settle(rid, committed=1, refunded=0)  # chunk 0 COMPLETED
    assert step.state is ReservationState.RESERVED and step.outstanding == 2 and step.settled_at is None
    step = await quotas_free.settle(rid, committed=1, refunded=1)  # chunk 1 ERROR
    assert step.state is ReservationState.RESERVED and step.cost == Decimal("0.02")
    assert await used(quotas_free) == (2, 600, 1)
    final = await quotas_free.settle(rid, committed=2, refunded=1)  # chunk 2 FAILED (charged)
    assert final.state is ReservationState.PARTIAL and final.outstanding == 0
    assert (final.committed_requests, final.refunded_requests, final.cost) == (2, 1, Decimal("0.02"))
    assert await used(quotas_free) == (2, 600, 0)


async def test_cancel_after_some_chunks_commits_the_rest(quotas_free: QuotaService) -> None:
    rid = await reserve(quotas_free, requests=3)
    await quotas_free.settle(rid, committed=0, refunded=1)
    final = await quotas_free.commit(rid)
    assert (final.committed_requests, final.refunded_requests) == (2, 1)
    assert final.state is ReservationState.PARTIAL


async def test_settling_twice_counts_once(quotas_free: QuotaService) -> None:
    rid = await reserve(quotas_free, requests=2)
    first = await quotas_free.settle(rid, committed=1, refunded=1)
    again = await quotas_free.settle(rid, committed=1, refunded=1)
    assert again == first
    assert await quotas_free.settle(rid, committed=0, refunded=0) == first  # stale totals change nothing
    results = await asyncio.gather(*(quotas_free.refund(rid) for _ in range(5)))
    assert {r.refunded_requests for r in results} == {1}  # nothing was outstanding any more
    committed_twice = await reserve(quotas_free)
    await quotas_free.commit(committed_twice)
    await quotas_free.commit(committed_twice)
    await quotas_free.refund(committed_twice)  # too late: it stays committed
    assert await used(quotas_free) == (2, 200, 0)


async def test_impossible_settlements_are_refused(quotas_free: QuotaService) -> None:
    rid = await reserve(quotas_free, requests=2)
    with pytest.raises(SettlementError):
        await quotas_free.settle(rid, committed=2, refunded=1)
    with pytest.raises(SettlementError):
        await quotas_free.settle(rid, committed=-1, refunded=0)
    await quotas_free.settle(rid, committed=2, refunded=0)
    with pytest.raises(SettlementError):
        await quotas_free.settle(rid, committed=2, refunded=1)
    with pytest.raises(UnknownReservation):
        await quotas_free.commit("f" * 32)
    with pytest.raises(UnknownReservation):
        await quotas_free.settle("f" * 32, committed=1, refunded=0)
    with pytest.raises(ValueError, match="at least one request"):
        await quotas_free.reserve(guild_id=GUILD, user_id=USER, requests=0, characters=1)


async def test_racing_commit_and_refund_settle_consistently(quotas_free: QuotaService) -> None:
    rid = await reserve(quotas_free, requests=4)
    await quotas_free.settle(rid, committed=1, refunded=0)
    results = await asyncio.gather(quotas_free.commit(rid), quotas_free.refund(rid), quotas_free.commit(rid))
    final = await quotas_free.get_reservation(rid)
    assert final.outstanding == 0 and final.state in {ReservationState.COMMITTED, ReservationState.PARTIAL}
    assert (final.committed_requests, final.refunded_requests) in {(4, 0), (1, 3)}
    assert all(result == final for result in results)  # the first settled it all; the rest saw that
