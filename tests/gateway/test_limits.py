"""Retry-After parsing (both forms, against an injected now) and backoff with full jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bot.gateway import backoff_delay, parse_retry_after

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), (" 0 ", 0.0), ("1.5", 1.5), ("120", 120.0), (None, None), ("", None), ("soon", None),
     ("-3", None), ("nan", None), ("inf", None)],
)
def test_delta_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_http_date_is_relative_to_the_injected_now() -> None:
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", NOW) == 30.0
    later = datetime(2026, 1, 1, 12, 0, 20, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", later) == 10.0


def test_http_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", NOW) == 0.0


def test_backoff_has_full_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempt in range(10):
        samples = [backoff_delay(attempt, rng, base=0.5, cap=8.0) for _ in range(200)]
        bound = min(8.0, 0.5 * 2**attempt)
        assert all(0.0 <= s <= bound for s in samples)
        assert max(samples) > bound * 0.8  # spread over the whole range, not a fixed step
        assert min(samples) < bound * 0.2
    assert backoff_delay(3, random.Random(1)) == backoff_delay(3, random.Random(1))
