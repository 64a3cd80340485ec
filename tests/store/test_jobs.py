"""The jobs repository: records out, compare-and-set transitions, parts, resume lists."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest

from bot.clock import ManualClock
from bot.store import (
    Database,
    InvalidTransition,
    JobRecord,
    JobsRepository,
    JobState,
    NewJob,
    PartChange,
    PartState,
)


def new_job(**overrides: object) -> NewJob:
    values: dict[str, object] = {
        "user_id": 1001,
        "user_display": "Ann",
        "guild_id": 2002,
        "channel_id": 3003,
        "text": "First sentence. Second one.",
        "parts": ["First sentence.", "Second one."],
        "voice_url": "https://example.com/voice.wav",
        "params": {"exaggeration": 0.5, "temperature": 0.8, "cfg": 0.5},
        "delivery": {"kind": "file", "channel_id": 3003, "application_id": 99},
        "webhook_secret": "s3cret-token",
    }
    values.update(overrides)
    return NewJob(**values)  # type: ignore[arg-type]


@pytest.fixture
def jobs(db: Database, clock: ManualClock) -> JobsRepository:
    return JobsRepository(db, clock)


async def test_create_and_read_back_a_typed_record(jobs: JobsRepository, clock: ManualClock) -> None:
    created = await jobs.create(new_job())
    assert isinstance(created, JobRecord)
    assert created.status is JobState.RESERVED and created.delivered is False
    assert created.chunk_count == 2
    assert [(p.index, p.text, p.status) for p in created.parts] == [
        (0, "First sentence.", PartState.PENDING),
        (1, "Second one.", PartState.PENDING),
    ]
    assert created.params["temperature"] == 0.8
    assert created.delivery == {"kind": "file", "channel_id": 3003, "application_id": 99}
    assert created.created_at == clock.now() and created.created_at.tzinfo is UTC
    assert created.webhook_secret == "s3cret-token"
    assert "s3cret-token" not in repr(created) and "s3cret-token" not in repr(new_job())
    assert await jobs.get("0" * 32) is None


async def test_transitions_are_compare_and_set(jobs: JobsRepository, clock: ManualClock) -> None:
    job = await jobs.create(new_job())
    assert await jobs.transition(job.id, JobState.RESERVED, JobState.SUBMITTED)
    assert not await jobs.transition(job.id, JobState.RESERVED, JobState.SUBMITTED)  # already moved
    clock.advance(5)
    assert await jobs.transition(job.id, [JobState.SUBMITTED], JobState.COMPLETED)
    done = await jobs.get(job.id)
    assert done is not None and done.status is JobState.COMPLETED
    assert done.completed_at == clock.now() and done.updated_at == clock.now()

    results = await asyncio.gather(*(jobs.mark_delivered(job.id) for _ in range(10)))
    assert results.count(True) == 1
    delivered = await jobs.get(job.id)
    assert delivered is not None and delivered.status is JobState.DELIVERED and delivered.delivered


async def test_transition_can_record_an_error_and_refuses_unknown_moves(jobs: JobsRepository) -> None:
    job = await jobs.create(new_job())
    with pytest.raises(InvalidTransition):
        await jobs.transition(job.id, JobState.RESERVED, JobState.DELIVERED)
    with pytest.raises(InvalidTransition):
        await jobs.transition(job.id, JobState.CANCELLED, JobState.SUBMITTED)
    with pytest.raises(ValueError, match="cannot set"):
        await jobs.transition(job.id, JobState.RESERVED, JobState.FAILED, status="x")
    assert await jobs.transition(job.id, JobState.RESERVED, JobState.FAILED, error="Bad request")
    failed = await jobs.get(job.id)
    assert failed is not None and failed.error == "Bad request" and failed.completed_at is not None


async def test_parts_record_request_ids_media_and_errors(jobs: JobsRepository) -> None:
    job = await jobs.create(new_job())
    assert await jobs.update_part(job.id, 0, status=PartState.SUBMITTED, request_id="req-0",
                                  expect=PartState.PENDING)
    assert not await jobs.update_part(job.id, 0, status=PartState.SUBMITTED, request_id="other",
                                      expect=PartState.PENDING)
    assert await jobs.update_part(job.id, 0, status=PartState.COMPLETED, media_url="https://cdn/x.wav")
    assert await jobs.update_part(job.id, 1, status=PartState.ERROR, error="system error")
    assert not await jobs.update_part(job.id, 7, status=PartState.ERROR)
    record = await jobs.get(job.id)
    assert record is not None
    first, second = record.parts
    assert (first.request_id, first.status, first.media_url) == ("req-0", PartState.COMPLETED, "https://cdn/x.wav")
    assert (second.request_id, second.status, second.error) == (None, PartState.ERROR, "system error")
    assert await jobs.update_part(job.id, 1, error=None)
    cleared = await jobs.get(job.id)
    assert cleared is not None
    assert cleared.parts[1].error is None and cleared.parts[1].status is PartState.ERROR


async def test_resumable_lists_unfinished_and_undelivered_jobs(
    jobs: JobsRepository, clock: ManualClock
) -> None:
    async def job_in(*path: JobState) -> str:
        job = await jobs.create(new_job())
        clock.advance(1)
        state = JobState.RESERVED
        for target in path:
            assert await jobs.transition(job.id, state, target)
            state = target
        return job.id

    reserved = await job_in()
    submitted = await job_in(JobState.SUBMITTED)
    completed = await job_in(JobState.SUBMITTED, JobState.COMPLETED)
    failed = await job_in(JobState.SUBMITTED, JobState.FAILED)
    await job_in(JobState.SUBMITTED, JobState.COMPLETED, JobState.DELIVERED)
    await job_in(JobState.CANCELLED)

    resumable = await jobs.resumable()
    assert [j.id for j in resumable] == [submitted, completed, failed]  # oldest first
    assert all(len(j.parts) == 2 for j in resumable)
    assert [j.id for j in await jobs.list_by_status(JobState.RESERVED)] == [reserved]


async def test_new_job_needs_a_part() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        new_job(parts=[])


async def test_advance_moves_a_part_and_its_job_together_or_not_at_all(jobs: JobsRepository) -> None:
    job = await jobs.create(new_job())
    open_states = (JobState.RESERVED, JobState.SUBMITTED)
    assert await jobs.advance(job.id, job_from=open_states,
                              part=PartChange.of(0, PartState.PENDING, PartState.SUBMITTING))
    # The part is not pending any more: the job's move is rolled back with the part's.
    assert not await jobs.advance(job.id, job_from=open_states, job_to=JobState.SUBMITTED,
                                  part=PartChange.of(0, PartState.PENDING, PartState.SUBMITTED))
    record = await jobs.get(job.id)
    assert record is not None and record.status is JobState.RESERVED
    assert record.parts[0].status is PartState.SUBMITTING
    # Both sides match: part submitted AND job submitted, in one transaction.
    assert await jobs.advance(job.id, job_from=open_states, job_to=JobState.SUBMITTED,
                              part=PartChange.of(0, PartState.SUBMITTING, PartState.SUBMITTED,
                                                 request_id="req-0"))
    record = await jobs.get(job.id)
    assert record is not None and record.status is JobState.SUBMITTED
    assert (record.parts[0].status, record.parts[0].request_id) == (PartState.SUBMITTED, "req-0")
    # The job is no longer open: a part move fails and the part is untouched.
    assert await jobs.transition(job.id, JobState.SUBMITTED, JobState.CANCELLED)
    assert not await jobs.advance(job.id, job_from=open_states,
                                  part=PartChange.of(1, PartState.PENDING, PartState.SUBMITTING))
    record = await jobs.get(job.id)
    assert record is not None and record.parts[1].status is PartState.PENDING
    with pytest.raises(InvalidTransition):
        await jobs.advance(job.id, job_from=JobState.RESERVED, job_to=JobState.DELIVERED)
