"""One fair rate limiter for every request the bot makes to the gateway.

``RateGuard`` implements ``bot.gateway.limits.RateLimiter`` (``acquire(key)``, ``hold(s)``).
One instance per process is shared by all submissions and status polls, so the bot as a
whole stays under the provider's rate limit however many members are speaking.

Design decisions:

* Token bucket: ``rate_per_second`` tokens accrue continuously up to ``burst``; a request
  spends one. A fresh guard starts full.
* ``hold(seconds)`` (a 429's ``Retry-After``) stops everyone until then. A later hold can
  extend it, never shorten it. When a hold ends exactly one request may go, then the steady
  rate resumes: tokens do not pile up during a hold, so the limiter does not answer a 429
  with an immediate burst.
* Fairness: waiting requests are served round-robin between keys (members), FIFO within a
  key. Each key with waiters has a "last served" stamp (the grant counter when it was last
  served); the next token goes to the waiting key served longest ago. A key that starts
  waiting is placed just before the key served most recently (stamp ``grants - 0.5``), or
  last if it is that key itself. So after one member's burst of 20, a member who arrives
  later alternates with them, and no key waits for more than one turn of every other key.
* No background task. The waiters drive time themselves: one of them, the "timekeeper",
  sleeps on the injected clock until the next token is due (or the hold ends) and then hands
  out every token that is available; the others wait on their own future. When the
  timekeeper leaves (served or cancelled) it appoints the next waiter. Everything uses the
  injected ``Clock``, so tests with ``ManualClock`` are deterministic.
* Cancellation-safe: a cancelled waiter leaves the line; if it had been granted a token but
  was cancelled before it could use it, the token goes back to the bucket.
* Positions: ``position(key)`` is the 1-based place of the key's earliest waiter in the
  order the line would be served if nobody else arrived; ``acquire(..., on_position=cb)``
  calls ``cb(place)`` whenever that request's place changes, for a "waiting, 3rd" display.
  Callbacks run synchronously inside the guard and must not block.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections import deque
from collections.abc import Callable

from bot.clock import Clock

log = logging.getLogger(__name__)

PositionCallback = Callable[[int], None]

# A token this close to due counts as available. The timekeeper sleeps half of it short, so
# float rounding in "when is the next token due" can never leave it asleep past the moment a
# test's ManualClock (or the real clock) reaches the due time.
_SLACK_SECONDS = 1e-6


class _Waiter:
    """One pending ``acquire``. ``wake`` is replaced each time it fires."""

    __slots__ = ("granted", "key", "on_position", "place", "wake")

    def __init__(self, key: str, wake: asyncio.Future[None], on_position: PositionCallback | None) -> None:
        self.key = key
        self.wake = wake
        self.on_position = on_position
        self.granted = False
        self.place: int | None = None


class _Line:
    """The waiters of one key, with the key's round-robin stamp and arrival order."""

    __slots__ = ("arrival", "stamp", "waiters")

    def __init__(self, stamp: float, arrival: int) -> None:
        self.waiters: deque[_Waiter] = deque()
        self.stamp = stamp
        self.arrival = arrival


