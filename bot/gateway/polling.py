"""When to poll a job's status: the durations the bot has observed, and a plan built on them.

The provider's time to a result is mostly queueing, unrelated to text length (DESIGN, "the
gateway contract"), so the plan does not guess from the text at all. It learns instead what
the provider has actually been doing:

- ``ObservedDurations`` is a histogram of submit→terminal durations over log-spaced buckets
  (4 per doubling, 0.25 s to ~30 min), with exponential forgetting (``half_life`` jobs) so a
  provider that gets slower or faster is followed. A weak log-uniform prior (1-30 s, worth
  ``prior_weight`` jobs) lets a fresh bot start sensibly; it fades by ``prior_fade`` per
  observed job, so after ~20 jobs only what was observed counts.
  ``bot.store.durations`` keeps the weights in the database, so a restart does not forget.
- ``PollPolicy.plan`` turns the histogram into a ``PollPlan``, a pure function of (seconds
  since submit, seeded ``random.Random``):

  ```
  submit   earliest = q(first_quantile)   first = earliest + dense      last = q(last_quantile)
    |-- one sleep (<= ceiling steps) ------------|-- every `dense` s --|-- dense + g * overrun --> ceiling
  ```

  Almost no job finishes before the earliest durations seen (the 1st percentile), so nothing
  is spent there, and the first poll waits one ``dense`` past them: the earliest jobs are
  then seen within ``dense`` like every other, and the poll that would have caught only the
  few finishing in between is saved (a poll at the 5th percentile, as this plan once made,
  cost ~0.9 calls per job on 2-30 s jobs for nothing the lag target needed). From there to
  the slow tail every ``dense`` seconds, which bounds the lag (completion → the
  poll that sees it) by ``dense`` for all but ``lag_budget`` of the jobs; a job later than
  anything seen gets polls that back off with its overrun. Jitter only ever shortens a
  delay, so no bound is broken, while concurrent waiters spread out.
- Where the budget goes: for a percentile lag target, calls saved per job seen late is
  1 / (hazard * dense), so the optimum is bang-bang: ``dense`` where the hazard (completions
  per second among jobs still running) is high, sparser where it is lowest. The plan stretches
  the gaps over the lowest-hazard buckets until ``lag_budget`` is spent (``Stretch``). That
  saves a few percent of calls; the saving that matters most is not polling before the
  earliest completions.
- With push (webhooks), ``PollPolicy.fallback_plan`` is used instead: the callback wakes the
  waiter, and polls are a slow safety net only (first after ``push_fallback`` or twice the
  slow tail, whichever is later), so a job normally costs one status GET (the confirmation).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

#: Bucket i covers [MIN_SECONDS * RATIO**i, MIN_SECONDS * RATIO**(i+1)).
MIN_SECONDS = 0.25
RATIO = 2 ** 0.25
BUCKETS = 52  # up to 0.25 * 2**13 s ≈ 34 minutes


def bucket_of(seconds: float) -> int:
    if seconds <= MIN_SECONDS:
        return 0
    return min(BUCKETS - 1, int(math.log(seconds / MIN_SECONDS, RATIO)))


def bucket_low(index: int) -> float:
    return MIN_SECONDS * RATIO ** index


class ObservedDurations:
    """Learned distribution of job durations (seconds from submit to a terminal status).

    Coroutine-safe: ``record`` and ``quantile`` never await, so one instance serves every
    concurrent ``wait``. ``weights()``/``load()`` move the learned part to and from storage.
    """

    def __init__(
        self,
        *,
        prior_low: float = 1.0,
        prior_high: float = 30.0,
        prior_weight: float = 2.0,
        prior_fade: float = 0.8,
        half_life: float = 500.0,
    ) -> None:
        if not 0 < prior_low < prior_high or prior_weight < 0 or half_life <= 0 or not 0 < prior_fade <= 1:
            raise ValueError("need 0 < prior_low < prior_high, prior_weight >= 0, half_life > 0, "
                             "0 < prior_fade <= 1")
        self._decay = 0.5 ** (1.0 / half_life)
        self._prior_fade = prior_fade
        self._prior = [0.0] * BUCKETS
        low, high = bucket_of(prior_low), bucket_of(prior_high)
        for i in range(low, high + 1):
            self._prior[i] = prior_weight / (high - low + 1)
        self._observed = [0.0] * BUCKETS
        self.samples = 0
        self.dirty = False

    def __repr__(self) -> str:
        return (f"ObservedDurations(samples={self.samples}, p5={self.quantile(0.05):.2f}s, "
                f"p50={self.quantile(0.5):.2f}s, p95={self.quantile(0.95):.2f}s)")

    def record(self, seconds: float) -> None:
        """Learn from one job that took ``seconds``; older observations fade."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        self._observed = [w * self._decay for w in self._observed]
        self._prior = [w * self._prior_fade for w in self._prior]
        self._observed[bucket_of(seconds)] += 1.0
        self.samples += 1
        self.dirty = True

    def quantile(self, q: float) -> float:
        """The duration below which a fraction ``q`` of jobs finish (geometric within a bucket)."""
        weights = [a + b for a, b in zip(self._prior, self._observed, strict=True)]
        total = sum(weights)
        if total <= 0:
            return 1.0
        target = min(max(q, 0.0), 1.0) * total
        running = 0.0
        for i, w in enumerate(weights):
            if w > 0 and running + w >= target:
                fraction = (target - running) / w
                return bucket_low(i) * RATIO ** fraction
            running += w
        return bucket_low(BUCKETS)

    def buckets(self) -> list[tuple[float, float, float, float]]:
        """(low, high, mass, survival at low) of every bucket, mass as a fraction of all."""
        weights = [a + b for a, b in zip(self._prior, self._observed, strict=True)]
        total = sum(weights) or 1.0
        rows, below = [], 0.0
        for i, w in enumerate(weights):
            rows.append((bucket_low(i), bucket_low(i + 1), w / total, 1.0 - below / total))
            below += w
        return rows

    def weights(self) -> dict[int, float]:
        """The learned weights (prior excluded), by bucket, for storage."""
        return {i: w for i, w in enumerate(self._observed) if w > 1e-6}

    def load(self, weights: Mapping[int, float], samples: int) -> None:
        """Restore what ``weights`` returned; the prior fades as if those jobs were recorded."""
        self._observed = [0.0] * BUCKETS
        for index, weight in weights.items():
            if 0 <= index < BUCKETS and math.isfinite(weight) and weight > 0:
                self._observed[index] = weight
        self.samples = max(0, samples)
        fade = self._prior_fade ** min(self.samples, 10_000)
        self._prior = [w * fade for w in self._prior]
        self.dirty = False


