"""The voice player's Discord-free logic: a fair per-guild queue and the idle deadline.

Design decisions:

* **Fairness by rounds.** Every waiting clip carries a round number; clips play in
  ``(round, arrival)`` order. A member's first waiting clip joins the current round, each
  further one the round after their previous one, so with clips from Alice (a1 a2 a3) and Bob
  (b1) the order is a1 b1 a2 a3 whenever they arrived: one member's five clips never block
  everyone. A member whose clip just played starts their next clip one round later, so a
  newcomer goes first. Rounds only move forward.
* **The cap counts waiting clips.** ``max_per_member`` limits clips waiting in the queue; the
  clip that is playing no longer counts (it has left the queue).
* **Positions are 1-based places in the play order** among waiting clips (1 = next up).
  Because of fairness a later clip from another member can move ahead of one already waiting,
  so callers recompute positions after every change (``positions``) and re-announce the
  ones that moved.
* **Readiness.** ``pop_next`` takes a predicate: a clip whose audio is not ready yet keeps its
  place but does not hold up the ready ones behind it.
* **Idle time comes from an injected clock** (``bot.clock``): ``IdleTimer`` computes the
  deadline from ``clock.monotonic()`` and waits with ``clock.sleep``, so a test moves a
  ``ManualClock`` instead of waiting.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from bot.clock import Clock

T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True)
class Placement:
    """Where a clip went: ``playing`` (nothing ahead: it starts as soon as its first chunk is
    ready), ``queued`` at ``position`` (1 = next), or ``refused`` with a ``reason`` that
    completes "posted instead because …"."""

    kind: Literal["playing", "queued", "refused"]
    position: int | None = None
    reason: str | None = None

    @classmethod
    def playing(cls) -> Placement:
        return cls("playing")

    @classmethod
    def queued(cls, position: int) -> Placement:
        return cls("queued", position=position)

    @classmethod
    def refused(cls, reason: str) -> Placement:
        return cls("refused", reason=reason)


class QueueFull(Exception):
    """The member already has ``cap`` clips waiting."""

    def __init__(self, member_id: int, cap: int) -> None:
        super().__init__(f"member {member_id} already has {cap} clips waiting")
        self.member_id = member_id
        self.cap = cap


@dataclass(slots=True)
class _Entry(Generic[T]):
    item: T
    member_id: int
    round: int
    seq: int

    @property
    def order(self) -> tuple[int, int]:
        return (self.round, self.seq)


class FairQueue(Generic[T]):
    """Round-robin between members, at most ``max_per_member`` waiting clips each.

    Items are identified by identity/hash, so an item is in the queue at most once.
    """

    def __init__(self, max_per_member: int) -> None:
        if max_per_member < 1:
            raise ValueError("max_per_member must be at least 1")
        self.max_per_member = max_per_member
        self._entries: dict[T, _Entry[T]] = {}
        self._seq = itertools.count()
        self._round = 0
        self._last_played_round: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item: object) -> bool:
        return item in self._entries

    def count_for(self, member_id: int) -> int:
        """How many clips ``member_id`` has waiting."""
        return sum(1 for e in self._entries.values() if e.member_id == member_id)

    def add(self, member_id: int, item: T) -> int:
        """Queue ``item`` for ``member_id``; returns its position. ``QueueFull`` at the cap."""
        if item in self._entries:
            raise ValueError("item is already queued")
        own = [e.round for e in self._entries.values() if e.member_id == member_id]
        if len(own) >= self.max_per_member:
            raise QueueFull(member_id, self.max_per_member)
        previous = max(own, default=self._last_played_round.get(member_id, -1))
        entry = _Entry(item, member_id, max(self._round, previous + 1), next(self._seq))
        self._entries[item] = entry
        position = self.position(item)
        assert position is not None
        return position

    def _ordered(self) -> list[_Entry[T]]:
        return sorted(self._entries.values(), key=lambda e: e.order)

    def waiting(self) -> list[T]:
        """Waiting items in play order (assuming all are ready)."""
        return [e.item for e in self._ordered()]

    def waiting_with_members(self) -> list[tuple[int, T]]:
        """``(member_id, item)`` pairs in play order."""
        return [(e.member_id, e.item) for e in self._ordered()]

    def position(self, item: T) -> int | None:
        """1-based place of ``item`` in the play order, or None when it is not waiting."""
        entry = self._entries.get(item)
        if entry is None:
            return None
        return 1 + sum(1 for e in self._entries.values() if e.order < entry.order)

    def positions(self) -> dict[T, int]:
        """Every waiting item's position."""
        return {e.item: index for index, e in enumerate(self._ordered(), start=1)}

    def pop_next(self, ready: Callable[[T], bool] | None = None) -> T | None:
        """Take the first item in play order for which ``ready`` holds (all by default)."""
        for entry in self._ordered():
            if ready is None or ready(entry.item):
                del self._entries[entry.item]
                self._round = max(self._round, entry.round)
                self._last_played_round[entry.member_id] = entry.round
                return entry.item
        return None

    def remove(self, item: T) -> bool:
        """Drop ``item`` if it is waiting; True when it was."""
        return self._entries.pop(item, None) is not None

    def clear(self) -> list[T]:
        """Drop every waiting item; returns them in play order."""
        items = self.waiting()
        self._entries.clear()
        return items


def ordinal(n: int) -> str:
    """``1`` -> ``1st``, ``2`` -> ``2nd``, ``11`` -> ``11th``, ``23`` -> ``23rd``."""
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class IdleTimer:
    """When a voice connection has been idle long enough to leave.

    ``touch`` marks activity (a clip started or ended); ``wait`` returns once
    ``idle_seconds`` have passed on the clock since the last touch, re-sleeping when a touch
    moved the deadline while it slept. ``on_wait`` (optional) is called right before each
    sleep, synchronously, so an observer learns that the timer is armed only once the sleep
    is registered with the clock.
    """

    def __init__(
        self, clock: Clock, idle_seconds: float, *, on_wait: Callable[[], None] | None = None
    ) -> None:
        if idle_seconds <= 0:
            raise ValueError("idle_seconds must be positive")
        self.clock = clock
        self.idle_seconds = idle_seconds
        self._on_wait = on_wait
        self._last_activity = clock.monotonic()
        self.waiting = False

    def touch(self) -> None:
        self._last_activity = self.clock.monotonic()

    @property
    def deadline(self) -> float:
        """The clock's ``monotonic()`` value at which the idle time is up."""
        return self._last_activity + self.idle_seconds

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0

    async def wait(self) -> None:
        """Return once the idle time is up (cancel the task to stop waiting)."""
        try:
            while (remaining := self.remaining()) > 0:
                self.waiting = True
                if self._on_wait is not None:
                    self._on_wait()
                await self.clock.sleep(remaining)
        finally:
            self.waiting = False
