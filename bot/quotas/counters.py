"""Quota counters: the ledger's sums kept as rows, so a reservation costs the same at any size.

Two tables (``bot.store.tables``):

- ``quota_guild_days``: the server's requests, characters and cost per quota day (everything
  counted, forgiven usage too: that money was spent). Kept for every day: the usage chart
  reads its history.
- ``quota_members``: one row per member: the requests and characters of the member's newest
  quota day (``day``; forgiven reservations excluded), the reservations not settled yet (of
  any day) and the start of the newest counted reservation (the cooldown). One row rather than
  one per day keeps a reservation at two upserts; a new day simply starts the row's day over.

Rows are keyed by ``guild_key`` (the guild id; 0 for the CLI) and the quota day that the
ledger row records in ``usage_ledger.quota_day``.

The ledger stays the record of truth. Every change of the ledger changes the counters in the
same transaction: a reservation adds (``take_guild_day`` / ``take_member``: ``INSERT … ON
CONFLICT DO UPDATE … WHERE used + n <= limit RETURNING``, so each limit is enforced by the
row itself, atomically, and a refused upsert keeps the row locked until the transaction ends);
a settlement or a moderator's "reset usage" subtracts (``apply_delta``, ``reset_member_day``).
``verify`` recomputes every counter from the ledger with GROUP BY and lists the differences;
``chatterbox-bot db verify`` and the tests run it. The sums follow ``bot.quotas.ledger``:
requests not refunded, characters unless the whole reservation was refunded, the ``cost``
column.

The member upsert also returns the guild's configuration version (``quota_versions``, a
scalar subquery in RETURNING), so checking the policy cache costs no extra round trip.

A reservation's writes (``take_all``) are built once per shape. On PostgreSQL they are one
statement: three data-modifying CTEs, each running only if the one before it took, so the two
counter rows are locked from that one round trip to COMMIT. On SQLite (no DML in CTEs) they are
three statements in the caller's transaction. ``reservation_steps`` is the fast form of the same
writes for SQLite: the reservation's three statements (and the caller adds the job's rows) as
``bot.store.driver`` steps, run with BEGIN IMMEDIATE … COMMIT in one call of the driver's thread
(``Database.write_steps``), each step going on only if the one before it took, with the column
types' own bind processors, so what is stored is byte for byte what SQLAlchemy would store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, and_, bindparam, case, func, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.driver import Prepared, Step, StepsResult, prepared
from bot.store.jobs import pg_job_ctes
from bot.store.tables import quota_guild_days, quota_members, quota_versions
from bot.store.tables import usage_ledger as ledger
from bot.store.types import Money, UTCDateTime, to_money

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
    day: datetime | None = None
    requests: int = 0
    characters: int = 0
    in_flight: int = 0
    last_request_at: datetime | None = None

    def on(self, day: datetime) -> DayCount:
        """The member's usage on quota day ``day`` (zero when the row is of another day)."""
        return DayCount(self.requests, self.characters) if self.day == day else DayCount()


# ---- taking (reservations) -------------------------------------------------------------------


# The two upserts of a reservation are built once per shape and dialect, with bound
# parameters, so the hot path neither builds SQL expressions nor compiles them again.
_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _guild_day_statement(dialect: str, budget: bool, cap: bool) -> Any:
    key = ("guild_day", dialect, budget, cap)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        t = quota_guild_days.c
        r, c, cost = bindparam("p_r", type_=Integer()), bindparam("p_c", type_=Integer()), bindparam(
            "p_cost", type_=Money())
        condition: ColumnElement[bool] = true()
        if budget:
            condition = and_(condition, t.requests + r <= bindparam("p_budget", type_=Integer()))
        if cap:
            condition = and_(condition, t.cost + cost <= bindparam("p_cap", type_=Money()))
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(quota_guild_days)
        stmt = insert.values(
            guild_key=bindparam("p_key", type_=BigInteger()), day=bindparam("p_day", type_=UTCDateTime()),
            requests=r, characters=c, cost=cost,
        ).on_conflict_do_update(
            index_elements=[t.guild_key, t.day],
            set_={"requests": t.requests + r, "characters": t.characters + c, "cost": t.cost + cost},
            where=condition,
        ).returning(t.requests)
        _STATEMENTS[key] = stmt
    return stmt


