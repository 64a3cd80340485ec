"""``QuotaService``: reserve quota before a submission, settle it after (DESIGN rule 3).

O(1) in the ledger's size: a reservation reads no sums. Its transaction is BEGIN, the
reservation's writes (``counters.take_all``: the server's day — budget and cost cap — then the
member's row — daily requests and characters, in flight, cooldown — each a conditional upsert
``… WHERE used + n <= limit``, then the ledger row; one statement on PostgreSQL), the job's rows
and COMMIT. With the guild's configuration cached, that whole transaction is one trip: on SQLite
one call of the driver's thread (``Database.write_steps``, ``bot.store.driver``), on PostgreSQL
one statement that is its own transaction (``counters.pg_reservation_call``, the job's rows as
CTEs too). Each write goes on only if the one before it took, and anything else (a refusal, a
stale cache) rolls it all back and decides on the usual path. The guild's policies, blocks and
settings come from a per-process cache (``bot.quotas.guild_config``) whose version the same
statement returns; a reservation decided on a stale copy runs again with the fresh one (after
two stale tries, under the guild's lock, which moderator changes also take). Only a refusal
reads more, to say exactly what ran out. Settling adjusts the ledger row and the counters
together; ``counters.verify`` (``chatterbox-bot db verify``) proves they agree.

A process queues its own reservations that would wait on the same database lock (``_turn``:
all of them on SQLite, which has one writer at a time; one member's on PostgreSQL, where they
queue on that member's row) before they reach the database: waiting there costs SQLite's busy
handler its sleeps and PostgreSQL a pooled connection per waiter. Correctness does not rest on
it (other processes and writers are kept apart by the database).

Atomicity — no over-grant under concurrency, within and across processes: each limit is checked
by the statement that adds to its counter, so two reservations can never both pass the last
slot. A refused upsert leaves its row locked until the transaction ends, so the refusal path
(reading the member's picture, possibly taking without conditions when a dead job's in-flight
reservation is all that blocked it) is serialized per member too. SQLite additionally runs
every write transaction alone (``BEGIN IMMEDIATE``; a lingering "database is locked" makes the
whole transaction run again, see ``bot.store.database``).

Settlement only ever lowers usage, so it needs no guild lock: it locks its own ledger row
(``SELECT … FOR UPDATE``; SQLite's write lock already serializes it). Settlement totals are
cumulative and never go back, so settling twice (a retry, a resumed job) counts once.

"Exempt" roles skip the member limits (per-request size, daily requests and characters,
in flight, cooldown); the server's daily budget and cost cap still apply to them, since those
protect the server's wallet. A blocked member is always refused, exempt or not.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.config import Settings
from bot.formats import plural
from bot.quotas import counters
from bot.quotas.admin import QuotaAdmin
from bot.quotas.errors import (
    GuildPaused,
    QuotaExceeded,
    SettlementError,
    UnknownReservation,
)
from bot.quotas.guild_config import GuildConfig, GuildConfigCache
from bot.quotas.guilds import GuildSettings, guild_lock
from bot.quotas.ledger import (
    MemberUsage,
    Reservation,
    ReservationState,
    Totals,
    UserUsage,
    reservation_from_row,
    top_users,
)
from bot.quotas.policy import PolicySource, ResolvedPolicy
from bot.quotas.window import day_start, format_until, next_reset
from bot.store.database import Database
from bot.store.ids import new_id
from bot.store.jobs import NewJob, insert_job, job_steps, pg_job_args
from bot.store.tables import quota_guild_days
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
class UsageHistory:
    """A server's recent quota days, for the moderators' chart (``requests`` and ``cost`` per
    day include everyone; ``top_members`` are (user id, requests per day), most active first;
    the rest of a day's requests belong to other members or to forgiven usage)."""

    guild_id: int
    days: tuple[date, ...]
    requests: tuple[int, ...]
    cost: tuple[Decimal, ...]
    top_members: tuple[tuple[int, tuple[int, ...]], ...]
    daily_request_budget: int | None
    daily_cost_cap: Decimal | None


@dataclass(frozen=True)
class _Decision:
    """A reservation's checks as the cached configuration sets them (``QuotaService._decide``):
    ``refuse`` when it is refused before any counter (blocked, paused, too long a request)."""

    version: int
    config: GuildConfig | None
    exempt: bool
    refuse: bool
    budget: int | None
    cap: Decimal | None
    limits: counters.MemberLimits


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
    chars_limit_source: PolicySource = PolicySource.BOT


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
        self._configs = GuildConfigCache()
        self._turns: dict[tuple[int, int], _Turn] = {}

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
        member_limits: bool = True,
    ) -> Reservation:
        """Check every limit and record the reservation, atomically; ``QuotaExceeded`` if not.

        ``member_limits=False`` (the operator's CLI) skips the member's own limits (size per
        request, daily requests and characters, in flight, cooldown) but still counts the usage;
        blocks, pauses and the server's budget and cost cap still apply.

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
            now = self._clock.now()
            cached = None
            if guild_id is not None:
                cached = self._configs.peek(guild_id)
                if cached is None:
                    await self._configs.get(conn, guild_id)
                    cached = self._configs.peek(guild_id)
            values = self._ledger_row(cached, guild_id, user_id, requests, characters, job_id, now)
            await self._take(conn, cached, guild_id, user_id, role_ids, now=now, requests=requests,
                             characters=characters, member_limits=member_limits, ledger_row=values)
            if job is not None:
                await insert_job(conn, job, reservation_id=values["id"], now=now)
            return _reservation(values)

        async with self._turn(guild_id, user_id):
            reservation = await self._reserve_in_one_call(
                guild_id, user_id, role_ids, requests=requests, characters=characters, job_id=job_id,
                job=job, member_limits=member_limits,
            )
            if reservation is not None:
                return reservation
            for _attempt in range(_STALE_ATTEMPTS - 1):
                try:
                    return await self._db.write(write)
                except _StaleConfig:
                    continue  # a moderator changed the guild's settings meanwhile: decide again
            return await self._db.write(write, lock=guild_lock(guild_id))  # no change can race this one

    def _ledger_row(
        self, cached: tuple[int, GuildConfig] | None, guild_id: int | None, user_id: int, requests: int,
        characters: int, job_id: str | None, now: datetime,
    ) -> dict[str, Any]:
        """The reservation's ledger row (state ``reserved``, a new id)."""
        config = cached[1] if cached else None
        price = self.price_per_request
        return {
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
            "created_at": now,
            "quota_day": day_start(now, self._reset_hour(config.settings if config else None)),
        }

    async def _reserve_in_one_call(
        self, guild_id: int | None, user_id: int, role_ids: Sequence[int], *, requests: int, characters: int,
        job_id: str | None, job: NewJob | None, member_limits: bool,
    ) -> Reservation | None:
        """The reservation and its job as one transaction in one trip: on SQLite one call of the
        driver's thread (``Database.write_steps``), on PostgreSQL one statement
        (``_reserve_in_one_statement``). The same upserts as ``_take``'s hot path, each going
        on only if it took, the member's also only if the cached configuration is current.
        None when that path cannot decide (no cached configuration, a refusal, a stale cache):
        nothing was written, and ``reserve`` decides on the usual path, which says exactly what
        ran out."""
        cached = None
        if guild_id is not None:
            cached = self._configs.peek(guild_id)
            if cached is None:
                return None
        now = self._clock.now()
        values = self._ledger_row(cached, guild_id, user_id, requests, characters, job_id, now)
        decision = self._decide(cached, user_id, role_ids, now=now, characters=characters,
                                member_limits=member_limits)
        if decision.refuse:
            return None
        if not self._db.is_sqlite:
            return await self._reserve_in_one_statement(guild_id, user_id, values, decision, job, now)
        dialect = self._db.engine.dialect
        plan = counters.reservation_steps(
            dialect, counters.guild_key(guild_id), user_id, values["quota_day"], now=now, requests=requests,
            characters=characters, cost=values["cost"], budget=decision.budget, cap=decision.cap,
            limits=decision.limits, version_of=guild_id, expect_version=decision.version, ledger_row=values,
        )
        if plan.refused is not None:
            return None
        steps = plan.steps
        if job is not None:
            steps += job_steps(dialect, job, reservation_id=values["id"], now=now)
        outcome = counters.ReservationSteps.outcome(await self._db.write_steps(steps))
        if outcome == "taken":
            return _reservation(values)
        if outcome == "stale" and guild_id is not None:
            self._configs.forget(guild_id)
        return None

    async def _reserve_in_one_statement(
        self, guild_id: int | None, user_id: int, values: dict[str, Any], decision: _Decision,
        job: NewJob | None, now: datetime,
    ) -> Reservation | None:
        """PostgreSQL's form of ``_reserve_in_one_call``: one statement, its own transaction."""
        call = counters.pg_reservation_call(
            counters.guild_key(guild_id), user_id, values["quota_day"], now=now, requests=values["requests"],
            characters=values["characters"], cost=values["cost"], budget=decision.budget, cap=decision.cap,
            limits=decision.limits, version_of=guild_id, expect_version=decision.version, ledger_row=values,
            job_args=None if job is None else pg_job_args(job, reservation_id=values["id"], now=now),
        )
        if isinstance(call, counters.Taken):
            return None
        try:
            row = await self._db.write_statement(*call)
        except IntegrityError:
            # The statement is its own transaction: if the connection was cut after the server
            # committed it, the retry meets its own ledger row (a new random id). Then it is
            # written, and saying otherwise would invite the member to pay again.
            if await self._ledger_row_exists(values["id"]):
                return _reservation(values)
            raise
        except DBAPIError as exc:
            if counters.undone_in_one_call(exc):
                # A member limit or a newer configuration (one error for both): the usual path
                # says which, on a fresh copy of the configuration.
                if guild_id is not None:
                    self._configs.forget(guild_id)
                return None
            raise
        return _reservation(values) if row is not None and row[1] else None

    async def _ledger_row_exists(self, reservation_id: str) -> bool:
        async def read(conn: AsyncConnection) -> bool:
            found = await conn.execute(select(ledger.c.id).where(ledger.c.id == reservation_id))
            return found.first() is not None

        return await self._db.run_read(read)

    @asynccontextmanager
    async def _turn(self, guild_id: int | None, user_id: int) -> AsyncIterator[None]:
        """Wait for this process's previous reservation that would hold the same lock.

        SQLite runs one write transaction at a time, and one member's reservations on
        PostgreSQL queue on that member's counter row anyway; queueing them here first keeps
        the waiters off the database (SQLite's busy handler sleeps, PostgreSQL's lock waits
        each hold a pooled connection). Correctness never depends on it: other processes and
        other writers are kept apart by the database as before.
        """
        key = (0, 0) if self._db.is_sqlite else (counters.guild_key(guild_id), user_id)
        entry = self._turns.get(key)
        if entry is None:
            entry = self._turns[key] = _Turn()
        entry.waiting += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.waiting -= 1
            if entry.waiting == 0:
                del self._turns[key]

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
            guild = (await self._configs.get(conn, guild_id)).settings
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
            row = (await conn.execute(_SETTLE_SELECT, {"p_id": reservation_id})).first()
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
            cost = to_money(current.price_per_request * (current.requests - new_refunded))
            settled_at = self._clock.now() if done else None
            await conn.execute(_SETTLE_UPDATE, {
                "p_id": reservation_id, "p_committed": new_committed, "p_refunded": new_refunded,
                "p_cost": cost, "p_state": state.value, "p_settled_at": settled_at,
            })
            key, forgiven = counters.guild_key(current.guild_id), row.forgiven_at is not None
            # A reservation refunded whole no longer starts a cooldown: find the one before.
            again = done and state is ReservationState.REFUNDED and not forgiven
            newest = await counters.newest_counted(conn, key, current.user_id) if again else None
            await counters.settle_counters(
                conn, key, current.user_id, row.quota_day,
                requests=current.refunded_requests - new_refunded,
                characters=-current.characters if state is ReservationState.REFUNDED else 0,
                cost=cost - current.cost, member_day=not forgiven, in_flight_delta=-1 if done else 0,
                set_last=again, last_request_at=newest,
            )
            return dataclasses.replace(
                current, committed_requests=new_committed, refunded_requests=new_refunded, cost=cost,
                state=state, settled_at=settled_at,
            )

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
            config = await self._configs.get(conn, guild_id)
            guild = config.settings
            start = day_start(now, self._reset_hour(guild))
            day = await counters.read_guild_day(conn, guild_id, start)
            leaders = await top_users(conn, guild_id, day_start=start, limit=top) if top else []
        return GuildUsage(
            guild_id=guild_id,
            requests=day.requests,
            characters=day.characters,
            cost=day.cost,
            daily_request_budget=guild.daily_request_budget,
            daily_cost_cap=guild.daily_cost_cap,
            resets_at=start + timedelta(days=1),
            top_users=tuple(leaders),
        )

    async def usage_history(self, guild_id: int, *, days: int = 30, top: int = 5) -> UsageHistory:
        """The server's last ``days`` quota days (oldest first, today last, empty days included),
        requests and cost per day from the counters, the ``top`` members' requests per day."""
        now = self._clock.now()
        async with self._db.read() as conn:
            guild = (await self._configs.get(conn, guild_id)).settings
            today = day_start(now, self._reset_hour(guild))
            first = today - timedelta(days=days - 1, hours=23)  # also keys of another reset hour
            g, led = quota_guild_days.c, ledger.c
            totals = (await conn.execute(
                select(g.day, g.requests, g.cost).where(g.guild_key == guild_id, g.day >= first)
            )).all()
            # Per member and day from the ledger (a moderator's report, bounded to the window).
            members = (await conn.execute(
                select(led.quota_day, led.user_id, func.sum(led.requests - led.refunded_requests))
                .where(led.guild_id == guild_id, led.quota_day >= first, led.state != "refunded")
                .group_by(led.quota_day, led.user_id)
            )).all()
        dates = [(today - timedelta(days=days - 1 - i)).date() for i in range(days)]
        index = {d: i for i, d in enumerate(dates)}
        requests, costs = [0] * days, [Decimal(0)] * days
        for day, count, cost in totals:
            i = index.get(day.date())
            if i is not None:
                requests[i] += count
                costs[i] += cost
        per_member: dict[int, list[int]] = {}
        for day, user_id, count in members:
            i = index.get(counters.as_utc(day).date())
            if i is not None:
                per_member.setdefault(user_id, [0] * days)[i] += count
        leaders = sorted(per_member, key=lambda u: (-sum(per_member[u]), u))[:top]
        return UsageHistory(
            guild_id=guild_id,
            days=tuple(dates),
            requests=tuple(requests),
            cost=tuple(costs),
            top_members=tuple((u, tuple(per_member[u])) for u in leaders),
            daily_request_budget=guild.daily_request_budget,
            daily_cost_cap=guild.daily_cost_cap,
        )

    # ---- the decision ---------------------------------------------------------------------
    def _reset_hour(self, guild: GuildSettings | None) -> int:
        if guild is not None and guild.reset_hour_utc is not None:
            return guild.reset_hour_utc
        return self._settings.quota_reset_hour_utc

    async def _config(self, conn: AsyncConnection, guild_id: int | None) -> GuildConfig | None:
        return None if guild_id is None else await self._configs.get(conn, guild_id)

    def _decide(
        self, cached: tuple[int, GuildConfig] | None, user_id: int, role_ids: Sequence[int], *, now: datetime,
        characters: int, member_limits: bool,
    ) -> _Decision:
        """What a reservation checks, from the cached configuration (``_take`` says how)."""
        version, config = cached if cached is not None else (0, None)
        guild = config.settings if config else None
        policy = config.policy_for(self._defaults, user_id, role_ids) if config else self._defaults
        exempt = not member_limits or (config is not None and config.exempt(role_ids))
        blocked = config is not None and user_id in config.blocked
        wait = policy.cooldown_seconds
        return _Decision(
            version=version, config=config, exempt=exempt,
            refuse=blocked or (guild is not None and guild.paused) or (
                not exempt and characters > policy.max_chars_per_request),
            budget=guild.daily_request_budget if guild else None,
            cap=guild.daily_cost_cap if guild else None,
            limits=_NO_LIMITS if exempt else counters.MemberLimits(
                requests_per_day=policy.requests_per_day, chars_per_day=policy.chars_per_day,
                max_in_flight=policy.max_in_flight,
                cooldown_cutoff=now - timedelta(seconds=wait) if wait else None,
            ),
        )

    async def _take(
        self, conn: AsyncConnection, cached: tuple[int, GuildConfig] | None, guild_id: int | None,
        user_id: int, role_ids: Sequence[int], *, now: datetime, requests: int, characters: int,
        member_limits: bool, ledger_row: dict[str, Any],
    ) -> None:
        """Take from the two counter rows and write the ledger row, or raise the refusal (the
        transaction rolls back).

        The hot path is ``counters.take_all``: one statement on PostgreSQL, three on SQLite
        (where ``_reserve_in_one_call`` usually took the request before this runs); it returns
        the guild's configuration version, and a version other than the cached one raises
        ``_StaleConfig`` (the caller runs the transaction again with the fresh configuration).
        When a counter refuses, its row stays locked, the member's full
        picture is read (``_read_member``) and ``_refusal`` names the limit in its usual order;
        if nothing is actually exceeded (an in-flight counter still holding a reservation whose
        job died), the rest is taken without conditions — exact, because the refused upsert
        holds the row's lock.
        """
        d = self._decide(cached, user_id, role_ids, now=now, characters=characters,
                         member_limits=member_limits)
        version, config, exempt, limits = d.version, d.config, d.exempt, d.limits
        budget, cap = d.budget, d.cap

        async def refuse(taken: set[str]) -> None:
            await self._refuse(conn, guild_id, user_id, role_ids, requests, characters, exempt, config,
                               taken=taken)

        if d.refuse:
            await refuse(set())
        key, day = counters.guild_key(guild_id), ledger_row["quota_day"]
        cost = ledger_row["cost"]
        taken = await counters.take_all(
            conn, key, user_id, day, now=now, requests=requests, characters=characters, cost=cost,
            budget=budget, cap=cap, limits=limits, version_of=guild_id, ledger_row=ledger_row,
        )
        seen = taken.version
        if taken.refused is not None:  # the slow path: say what ran out, or take what is free
            if taken.refused == "guild_day" and not await counters.take_guild_day(
                conn, key, day, requests=requests, characters=characters, cost=cost, budget=budget, cap=cap,
            ):
                await refuse(set())
                await counters.take_guild_day(conn, key, day, requests=requests, characters=characters,
                                              cost=cost, budget=None, cap=None)
            took, seen = await counters.take_member(
                conn, key, user_id, day, now=now, requests=requests, characters=characters, limits=limits,
                version_of=guild_id,
            )
            if not took:
                await refuse({"guild_day"})
                took, seen = await counters.take_member(
                    conn, key, user_id, day, now=now, requests=requests, characters=characters,
                    limits=_NO_LIMITS, version_of=guild_id,
                )
                if not took:  # the row is of a later day: this process's clock lags at the reset
                    raise QuotaExceeded("The quota day is changing over; try again in a moment.",
                                        code="clock")
            await counters.insert_ledger(conn, ledger_row)
        if guild_id is not None and seen != version:
            self._configs.forget(guild_id)
            raise _StaleConfig()

    async def _refuse(
        self, conn: AsyncConnection, guild_id: int | None, user_id: int, role_ids: Sequence[int],
        requests: int, characters: int, exempt: bool, config: GuildConfig | None, *, taken: set[str],
    ) -> None:
        """Raise what ``_refusal`` finds on the member's full picture (return if nothing).

        The configuration is read fresh first; if it moved since the cached copy the whole
        transaction starts over (``_StaleConfig``). ``taken`` names the counters this
        transaction has already added the request to; the picture leaves the request out.
        """
        if guild_id is not None:
            fresh = await self._configs.get(conn, guild_id)
            if fresh is not config:
                raise _StaleConfig()
        member = await self._read_member(conn, guild_id, user_id, role_ids, config=config, exempt=exempt)
        if "guild_day" in taken:
            t = member.guild_totals
            member = dataclasses.replace(member, guild_totals=Totals(
                t.requests - requests, t.characters - characters, t.cost - self.price(requests)))
        refusal = self._refusal(member, requests=requests, characters=characters)
        if refusal is not None:
            raise refusal

    async def _read_member(
        self, conn: AsyncConnection, guild_id: int | None, user_id: int, role_ids: Sequence[int],
        *, config: GuildConfig | None = None, exempt: bool | None = None,
    ) -> _Member:
        now = self._clock.now()
        if config is None:
            config = await self._config(conn, guild_id)
        guild = config.settings if config else None
        start = day_start(now, self._reset_hour(guild))
        policy = config.policy_for(self._defaults, user_id, role_ids) if config else self._defaults
        key = counters.guild_key(guild_id)
        row = await counters.read_member(conn, key, user_id)
        mine = row.on(start)
        in_flight = row.in_flight
        if in_flight >= policy.max_in_flight:
            since = now - self._in_flight_horizon
            in_flight = await counters.exact_in_flight(conn, key, user_id, since=since)
        totals = await counters.read_guild_day(conn, key, start) if guild is not None else counters.DayCount()
        return _Member(
            now=now,
            resets_at=next_reset(now, self._reset_hour(guild)),
            day_start=start,
            guild=guild,
            policy=policy,
            exempt=config.exempt(role_ids) if exempt is None and config else bool(exempt),
            blocked=config is not None and user_id in config.blocked,
            usage=MemberUsage(mine.requests, mine.characters, in_flight, row.last_request_at),
            guild_totals=Totals(totals.requests, totals.characters, totals.cost),
            chars_limit_source=config.source_of("max_chars_per_request", user_id, role_ids)
            if config else PolicySource.BOT,
        )

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
            whose = _CHARS_LIMIT_OWNER[member.chars_limit_source]
            return QuotaExceeded(
                f"This text is {characters:,} characters; {whose} is "
                f"{policy.max_chars_per_request:,} characters per request.",
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


_NO_LIMITS = counters.MemberLimits()
# Settlement's two ledger statements, built once (only their values change).
_SETTLE_SELECT = select(ledger).where(ledger.c.id == bindparam("p_id")).with_for_update()
_SETTLE_UPDATE = update(ledger).where(ledger.c.id == bindparam("p_id")).values(
    committed_requests=bindparam("p_committed"), refunded_requests=bindparam("p_refunded"),
    cost=bindparam("p_cost"), state=bindparam("p_state"), settled_at=bindparam("p_settled_at"),
)


class _Turn:
    """One queue of ``QuotaService._turn``: its lock and how many reservations use it."""

    __slots__ = ("lock", "waiting")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.waiting = 0


class _StaleConfig(Exception):
    """The guild's cached configuration is older than the database's: run the transaction again."""


_STALE_ATTEMPTS = 3

# Who set the per-request character limit that refused a text (said in the refusal).
_CHARS_LIMIT_OWNER = {
    PolicySource.USER: "the limit the moderators set for you on this server",
    PolicySource.ROLE: "the limit the moderators set for your role on this server",
    PolicySource.GUILD: "the limit this server's moderators set",
    PolicySource.BOT: "the limit the bot's operator set",
}


_RESERVATION_FIELDS = frozenset(f.name for f in dataclasses.fields(Reservation)) - {"state", "settled_at"}


def _reservation(values: dict[str, Any]) -> Reservation:
    """The reservation just inserted, without reading it back."""
    return Reservation(**{k: v for k, v in values.items() if k in _RESERVATION_FIELDS},
                       state=ReservationState.RESERVED, settled_at=None)


def _check_amounts(requests: int, characters: int) -> None:
    if requests < 1:
        raise ValueError("a reservation needs at least one request")
    if characters < 0:
        raise ValueError("characters cannot be negative")
