"""Rate-limit plumbing shared by the client: the limiter protocol, Retry-After and backoff.

The limiter itself (fair between members, one per bot) is ``bot.gateway.ratelimit.RateGuard``;
the client only calls the two methods below, so this package does not depend on quotas.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol


class RateLimiter(Protocol):
    async def acquire(self, key: str) -> None:
        """Wait for a token; fair between keys (a key is a requester, e.g. a user id)."""

    def hold(self, seconds: float) -> None:
        """A 429 said Retry-After: hold every requester for ``seconds``."""


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    An HTTP date is taken relative to ``now`` (the injected clock), and a date in the past
    means 0. Absent or unparseable values give None. The caller bounds the result.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(attempt: int, rng: random.Random, *, base: float = 0.5, cap: float = 8.0) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)].

    Full jitter (rather than a fixed doubling) keeps many clients that failed together from
    retrying together (AWS Architecture Blog, "Exponential Backoff And Jitter").
    """
    return rng.uniform(0.0, min(cap, base * (2 ** max(0, attempt))))