async def take_guild_day(
    conn: AsyncConnection, key: int, day: datetime, *, requests: int, characters: int, cost: Decimal,
    budget: int | None, cap: Decimal | None,
) -> bool:
    """Add to the server's day unless that passes ``budget`` requests or ``cap`` dollars."""
    if (budget is not None and requests > budget) or (cap is not None and cost > cap):
        return False
    stmt = _guild_day_statement(conn.dialect.name, budget is not None, cap is not None)
    params: dict[str, Any] = {"p_key": key, "p_day": day, "p_r": requests, "p_c": characters, "p_cost": cost}
    if budget is not None:
        params["p_budget"] = budget
    if cap is not None:
        params["p_cap"] = cap
    return (await conn.execute(stmt, params)).first() is not None


@dataclass(frozen=True)
class MemberLimits:
    """What ``take_member`` checks; None fields are not checked."""

    requests_per_day: int | None = None
    chars_per_day: int | None = None
    max_in_flight: int | None = None
    cooldown_cutoff: datetime | None = None  # the newest counted start must be at or before


def _member_statement(dialect: str, shape: tuple[bool, ...]) -> Any:
    key = ("member", dialect, *shape)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        per_day, per_chars, in_flight, cooldown, with_version = shape
        t = quota_members.c
        r, c = bindparam("p_r", type_=Integer()), bindparam("p_c", type_=Integer())
        day, now = bindparam("p_day", type_=UTCDateTime()), bindparam("p_now", type_=UTCDateTime())
        same_day = t.day == day
        condition: ColumnElement[bool] = t.day <= day
        if per_day:
            most = bindparam("p_max_r", type_=Integer())
            condition = and_(condition, ~same_day | (t.requests + r <= most))
        if per_chars:
            most = bindparam("p_max_c", type_=Integer())
            condition = and_(condition, ~same_day | (t.characters + c <= most))
        if in_flight:
            condition = and_(condition, t.in_flight < bindparam("p_max_in_flight", type_=Integer()))
        if cooldown:
            cutoff = bindparam("p_cutoff", type_=UTCDateTime())
            condition = and_(condition, t.last_request_at.is_(None) | (t.last_request_at <= cutoff))
        later = t.last_request_at.is_(None) | (t.last_request_at < now)
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(quota_members)
        stmt = insert.values(
            guild_key=bindparam("p_key", type_=BigInteger()), user_id=bindparam("p_user", type_=BigInteger()),
            day=day, requests=r, characters=c, in_flight=1, last_request_at=now,
        ).on_conflict_do_update(
            index_elements=[t.guild_key, t.user_id],
            set_={
                "requests": case((same_day, t.requests + r), else_=r),
                "characters": case((same_day, t.characters + c), else_=c),
                "day": day,
                "in_flight": t.in_flight + 1,
                "last_request_at": case((later, now), else_=t.last_request_at),
            },
            where=condition,
        )
        if with_version:
            version = select(quota_versions.c.version).where(
                quota_versions.c.guild_key == bindparam("p_version_of", type_=BigInteger())
            ).scalar_subquery()
            stmt = stmt.returning(t.in_flight, version)
        else:
            stmt = stmt.returning(t.in_flight)
        _STATEMENTS[key] = stmt
    return stmt


