"""wait() against the emulator: few status calls, completion seen soon after it happened.

The emulator and the client share one ``DrivenClock`` (a manual clock that jumps to the next
deadline once the client and every unfinished job are asleep on it), so loopback latency takes
no clock time and every number asserted is exact: ``status_polls`` (clock time and status of
each status GET, recorded by the emulator) and ``completed_mono`` (when the job completed).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from bot.gateway import ChatterboxClient, JobStatus, ObservedDurations, PollPolicy, TTSRequest
from bot.gateway.emulator import EmulatorJob, GatewayEmulator, Outcome
from bot.gateway.ratelimit import RateGuard
from tests.gateway.client_support import DrivenClock, RecordingLimiter, drive
from tests.gateway.conftest import emulator_config

DENSE = PollPolicy().dense


@pytest.fixture
def driven_clock() -> DrivenClock:
    return DrivenClock()


@pytest.fixture
async def driven_emulator(driven_clock: DrivenClock) -> AsyncIterator[GatewayEmulator]:
    async with GatewayEmulator(emulator_config(driven_clock)) as emu:  # type: ignore[arg-type]
        yield emu


def make_client(
    session: aiohttp.ClientSession,
    emulator: GatewayEmulator,
    clock: DrivenClock,
    durations: ObservedDurations,
    **options: object,
) -> ChatterboxClient:
    return ChatterboxClient(session, base_url=emulator.base_url, api_key=SecretStr(emulator.api_key),  # type: ignore[arg-type]
                            clock=clock, durations=durations, allow_http=True, rng=random.Random(0),
                            **options)


def polls_and_lag(job: EmulatorJob) -> tuple[int, float]:
    """(status calls, seconds from completion to the first COMPLETED answer)."""
    assert job.completed_mono is not None
    completed_polls = [mono for mono, status in job.status_polls if status == "COMPLETED"]
    assert len(completed_polls) == 1  # the client stops polling at the first COMPLETED
    assert job.status_polls[-1][1] == "COMPLETED"
    return len(job.status_polls), completed_polls[0] - job.completed_mono


async def run_job(
    client: ChatterboxClient, emulator: GatewayEmulator, clock: DrivenClock, text: str, duration: float
) -> EmulatorJob:
    async def submit_and_wait() -> EmulatorJob:
        emulator.script_submit(Outcome("complete", duration=duration))
        accepted = await client.submit(TTSRequest(text=text))
        doc = await client.wait(accepted.request_id, max_wait=120)
        assert doc.status is JobStatus.COMPLETED
        return emulator.jobs[accepted.request_id]

    def asleep() -> int:  # the client (polling) and the worker of every unfinished job
        return 1 + sum(not job.terminal for job in emulator.jobs.values())

    return await drive(clock, submit_and_wait(), asleep)


async def test_a_fresh_bot_sees_a_one_second_job_within_a_dense_interval(
    session: aiohttp.ClientSession, driven_emulator: GatewayEmulator, driven_clock: DrivenClock
) -> None:
    client = make_client(session, driven_emulator, driven_clock, ObservedDurations())
    job = await run_job(client, driven_emulator, driven_clock, "Hi there.", duration=1.0)
    polls, lag = polls_and_lag(job)
    first_poll = job.status_polls[0][0] - job.created_mono
    # One dense interval past the prior's earliest durations (1 s), not a guess from the text;
    # the prior's 1st percentile sits a few hundredths past 1 s.
    assert first_poll <= 1.0 + DENSE + 0.05
    assert lag <= DENSE + 0.05 and polls <= 2


async def test_the_plan_learns_the_providers_durations_whatever_the_text(
    session: aiohttp.ClientSession, driven_emulator: GatewayEmulator, driven_clock: DrivenClock
) -> None:
    durations = ObservedDurations()
    client = make_client(session, driven_emulator, driven_clock, durations)
    results = [
        polls_and_lag(await run_job(client, driven_emulator, driven_clock, text, duration=12.0))
        for text in ["short", "a much longer text " * 10] * 8
    ]
    # The fresh prior's lag budget (its sparsest stretch) happens to sit on 12 s; from the
    # second job on the plan is the learned one.
    assert results[0][1] <= 2 * DENSE
    for _, lag in results[1:]:
        assert 0 <= lag <= DENSE
    (first_polls, _), (last_polls, _) = results[0], results[-1]
    assert last_polls < first_polls
    assert last_polls <= 3  # no poll spent before the durations seen
    assert durations.samples == 16
    assert durations.quantile(0.5) == pytest.approx(12.0, rel=0.2)


async def test_status_reads_never_wait_behind_submissions(
    session: aiohttp.ClientSession, driven_emulator: GatewayEmulator, driven_clock: DrivenClock
) -> None:
    submits = RateGuard(1.0, 1, driven_clock)  # type: ignore[arg-type]
    reads = RateGuard(20.0, 20, driven_clock)  # type: ignore[arg-type]
    client = make_client(session, driven_emulator, driven_clock, ObservedDurations(),
                         limiter=submits, status_limiter=reads)
    driven_emulator.script_submit(Outcome("complete", duration=2.0))
    accepted = await client.submit(TTSRequest(text="first"), key="a")
    submits.hold(1000.0)  # e.g. a 429 on submissions: members wait a long time
    job = driven_emulator.jobs[accepted.request_id]

    async def waiting() -> float:
        await client.wait(accepted.request_id, max_wait=60)
        return driven_clock.monotonic()

    waiter_done = await drive(driven_clock, waiting(), lambda: 1 + (not job.terminal))
    assert waiter_done < 10.0  # the job was followed while every submission was held
    assert submits.held_until is not None and submits.held_until > waiter_done


async def test_a_429_on_status_reads_holds_the_reads_not_the_submissions(
    session: aiohttp.ClientSession, driven_emulator: GatewayEmulator, driven_clock: DrivenClock
) -> None:
    submits, reads = RecordingLimiter(), RecordingLimiter()
    client = make_client(session, driven_emulator, driven_clock, ObservedDurations(),
                         limiter=submits, status_limiter=reads)
    driven_emulator.script_submit(Outcome("complete", duration=0.5))
    accepted = await client.submit(TTSRequest(text="hello"))
    driven_emulator.script_status(Outcome("http_429", retry_after=4.0))

    async def waiting() -> float:
        before = driven_clock.monotonic()
        await client.status(accepted.request_id)
        return driven_clock.monotonic() - before

    took = await drive(driven_clock, waiting(), lambda: 1)
    assert took >= 4.0  # Retry-After respected
    assert reads.holds == [4.0] and len(reads.acquired) == 2  # the read budget, twice
    assert submits.holds == [] and len(submits.acquired) == 1  # only the submit itself


async def test_a_held_slot_spends_no_second_token(
    session: aiohttp.ClientSession, driven_emulator: GatewayEmulator, driven_clock: DrivenClock
) -> None:
    submits = RecordingLimiter()
    client = make_client(session, driven_emulator, driven_clock, ObservedDurations(), limiter=submits)
    await client.submit(TTSRequest(text="one"), key="member", slot_held=True)
    assert submits.acquired == []
    await client.submit(TTSRequest(text="two"), key="member")
    assert submits.acquired == ["member"]


async def test_a_resumed_job_continues_its_plan_from_the_real_submit(
    session: aiohttp.ClientSession, driven_emulator: GatewayEmulator, driven_clock: DrivenClock
) -> None:
    durations = ObservedDurations()
    for _ in range(50):
        durations.record(20.0)
    before_restart = make_client(session, driven_emulator, driven_clock, durations)
    driven_emulator.script_submit(Outcome("complete", duration=20.0))
    accepted = await before_restart.submit(TTSRequest(text="resume me"))
    job = driven_emulator.jobs[accepted.request_id]

    async def restart_at(seconds: float) -> None:
        await driven_clock.sleep(seconds)

    await drive(driven_clock, restart_at(15.0), lambda: 2)  # the bot was down for 15 s
    after_restart = make_client(session, driven_emulator, driven_clock, durations)

    async def waiting() -> None:
        await after_restart.wait(accepted.request_id, max_wait=120)

    await drive(driven_clock, waiting(), lambda: 1 + (not job.terminal))
    first = job.status_polls[0][0] - job.created_mono
    second = job.status_polls[1][0] - job.created_mono
    assert first == pytest.approx(15.0)  # polled at once: it may have finished meanwhile
    assert second < 20.0  # then its plan from the real submit: waiting for ~20 s, not 20 s more
    polls, lag = polls_and_lag(job)
    assert lag <= DENSE and polls <= 4
