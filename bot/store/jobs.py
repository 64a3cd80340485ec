"""Persisted speech jobs: the state machine of DESIGN rule 1, one row per job plus its parts.

A job is written (state ``reserved``) before its first POST, normally in the same transaction
as its quota reservation (``QuotaService.reserve(job=...)``), and moves only forward::

    reserved ──► submitted ──► completed ──► delivering ──► delivered
        │            │    │          └──────────────────────► delivered
        │            │    └──► failed ──────────────────────► delivered
        ├──► failed  └──► cancelled
        └──► cancelled

``delivering`` is claimed right BEFORE the audio is handed to Discord: a job found there may
have been posted, so nothing ever posts it again (it is closed as delivered).

Ownership: an open job carries ``owner`` (the process working on it) and ``lease_until``.
The owner renews its leases while it works (``renew_leases``); ``claim_expired`` hands jobs
whose lease ran out to another process (on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so
concurrent reconcilers never claim one job twice). Writes made on a job's behalf name their
``owner``: a process whose job was taken over finds its compare-and-set lost, never
overwriting the new owner's work. ``deadline`` bounds how long a job may stay open.

Every move is a compare-and-set (``transition``): the UPDATE names the states the caller
expects the job to be in and reports whether it changed a row. Two tasks or two processes
racing to deliver (or resume) the same job cannot both win, so each step happens once.

A job of several chunks has one ``job_parts`` row per chunk, carrying the gateway's
``request_id`` (saved right after the POST is accepted, so a restart can poll it again), its
own status, and the media URL or error. A part moves
``pending → submitting → submitted → completed | failed | error`` (or ``cancelled`` while
pending): ``submitting`` is written and committed BEFORE its POST leaves, so a part found
``pending`` was provably never sent and one found ``submitting`` may have been charged.
A part whose audio was in the audio cache when the job was planned is written ``cached``
(with the job, in its reservation's transaction) and never changes: it is never sent and
never charged, its ``media_url`` names the cache entry (``bot.cache.cache_ref``).

``advance`` is how the pipeline moves a part: the part's compare-and-set and its job's
compare-and-set run in ONE transaction, and either both happen or neither does (a lost race
on either side rolls the other back and returns False). So the database never holds a
submitted part under a ``reserved`` job. Records come out as frozen dataclasses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from sqlalchemy import Row, and_, false, or_, select, update
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.store.database import Database
from bot.store.driver import Prepared, Step, prepared
from bot.store.ids import new_id
from bot.store.tables import audit_log, job_parts, jobs

USER_DISPLAY_MAX = 100


class JobState(StrEnum):
    RESERVED = "reserved"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    FAILED = "failed"
    DELIVERING = "delivering"  # being handed to Discord: may have been posted
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


#: Jobs still being worked on or delivered: a lease covers these.
LIVE_STATES = frozenset({JobState.RESERVED, JobState.SUBMITTED, JobState.COMPLETED, JobState.FAILED,
                         JobState.DELIVERING})


class PartState(StrEnum):
    PENDING = "pending"  # not POSTed yet: provably never sent (refunded if the job stops)
    SUBMITTING = "submitting"  # its POST may be on the wire: maybe charged (committed if it stops)
    SUBMITTED = "submitted"  # the gateway accepted it; request_id is set
    COMPLETED = "completed"  # media_url is set (charged)
    FAILED = "failed"  # the gateway's FAILED (charged)
    ERROR = "error"  # the gateway's ERROR or a refused POST (not charged)
    CANCELLED = "cancelled"
    CACHED = "cached"  # filled from the audio cache: never sent, never charged (media_url: its entry)


ALLOWED_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.RESERVED: frozenset({JobState.SUBMITTED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUBMITTED: frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED}),
    JobState.COMPLETED: frozenset({JobState.DELIVERING, JobState.DELIVERED}),
    JobState.FAILED: frozenset({JobState.DELIVERED}),
    JobState.DELIVERING: frozenset({JobState.DELIVERED, JobState.COMPLETED}),
    JobState.DELIVERED: frozenset(),
    JobState.CANCELLED: frozenset(),
}
_FINISHED = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
# Columns a transition may change besides the status.
TRANSITION_FIELDS = frozenset({"error", "delivery", "channel_id"})


class InvalidTransition(ValueError):
    """A transition the state machine does not have (a bug in the caller, not a race)."""


class _Keep(Enum):
    KEEP = 0


KEEP = _Keep.KEEP


@dataclass(frozen=True)
class AuditNote:
    """A line for the ``audit_log`` (shown by ``/quota history``), written with a move."""

    guild_id: int | None
    action: str
    details: Mapping[str, Any] = field(default_factory=dict)


class _LostRace(Exception):
    """Raised inside a transaction to roll it back: a compare-and-set found nothing."""


@dataclass(frozen=True)
class PartChange:
    """One part's move for ``JobsRepository.advance``: from any of ``expect`` to ``to``."""

    index: int
    to: PartState
    expect: frozenset[PartState]
    request_id: str | _Keep | None = KEEP
    media_url: str | _Keep | None = KEEP
    error: str | _Keep | None = KEEP

    @classmethod
    def of(
        cls,
        index: int,
        expect: PartState | Iterable[PartState],
        to: PartState,
        **fields: str | None,
    ) -> PartChange:
        expected = frozenset({expect}) if isinstance(expect, PartState) else frozenset(expect)
        return cls(index=index, to=to, expect=expected, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NewJob:
    """What the speech pipeline knows about a job before it is written."""

    user_id: int
    user_display: str
    guild_id: int | None
    channel_id: int | None
    text: str
    parts: Sequence[str]
    voice_url: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    delivery: Mapping[str, Any] = field(default_factory=dict)
    webhook_secret: str | None = field(default=None, repr=False)
    id: str = field(default_factory=new_id)
    owner: str | None = None
    lease_until: datetime | None = None
    deadline: datetime | None = None
    #: Parts served from the audio cache: index -> ``bot.cache.cache_ref`` (written ``cached``).
    cached_parts: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("a job needs at least one part")
        if len(self.cached_parts) >= len(self.parts) or any(
            not 0 <= i < len(self.parts) for i in self.cached_parts
        ):
            raise ValueError("a job makes at least one part; cached_parts names some of its parts")


@dataclass(frozen=True)
class PartRecord:
    job_id: str
    index: int
    text: str
    request_id: str | None
    status: PartState
    media_url: str | None
    error: str | None
    updated_at: datetime


@dataclass(frozen=True)
class JobRecord:
    id: str
    user_id: int
    user_display: str
    guild_id: int | None
    channel_id: int | None
    text: str
    voice_url: str | None
    params: dict[str, Any]
    chunk_count: int
    reservation_id: str | None
    status: JobState
    error: str | None
    delivery: dict[str, Any]
    delivered: bool
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    parts: tuple[PartRecord, ...] = ()
    webhook_secret: str | None = field(default=None, repr=False)
    owner: str | None = None
    lease_until: datetime | None = None
    deadline: datetime | None = None


def _job_record(row: Row[Any], parts: Iterable[PartRecord]) -> JobRecord:
    return JobRecord(
        id=row.id,
        user_id=row.user_id,
        user_display=row.user_display,
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        text=row.text,
        voice_url=row.voice_url,
        params=dict(row.params or {}),
        chunk_count=row.chunk_count,
        reservation_id=row.reservation_id,
        status=JobState(row.status),
        error=row.error,
        delivery=dict(row.delivery or {}),
        delivered=bool(row.delivered),
        created_at=row.created_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
        parts=tuple(sorted(parts, key=lambda p: p.index)),
        webhook_secret=row.webhook_secret,
        owner=row.owner,
        lease_until=row.lease_until,
        deadline=row.deadline,
    )


def _part_record(row: Row[Any]) -> PartRecord:
    return PartRecord(
        job_id=row.job_id,
        index=row.idx,
        text=row.text,
        request_id=row.request_id,
        status=PartState(row.status),
        media_url=row.media_url,
        error=row.error,
        updated_at=row.updated_at,
    )


JOB_COLUMNS = ["id", "user_id", "user_display", "guild_id", "channel_id", "text", "voice_url", "params",
               "chunk_count", "reservation_id", "status", "delivery", "delivered", "webhook_secret",
               "created_at", "updated_at", "owner", "lease_until", "deadline"]
PART_COLUMNS = ["job_id", "idx", "text", "status", "media_url", "updated_at"]


def job_rows(
    job: NewJob, *, reservation_id: str | None, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The rows that write ``job`` (state ``reserved``): its ``jobs`` row and its parts."""
    row = {
        "id": job.id,
        "user_id": job.user_id,
        "user_display": job.user_display[:USER_DISPLAY_MAX],
        "guild_id": job.guild_id,
        "channel_id": job.channel_id,
        "text": job.text,
        "voice_url": job.voice_url,
        "params": dict(job.params),
        "chunk_count": len(job.parts),
        "reservation_id": reservation_id,
        "status": JobState.RESERVED.value,
        "delivery": dict(job.delivery),
        "delivered": False,
        "webhook_secret": job.webhook_secret,
        "created_at": now,
        "updated_at": now,
        "owner": job.owner,
        "lease_until": job.lease_until,
        "deadline": job.deadline,
    }
    parts = [
        {
            "job_id": job.id,
            "idx": index,
            "text": text,
            "status": (PartState.CACHED if index in job.cached_parts else PartState.PENDING).value,
            "media_url": job.cached_parts.get(index),
            "updated_at": now,
        }
        for index, text in enumerate(job.parts)
    ]
    return row, parts


async def insert_job(
    conn: AsyncConnection, job: NewJob, *, reservation_id: str | None, now: datetime
) -> None:
    """Write ``job`` (state ``reserved``) and its parts on ``conn``, inside the caller's transaction."""
    row, parts = job_rows(job, reservation_id=reservation_id, now=now)
    await conn.execute(jobs.insert(), row)
    await conn.execute(job_parts.insert(), parts)


def job_steps(dialect: Any, job: NewJob, *, reservation_id: str | None, now: datetime) -> list[Step]:
    """``insert_job`` as ``bot.store.driver`` steps (SQLite), for a transaction of one call."""
    row, parts = job_rows(job, reservation_id=reservation_id, now=now)
    job_insert = prepared(("jobs", "insert"), lambda: Prepared(jobs.insert(), dialect, JOB_COLUMNS))
    part_insert = prepared(("job_parts", "insert"),
                           lambda: Prepared(job_parts.insert(), dialect, PART_COLUMNS))
    return [Step(job_insert, row), *(Step(part_insert, part) for part in parts)]


_PG_DIALECT = postgresql_asyncpg.dialect()


def _pg_type(column: Any) -> str:
    # Without a length: an explicit cast to VARCHAR(n) would cut a longer value silently,
    # where the column itself refuses it.
    return re.sub(r"\(\d+\)", "", str(column.type.compile(dialect=_PG_DIALECT)))


def _pg_processors(table: Any, names: list[str]) -> list[tuple[str, Any]]:
    return [(name, table.c[name].type.dialect_impl(_PG_DIALECT).bind_processor(_PG_DIALECT))
            for name in names]


_PG_JOB_PROCESSORS = _pg_processors(jobs, JOB_COLUMNS)
_PG_PART_PROCESSORS = _pg_processors(job_parts, PART_COLUMNS)


def pg_job_ctes(param: Callable[[str, str], str], *, after: str) -> str:
    """``insert_job`` as two CTEs (``j``, ``jp``) of a PostgreSQL statement, writing the job and
    its parts only if the CTE ``after`` returned a row. ``param(name, sql_type)`` gives a
    value's placeholder; ``pg_job_args`` gives the values by those names (the parts as arrays,
    one element per part, so one statement serves any number of chunks)."""
    values = ", ".join(param(f"j_{name}", _pg_type(jobs.c[name])) for name in JOB_COLUMNS)
    arrays = ", ".join(param(f"jp_{name}", _pg_type(job_parts.c[name]) + "[]") for name in PART_COLUMNS)
    return f"""j AS (
  INSERT INTO jobs ({", ".join(JOB_COLUMNS)})
  SELECT {values} WHERE EXISTS (SELECT FROM {after})
  RETURNING 1
), jp AS (
  INSERT INTO job_parts ({", ".join(PART_COLUMNS)})
  SELECT * FROM unnest({arrays}) WHERE EXISTS (SELECT FROM j)
  RETURNING 1
)"""


def pg_job_args(job: NewJob, *, reservation_id: str | None, now: datetime) -> dict[str, Any]:
    """The values of ``pg_job_ctes``' placeholders for ``job``, through the column types' own
    bind processors (what is stored is what ``insert_job`` stores)."""
    row, parts = job_rows(job, reservation_id=reservation_id, now=now)

    def processed(process: Any, value: Any) -> Any:
        return value if process is None or value is None else process(value)

    args = {f"j_{name}": processed(process, row[name]) for name, process in _PG_JOB_PROCESSORS}
    for name, process in _PG_PART_PROCESSORS:
        args[f"jp_{name}"] = [processed(process, part[name]) for part in parts]
    return args


def _states(states: JobState | Iterable[JobState]) -> frozenset[JobState]:
    return frozenset({states}) if isinstance(states, JobState) else frozenset(states)


class JobsRepository:
    """Reads and compare-and-set writes of ``jobs`` and ``job_parts``."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(self, job: NewJob, *, reservation_id: str | None = None) -> JobRecord:
        """Write a job without a quota reservation (with one: ``QuotaService.reserve(job=...)``)."""

        async def write(conn: AsyncConnection) -> None:
            await insert_job(conn, job, reservation_id=reservation_id, now=self._clock.now())

        await self._db.write(write)
        record = await self.get(job.id)
        assert record is not None
        return record

    async def get(self, job_id: str) -> JobRecord | None:
        found = await self._load(jobs.c.id == job_id)
        return found[0] if found else None

    async def transition(
        self,
        job_id: str,
        from_states: JobState | Iterable[JobState],
        to_state: JobState,
        *,
        owner: str | None = None,
        **fields: Any,
    ) -> bool:
        """Move the job to ``to_state`` if it is in one of ``from_states``; True if it moved.

        With ``owner``, only while that process holds the job (see the module docstring).
        Reaching delivered, cancelled or failed-and-delivered ends the lease.

        ``fields`` may set ``error``, ``delivery`` or ``channel_id`` in the same UPDATE.
        Reaching completed/failed/cancelled stamps ``completed_at``; delivered sets the
        ``delivered`` flag. A move the state machine lacks raises ``InvalidTransition``.
        """
        sources = _states(from_states)
        illegal = sorted(s.value for s in sources if to_state not in ALLOWED_TRANSITIONS[s])
        if illegal or not sources:
            raise InvalidTransition(f"no transition from {illegal or 'nothing'} to {to_state.value}")
        unknown = set(fields) - TRANSITION_FIELDS
        if unknown:
            raise ValueError(f"transition cannot set {sorted(unknown)}")
        now = self._clock.now()
        values: dict[str, Any] = {"status": to_state.value, "updated_at": now, **fields}
        if to_state in _FINISHED:
            values["completed_at"] = now
        if to_state is JobState.DELIVERED:
            values["delivered"] = True
        if to_state in (JobState.DELIVERED, JobState.CANCELLED):
            values["owner"] = None
            values["lease_until"] = None
        statement = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_([s.value for s in sources]))
            .values(**values)
        )
        if owner is not None:
            statement = statement.where(jobs.c.owner == owner)

        async def write(conn: AsyncConnection) -> bool:
            return (await conn.execute(statement)).rowcount == 1

        return await self._db.write(write)

    async def mark_delivered(self, job_id: str, *, owner: str | None = None) -> bool:
        """completed/delivering/failed -> delivered; False if it was delivered (or not finished)."""
        return await self.transition(
            job_id, (JobState.COMPLETED, JobState.DELIVERING, JobState.FAILED), JobState.DELIVERED,
            owner=owner,
        )

    async def update_part(
        self,
        job_id: str,
        index: int,
        *,
        status: PartState | None = None,
        request_id: str | _Keep | None = KEEP,
        media_url: str | _Keep | None = KEEP,
        error: str | _Keep | None = KEEP,
        expect: PartState | Iterable[PartState] | None = None,
    ) -> bool:
        """Change one part; with ``expect``, only if its status is one of those (compare-and-set)."""
        values: dict[str, Any] = {"updated_at": self._clock.now()}
        if status is not None:
            values["status"] = status.value
        for name, value in (("request_id", request_id), ("media_url", media_url), ("error", error)):
            if value is not KEEP:
                values[name] = value
        statement = update(job_parts).where(job_parts.c.job_id == job_id, job_parts.c.idx == index)
        if expect is not None:
            expected = {expect} if isinstance(expect, PartState) else set(expect)
            statement = statement.where(job_parts.c.status.in_([s.value for s in expected]))

        async def write(conn: AsyncConnection) -> bool:
            return (await conn.execute(statement.values(**values))).rowcount == 1

        return await self._db.write(write)

    async def advance(
        self,
        job_id: str,
        *,
        job_from: JobState | Iterable[JobState],
        job_to: JobState | None = None,
        part: PartChange | None = None,
        owner: str | None = None,
        audit: AuditNote | None = None,
        **fields: Any,
    ) -> bool:
        """Move a part and its job together, in one transaction; True if both moved.

        ``audit`` adds a line for moderators (``/quota history``) in the same transaction.

        The job must be in one of ``job_from``; it moves to ``job_to`` (or keeps its state
        when ``job_to`` is None or already its state). ``part`` must be in one of its
        ``expect`` states. If either compare-and-set finds nothing, nothing is written.
        ``fields`` are job columns, as for ``transition``.
        """
        sources = _states(job_from)
        if job_to is not None:
            illegal = sorted(
                s.value for s in sources if s is not job_to and job_to not in ALLOWED_TRANSITIONS[s]
            )
            if illegal:
                raise InvalidTransition(f"no transition from {illegal} to {job_to.value}")
        unknown = set(fields) - TRANSITION_FIELDS
        if unknown:
            raise ValueError(f"advance cannot set {sorted(unknown)}")
        now = self._clock.now()
        job_values: dict[str, Any] = {"updated_at": now, **fields}
        if job_to is not None:
            job_values["status"] = job_to.value
            if job_to in _FINISHED:
                job_values["completed_at"] = now
        job_statement = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_([s.value for s in sources]))
            .values(**job_values)
        )
        if owner is not None:
            job_statement = job_statement.where(jobs.c.owner == owner)
        part_statement = None
        if part is not None:
            part_values: dict[str, Any] = {"updated_at": now, "status": part.to.value}
            for name in ("request_id", "media_url", "error"):
                value = getattr(part, name)
                if value is not KEEP:
                    part_values[name] = value
            part_statement = (
                update(job_parts)
                .where(
                    job_parts.c.job_id == job_id,
                    job_parts.c.idx == part.index,
                    job_parts.c.status.in_([s.value for s in part.expect]),
                )
                .values(**part_values)
            )

        async def write(conn: AsyncConnection) -> bool:
            if (await conn.execute(job_statement)).rowcount != 1:
                raise _LostRace()
            if part_statement is not None and (await conn.execute(part_statement)).rowcount != 1:
                raise _LostRace()  # rolls the job's UPDATE back too
            if audit is not None:
                await conn.execute(audit_log.insert().values(
                    guild_id=audit.guild_id, actor_id=None, action=audit.action,
                    details=dict(audit.details), at=now,
                ))
            return True

        try:
            return await self._db.write(write)
        except _LostRace:
            return False

    # --- leases ------------------------------------------------------------------------

    async def renew_leases(self, owner: str, until: datetime, job_ids: Iterable[str]) -> int:
        """Extend ``owner``'s leases on the live jobs ``job_ids`` to ``until`` (one UPDATE).

        Only the jobs the owner is working on: one it gave up on (the database was away) is
        left to expire, so a reconciler takes it up again."""
        statement = (
            update(jobs)
            .where(jobs.c.owner == owner, jobs.c.id.in_(list(job_ids)),
                   jobs.c.status.in_([s.value for s in LIVE_STATES]))
            .values(lease_until=until)
        )

        async def write(conn: AsyncConnection) -> int:
            return (await conn.execute(statement)).rowcount

        return await self._db.write(write)

    async def release_leases(self, owner: str, job_ids: Iterable[str] | None = None) -> int:
        """Give up ``owner``'s leases (all, or those of ``job_ids``): claimable at once."""
        statement = update(jobs).where(jobs.c.owner == owner).values(owner=None, lease_until=None)
        if job_ids is not None:
            statement = statement.where(jobs.c.id.in_(list(job_ids)))

        async def write(conn: AsyncConnection) -> int:
            return (await conn.execute(statement)).rowcount

        return await self._db.write(write)

    async def claim_expired(
        self,
        owner: str,
        *,
        until: datetime,
        limit: int = 50,
        shard: Any | None = None,
    ) -> list[JobRecord]:
        """Claim up to ``limit`` live, undelivered jobs whose lease expired (or that have none).

        One transaction: the candidates are selected ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
        (SQLite has one writer at a time anyway), then re-checked in the UPDATE itself, so two
        reconcilers never claim the same job. ``shard`` is an extra SQL condition (the
        process's guilds). Oldest first.
        """
        now = self._clock.now()
        expired = or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now)
        condition = and_(
            jobs.c.status.in_([s.value for s in LIVE_STATES]), jobs.c.delivered == false(), expired
        )
        if shard is not None:
            condition = and_(condition, shard)
        candidates = (
            select(jobs.c.id)
            .where(condition)
            .order_by(jobs.c.created_at, jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

        async def write(conn: AsyncConnection) -> list[str]:
            ids = list((await conn.execute(candidates)).scalars())
            if not ids:
                return []
            await conn.execute(
                update(jobs).where(jobs.c.id.in_(ids), condition).values(owner=owner, lease_until=until)
            )
            owned = select(jobs.c.id).where(jobs.c.id.in_(ids), jobs.c.owner == owner)
            return list((await conn.execute(owned)).scalars())

        claimed = await self._db.write(write)
        return await self._load(jobs.c.id.in_(claimed)) if claimed else []

    async def resumable(self) -> list[JobRecord]:
        """Jobs a starting bot must pick up again: submitted (keep waiting) or finished but not
        delivered (deliver). Oldest first."""
        return await self._load(
            or_(
                jobs.c.status == JobState.SUBMITTED.value,
                and_(
                    jobs.c.status.in_([JobState.COMPLETED.value, JobState.FAILED.value]),
                    jobs.c.delivered == false(),
                ),
            )
        )

    async def list_by_status(self, *states: JobState) -> list[JobRecord]:
        """Jobs in any of ``states``, oldest first (e.g. ``RESERVED`` ones left by a crash)."""
        return await self._load(jobs.c.status.in_([s.value for s in states]))

    async def _load(self, condition: Any) -> list[JobRecord]:
        async def read(conn: AsyncConnection) -> tuple[list[Row[Any]], list[Row[Any]]]:
            rows = (
                await conn.execute(select(jobs).where(condition).order_by(jobs.c.created_at, jobs.c.id))
            ).all()
            if not rows:
                return [], []
            found = [row.id for row in rows]
            part_rows = (await conn.execute(select(job_parts).where(job_parts.c.job_id.in_(found)))).all()
            return list(rows), list(part_rows)

        rows, part_rows = await self._db.run_read(read)
        if not rows:
            return []
        ids = [row.id for row in rows]
        parts: dict[str, list[PartRecord]] = {job_id: [] for job_id in ids}
        for part_row in part_rows:
            parts[part_row.job_id].append(_part_record(part_row))
        return [_job_record(row, parts[row.id]) for row in rows]