async def take_member(
    conn: AsyncConnection, key: int, user_id: int, day: datetime, *, now: datetime, requests: int,
    characters: int, limits: MemberLimits, version_of: int | None = None,
) -> tuple[bool, int | None]:
    """Count one more reservation of ``requests`` and ``characters`` on quota day ``day``,
    started ``now``, unless that breaks ``limits``. Returns (taken, the configuration version
    of guild ``version_of`` read in the same statement; None without it or when refused).

    The row never goes back to an earlier day (a process whose clock lags at the reset):
    such a take is refused like a broken limit."""
    if (limits.requests_per_day is not None and requests > limits.requests_per_day) or (
        limits.chars_per_day is not None and characters > limits.chars_per_day
    ):
        return False, None
    shape = (limits.requests_per_day is not None, limits.chars_per_day is not None,
             limits.max_in_flight is not None, limits.cooldown_cutoff is not None, version_of is not None)
    params: dict[str, Any] = {"p_key": key, "p_user": user_id, "p_day": day, "p_now": now, "p_r": requests,
                              "p_c": characters}
    for name, value in (("p_max_r", limits.requests_per_day), ("p_max_c", limits.chars_per_day),
                        ("p_max_in_flight", limits.max_in_flight), ("p_cutoff", limits.cooldown_cutoff),
                        ("p_version_of", version_of)):
        if value is not None:
            params[name] = value
    row: Any = (await conn.execute(_member_statement(conn.dialect.name, shape), params)).first()
    if row is None:
        return False, None
    return True, (int(row[1] or 0) if version_of is not None else None)


# ---- one reservation in one statement (PostgreSQL) or three driver calls (SQLite) -------------


@dataclass(frozen=True)
class Taken:
    """What ``take_all`` did: ``refused`` names the first counter that refused (``"guild_day"``
    or ``"member"``; nothing after it was written, and the refused row stays locked), else the
    reservation's ledger row is written too. ``version``: the guild's configuration version,
    read in the same statement (None without ``version_of`` or when refused)."""

    refused: str | None
    version: int | None = None


LEDGER_COLUMNS = ["id", "guild_id", "user_id", "requests", "characters", "price_per_request", "cost", "state",
                  "committed_requests", "refunded_requests", "job_id", "created_at", "quota_day"]


def _ledger_values(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in LEDGER_COLUMNS}