@dataclass(frozen=True)
class PollPolicy:
    """Tunable bounds of every plan (seconds)."""

    floor: float = 0.2  # never poll more often than this
    dense: float = 0.9  # interval inside the observed range: the lag bound there
    ceiling: float = 15.0  # never wait longer than this between polls
    jitter: float = 0.02  # each delay is shortened by up to this fraction
    first_quantile: float = 0.01  # the earliest durations seen; the first poll is `dense` later
    last_quantile: float = 0.995  # dense until here, then back off
    overrun_growth: float = 0.25  # after ``last``: interval = dense + growth * overrun
    lag_budget: float = 0.025  # share of jobs that may be seen later than ``dense`` (lowest hazard)
    push_fallback: float = 30.0  # with push: the first safety poll, and the interval after it

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.dense <= self.ceiling:
            raise ValueError("need 0 < floor <= dense <= ceiling")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if not 0 <= self.first_quantile < self.last_quantile <= 1:
            raise ValueError("need 0 <= first_quantile < last_quantile <= 1")
        if not 0 <= self.lag_budget < 0.5:
            raise ValueError("lag_budget must be in [0, 0.5)")

    def plan(self, durations: ObservedDurations) -> PollPlan:
        first = max(self.floor, durations.quantile(self.first_quantile) + self.dense)
        last = max(first, durations.quantile(self.last_quantile))
        return PollPlan(self, first=first, last=last, stretches=self._stretches(durations, first, last))

    def _stretches(self, durations: ObservedDurations, first: float, last: float) -> tuple[Stretch, ...]:
        """Where polls may be sparser than ``dense``: the buckets of lowest hazard (completions
        per second among the jobs still running), until ``lag_budget`` of all jobs would be
        seen later than ``dense``. A poll there is worth least: few of the jobs it costs
        finish meanwhile. With a gap g > dense over a bucket of mass m, m * (g - dense) / g of
        the jobs land later than ``dense``, so g = dense / (1 - budget / m)."""
        rows = []
        for low, high, mass, survival in durations.buckets():
            if high <= first or low >= last or mass <= 0 or survival <= 0:
                continue
            rows.append(((mass / survival) / (high - low), max(low, first), min(high, last), mass))
        budget = self.lag_budget
        stretches: list[Stretch] = []
        for _, low, high, mass in sorted(rows):
            if budget <= 1e-9:
                break
            used = min(budget, mass * 0.75)
            gap = min(self.ceiling, self.dense / (1 - used / mass))
            stretches.append(Stretch(low, high, gap))
            budget -= used
        return tuple(sorted(stretches))

    def fallback_plan(self, durations: ObservedDurations) -> PollPlan:
        """With push: polls are a slow safety net for a callback that never comes."""
        first = max(self.push_fallback, 2 * durations.quantile(self.last_quantile))
        return PollPlan(self, first=first, last=first, dense_override=self.push_fallback,
                        growth_override=0.0, ceiling_override=first)


