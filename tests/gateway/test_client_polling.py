"""wait() against the emulator: few status calls, completion seen soon after it happened.

Both sides share one ScaledClock (10x), and every number asserted comes from the emulator's
own records: ``status_polls`` (clock.monotonic() and status of each status GET) and
``completed_mono`` (when the job completed). Bounds are generous on purpose: a poll's answer
includes loopback latency, which the scaled clock multiplies.
"""

from __future__ import annotations

from bot.gateway import ChatterboxClient, DurationEstimator, JobStatus, TTSRequest
from bot.gateway.emulator import EmulatorJob, GatewayEmulator, Outcome
from tests.gateway.conftest import ClientFactory


def polls_and_lag(job: EmulatorJob) -> tuple[int, float]:
    """(status calls, seconds from completion to the first COMPLETED answer)."""
    assert job.completed_mono is not None
    completed_polls = [mono for mono, status in job.status_polls if status == "COMPLETED"]
    assert len(completed_polls) == 1  # the client stops polling at the first COMPLETED
    assert job.status_polls[-1][1] == "COMPLETED"
    return len(job.status_polls), completed_polls[0] - job.completed_mono


async def run_job(
    client: ChatterboxClient, emulator: GatewayEmulator, text: str, duration: float
) -> EmulatorJob:
    emulator.script_submit(Outcome("complete", duration=duration))
    accepted = await client.submit(TTSRequest(text=text))
    doc = await client.wait(accepted.request_id, text_chars=len(text), max_wait=120)
    assert doc.status is JobStatus.COMPLETED
    return emulator.jobs[accepted.request_id]


async def test_a_job_of_known_duration_is_seen_soon_with_few_polls(
    make_client: ClientFactory, emulator: GatewayEmulator
) -> None:
    text = "x" * 250  # the estimator predicts 1.0 + 0.02 * 250 = 6.0 s
    client = make_client(estimator=DurationEstimator(base_seconds=1.0, per_char_seconds=0.02,
                                                     prior_rel_error=0.05))
    job = await run_job(client, emulator, text, duration=6.0)
    polls, lag = polls_and_lag(job)
    assert polls <= 6
    assert 0 <= lag <= 0.75  # dense is 0.25; the rest is slack for loopback latency x10
    first_poll = job.status_polls[0][0] - job.created_mono
    assert first_poll >= 3.0  # sparse before the estimate: no poll in the first half


async def test_the_estimate_is_learned_across_jobs(
    make_client: ClientFactory, emulator: GatewayEmulator
) -> None:
    text = "y" * 120  # the prior predicts 3.4 s; the gateway takes 6 s
    estimator = DurationEstimator(base_seconds=1.0, per_char_seconds=0.02)
    client = make_client(estimator=estimator)
    results = [polls_and_lag(await run_job(client, emulator, text, duration=6.0)) for _ in range(5)]
    for polls, lag in results:
        assert polls <= 25  # bounded even while the prior is wrong
        assert 0 <= lag <= 1.5
    (first_polls, _), (last_polls, last_lag) = results[0], results[-1]
    assert last_polls < first_polls  # the first job overran the wrong estimate; the last did not
    assert last_polls <= 6
    assert last_lag <= 0.75
    assert abs(estimator.estimate(len(text)) - 6.0) <= 0.15 * 6.0
    assert estimator.samples == 5
