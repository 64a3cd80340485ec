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

from bot.gateway import ChatterboxClient, DurationEstimator, JobStatus, PollPolicy, TTSRequest
from bot.gateway.emulator import EmulatorJob, GatewayEmulator, Outcome
from tests.gateway.client_support import DrivenClock, drive
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
    estimator: DurationEstimator,
) -> ChatterboxClient:
    return ChatterboxClient(session, base_url=emulator.base_url, api_key=SecretStr(emulator.api_key),
                            clock=clock, estimator=estimator, allow_http=True, rng=random.Random(0))


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
        doc = await client.wait(accepted.request_id, text_chars=len(text), max_wait=120)
        assert doc.status is JobStatus.COMPLETED
        return emulator.jobs[accepted.request_id]

    def asleep() -> int:  # the client (polling) and the worker of every unfinished job
        return 1 + sum(not job.terminal for job in emulator.jobs.values())

    return await drive(clock, submit_and_wait(), asleep)


async def test_a_job_of_known_duration_is_seen_soon_with_few_polls(
    session: aiohttp.ClientSession, driven_emulator: GatewayEmulator, driven_clock: DrivenClock
) -> None:
    text = "x" * 250  # the estimator predicts 1.0 + 0.02 * 250 = 6.0 s
    estimator = DurationEstimator(base_seconds=1.0, per_char_seconds=0.02, prior_rel_error=0.05)
    client = make_client(session, driven_emulator, driven_clock, estimator)
    job = await run_job(client, driven_emulator, driven_clock, text, duration=6.0)
    polls, lag = polls_and_lag(job)
    assert polls <= 5
    assert 0 <= lag <= DENSE
    first_poll = job.status_polls[0][0] - job.created_mono
    assert first_poll >= 3.0  # sparse before the estimate: no poll in the first half


async def test_the_estimate_is_learned_across_jobs(
    session: aiohttp.ClientSession, driven_emulator: GatewayEmulator, driven_clock: DrivenClock
) -> None:
    text = "y" * 120  # the prior predicts 3.4 s; the gateway takes 6 s
    estimator = DurationEstimator(base_seconds=1.0, per_char_seconds=0.02)
    client = make_client(session, driven_emulator, driven_clock, estimator)
    results = [
        polls_and_lag(await run_job(client, driven_emulator, driven_clock, text, duration=6.0))
        for _ in range(5)
    ]
    for polls, lag in results:
        assert polls <= 25  # bounded even while the prior is wrong
        assert 0 <= lag <= 1.5
    (first_polls, _), (last_polls, last_lag) = results[0], results[-1]
    assert last_polls < first_polls  # the first job overran the wrong estimate; the last did not
    assert last_polls <= 5
    assert last_lag <= DENSE
    assert abs(estimator.estimate(len(text)) - 6.0) <= 0.15 * 6.0
    assert estimator.samples == 5
