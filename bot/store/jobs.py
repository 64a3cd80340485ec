"""Persisted speech jobs: the state machine of DESIGN rule 1, one row per job plus its parts.

A job is written (state ``reserved``) before its first POST, normally in the same transaction
as its quota reservation (``QuotaService.reserve(job=...)``), and moves only forward::

    reserved ──► submitted ──► completed ──► delivered
        │            │    └──► failed ────► delivered
        ├──► failed  └──► cancelled
        └──► cancelled

Every move is a compare-and-set (``transition``): the UPDATE names the states the caller
expects the job to be in and reports whether it changed a row. Two tasks or two processes
racing to deliver (or resume) the same job cannot both win, so each step happens once.

A job of several chunks has one ``job_parts`` row per chunk, carrying the gateway's
``request_id`` (saved right after the POST is accepted, so a restart can poll it again), its
own status, and the media URL or error. A part moves
``pending → submitting → submitted → completed | failed | error`` (or ``cancelled`` while
pending): ``submitting`` is written and committed BEFORE its POST leaves, so a part found
``pending`` was provably never sent and one found ``submitting`` may have been charged.

``advance`` is how the pipeline moves a part: the part's compare-and-set and its job's
compare-and-set run in ONE transaction, and either both happen or neither does (a lost race
on either side rolls the other back and returns False). So the database never holds a
submitted part under a ``reserved`` job. Records come out as frozen dataclasses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from sqlalchemy import Row, and_, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.store.database import Database
from bot.store.ids import new_id
from bot.store.tables import job_parts, jobs

USER_DISPLAY_MAX = 100


class JobState(StrEnum):
    RESERVED = "reserved"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    FAILED = "failed"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class PartState(StrEnum):
    PENDING = "pending"  # not POSTed yet: provably never sent (refunded if the job stops)
    SUBMITTING = "submitting"  # its POST may be on the wire: maybe charged (committed if it stops)
    SUBMITTED = "submitted"  # the gateway accepted it; request_id is set
    COMPLETED = "completed"  # media_url is set (charged)
    FAILED = "failed"  # the gateway's FAILED (charged)
    ERROR = "error"  # the gateway's ERROR or a refused POST (not charged)
    CANCELLED = "cancelled"


ALLOWED_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.RESERVED: frozenset({JobState.SUBMITTED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUBMITTED: frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED}),
    JobState.COMPLETED: frozenset({JobState.DELIVERED}),
    JobState.FAILED: frozenset({JobState.DELIVERED}),
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

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("a job needs at least one part")


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


async def insert_job(
    conn: AsyncConnection, job: NewJob, *, reservation_id: str | None, now: datetime
) -> None:
    """Write ``job`` (state ``reserved``) and its parts on ``conn``, inside the caller's transaction."""
    await conn.execute(
        jobs.insert().values(
            id=job.id,
            user_id=job.user_id,
            user_display=job.user_display[:USER_DISPLAY_MAX],
            guild_id=job.guild_id,
            channel_id=job.channel_id,
            text=job.text,
            voice_url=job.voice_url,
            params=dict(job.params),
            chunk_count=len(job.parts),
            reservation_id=reservation_id,
            status=JobState.RESERVED.value,
            delivery=dict(job.delivery),
            delivered=False,
            webhook_secret=job.webhook_secret,
            created_at=now,
            updated_at=now,
        )
    )
    await conn.execute(
        job_parts.insert(),
        [
            {
                "job_id": job.id,
                "idx": index,
                "text": text,
                "status": PartState.PENDING.value,
                "updated_at": now,
            }
            for index, text in enumerate(job.parts)
        ],
    )


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
        **fields: Any,
    ) -> bool:
        """Move the job to ``to_state`` if it is in one of ``from_states``; True if it moved.

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
        statement = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_([s.value for s in sources]))
            .values(**values)
        )

        async def write(conn: AsyncConnection) -> bool:
            return (await conn.execute(statement)).rowcount == 1

        return await self._db.write(write)

    async def mark_delivered(self, job_id: str) -> bool:
        """completed/failed -> delivered; False if it was delivered (or not finished) already."""
        return await self.transition(job_id, (JobState.COMPLETED, JobState.FAILED), JobState.DELIVERED)

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
        **fields: Any,
    ) -> bool:
        """Move a part and its job together, in one transaction; True if both moved.

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
            return True

        try:
            return await self._db.write(write)
        except _LostRace:
            return False

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
        async with self._db.read() as conn:
            rows = (
                await conn.execute(select(jobs).where(condition).order_by(jobs.c.created_at, jobs.c.id))
            ).all()
            if not rows:
                return []
            ids = [row.id for row in rows]
            part_rows = (await conn.execute(select(job_parts).where(job_parts.c.job_id.in_(ids)))).all()
        parts: dict[str, list[PartRecord]] = {job_id: [] for job_id in ids}
        for part_row in part_rows:
            parts[part_row.job_id].append(_part_record(part_row))
        return [_job_record(row, parts[row.id]) for row in rows]
