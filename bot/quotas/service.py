"""``QuotaService``: reserve quota before a submission, settle it after (DESIGN rule 3).

Atomicity — no over-grant under concurrency, within and across processes. ``reserve`` reads
every counter and inserts the reservation in ONE write transaction that is serialized with
every other reservation of the same guild (``Database.write(..., lock="quota:guild:<id>")``):

- SQLite: the transaction starts with ``BEGIN IMMEDIATE``, so it holds the database's write
  lock before its first read; a second reservation (any connection, any process) waits at
  BEGIN and then sees the first one's row. A lingering "database is locked" makes the whole
  transaction run again (see ``bot.store.database``).
- PostgreSQL: the transaction first takes ``pg_advisory_xact_lock`` keyed on the guild (held
  until commit, shared by all processes of the server); under READ COMMITTED every statement
  after it sees all reservations committed before. Per-guild keys let guilds run in parallel,
  and because a member's limits and the server's budget/cost cap are checked under the same
  key, both are exact.

Settlement only ever lowers usage, so it needs no guild lock: it locks its own ledger row
(``SELECT … FOR UPDATE``; SQLite's write lock already serializes it). Settlement totals are
cumulative and never go back, so settling twice (a retry, a resumed job) counts once.

"Exempt" roles skip the member limits (per-request size, daily requests and characters,
in flight, cooldown); the server's daily budget and cost cap still apply to them, since those
protect the server's wallet. A blocked member is always refused, exempt or not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.config import Settings
from bot.formats import plural
from bot.quotas.admin import QuotaAdmin
from bot.quotas.errors import (
    GuildPaused,
    QuotaExceeded,
    SettlementError,
    UnknownReservation,
)
from bot.quotas.guilds import GuildSettings, guild_lock, load_guild_settings
from bot.quotas.ledger import (
    MemberUsage,
    Reservation,
    ReservationState,
    Totals,
    UserUsage,
    guild_totals,
    member_usage,
    reservation_from_row,
    top_users,
)
from bot.quotas.policy import Policy, PolicyScope, ResolvedPolicy, resolve
from bot.quotas.window import day_start, format_until, next_reset
from bot.store.database import Database
from bot.store.ids import new_id
from bot.store.jobs import NewJob, insert_job
from bot.store.tables import blocked_users, quota_policies
from bot.store.tables import usage_ledger as ledger
from bot.store.types import to_money


@dataclass(frozen=True)
class UsageSummary:
    """A member's day so far, for ``/quota me``. ``*_remaining`` are None for exempt members."""

    guild_id: int | None
    user_id: int
    policy: ResolvedPolicy
    exempt: bool
    blocked: bool
    guild_paused: bool
    requests_used: int
    characters_used: int
    in_flight: int
    requests_remaining: int | None
    characters_remaining: int | None
    next_request_at: datetime | None  # end of the cooldown, when it is still running
    resets_at: datetime


@dataclass(frozen=True)
class GuildUsage:
    """A server's day so far, for moderators."""

    guild_id: int
    requests: int
    characters: int
    cost: Decimal
    daily_request_budget: int | None
    daily_cost_cap: Decimal | None
    resets_at: datetime
    top_users: tuple[UserUsage, ...]


@dataclass(frozen=True)
class _Member:
    """Everything a decision about one member needs, read inside the transaction."""

    now: datetime
    resets_at: datetime
    day_start: datetime
    guild: GuildSettings | None
    policy: ResolvedPolicy
    exempt: bool
    blocked: bool
    usage: MemberUsage
    guild_totals: Totals


