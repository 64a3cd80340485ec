"""RateGuard on a ManualClock: token bucket, holds, round-robin fairness, positions, cancels.

Time moves only through ``clock.advance``. Before advancing, a test waits (by yielding to the
event loop, never by sleeping) until the guard's timekeeper is asleep on the clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from bot.clock import ManualClock, SystemClock
from bot.gateway.ratelimit import RateGuard


async def until(condition: Callable[[], bool], what: str = "condition") -> None:
    """Yield to the event loop until ``condition`` holds (bounded; no wall-clock time)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


async def settle() -> None:
    """Let every runnable task run to its next wait."""
    for _ in range(50):
        await asyncio.sleep(0)


class Requests:
    """Starts labelled acquires and records the order in which they are granted."""

    def __init__(self, guard: RateGuard) -> None:
        self.guard = guard
        self.granted: list[str] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.places: dict[str, list[int]] = {}

    def start(
        self,
        key: str,
        label: str,
        on_position: Callable[[int], None] | None = None,
        after_grant: Callable[[], None] | None = None,
    ) -> asyncio.Task[None]:
        self.places[label] = places = []

        def record(place: int) -> None:
            places.append(place)
            if on_position is not None:
                on_position(place)

        async def run() -> None:
            await self.guard.acquire(key, on_position=record)
            self.granted.append(label)
            if after_grant is not None:
                after_grant()

        task = asyncio.create_task(run(), name=label)
        self.tasks[label] = task
        return task

    async def started(self, *labels: str) -> None:
        """Start acquires one after another, each enqueued (or granted) before the next."""
        for label in labels:
            before = self.guard.waiting + len(self.granted)
            self.start(label[0], label)
            await until(lambda b=before: self.guard.waiting + len(self.granted) == b + 1, f"{label} queued")


async def advance(clock: ManualClock, seconds: float) -> None:
    await until(lambda: clock.sleepers >= 1, "the timekeeper sleeps")
    clock.advance(seconds)


def test_rejects_bad_settings(clock: ManualClock) -> None:
    with pytest.raises(ValueError):
        RateGuard(0, 1, clock)
    with pytest.raises(ValueError):
        RateGuard(float("nan"), 1, clock)
    with pytest.raises(ValueError):
        RateGuard(1, 0, clock)


async def test_burst_passes_at_once_then_the_rate_applies(clock: ManualClock) -> None:
    guard = RateGuard(2.0, 3, clock)
    requests = Requests(guard)
    await requests.started("A1", "A2", "A3", "A4", "A5")
    assert requests.granted == ["A1", "A2", "A3"]
    assert guard.waiting == 2
    await advance(clock, 0.4)
    await settle()
    assert requests.granted == ["A1", "A2", "A3"]  # 0.8 token so far
    await advance(clock, 0.1)
    await until(lambda: len(requests.granted) == 4, "A4")
    await advance(clock, 0.5)
    await until(lambda: len(requests.granted) == 5, "A5")
    assert requests.granted == ["A1", "A2", "A3", "A4", "A5"]
    assert guard.waiting == 0


async def test_a_later_key_alternates_with_a_burst(clock: ManualClock) -> None:
    guard = RateGuard(1.0, 1, clock)
    requests = Requests(guard)
    await requests.started("A1", "A2", "A3", "A4", "A5")
    assert requests.granted == ["A1"]
    await advance(clock, 0.5)
    await requests.started("B1", "B2")
    # A was served last, so B's first request goes next; then they alternate.
    assert [guard.position("B"), guard.position("A")] == [1, 2]
    for seconds in (0.5, 1, 1, 1, 1, 1):
        await advance(clock, seconds)
        count = len(requests.granted)
        await until(lambda c=count: len(requests.granted) == c + 1, "one grant")
        await settle()
        assert len(requests.granted) == count + 1
    assert requests.granted == ["A1", "B1", "A2", "B2", "A3", "A4", "A5"]
    assert guard.position("A") is None and guard.position("B") is None


async def test_round_robin_among_three_keys_fifo_within_each(clock: ManualClock) -> None:
    guard = RateGuard(10.0, 1, clock)
    requests = Requests(guard)
    await requests.started("A1", "A2", "A3", "B1", "B2", "C1", "C2", "C3")
    for _ in range(7):
        count = len(requests.granted)
        await advance(clock, 0.1)
        await until(lambda c=count: len(requests.granted) == c + 1, "one grant")
    assert requests.granted == ["A1", "B1", "C1", "A2", "B2", "C2", "A3", "C3"]