async def insert_ledger(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """The reservation's ledger row (the slow path; ``take_all`` writes it on the fast one)."""
    await conn.execute(ledger.insert(), _ledger_values(row))


def _refused_up_front(requests: int, characters: int, cost: Decimal, budget: int | None, cap: Decimal | None,
                      limits: MemberLimits) -> Taken | None:
    if (budget is not None and requests > budget) or (cap is not None and cost > cap):
        return Taken("guild_day")
    if (limits.requests_per_day is not None and requests > limits.requests_per_day) or (
        limits.chars_per_day is not None and characters > limits.chars_per_day
    ):
        return Taken("member")
    return None


def _params(
    key: int, user_id: int, day: datetime, now: datetime, requests: int, characters: int, cost: Decimal,
    budget: int | None, cap: Decimal | None, limits: MemberLimits, version_of: int | None,
) -> dict[str, Any]:
    return {
        "p_key": key, "p_user": user_id, "p_day": day, "p_now": now, "p_r": requests, "p_c": characters,
        "p_cost": cost, "p_budget": budget, "p_cap": cap, "p_max_r": limits.requests_per_day,
        "p_max_c": limits.chars_per_day, "p_max_in_flight": limits.max_in_flight,
        "p_cutoff": limits.cooldown_cutoff, "p_version_of": version_of,
    }


def _shape(limits: MemberLimits, version_of: int | None) -> tuple[bool, ...]:
    return (limits.requests_per_day is not None, limits.chars_per_day is not None,
            limits.max_in_flight is not None, limits.cooldown_cutoff is not None, version_of is not None)


@dataclass(frozen=True)
class ReservationSteps:
    """A reservation's writes as ``bot.store.driver`` steps (SQLite): the server's day, the
    member's row, the ledger row; the caller may add steps (the job's rows) after them.
    ``steps`` is empty when the request is refused before any statement (``refused``)."""

    steps: list[Step]
    refused: Taken | None = None

    @staticmethod
    def outcome(result: StepsResult) -> str:
        """``"taken"`` (committed), ``"guild_day"`` or ``"member"`` (that counter refused) or
        ``"stale"`` (the guild's configuration version is not the expected one); only
        ``"taken"`` wrote anything."""
        if result.refused_at is None:
            return "taken"
        if result.refused_at == 0:
            return "guild_day"
        return "stale" if result.rows[1] else "member"


def reservation_steps(
    dialect: Any, key: int, user_id: int, day: datetime, *, now: datetime, requests: int, characters: int,
    cost: Decimal, budget: int | None, cap: Decimal | None, limits: MemberLimits, version_of: int | None,
    expect_version: int, ledger_row: dict[str, Any],
) -> ReservationSteps:
    """``take_all`` as steps for ``Database.write_steps`` (one call of the driver's thread).

    Each counter's step goes on only if its upsert took; the member's also only if the guild's
    configuration version it returns is ``expect_version`` (with ``version_of``), so a
    reservation decided on a stale cached configuration writes nothing."""
    refused = _refused_up_front(requests, characters, cost, budget, cap, limits)
    if refused is not None:
        return ReservationSteps([], refused)
    shape = _shape(limits, version_of)
    params = _params(key, user_id, day, now, requests, characters, cost, budget, cap, limits, version_of)
    guild = prepared(("guild_day", "sqlite", budget is not None, cap is not None), lambda: Prepared(
        _guild_day_statement("sqlite", budget is not None, cap is not None), dialect))
    member = prepared(("member", "sqlite", *shape),
                      lambda: Prepared(_member_statement("sqlite", shape), dialect))
    entry = prepared(("ledger", "sqlite"), lambda: Prepared(ledger.insert(), dialect, LEDGER_COLUMNS))

    def member_took(rows: list[Any]) -> bool:
        return bool(rows) and (version_of is None or int(rows[0][1] or 0) == expect_version)

    return ReservationSteps([
        Step(guild, params, accept=bool),
        Step(member, params, accept=member_took),
        Step(entry, ledger_row),
    ])


async def take_all(
    conn: AsyncConnection, key: int, user_id: int, day: datetime, *, now: datetime, requests: int,
    characters: int, cost: Decimal, budget: int | None, cap: Decimal | None, limits: MemberLimits,
    version_of: int | None, ledger_row: dict[str, Any],
) -> Taken:
    """A whole reservation's writes: the server's day (``take_guild_day``), the member's row
    (``take_member``) and the ledger row, each only if the one before it took.

    PostgreSQL runs them as one statement (three data-modifying CTEs, each reading the one
    before): one round trip, and the two counter rows are locked only from that statement to
    COMMIT. SQLite runs the same three statements one driver call each. Either way it is the
    caller's transaction: a refusal after the guild's day took is rolled back with it."""
    refused = _refused_up_front(requests, characters, cost, budget, cap, limits)
    if refused is not None:
        return refused
    if conn.dialect.name == "postgresql":
        params = _params(key, user_id, day, now, requests, characters, cost, budget, cap, limits, version_of)
        sql, names = _pg_reservation(budget is not None, cap is not None, _shape(limits, version_of))
        values = {**params, **{f"l_{k}": v for k, v in ledger_row.items()}}
        row: Any = (await conn.exec_driver_sql(sql, tuple(values[n] for n in names))).one()
        if not row[0]:
            return Taken("guild_day")
        if not row[1]:
            return Taken("member")
        return Taken(None, int(row[2] or 0) if version_of is not None else None)
    if not await take_guild_day(conn, key, day, requests=requests, characters=characters, cost=cost,
                                budget=budget, cap=cap):
        return Taken("guild_day")
    took, version = await take_member(conn, key, user_id, day, now=now, requests=requests,
                                      characters=characters, limits=limits, version_of=version_of)
    if not took:
        return Taken("member")
    await insert_ledger(conn, ledger_row)
    return Taken(None, version)


_PG_SQL: dict[tuple[Any, ...], tuple[str, list[str]]] = {}


def _pg_reservation(
    budget: bool, cap: bool, shape: tuple[bool, ...], *, whole: bool = False, with_job: bool = False
) -> tuple[str, list[str]]:
    """The reservation as one PostgreSQL statement (``take_all``), and its parameters' names
    in ``$n`` order. Mirrors ``_guild_day_statement`` and ``_member_statement``.

    ``whole`` makes it a transaction of its own (``pg_reservation_call``): the ledger row is
    written only if the guild's configuration version is the expected one, the job's rows
    follow it (``with_job``), and a reservation that took the server's day but not the
    member's row (or met a newer version) fails the statement, undoing it all."""
    cached = _PG_SQL.get((budget, cap, shape, whole, with_job))
    if cached is not None:
        return cached
    names: list[str] = []

    def p(name: str, cast: str) -> str:
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}::{cast}"

    key, user, day, now = p("p_key", "bigint"), p("p_user", "bigint"), p("p_day", "timestamptz"), p(
        "p_now", "timestamptz")
    r, c, cost = p("p_r", "integer"), p("p_c", "integer"), p("p_cost", "numeric")
    guild_if = ["true"]
    if budget:
        guild_if.append(f"g.requests + {r} <= {p('p_budget', 'integer')}")
    if cap:
        guild_if.append(f"g.cost + {cost} <= {p('p_cap', 'numeric')}")
    per_day, per_chars, in_flight, cooldown, with_version = shape
    member_if = [f"m.day <= {day}"]
    if per_day:
        member_if.append(f"(m.day <> {day} OR m.requests + {r} <= {p('p_max_r', 'integer')})")
    if per_chars:
        member_if.append(f"(m.day <> {day} OR m.characters + {c} <= {p('p_max_c', 'integer')})")
    if in_flight:
        member_if.append(f"m.in_flight < {p('p_max_in_flight', 'integer')}")
    if cooldown:
        cutoff = p("p_cutoff", "timestamptz")
        member_if.append(f"(m.last_request_at IS NULL OR m.last_request_at <= {cutoff})")
    casts = {"id": "varchar", "guild_id": "bigint", "user_id": "bigint", "requests": "integer",
             "characters": "integer", "price_per_request": "numeric", "cost": "numeric", "state": "varchar",
             "committed_requests": "integer", "refunded_requests": "integer", "job_id": "varchar",
             "created_at": "timestamptz", "quota_day": "timestamptz"}
    ledger_values = ", ".join(p(f"l_{name}", casts[name]) for name in LEDGER_COLUMNS)
    version = "NULL"
    if with_version:
        of = p("p_version_of", "bigint")
        version = f"(SELECT v.version FROM quota_versions AS v WHERE v.guild_key = {of})"
    ledger_if = "EXISTS (SELECT FROM m)"
    if whole and with_version:
        ledger_if += f" AND COALESCE({version}, 0) = {p('p_expect_version', 'integer')}"
    sql = f"""WITH g AS (
  INSERT INTO quota_guild_days AS g (guild_key, day, requests, characters, cost)
  VALUES ({key}, {day}, {r}, {c}, {cost})
  ON CONFLICT (guild_key, day) DO UPDATE SET
    requests = g.requests + {r}, characters = g.characters + {c}, cost = g.cost + {cost}
  WHERE {" AND ".join(guild_if)}
  RETURNING 1
), m AS (
  INSERT INTO quota_members AS m (guild_key, user_id, day, requests, characters, in_flight, last_request_at)
  SELECT {key}, {user}, {day}, {r}, {c}, 1, {now} WHERE EXISTS (SELECT FROM g)
  ON CONFLICT (guild_key, user_id) DO UPDATE SET
    requests = CASE WHEN m.day = {day} THEN m.requests + {r} ELSE {r} END,
    characters = CASE WHEN m.day = {day} THEN m.characters + {c} ELSE {c} END,
    day = {day},
    in_flight = m.in_flight + 1,
    last_request_at = CASE WHEN m.last_request_at IS NULL OR m.last_request_at < {now}
                           THEN {now} ELSE m.last_request_at END
  WHERE {" AND ".join(member_if)}
  RETURNING 1
), l AS (
  INSERT INTO usage_ledger ({", ".join(LEDGER_COLUMNS)})
  SELECT {ledger_values} WHERE {ledger_if}
  RETURNING 1
)"""
    if with_job:
        sql += ", " + pg_job_ctes(p, after="l")
    if whole:
        # Plain SQL has no RAISE: a division by zero, evaluated only when the server's day
        # took and the ledger row did not, is the error that rolls the statement back.
        sql += "\nSELECT EXISTS (SELECT FROM g), EXISTS (SELECT FROM l), " \
               "1 / (EXISTS (SELECT FROM l) OR NOT EXISTS (SELECT FROM g))::int"
    else:
        sql += f"\nSELECT EXISTS (SELECT FROM g), EXISTS (SELECT FROM l), {version}"
    _PG_SQL[(budget, cap, shape, whole, with_job)] = sql, names
    return sql, names