class QuotaService:
    """Reservations and usage. Moderator settings live in ``QuotaService.admin``."""

    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._defaults = ResolvedPolicy.from_settings(settings)
        # A reservation never settled this long after it was made belongs to a job that died
        # without settling; it stops counting as "in flight" so it cannot block its member.
        self._in_flight_horizon = timedelta(seconds=2 * settings.chatterbox_max_wait_seconds + 600)
        self.admin = QuotaAdmin(db, settings, clock)

    # ---- prices ---------------------------------------------------------------------------
    @property
    def price_per_request(self) -> Decimal:
        return to_money(self._settings.chatterbox_price_per_request)

    def price(self, requests: int) -> Decimal:
        """What ``requests`` gateway requests cost, shown to the member before reserving."""
        return to_money(self.price_per_request * requests)

    # ---- reserving ------------------------------------------------------------------------
    async def reserve(
        self,
        *,
        guild_id: int | None,
        user_id: int,
        role_ids: Sequence[int] = (),
        requests: int,
        characters: int,
        job_id: str | None = None,
        job: NewJob | None = None,
    ) -> Reservation:
        """Check every limit and record the reservation, atomically; ``QuotaExceeded`` if not.

        With ``job``, the job and its parts are written in the same transaction (state
        ``reserved``, linked to the reservation), so a refusal leaves no job behind and an
        accepted request always has both.
        """
        _check_amounts(requests, characters)
        if job is not None:
            if job_id is not None and job_id != job.id:
                raise ValueError("job_id and job.id differ")
            job_id = job.id

        async def write(conn: AsyncConnection) -> Reservation:
            member = await self._read_member(conn, guild_id, user_id, role_ids)
            refusal = self._refusal(member, requests=requests, characters=characters)
            if refusal is not None:
                raise refusal
            price = self.price_per_request
            values = {
                "id": new_id(),
                "guild_id": guild_id,
                "user_id": user_id,
                "requests": requests,
                "characters": characters,
                "price_per_request": price,
                "cost": to_money(price * requests),
                "state": ReservationState.RESERVED.value,
                "committed_requests": 0,
                "refunded_requests": 0,
                "job_id": job_id,
                "created_at": member.now,
            }
            await conn.execute(ledger.insert().values(**values))
            if job is not None:
                await insert_job(conn, job, reservation_id=values["id"], now=member.now)
            row = (await conn.execute(select(ledger).where(ledger.c.id == values["id"]))).one()
            return reservation_from_row(row)

        return await self._db.write(write, lock=guild_lock(guild_id))

    async def check(
        self,
        *,
        guild_id: int | None,
        user_id: int,
        role_ids: Sequence[int] = (),
        requests: int,
        characters: int,
    ) -> None:
        """Raise the ``QuotaExceeded`` that ``reserve`` would raise now, recording nothing.

        Advisory only (another request may take the last slot before ``reserve``).
        """
        _check_amounts(requests, characters)
        async with self._db.read() as conn:
            member = await self._read_member(conn, guild_id, user_id, role_ids)
        refusal = self._refusal(member, requests=requests, characters=characters)
        if refusal is not None:
            raise refusal

    async def assert_guild_open(self, guild_id: int | None) -> None:
        """Raise ``GuildPaused`` (with its member-facing message) if moderators paused the guild."""
        if guild_id is None:
            return
        async with self._db.read() as conn:
            guild = await load_guild_settings(conn, guild_id)
        message = guild.pause_message()
        if message is not None:
            raise GuildPaused(message)

    # ---- settling -------------------------------------------------------------------------
    async def settle(self, reservation_id: str, *, committed: int, refunded: int) -> Reservation:
        """Record how many of the reserved requests were charged and refunded SO FAR.

        ``committed`` and ``refunded`` are running totals for the reservation (not increments):
        a job of N chunks calls this as its chunks finish (commit on COMPLETED/FAILED, refund on
        ERROR or a refused POST), and a repeated call with the same totals changes nothing.
        A total lower than the recorded one is ignored (a late, stale call); totals beyond the
        reservation raise ``SettlementError``. Once every request is settled the state becomes
        committed, refunded or partial.
        """
        if committed < 0 or refunded < 0:
            raise SettlementError("settlement totals cannot be negative")
        return await self._settle(reservation_id, lambda current: (committed, refunded))

    async def commit(self, reservation_id: str) -> Reservation:
        """Charge every request not settled yet (the job was, or may have been, charged)."""
        return await self._settle(
            reservation_id, lambda r: (r.requests - r.refunded_requests, r.refunded_requests)
        )

    async def refund(self, reservation_id: str) -> Reservation:
        """Give back every request not settled yet (provably not charged)."""
        return await self._settle(
            reservation_id, lambda r: (r.committed_requests, r.requests - r.committed_requests)
        )

    async def _settle(
        self, reservation_id: str, totals: Callable[[Reservation], tuple[int, int]]
    ) -> Reservation:
        """Apply ``totals(current row)`` to the locked ledger row, in one transaction."""

        async def write(conn: AsyncConnection) -> Reservation:
            row = (
                await conn.execute(select(ledger).where(ledger.c.id == reservation_id).with_for_update())
            ).first()
            if row is None:
                raise UnknownReservation(reservation_id)
            current = reservation_from_row(row)
            committed, refunded = totals(current)
            new_committed = max(current.committed_requests, committed)
            new_refunded = max(current.refunded_requests, refunded)
            if new_committed + new_refunded > current.requests:
                raise SettlementError(
                    f"reservation {reservation_id} has {current.requests} requests; cannot settle "
                    f"{new_committed} committed + {new_refunded} refunded"
                )
            if (new_committed, new_refunded) == (current.committed_requests, current.refunded_requests):
                return current
            done = new_committed + new_refunded == current.requests
            state = ReservationState.RESERVED
            if done:
                state = (
                    ReservationState.COMMITTED
                    if new_refunded == 0
                    else ReservationState.REFUNDED
                    if new_committed == 0
                    else ReservationState.PARTIAL
                )
            await conn.execute(
                update(ledger)
                .where(ledger.c.id == reservation_id)
                .values(
                    committed_requests=new_committed,
                    refunded_requests=new_refunded,
                    cost=to_money(current.price_per_request * (current.requests - new_refunded)),
                    state=state.value,
                    settled_at=self._clock.now() if done else None,
                )
            )
            row = (await conn.execute(select(ledger).where(ledger.c.id == reservation_id))).one()
            return reservation_from_row(row)

        return await self._db.write(write)

    async def get_reservation(self, reservation_id: str) -> Reservation:
        async with self._db.read() as conn:
            row = (await conn.execute(select(ledger).where(ledger.c.id == reservation_id))).first()
        if row is None:
            raise UnknownReservation(reservation_id)
        return reservation_from_row(row)

    # ---- reporting ------------------------------------------------------------------------
    async def usage(
        self, guild_id: int | None, user_id: int, role_ids: Sequence[int] = ()
    ) -> UsageSummary:
        async with self._db.read() as conn:
            member = await self._read_member(conn, guild_id, user_id, role_ids)
        policy, used = member.policy, member.usage
        cooldown_end = self._cooldown_end(member)
        return UsageSummary(
            guild_id=guild_id,
            user_id=user_id,
            policy=policy,
            exempt=member.exempt,
            blocked=member.blocked,
            guild_paused=bool(member.guild and member.guild.paused),
            requests_used=used.requests,
            characters_used=used.characters,
            in_flight=used.in_flight,
            requests_remaining=None if member.exempt else max(0, policy.requests_per_day - used.requests),
            characters_remaining=None if member.exempt else max(0, policy.chars_per_day - used.characters),
            next_request_at=cooldown_end if cooldown_end and cooldown_end > member.now else None,
            resets_at=member.resets_at,
        )

    async def guild_usage(self, guild_id: int, *, top: int = 10) -> GuildUsage:
        now = self._clock.now()
        async with self._db.read() as conn:
            guild = await load_guild_settings(conn, guild_id)
            start = day_start(now, self._reset_hour(guild))
            totals = await guild_totals(conn, guild_id, day_start=start)
            leaders = await top_users(conn, guild_id, day_start=start, limit=top)
        return GuildUsage(
            guild_id=guild_id,
            requests=totals.requests,
            characters=totals.characters,
            cost=totals.cost,
            daily_request_budget=guild.daily_request_budget,
            daily_cost_cap=guild.daily_cost_cap,
            resets_at=start + timedelta(days=1),
            top_users=tuple(leaders),
        )

    # ---- the decision ---------------------------------------------------------------------
    def _reset_hour(self, guild: GuildSettings | None) -> int:
        if guild is not None and guild.reset_hour_utc is not None:
            return guild.reset_hour_utc
        return self._settings.quota_reset_hour_utc

    async def _read_member(
        self, conn: AsyncConnection, guild_id: int | None, user_id: int, role_ids: Sequence[int]
    ) -> _Member:
        now = self._clock.now()
        guild = None if guild_id is None else await load_guild_settings(conn, guild_id)
        start = day_start(now, self._reset_hour(guild))
        blocked = False
        policy = self._defaults
        if guild_id is not None:
            blocked = (
                await conn.execute(
                    select(blocked_users.c.user_id).where(
                        blocked_users.c.guild_id == guild_id, blocked_users.c.user_id == user_id
                    )
                )
            ).first() is not None
            policy = await self._resolve(conn, guild_id, user_id, role_ids)
        usage = await member_usage(
            conn, guild_id, user_id, day_start=start, in_flight_since=now - self._in_flight_horizon
        )
        has_budget = guild is not None and (
            guild.daily_request_budget is not None or guild.daily_cost_cap is not None
        )
        totals = (
            await guild_totals(conn, guild_id, day_start=start) if has_budget else Totals(0, 0, Decimal(0))
        )
        return _Member(
            now=now,
            resets_at=next_reset(now, self._reset_hour(guild)),
            day_start=start,
            guild=guild,
            policy=policy,
            exempt=guild is not None and bool(guild.exempt_role_ids.intersection(role_ids)),
            blocked=blocked,
            usage=usage,
            guild_totals=totals,
        )

    async def _resolve(
        self, conn: AsyncConnection, guild_id: int, user_id: int, role_ids: Sequence[int]
    ) -> ResolvedPolicy:
        q = quota_policies.c
        rows = (await conn.execute(select(quota_policies).where(q.guild_id == guild_id))).all()
        guild: Policy | None = None
        user: Policy | None = None
        roles: list[Policy] = []
        wanted_roles = set(role_ids)
        for row in rows:
            policy = Policy.from_mapping(row._mapping)
            if row.scope == PolicyScope.GUILD.value:
                guild = policy
            elif row.scope == PolicyScope.USER.value and row.target_id == user_id:
                user = policy
            elif row.scope == PolicyScope.ROLE.value and row.target_id in wanted_roles:
                roles.append(policy)
        return resolve(self._defaults, guild=guild, roles=roles, user=user)

    def _cooldown_end(self, member: _Member) -> datetime | None:
        last = member.usage.last_request_at
        if last is None or member.policy.cooldown_seconds == 0:
            return None
        return last + timedelta(seconds=member.policy.cooldown_seconds)

    def _refusal(self, member: _Member, *, requests: int, characters: int) -> QuotaExceeded | None:
        """The first limit this request breaks, most lasting first, or None."""
        now, resets_at, policy, used = member.now, member.resets_at, member.policy, member.usage
        resets_in = format_until(resets_at, now)
        if member.blocked:
            return QuotaExceeded("You are blocked from using the bot on this server.", code="blocked")
        guild = member.guild
        if guild is not None and guild.paused:
            return GuildPaused(guild.pause_message() or "")
        if not member.exempt and characters > policy.max_chars_per_request:
            return QuotaExceeded(
                f"This text is {characters:,} characters; the limit here is "
                f"{policy.max_chars_per_request:,}.",
                code="max_chars_per_request",
            )
        if guild is not None and guild.daily_request_budget is not None:
            budget, spent = guild.daily_request_budget, member.guild_totals.requests
            if spent + requests > budget:
                if spent >= budget:
                    text = f"This server has used its daily budget of {plural(budget, 'request')}"
                else:
                    text = (
                        f"This server has {budget - spent:,} of its {plural(budget, 'daily request')} "
                        f"left and this text needs {requests:,}"
                    )
                return QuotaExceeded(f"{text}; resets in {resets_in}.", resets_at, code="guild_budget")
        if guild is not None and guild.daily_cost_cap is not None:
            cap, spent_cost = guild.daily_cost_cap, member.guild_totals.cost
            if spent_cost + self.price(requests) > cap:
                if spent_cost >= cap:
                    text = f"This server has reached its daily spending cap of ${cap:,.2f}"
                else:
                    text = (
                        f"This would take this server past its daily spending cap of ${cap:,.2f} "
                        f"(${spent_cost:,.2f} spent today)"
                    )
                return QuotaExceeded(f"{text}; resets in {resets_in}.", resets_at, code="cost_cap")
        if member.exempt:
            return None
        limit = policy.requests_per_day
        if used.requests + requests > limit:
            if limit == 0:
                return QuotaExceeded(
                    "You cannot use text-to-speech on this server (your daily limit is 0 requests).",
                    code="requests_per_day",
                )
            if used.requests >= limit:
                text = f"You have used {used.requests:,}/{plural(limit, 'request')} today"
            else:
                text = (
                    f"This text needs {plural(requests, 'request')} but you have "
                    f"{limit - used.requests:,} of {limit:,} left today"
                )
            return QuotaExceeded(f"{text}; resets in {resets_in}.", resets_at, code="requests_per_day")
        limit = policy.chars_per_day
        if used.characters + characters > limit:
            if used.characters >= limit:
                text = f"You have used {used.characters:,}/{plural(limit, 'character')} today"
            else:
                text = (
                    f"This text is {plural(characters, 'character')} but you have "
                    f"{limit - used.characters:,} of {limit:,} left today"
                )
            return QuotaExceeded(f"{text}; resets in {resets_in}.", resets_at, code="chars_per_day")
        if used.in_flight >= policy.max_in_flight:
            return QuotaExceeded(
                f"You already have {plural(used.in_flight, 'request')} in progress; "
                "wait for one to finish.",
                code="max_in_flight",
            )
        cooldown_end = self._cooldown_end(member)
        if cooldown_end is not None and cooldown_end > now:
            return QuotaExceeded(
                f"Slow down: you can speak again in {format_until(cooldown_end, now)}.",
                cooldown_end,
                code="cooldown",
            )
        return None


def _check_amounts(requests: int, characters: int) -> None:
    if requests < 1:
        raise ValueError("a reservation needs at least one request")
    if characters < 0:
        raise ValueError("characters cannot be negative")