@dataclass(frozen=True, order=True)
class Stretch:
    """Polls every ``gap`` seconds (instead of ``dense``) between ``start`` and ``end``."""

    start: float
    end: float
    gap: float


@dataclass(frozen=True)
class PollPlan:
    """The delays between status polls of one job; pure given the ``random.Random`` passed in."""

    policy: PollPolicy
    first: float  # seconds after submit of the first poll
    last: float  # end of the dense range
    dense_override: float | None = None
    growth_override: float | None = None
    ceiling_override: float | None = None
    stretches: tuple[Stretch, ...] = ()

    @property
    def dense(self) -> float:
        return self.dense_override if self.dense_override is not None else self.policy.dense

    def next_delay(self, elapsed: float, rng: random.Random) -> float:
        """Seconds to sleep before the next poll, given seconds elapsed since the submit."""
        p = self.policy
        growth = self.growth_override if self.growth_override is not None else p.overrun_growth
        ceiling = self.ceiling_override if self.ceiling_override is not None else p.ceiling
        ceiling = max(ceiling, self.dense)
        if elapsed < self.first - p.floor:
            remaining = self.first - elapsed
            steps = math.ceil(remaining / ceiling - 1e-9)
            return remaining / max(1, steps)  # unjittered: it is one (or few) sleeps anyway
        if elapsed < self.last:
            delay = self.dense
            for stretch in self.stretches:
                if stretch.start <= elapsed < stretch.end:  # never overshoot into a dense part
                    left = stretch.end - elapsed
                    delay = min(stretch.gap, left) if left > self.dense else self.dense
                    break
        else:
            delay = min(ceiling, self.dense + growth * (elapsed - self.last))
        delay *= 1 - p.jitter * rng.random()
        return min(ceiling, max(p.floor, delay))

    def poll_times(self, until: float, rng: random.Random, *, start: float = 0.0) -> list[float]:
        """Every poll instant in (start, until] (for tests, benchmarks and reasoning)."""
        times: list[float] = []
        elapsed = start
        while True:
            elapsed += self.next_delay(elapsed, rng)
            if elapsed > until:
                return times
            times.append(elapsed)