# The SQLSTATE of that division: the whole reservation was undone, nothing was written.
_UNDONE_SQLSTATE = "22012"


def undone_in_one_call(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a ``pg_reservation_call`` statement, is its deliberate
    roll-back (a member limit or a newer configuration): nothing was written."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == _UNDONE_SQLSTATE


def pg_reservation_call(
    key: int, user_id: int, day: datetime, *, now: datetime, requests: int, characters: int, cost: Decimal,
    budget: int | None, cap: Decimal | None, limits: MemberLimits, version_of: int | None,
    expect_version: int, ledger_row: dict[str, Any], job_args: dict[str, Any] | None,
) -> tuple[str, tuple[Any, ...]] | Taken:
    """PostgreSQL: the reservation, and with ``job_args`` (``bot.store.jobs.pg_job_args``) its
    job, as one statement that is its own transaction (``Database.write_statement``): one round
    trip. Its row says ``(server's day took, ledger row written)``; a refusal by the member's
    row or a stale configuration raises instead (``undone_in_one_call``). A ``Taken`` when the
    request is refused before any statement."""
    refused = _refused_up_front(requests, characters, cost, budget, cap, limits)
    if refused is not None:
        return refused
    sql, names = _pg_reservation(budget is not None, cap is not None, _shape(limits, version_of), whole=True,
                                 with_job=job_args is not None)
    values = {**_params(key, user_id, day, now, requests, characters, cost, budget, cap, limits, version_of),
              **{f"l_{k}": v for k, v in ledger_row.items()}, "p_expect_version": expect_version,
              **(job_args or {})}
    return sql, tuple(values[n] for n in names)


# ---- reading -----------------------------------------------------------------------------------


async def read_guild_day(conn: AsyncConnection, key: int, day: datetime) -> DayCount:
    t = quota_guild_days.c
    row = (
        await conn.execute(select(t.requests, t.characters, t.cost).where(t.guild_key == key, t.day == day))
    ).first()
    return DayCount() if row is None else DayCount(int(row[0]), int(row[1]), row[2])


async def read_member(conn: AsyncConnection, key: int, user_id: int) -> MemberRow:
    t = quota_members.c
    row = (
        await conn.execute(
            select(t.day, t.requests, t.characters, t.in_flight, t.last_request_at).where(
                t.guild_key == key, t.user_id == user_id
            )
        )
    ).first()
    return MemberRow() if row is None else MemberRow(row[0], int(row[1]), int(row[2]), int(row[3]), row[4])


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


# ---- changing (settlement, forgiveness, a new reset hour) ---------------------------------------


async def apply_delta(
    conn: AsyncConnection, key: int, user_id: int, day: datetime, *, requests: int, characters: int,
    cost: Decimal, member_day: bool,
) -> None:
    """Add (usually negative) amounts to the guild's ``day`` and, with ``member_day``, to the
    member's row when it still counts that day."""
    g = quota_guild_days.c
    await conn.execute(
        update(quota_guild_days)
        .where(g.guild_key == key, g.day == day)
        .values(requests=g.requests + requests, characters=g.characters + characters, cost=g.cost + cost)
    )
    if member_day and (requests or characters):
        m = quota_members.c
        await conn.execute(
            update(quota_members)
            .where(m.guild_key == key, m.user_id == user_id, m.day == day)
            .values(requests=m.requests + requests, characters=m.characters + characters)
        )


async def settle_counters(
    conn: AsyncConnection, key: int, user_id: int, day: datetime, *, requests: int, characters: int,
    cost: Decimal, member_day: bool, in_flight_delta: int, set_last: bool = False,
    last_request_at: datetime | None = None,
) -> None:
    """A settlement's counter changes: ``apply_delta`` and ``set_member`` in at most two
    statements (the server's day only when something of it changed; the member's row once)."""
    if requests or characters or cost:
        await conn.execute(_SETTLE_GUILD, {"p_key": key, "p_day": day, "p_r": requests, "p_c": characters,
                                           "p_cost": cost})
    counts = member_day and bool(requests or characters)
    if not (counts or in_flight_delta or set_last):
        return
    params: dict[str, Any] = {"p_key": key, "p_user": user_id, "p_in_flight": in_flight_delta}
    if counts:
        params.update(p_day=day, p_r=requests, p_c=characters)
    if set_last:
        params["p_last"] = last_request_at
    await conn.execute(_settle_member_statement(counts, set_last), params)


_g = quota_guild_days.c
_SETTLE_GUILD = update(quota_guild_days).where(
    _g.guild_key == bindparam("p_key"), _g.day == bindparam("p_day", type_=UTCDateTime())
).values(
    requests=_g.requests + bindparam("p_r", type_=Integer()),
    characters=_g.characters + bindparam("p_c", type_=Integer()),
    cost=_g.cost + bindparam("p_cost", type_=Money()),
)


def _settle_member_statement(counts: bool, set_last: bool) -> Any:
    key = ("settle_member", counts, set_last)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        m = quota_members.c
        values: dict[str, Any] = {"in_flight": m.in_flight + bindparam("p_in_flight", type_=Integer())}
        if counts:
            same_day = m.day == bindparam("p_day", type_=UTCDateTime())
            values["requests"] = case((same_day, m.requests + bindparam("p_r", type_=Integer())),
                                      else_=m.requests)
            values["characters"] = case((same_day, m.characters + bindparam("p_c", type_=Integer())),
                                        else_=m.characters)
        if set_last:
            values["last_request_at"] = bindparam("p_last", type_=UTCDateTime())
        stmt = _STATEMENTS[key] = update(quota_members).where(
            m.guild_key == bindparam("p_key"), m.user_id == bindparam("p_user")
        ).values(**values)
    return stmt


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


async def reset_member_day(conn: AsyncConnection, key: int, user_id: int, day: datetime) -> None:
    """The member's ``day`` was forgiven: its counts start over, and so does the cooldown."""
    m = quota_members.c
    await conn.execute(
        update(quota_members).where(m.guild_key == key, m.user_id == user_id, m.day == day)
        .values(requests=0, characters=0)
    )
    newest = await newest_counted(conn, key, user_id)
    await set_member(conn, key, user_id, set_last=True, last_request_at=newest)


async def move_guild_day(
    conn: AsyncConnection, key: int, *, old: datetime, new: datetime, requests: int, characters: int,
    cost: Decimal,
) -> None:
    """Move one reservation's counted amounts from the server's quota day ``old`` to ``new``."""
    await apply_delta(conn, key, 0, old, requests=-requests, characters=-characters, cost=-cost,
                      member_day=False)
    await take_guild_day(conn, key, new, requests=requests, characters=characters, cost=cost,
                         budget=None, cap=None)


async def rebuild_member_day(conn: AsyncConnection, key: int, user_id: int) -> None:
    """Recount the member row's day from the ledger (after its reservations changed day)."""
    newest = (
        await conn.execute(
            select(ledger.c.quota_day).where(_mine(key, user_id)).order_by(ledger.c.quota_day.desc()).limit(1)
        )
    ).scalar()
    if newest is None:
        return
    used = (
        await conn.execute(
            select(
                func.coalesce(func.sum(ledger.c.requests - ledger.c.refunded_requests), 0),
                func.coalesce(func.sum(ledger.c.characters), 0),
            ).where(_mine(key, user_id), ledger.c.quota_day == newest, ledger.c.state != "refunded",
                    ledger.c.forgiven_at.is_(None))
        )
    ).one()
    m = quota_members.c
    await conn.execute(
        update(quota_members).where(m.guild_key == key, m.user_id == user_id)
        .values(day=newest, requests=int(used[0]), characters=int(used[1]))
    )


# ---- verifying ---------------------------------------------------------------------------------

_KEY = func.coalesce(ledger.c.guild_id, 0)
_COUNTED = ledger.c.state != "refunded"
_REQ = func.sum(case((_COUNTED, ledger.c.requests - ledger.c.refunded_requests), else_=0))
_CHARS = func.sum(case((_COUNTED, ledger.c.characters), else_=0))
_COST = func.sum(case((_COUNTED, ledger.c.cost), else_=0))

Counters = dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]


