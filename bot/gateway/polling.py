"""When to poll a job's status: a duration estimate and an adaptive schedule.

The provider offers no push we can always rely on (webhooks need a public https endpoint), so
``ChatterboxClient.wait`` polls. A fixed loop is either slow to notice completion or wasteful;
instead the schedule knows roughly when the job should finish and spends its polls there:

```
   start            W0 = E - s       E        W1 = E + s
     |-- sparse (<= ceiling) --|-- dense --|-- dense --|-- backing off: dense + g * overrun --> ceiling
```

- ``DurationEstimator`` predicts E from the text length: a prior ``base + per_char * chars``
  whose per-character rate is refined online (an EWMA over observed completions, so a slower
  or faster provider is learned within a few jobs). It also tracks how wrong it tends to be
  (an EWMA of the relative error); that sets the half-width ``s`` of the dense window.
- ``PollSchedule`` is a pure function of (elapsed seconds, seeded ``random.Random``): before the
  window it takes as few evenly spaced steps as the ceiling allows and lands just before W0;
  inside the window it polls every ``dense`` seconds (so a completion there is seen within
  ``dense``); after it, the interval grows with the overrun (the lag stays a fixed fraction of
  how late the job is) up to the ceiling. Jitter (on the landing poll and every poll after it)
  only ever shortens a delay, so no bound above is broken by it, while many concurrent
  waiters still spread out. Wait times are seconds since ``wait`` started (just after submit).
- The estimator lives in memory: after a restart it starts again from the prior and
  re-learns within a few jobs.

With a learned estimate a typical 5-30 s job takes 3-6 status calls and is seen within
~0.25 s of completion; ``tests/gateway/test_polling.py`` measures that by simulation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


class DurationEstimator:
    """Predicts how long a job of ``text_chars`` characters takes, learning from completions.

    Thread-unsafe but coroutine-safe: ``record`` and ``estimate`` never await, so one instance
    can be shared by every concurrent ``wait``.
    """

    def __init__(
        self,
        *,
        base_seconds: float = 1.0,
        per_char_seconds: float = 0.025,
        alpha: float = 0.4,
        prior_rel_error: float = 0.25,
        min_seconds: float = 0.5,
        max_seconds: float = 900.0,
    ) -> None:
        if base_seconds < 0 or per_char_seconds <= 0 or not 0 < alpha <= 1:
            raise ValueError("base_seconds >= 0, per_char_seconds > 0 and 0 < alpha <= 1 are required")
        self.base_seconds = base_seconds
        self.per_char_seconds = per_char_seconds
        self.rel_error = prior_rel_error
        self.alpha = alpha
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds
        self.samples = 0

    def __repr__(self) -> str:
        return (
            f"DurationEstimator(base={self.base_seconds:.2f}s, per_char={self.per_char_seconds:.4f}s, "
            f"rel_error={self.rel_error:.3f}, samples={self.samples})"
        )

    def estimate(self, text_chars: int) -> float:
        """Expected seconds from submit to a terminal status."""
        raw = self.base_seconds + self.per_char_seconds * max(1, text_chars)
        return min(self.max_seconds, max(self.min_seconds, raw))

    def record(self, text_chars: int, seconds: float) -> None:
        """Learn from a job of ``text_chars`` characters that completed after ``seconds``.

        The prior is only a guess, so the first observation replaces it and the next ones are
        averaged (weights 1, 1/2, 1/3, ...) until the EWMA's ``alpha`` takes over. One
        observation moves the rate by at most 4x, so a job that sat in a long queue cannot wreck
        the estimate. The prior's own miss is not counted in ``rel_error``: it says nothing
        about how well the learned rate predicts.
        """
        if not math.isfinite(seconds) or seconds <= 0:
            return
        chars = max(1, text_chars)
        predicted = self.estimate(chars)
        weight = max(self.alpha, 1.0 / (self.samples + 1))
        if self.samples > 0:
            error = min(2.0, abs(seconds - predicted) / predicted)
            self.rel_error += weight * (error - self.rel_error)
        observed_rate = max(0.0, seconds - self.base_seconds) / chars
        observed_rate = min(4 * self.per_char_seconds, max(self.per_char_seconds / 4, observed_rate))
        self.per_char_seconds += weight * (observed_rate - self.per_char_seconds)
        self.samples += 1


@dataclass(frozen=True)
class PollPolicy:
    """Tunable bounds of every schedule (seconds)."""

    floor: float = 0.2  # never poll more often than this
    dense: float = 0.25  # interval inside the window: the lag bound when the estimate is right
    ceiling: float = 15.0  # never wait longer than this between polls
    jitter: float = 0.1  # each delay is shortened by up to this fraction (up to dense/2 when landing)
    spread_factor: float = 1.5  # window half-width = factor * relative error * estimate ...
    min_spread: float = 0.3  # ... but at least this
    max_spread: float = 1.5  # ... and at most this (past it, the overrun backoff takes over)
    overrun_growth: float = 0.25  # after the window: interval = dense + growth * overrun

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.dense <= self.ceiling:
            raise ValueError("need 0 < floor <= dense <= ceiling")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def schedule(self, estimate: float, rel_error: float) -> PollSchedule:
        spread = min(self.max_spread, max(self.min_spread, self.spread_factor * rel_error * estimate))
        return PollSchedule(self, estimate=estimate, spread=spread)


@dataclass(frozen=True)
class PollSchedule:
    """The delays between status polls of one job; pure given the ``random.Random`` passed in."""

    policy: PollPolicy
    estimate: float
    spread: float

    @property
    def window(self) -> tuple[float, float]:
        """(W0, W1): where polls are dense, in seconds since the job started."""
        return max(0.0, self.estimate - self.spread), self.estimate + self.spread

    def next_delay(self, elapsed: float, rng: random.Random) -> float:
        """Seconds to sleep before the next poll, given seconds elapsed since the job started."""
        p = self.policy
        start, end = self.window
        if elapsed < start - p.dense:
            remaining = start - elapsed
            steps = math.ceil(remaining / p.ceiling - 1e-9)
            if steps <= 1:  # land just before the window opens (jittered)
                delay = remaining - rng.random() * min(p.jitter * remaining, p.dense / 2)
            else:  # equal steps, unjittered so the count cannot creep up; the landing is jittered
                delay = remaining / steps
        elif elapsed < end:
            delay = p.dense * (1 - p.jitter * rng.random())
        else:
            delay = min(p.ceiling, p.dense + p.overrun_growth * (elapsed - end))
            delay *= 1 - p.jitter * rng.random()
        return min(p.ceiling, max(p.floor, delay))

    def poll_times(self, until: float, rng: random.Random) -> list[float]:
        """Every poll instant up to ``until`` (for tests, benchmarks and reasoning)."""
        times: list[float] = []
        elapsed = 0.0
        while True:
            elapsed += self.next_delay(elapsed, rng)
            if elapsed > until:
                return times
            times.append(elapsed)