class RateGuard:
    """A token bucket with a bot-wide hold and a round-robin line between keys."""

    def __init__(self, rate_per_second: float, burst: int, clock: Clock) -> None:
        if not (math.isfinite(rate_per_second) and rate_per_second > 0):
            raise ValueError("rate_per_second must be a positive number")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._rate = rate_per_second
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock.monotonic()
        self._hold_until = -math.inf
        self._lines: dict[str, _Line] = {}
        self._grants = 0
        self._last_key: str | None = None
        self._arrivals = itertools.count()
        self._timekeeper: _Waiter | None = None

    # ------------------------------------------------------------------ public

    @property
    def waiting(self) -> int:
        """How many requests are waiting."""
        return sum(len(line.waiters) for line in self._lines.values())

    @property
    def held_until(self) -> float | None:
        """The clock's monotonic time a hold lasts until, or None when there is none."""
        return self._hold_until if self._hold_until > self._clock.monotonic() else None

    def position(self, key: str) -> int | None:
        """1-based place in line of ``key``'s earliest waiting request; None if it has none."""
        line = self._lines.get(key)
        if line is None:
            return None
        first = line.waiters[0]
        for place, waiter in enumerate(self._schedule(), start=1):
            if waiter is first:
                return place
        raise AssertionError("a waiting key is missing from the schedule")

    def hold(self, seconds: float) -> None:
        """Let nobody through for ``seconds`` (extends a current hold, never shortens it)."""
        if not (math.isfinite(seconds) and seconds > 0):
            return
        until = self._clock.monotonic() + seconds
        if until <= self._hold_until:
            return
        self._refill()
        self._hold_until = until
        # One request may go when the hold ends; the bucket refills from then on.
        self._tokens = 1.0
        self._updated = until
        log.info("rate guard: holding all gateway requests for %.1f s", seconds)

    async def acquire(self, key: str, *, on_position: PositionCallback | None = None) -> None:
        """Wait for a token, fairly between keys; returns when the request may be sent."""
        self._refill()
        if not self._lines and self._can_grant():
            self._take(key)
            return
        waiter = _Waiter(key, asyncio.get_running_loop().create_future(), on_position)
        self._enqueue(waiter)
        self._publish_places()
        try:
            await self._wait(waiter)
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        finally:
            if self._timekeeper is waiter:
                self._timekeeper = None
            # Also when this waiter was appointed but got its token before taking the role.
            self._appoint_timekeeper()

    # ------------------------------------------------------------------ waiting

    async def _wait(self, waiter: _Waiter) -> None:
        while True:
            self._dispatch()
            if waiter.granted:
                return
            if waiter.wake.done():
                waiter.wake = asyncio.get_running_loop().create_future()
            if self._timekeeper is None:
                self._timekeeper = waiter
            if self._timekeeper is waiter:
                await self._keep_time(waiter)
            else:
                await waiter.wake

    async def _keep_time(self, waiter: _Waiter) -> None:
        """Sleep until a token is due, or until this waiter is woken (e.g. granted)."""
        sleeper = asyncio.ensure_future(self._clock.sleep(self._ready_in() - _SLACK_SECONDS / 2))
        try:
            await asyncio.wait((sleeper, waiter.wake), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()

    def _appoint_timekeeper(self) -> None:
        if self._timekeeper is not None or not self._lines:
            return
        successor = self._lines[self._next_key()].waiters[0]
        if not successor.wake.done():
            successor.wake.set_result(None)

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.granted:
            # Granted, but cancelled before it could use the token: give the token back.
            self._refill()
            self._tokens = min(float(self._burst), self._tokens + 1.0)
        else:
            line = self._lines[waiter.key]
            line.waiters.remove(waiter)
            if not line.waiters:
                del self._lines[waiter.key]
        self._dispatch()
        self._publish_places()

    # ------------------------------------------------------------------ bucket

    def _refill(self) -> None:
        now = self._clock.monotonic()
        if now > self._updated:
            self._tokens = min(float(self._burst), self._tokens + (now - self._updated) * self._rate)
            self._updated = now

    def _ready_in(self) -> float:
        """Seconds until a token may be granted (0 when one may be granted now)."""
        now = self._clock.monotonic()
        token_due = max(self._updated, now) + max(0.0, (1.0 - self._tokens) / self._rate)
        return max(0.0, token_due - now, self._hold_until - now)

    def _can_grant(self) -> bool:
        return self._ready_in() <= _SLACK_SECONDS

    def _take(self, key: str) -> None:
        self._tokens -= 1.0
        self._grants += 1
        self._last_key = key
        line = self._lines.get(key)
        if line is not None:
            line.stamp = self._grants

    # ------------------------------------------------------------------ line

    def _enqueue(self, waiter: _Waiter) -> None:
        line = self._lines.get(waiter.key)
        if line is None:
            stamp = self._grants if waiter.key == self._last_key else self._grants - 0.5
            line = self._lines[waiter.key] = _Line(stamp, next(self._arrivals))
        line.waiters.append(waiter)

    def _next_key(self) -> str:
        return min(self._lines, key=lambda key: (self._lines[key].stamp, self._lines[key].arrival))

    def _dispatch(self) -> None:
        """Hand out every token available now, in round-robin order."""
        self._refill()
        granted = False
        while self._lines and self._can_grant():
            key = self._next_key()
            line = self._lines[key]
            waiter = line.waiters.popleft()
            if not line.waiters:
                del self._lines[key]
            self._take(key)
            waiter.granted = True
            if not waiter.wake.done():
                waiter.wake.set_result(None)
            granted = True
        if granted:
            self._publish_places()

    def _schedule(self) -> list[_Waiter]:
        """Every waiter in the order it would be served if nobody else arrived."""
        heap = [(line.stamp, line.arrival, key) for key, line in self._lines.items()]
        heapq.heapify(heap)
        served = dict.fromkeys(self._lines, 0)
        grants = self._grants
        order: list[_Waiter] = []
        while heap:
            _, arrival, key = heapq.heappop(heap)
            line = self._lines[key]
            order.append(line.waiters[served[key]])
            served[key] += 1
            grants += 1
            if served[key] < len(line.waiters):
                heapq.heappush(heap, (grants, arrival, key))
        return order

    def _publish_places(self) -> None:
        for place, waiter in enumerate(self._schedule(), start=1):
            if waiter.place == place:
                continue
            waiter.place = place
            if waiter.on_position is not None:
                try:
                    waiter.on_position(place)
                except Exception:
                    log.exception("rate guard: a position callback failed")