async def expected_counters(conn: AsyncConnection) -> Counters:
    """Every counter as the ledger says it should be.

    Rows of user 0 in a server are anonymised money rows (``bot.voices.privacy``: Discord ids
    are never 0, and the CLI's user 0 has no server): they count for the server's days and for
    no member."""
    someone = ~and_(ledger.c.guild_id.is_not(None), ledger.c.user_id == 0)
    guild_days = await conn.execute(
        select(_KEY, ledger.c.quota_day, _REQ, _CHARS, _COST).group_by(_KEY, ledger.c.quota_day)
    )
    members = (await conn.execute(
        select(
            _KEY, ledger.c.user_id, func.max(ledger.c.quota_day),
            func.sum(case((ledger.c.state == "reserved", 1), else_=0)),
            func.max(case((and_(_COUNTED, ledger.c.forgiven_at.is_(None)), ledger.c.created_at))),
        ).where(someone).group_by(_KEY, ledger.c.user_id)
    )).all()
    member_days = {
        (int(r[0]), int(r[1]), _day(r[2])): (int(r[3]), int(r[4]))
        for r in await conn.execute(
            select(_KEY, ledger.c.user_id, ledger.c.quota_day, _REQ, _CHARS)
            .where(ledger.c.forgiven_at.is_(None), someone)
            .group_by(_KEY, ledger.c.user_id, ledger.c.quota_day)
        )
    }
    return {
        "quota_guild_days": {
            (int(r[0]), _day(r[1])): (int(r[2]), int(r[3]), _money(r[4])) for r in guild_days
        },
        "quota_members": {
            (int(r[0]), int(r[1])): (
                _day(r[2]), *member_days.get((int(r[0]), int(r[1]), _day(r[2])), (0, 0)),
                int(r[3]), _day(r[4]),
            )
            for r in members
        },
    }


