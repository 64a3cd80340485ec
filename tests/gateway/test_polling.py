"""The learned duration distribution and the poll plan, tested as pure functions.

"Lag" is the time from a job's completion to the first poll at or after it; "polls" counts
status calls up to and including that poll.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest

from bot.gateway import ObservedDurations, PollPlan, PollPolicy

POLICY = PollPolicy()


def polls_and_lag(plan: PollPlan, completion: float, rng: random.Random) -> tuple[int, float]:
    times = plan.poll_times(completion + 300, rng)
    index, first = next((i, t) for i, t in enumerate(times) if t >= completion)
    return index + 1, first - completion


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def learned(samples: list[float]) -> ObservedDurations:
    durations = ObservedDurations()
    for seconds in samples:
        durations.record(seconds)
    return durations


def test_quantiles_follow_what_was_observed() -> None:
    rng = random.Random(1)
    durations = learned([log_uniform(rng, 2, 30) for _ in range(2000)])
    # log-uniform 2..30: q(p) = 2 * 15**p; bucket width is 19 %, so allow that.
    for p in (0.05, 0.5, 0.95):
        assert durations.quantile(p) == pytest.approx(2 * 15 ** p, rel=0.2)
    assert durations.samples == 2000


def test_a_fresh_distribution_starts_from_a_weak_prior_and_forgets_it() -> None:
    fresh = ObservedDurations()
    assert 1.0 <= fresh.quantile(0.02) <= 1.3  # a one-second job is seen at once, not after 4.8 s
    durations = learned([8.0] * 50)
    assert durations.quantile(0.02) == pytest.approx(8.0, rel=0.2)  # the prior no longer matters


def test_a_provider_that_slows_down_is_followed() -> None:
    durations = ObservedDurations(half_life=50)
    for _ in range(300):
        durations.record(3.0)
    for _ in range(300):
        durations.record(20.0)
    assert durations.quantile(0.5) == pytest.approx(20.0, rel=0.2)


@pytest.mark.parametrize("seconds", [0.0, -1.0, math.inf, math.nan])
def test_nonsense_durations_are_ignored(seconds: float) -> None:
    durations = ObservedDurations()
    durations.record(seconds)
    assert durations.samples == 0 and not durations.dirty


def test_weights_round_trip_through_storage() -> None:
    rng = random.Random(2)
    original = learned([log_uniform(rng, 2, 30) for _ in range(300)])
    restored = ObservedDurations()
    restored.load(original.weights(), original.samples)
    for p in (0.02, 0.5, 0.99):
        assert restored.quantile(p) == pytest.approx(original.quantile(p), rel=0.01)
    assert not restored.dirty and restored.samples == 300


def test_nothing_is_spent_before_the_earliest_durations() -> None:
    plan = POLICY.plan(learned([10.0 + i * 0.01 for i in range(100)]))
    times = plan.poll_times(plan.first, random.Random(3))
    assert len(times) == 1 and times[0] == pytest.approx(plan.first)
    assert plan.first >= 10.0


def test_the_first_poll_comes_one_dense_interval_after_the_earliest_durations() -> None:
    """The earliest jobs are seen within ``dense`` all the same, and no poll is spent before."""
    durations = learned([4.0 + i * 0.05 for i in range(200)])  # 4-14 s
    plan = POLICY.plan(durations)
    earliest = durations.quantile(POLICY.first_quantile)
    assert plan.first == pytest.approx(earliest + POLICY.dense)
    rng = random.Random(10)
    for completion in (4.0, earliest, plan.first - 0.01):
        polls, lag = polls_and_lag(plan, completion, rng)
        assert polls == 1 and lag <= POLICY.dense + (earliest - 4.0) + 1e-9


def test_every_delay_respects_floor_and_ceiling() -> None:
    plan = POLICY.plan(learned([3.0, 5.0, 9.0]))
    rng = random.Random(4)
    elapsed = 0.0
    while elapsed < 600:
        delay = plan.next_delay(elapsed, rng)
        assert POLICY.floor <= delay <= POLICY.ceiling
        elapsed += delay


def test_a_job_later_than_anything_seen_backs_off_gradually() -> None:
    plan = PollPolicy(jitter=0.0).plan(learned([5.0] * 50))
    rng = random.Random(5)
    delays, elapsed = [], plan.last
    while elapsed < plan.last + 300:
        delay = plan.next_delay(elapsed, rng)
        delays.append(delay)
        elapsed += delay
    assert delays == sorted(delays)
    assert delays[0] < 1.0 and delays[-1] == POLICY.ceiling


def test_lag_and_calls_on_a_realistic_mix_beat_a_one_second_poller() -> None:
    """Log-uniform 2-30 s: p95 lag under a second with fewer calls than polling every second."""
    rng = random.Random(6)
    durations = learned([log_uniform(rng, 2, 30) for _ in range(500)])
    plan = POLICY.plan(durations)
    lags, calls, naive_calls = [], [], []
    for _ in range(2000):
        completion = log_uniform(rng, 2, 30)
        polls, lag = polls_and_lag(plan, completion, rng)
        lags.append(lag)
        calls.append(polls)
        naive_calls.append(math.floor(completion) + 1)
    assert quantile(lags, 0.95) <= POLICY.dense
    assert sum(calls) <= 0.9 * sum(naive_calls)  # not polling before the earliest: ~13 % fewer


def test_with_push_the_safety_poll_comes_after_the_slow_tail() -> None:
    durations = learned([5.0, 12.0, 28.0] * 20)
    plan = POLICY.fallback_plan(durations)
    assert plan.first >= max(POLICY.push_fallback, 2 * durations.quantile(0.99))
    times = plan.poll_times(plan.first + 100, random.Random(7))
    assert times[0] == pytest.approx(plan.first)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= POLICY.push_fallback * (1 - POLICY.jitter) for g in gaps)


def test_resuming_continues_the_plan_where_it_stands() -> None:
    plan = POLICY.plan(learned([8.0, 10.0, 12.0] * 10))
    rng = random.Random(8)
    assert plan.first < 10.0 < plan.last
    later = plan.poll_times(40, rng, start=10.0)
    assert later and all(t > 10.0 for t in later)
    assert later[0] - 10.0 <= POLICY.dense  # already in the dense range: no long sleep first


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        PollPolicy(floor=1.0, dense=0.5)
    with pytest.raises(ValueError):
        PollPolicy(jitter=1.0)
    with pytest.raises(ValueError):
        PollPolicy(first_quantile=0.9, last_quantile=0.5)
    with pytest.raises(ValueError):
        ObservedDurations(prior_low=5, prior_high=1)


def test_the_lag_budget_goes_where_completions_are_rarest() -> None:
    """Sparser polls only in the lowest-hazard stretch: fewer calls, the p95 lag still bounded."""
    rng = random.Random(9)
    durations = learned([log_uniform(rng, 2, 30) for _ in range(500)])
    stretched = POLICY.plan(durations)
    uniform = PollPolicy(lag_budget=0.0).plan(durations)
    assert stretched.stretches and not uniform.stretches
    for stretch in stretched.stretches:
        assert stretched.first <= stretch.start < stretch.end <= stretched.last
        assert POLICY.dense < stretch.gap <= POLICY.ceiling
    completions = [log_uniform(rng, 2, 30) for _ in range(3000)]
    results = {}
    for name, plan in (("stretched", stretched), ("uniform", uniform)):
        runs = [polls_and_lag(plan, c, random.Random(1)) for c in completions]
        results[name] = (sum(p for p, _ in runs), quantile([lag for _, lag in runs], 0.95))
    assert results["stretched"][0] < results["uniform"][0]
    assert results["stretched"][1] <= POLICY.dense
