"""Time as a dependency.

Every service takes a ``Clock`` in its constructor instead of calling ``time`` or
``datetime.now`` itself, so tests can drive time (quota day resets, cooldowns, the
15-minute interaction token, voice idle timeouts) without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told to, for tests.

    ``sleep`` returns once ``advance`` has moved the clock past the sleeper's deadline,
    so a test decides exactly when timers fire. ``now`` and ``monotonic`` move together.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting in ``sleep`` right now."""
        return sum(1 for _, fut in self._sleepers if not fut.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._elapsed + seconds, fut))
        try:
            await fut
        finally:
            self._sleepers = [(d, f) for d, f in self._sleepers if f is not fut]

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._elapsed += seconds
        for deadline, fut in self._sleepers:
            if deadline <= self._elapsed and not fut.done():
                fut.set_result(None)

    def set(self, when: datetime) -> None:
        """Jump to an absolute time (must not be earlier than now)."""
        self.advance((when - self.now()).total_seconds())


class ScaledClock:
    """Real time run ``factor`` times faster, for integration tests over real sockets.

    The gateway emulator and the client share one, so a job the emulator makes last 10 s
    takes 10 / factor real seconds while every timestamp and every sleep on both sides
    stays in the same (scaled) time. Assertions compare those timestamps, never wall time.
    """

    def __init__(self, factor: float, start: datetime | None = None) -> None:
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.factor = factor
        self._origin = time.monotonic()
        self._start = start or datetime.now(UTC)

    def monotonic(self) -> float:
        return (time.monotonic() - self._origin) * self.factor

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)