async def test_positions_are_reported_as_they_change(clock: ManualClock) -> None:
    guard = RateGuard(1.0, 1, clock)
    requests = Requests(guard)
    await requests.started("A1", "A2", "A3")
    assert requests.places["A1"] == []  # granted at once, never waited
    assert (requests.places["A2"], requests.places["A3"]) == ([1], [2])
    await requests.started("B1")
    assert requests.places["B1"] == [1]
    assert (requests.places["A2"], requests.places["A3"]) == ([1, 2], [2, 3])
    assert (guard.position("A"), guard.position("B"), guard.position("C")) == (2, 1, None)
    await advance(clock, 1)
    await until(lambda: requests.granted == ["A1", "B1"], "B1")
    assert (requests.places["A2"], requests.places["A3"]) == ([1, 2, 1], [2, 3, 2])
    assert guard.position("A") == 1


async def test_hold_blocks_everyone_until_the_clock_passes_it(clock: ManualClock) -> None:
    guard = RateGuard(5.0, 5, clock)
    guard.hold(30)
    assert guard.held_until == 30
    requests = Requests(guard)
    await requests.started("A1", "B1", "A2")
    await advance(clock, 29)
    await settle()
    assert requests.granted == []
    guard.hold(0.5)  # would end sooner: ignored
    guard.hold(-1)
    guard.hold(float("nan"))
    assert guard.held_until == 30
    await advance(clock, 1)
    await until(lambda: len(requests.granted) == 1, "first after the hold")
    await settle()
    assert requests.granted == ["A1"]  # one request when the hold ends, not a burst of five
    await advance(clock, 0.2)
    await until(lambda: len(requests.granted) == 2, "next at the steady rate")
    await advance(clock, 0.2)
    await until(lambda: len(requests.granted) == 3, "third")
    assert requests.granted == ["A1", "B1", "A2"]
    assert guard.held_until is None


async def test_hold_is_extended_while_requests_wait(clock: ManualClock) -> None:
    guard = RateGuard(1.0, 1, clock)
    requests = Requests(guard)
    await requests.started("A1", "A2")
    await advance(clock, 0.5)
    guard.hold(30)  # the timekeeper is asleep until t=1; it must go back to sleep then
    await advance(clock, 0.5)
    await settle()
    assert requests.granted == ["A1"]
    guard.hold(40)  # t=1: extends to t=41
    await advance(clock, 29.5)
    await settle()
    assert requests.granted == ["A1"]
    await advance(clock, 10)
    await settle()
    assert requests.granted == ["A1"]
    await advance(clock, 0.5)
    await until(lambda: requests.granted == ["A1", "A2"], "A2 after the extended hold")
    assert clock.monotonic() == 41


async def test_fresh_request_during_a_hold_waits(clock: ManualClock) -> None:
    guard = RateGuard(100.0, 10, clock)
    guard.hold(5)
    requests = Requests(guard)
    await requests.started("A1")
    await settle()
    assert requests.granted == [] and guard.position("A") == 1
    await advance(clock, 5)
    await until(lambda: requests.granted == ["A1"], "A1")


async def test_cancelled_waiter_leaves_the_line_without_a_token(clock: ManualClock) -> None:
    guard = RateGuard(1.0, 1, clock)
    requests = Requests(guard)
    await requests.started("A1", "B1", "C1")
    assert guard.position("B") == 1
    requests.tasks["B1"].cancel()
    await until(lambda: requests.tasks["B1"].done(), "B1 cancelled")
    assert requests.tasks["B1"].cancelled()
    assert (guard.position("B"), guard.position("C"), guard.waiting) == (None, 1, 1)
    assert requests.places["C1"] == [2, 1]
    await advance(clock, 1)
    await until(lambda: requests.granted == ["A1", "C1"], "C1 gets the token B1 did not take")


async def test_cancelling_the_timekeeper_hands_the_clock_on(clock: ManualClock) -> None:
    guard = RateGuard(1.0, 1, clock)
    requests = Requests(guard)
    await requests.started("A1", "A2", "B1")
    await until(lambda: clock.sleepers == 1, "a timekeeper")
    requests.tasks["B1"].cancel()  # B1 is next in line
    requests.tasks["A2"].cancel()
    await until(lambda: all(requests.tasks[t].done() for t in ("A2", "B1")), "both cancelled")
    await requests.started("C1", "C2")
    await advance(clock, 1)
    await until(lambda: requests.granted == ["A1", "C1"], "C1")
    await advance(clock, 1)
    await until(lambda: requests.granted == ["A1", "C1", "C2"], "C2")
    assert clock.sleepers == 0  # nobody left keeping time


