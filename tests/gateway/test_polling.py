"""The adaptive poll schedule and the duration estimator, tested as pure functions.

"Lag" is the time from a job's completion to the first poll at or after it; "polls" counts
status calls up to and including that poll. Completions are simulated around the estimate.
"""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from bot.gateway import DurationEstimator, PollPolicy, PollSchedule

POLICY = PollPolicy()


def polls_and_lag(schedule: PollSchedule, completion: float, rng: random.Random) -> tuple[int, float]:
    times = schedule.poll_times(completion + 120, rng)
    index, first = next((i, t) for i, t in enumerate(times) if t >= completion)
    return index + 1, first - completion


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_schedule_is_deterministic_given_a_seeded_random() -> None:
    schedule = POLICY.schedule(12.0, 0.1)
    assert schedule.poll_times(40, random.Random(5)) == schedule.poll_times(40, random.Random(5))
    assert schedule.poll_times(40, random.Random(5)) != schedule.poll_times(40, random.Random(6))


@pytest.mark.parametrize("estimate", [0.5, 2.0, 5.0, 12.0, 30.0, 95.0])
def test_every_delay_respects_floor_and_ceiling(estimate: float) -> None:
    schedule = POLICY.schedule(estimate, 0.2)
    rng = random.Random(1)
    elapsed = 0.0
    while elapsed < estimate + 300:
        delay = schedule.next_delay(elapsed, rng)
        assert POLICY.floor <= delay <= POLICY.ceiling
        elapsed += delay


