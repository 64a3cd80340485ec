"""IdleTimer: the idle deadline on an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from bot.clock import ManualClock
from bot.playback.queue import IdleTimer


class Arming:
    """Counts the timer's sleeps; ``wait_armed(n)`` returns once the n-th sleep is registered."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.at: list[float] = []
        self._event = asyncio.Event()

    def __call__(self) -> None:
        self.at.append(self.clock.monotonic())
        self._event.set()

    async def wait_armed(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.at) < count:
                self._event.clear()
                await self._event.wait()


async def test_wait_returns_once_the_idle_time_has_passed(clock: ManualClock) -> None:
    arming = Arming(clock)
    timer = IdleTimer(clock, 30, on_wait=arming)
    waiter = asyncio.create_task(timer.wait())
    await arming.wait_armed(1)
    assert arming.at == [0] and timer.waiting

    clock.advance(29.5)
    assert timer.remaining() == pytest.approx(0.5) and not timer.expired()
    clock.advance(0.5)
    await asyncio.wait_for(waiter, 5)
    assert timer.expired() and not timer.waiting
    assert arming.at == [0]  # woke once, at the deadline


async def test_activity_moves_the_deadline_while_waiting(clock: ManualClock) -> None:
    arming = Arming(clock)
    timer = IdleTimer(clock, 30, on_wait=arming)
    waiter = asyncio.create_task(timer.wait())
    await arming.wait_armed(1)
    clock.advance(20)
    timer.touch()  # a clip played at t=20: idle until t=50
    assert timer.deadline == 50
    clock.advance(10)  # t=30: the first sleep ends and the timer sleeps again, for 20 s
    await arming.wait_armed(2)
    assert arming.at == [0, 30] and not waiter.done()
    assert timer.remaining() == pytest.approx(20)
    clock.advance(20)
    await asyncio.wait_for(waiter, 5)
    assert not timer.waiting


async def test_cancelling_the_wait_disarms(clock: ManualClock) -> None:
    arming = Arming(clock)
    timer = IdleTimer(clock, 5, on_wait=arming)
    waiter = asyncio.create_task(timer.wait())
    await arming.wait_armed(1)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert not timer.waiting and clock.sleepers == 0


def test_idle_seconds_must_be_positive(clock: ManualClock) -> None:
    with pytest.raises(ValueError):
        IdleTimer(clock, 0)