async def stored_counters(conn: AsyncConnection) -> Counters:
    g = quota_guild_days.c
    return {
        "quota_guild_days": {
            (r.guild_key, r.day): (r.requests, r.characters, r.cost)
            for r in await conn.execute(select(g.guild_key, g.day, g.requests, g.characters, g.cost))
        },
        "quota_members": {
            (r.guild_key, r.user_id): (r.day, r.requests, r.characters, r.in_flight, r.last_request_at)
            for r in await conn.execute(select(quota_members))
        },
    }


def as_utc(value: Any) -> datetime:
    """A grouped timestamp (text on SQLite) as an aware UTC datetime."""
    day = _day(value)
    assert day is not None
    return day


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
    return all(v == 0 for v in values)


async def verify(conn: AsyncConnection) -> list[str]:
    """Every difference between the counters and the ledger's sums (empty: they agree)."""
    expected, stored = await expected_counters(conn), await stored_counters(conn)
    problems: list[str] = []
    for table, want in expected.items():
        have = stored[table]
        for key in sorted(set(want) | set(have), key=repr):
            a, b = want.get(key), have.get(key)
            if a == b:
                continue
            present = a if b is None else b if a is None else None
            if table == "quota_guild_days" and present is not None and _is_zero(present):
                continue  # a day whose every reservation was refunded may or may not have a row
            problems.append(f"{table} {key}: counter {b}, ledger {a}")
    return problems