@pytest.mark.parametrize("estimate", [5.0, 10.0, 20.0, 30.0, 60.0])
def test_sparse_before_the_window_and_landing_just_before_it(estimate: float) -> None:
    schedule = POLICY.schedule(estimate, 0.05)
    start, _ = schedule.window
    times = schedule.poll_times(start, random.Random(2))
    assert len(times) <= -(-start // POLICY.ceiling)  # ceil(start / ceiling): as few as the ceiling allows
    assert start - POLICY.dense / 2 <= times[-1] <= start


def test_dense_inside_the_window() -> None:
    schedule = POLICY.schedule(10.0, 0.1)
    start, end = schedule.window
    rng = random.Random(3)
    times = [t for t in schedule.poll_times(end, rng) if t >= start - POLICY.dense]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 4
    assert all(POLICY.dense * (1 - POLICY.jitter) <= g <= POLICY.dense for g in gaps)


def test_overrun_backs_off_gradually_to_the_ceiling() -> None:
    schedule = POLICY.schedule(10.0, 0.05)
    _, end = schedule.window
    no_jitter = PollPolicy(jitter=0.0).schedule(10.0, 0.05)
    rng = random.Random(4)
    delays = []
    elapsed = end
    while elapsed < end + 200:
        delay = no_jitter.next_delay(elapsed, rng)
        delays.append(delay)
        elapsed += delay
    assert delays == sorted(delays)  # never denser again while the job is late
    assert delays[0] < 0.5 and delays[1] < 0.5  # gradual, not a jump
    assert delays[-1] == POLICY.ceiling
    # the lag stays a bounded fraction of how late the job is
    for overrun in (2.0, 5.0, 20.0):
        _, lag = polls_and_lag(schedule, end + overrun, random.Random(9))
        assert lag <= POLICY.dense + POLICY.overrun_growth * (overrun + lag) + 1e-9


def test_typical_jobs_seen_within_a_quarter_second_with_about_five_polls() -> None:
    """Jobs of 5-30 s, completing around a learned estimate (2% spread)."""
    rng = random.Random(11)
    polls: list[int] = []
    lags: list[float] = []
    for estimate in (5.0, 10.0, 15.0, 20.0, 30.0):
        schedule = POLICY.schedule(estimate, rel_error=0.016)
        for _ in range(300):
            count, lag = polls_and_lag(schedule, estimate * (1 + rng.gauss(0, 0.02)), rng)
            polls.append(count)
            lags.append(lag)
    assert statistics.median(polls) <= 5
    assert statistics.mean(polls) <= 5.5
    assert quantile(lags, 0.9) <= 0.25
    assert statistics.mean(lags) <= 0.15


@pytest.mark.parametrize("estimate", [5.0, 10.0, 20.0, 30.0])
def test_any_completion_inside_the_window_is_seen_within_dense(estimate: float) -> None:
    schedule = POLICY.schedule(estimate, 0.03)
    start, end = schedule.window
    rng = random.Random(12)
    for i in range(101):
        completion = start + (end - start) * i / 100
        _, lag = polls_and_lag(schedule, completion, rng)
        assert lag <= POLICY.dense + 1e-9


def test_early_completion_is_seen_at_the_next_sparse_poll() -> None:
    schedule = POLICY.schedule(40.0, 0.05)
    count, lag = polls_and_lag(schedule, 3.0, random.Random(13))
    assert count == 1 and lag <= POLICY.ceiling


# --- the estimator ---------------------------------------------------------------------


def test_prior_is_base_plus_per_char() -> None:
    estimator = DurationEstimator(base_seconds=1.0, per_char_seconds=0.02)
    assert estimator.estimate(200) == pytest.approx(5.0)
    assert estimator.estimate(0) == pytest.approx(1.02)  # at least one character
    assert DurationEstimator(max_seconds=60).estimate(10**6) == 60


def test_learns_a_slower_provider_within_a_few_jobs() -> None:
    estimator = DurationEstimator(base_seconds=1.0, per_char_seconds=0.02)
    truth = DurationEstimator(base_seconds=1.0, per_char_seconds=0.05)
    rng = random.Random(14)
    for _ in range(6):
        chars = rng.randint(100, 300)
        estimator.record(chars, truth.estimate(chars))
    for chars in (80, 250, 400):
        assert estimator.estimate(chars) == pytest.approx(truth.estimate(chars), rel=0.1)
    assert estimator.samples == 6


def test_relative_error_tracks_how_predictable_jobs_are() -> None:
    steady = DurationEstimator(prior_rel_error=0.25)
    noisy = DurationEstimator(prior_rel_error=0.25)
    rng = random.Random(15)
    for _ in range(20):
        steady.record(200, steady.estimate(200) * (1 + rng.gauss(0, 0.01)))
        noisy.record(200, 6.0 * (1 + rng.gauss(0, 0.3)))
    assert steady.rel_error < 0.05
    assert noisy.rel_error > 0.1
    assert POLICY.schedule(10, steady.rel_error).spread < POLICY.schedule(10, noisy.rel_error).spread


def test_one_outlier_cannot_wreck_the_estimate() -> None:
    estimator = DurationEstimator(base_seconds=1.0, per_char_seconds=0.02)
    for _ in range(10):
        estimator.record(200, 5.0)
    estimator.record(200, 500.0)  # sat in a queue for minutes
    assert estimator.estimate(200) < 5.0 * 2


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_nonsense_observations_are_ignored(seconds: float) -> None:
    estimator = DurationEstimator()
    before = (estimator.per_char_seconds, estimator.rel_error)
    estimator.record(100, seconds)
    assert (estimator.per_char_seconds, estimator.rel_error, estimator.samples) == (*before, 0)


def test_learning_shrinks_polls_and_lag() -> None:
    """A provider 2x slower than the prior: the first job costs extra polls, later ones do not."""
    estimator = DurationEstimator(base_seconds=1.0, per_char_seconds=0.025)
    rng = random.Random(16)
    history: list[tuple[int, float]] = []
    for _ in range(12):
        chars = rng.randint(150, 300)
        completion = (1.0 + 0.05 * chars) * (1 + rng.gauss(0, 0.02))
        schedule = POLICY.schedule(estimator.estimate(chars), estimator.rel_error)
        history.append(polls_and_lag(schedule, completion, rng))
        estimator.record(chars, completion)
    first_polls, first_lag = history[0]
    late = history[-5:]
    assert first_lag > 0.25  # overrun: the prior was too optimistic
    assert all(lag <= 0.3 for _, lag in late)
    assert statistics.mean(count for count, _ in late) <= min(8, first_polls / 2)
    assert repr(estimator).startswith("DurationEstimator(")


def test_policy_rejects_inconsistent_bounds() -> None:
    with pytest.raises(ValueError):
        PollPolicy(floor=1.0, dense=0.5)
    with pytest.raises(ValueError):
        PollPolicy(jitter=1.0)