async def test_a_grant_cancelled_before_use_returns_the_token(clock: ManualClock) -> None:
    guard = RateGuard(1.0, 1, clock)
    requests = Requests(guard)
    await requests.started("A1")

    def cancel_b1_once_a2_is_next(place: int) -> None:
        if place == 1 and "B1" in requests.tasks:  # B1 was just granted and has not resumed
            requests.tasks["B1"].cancel()

    requests.start("A", "A2", on_position=cancel_b1_once_a2_is_next)
    await until(lambda: clock.sleepers == 1, "A2 keeps time")
    await requests.started("B1")
    assert [guard.position(k) for k in "BA"] == [1, 2]  # A was served last
    await advance(clock, 1)
    await until(lambda: requests.tasks["B1"].done(), "B1 cancelled")
    assert requests.tasks["B1"].cancelled()
    await until(lambda: requests.granted == ["A1", "A2"], "A2 gets B1's unused token at once")
    assert clock.monotonic() == 1
    await requests.started("C1")
    await settle()
    assert requests.granted == ["A1", "A2"]
    await advance(clock, 1)
    await until(lambda: requests.granted == ["A1", "A2", "C1"], "C1 one token later")


async def test_a_successor_granted_before_keeping_time_appoints_another(clock: ManualClock) -> None:
    """Regression: A2 (keeping time) is served and appoints A3; the clock moves before A3 runs,
    so A3 is served at once without ever keeping time. A4 must still get a timekeeper."""
    guard = RateGuard(1.0, 1, clock)
    requests = Requests(guard)
    await requests.started("A1")
    requests.start("A", "A2", after_grant=lambda: clock.advance(1))
    await until(lambda: guard.waiting == 1, "A2 queued")
    await requests.started("A3", "A4")
    await advance(clock, 1)
    await until(lambda: requests.granted == ["A1", "A2", "A3"], "A2 then A3")
    await advance(clock, 1)
    await until(lambda: requests.granted == ["A1", "A2", "A3", "A4"], "A4 is not stranded")


@pytest.mark.parametrize("seed", range(5))
async def test_random_arrivals_and_cancellations_never_exceed_the_rate_or_stall(
    clock: ManualClock, seed: int
) -> None:
    rng = random.Random(seed)
    rate, burst = 2.0, 3
    guard = RateGuard(rate, burst, clock)
    grant_times: list[float] = []
    tasks: list[asyncio.Task[None]] = []

    async def request(key: str) -> None:
        await guard.acquire(key)
        grant_times.append(clock.monotonic())
        if rng.random() < 0.2:
            clock.advance(0.25)  # time moves between a grant and the next waiter's turn

    for _ in range(60):
        for _ in range(rng.randint(0, 3)):
            tasks.append(asyncio.create_task(request(rng.choice("ABCD"))))
        if tasks and rng.random() < 0.3:
            rng.choice(tasks).cancel()
        await settle()
        clock.advance(rng.choice([0.1, 0.25, 0.5]))
    await settle()
    while guard.waiting:
        await advance(clock, 0.5)
        await settle()
    await settle()
    assert all(task.done() for task in tasks)
    succeeded = sum(1 for task in tasks if not task.cancelled())
    assert len(grant_times) == succeeded
    for start in grant_times:  # token bucket: at most burst + rate * window in any window
        window = [t for t in grant_times if start <= t <= start + 2.0]
        assert len(window) <= burst + rate * 2.0 + 1e-9


async def test_works_on_the_system_clock() -> None:
    for _ in range(20):  # real timers fire in varied interleavings; none may strand a waiter
        guard = RateGuard(2000.0, 2, SystemClock())
        acquires = (guard.acquire(f"k{i % 3}") for i in range(20))
        await asyncio.wait_for(asyncio.gather(*acquires), timeout=10)
        assert guard.waiting == 0


async def test_a_failing_position_callback_does_not_break_the_line(clock: ManualClock) -> None:
    guard = RateGuard(1.0, 1, clock)
    requests = Requests(guard)
    await requests.started("A1")

    def broken(place: int) -> None:
        raise RuntimeError("UI went away")

    requests.start("B", "B1", on_position=broken)
    await until(lambda: guard.position("B") == 1, "B1 queued")
    await advance(clock, 1)
    await until(lambda: requests.granted == ["A1", "B1"], "B1 served anyway")
