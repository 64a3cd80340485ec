"""Policy resolution and the quota day, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.quotas import FIELD_LIMITS, Policy, PolicyError, ResolvedPolicy, resolve
from bot.quotas.policy import most_generous, validate_field
from bot.quotas.window import day_start, format_wait, next_reset
from tests.quotas.conftest import make_settings

DEFAULTS = ResolvedPolicy(
    requests_per_day=20, chars_per_day=5000, cooldown_seconds=10, max_in_flight=3, max_chars_per_request=1000
)


def test_defaults_come_from_settings() -> None:
    assert ResolvedPolicy.from_settings(make_settings()) == DEFAULTS
    assert ResolvedPolicy.from_settings(make_settings(quota_requests_per_day=3)).requests_per_day == 3


def test_each_level_overrides_the_one_below_per_field() -> None:
    guild = Policy(requests_per_day=50, chars_per_day=100)
    roles = [Policy(requests_per_day=5), Policy(requests_per_day=30, cooldown_seconds=20)]
    user = Policy(requests_per_day=1)
    assert resolve(DEFAULTS) == DEFAULTS
    assert resolve(DEFAULTS, guild=guild).requests_per_day == 50
    with_roles = resolve(DEFAULTS, guild=guild, roles=roles)
    assert with_roles.requests_per_day == 30  # most generous role beats the guild default
    assert with_roles.chars_per_day == 100  # no role sets it: the guild default
    assert with_roles.cooldown_seconds == 20  # a role may also be stricter than the default
    assert with_roles.max_in_flight == 3  # nobody sets it: built-in
    full = resolve(DEFAULTS, guild=guild, roles=roles, user=user)
    assert full.requests_per_day == 1 and full.cooldown_seconds == 20


def test_most_generous_cooldown_is_the_shortest() -> None:
    merged = most_generous([Policy(cooldown_seconds=30, max_in_flight=1), Policy(cooldown_seconds=5),
                            Policy(max_in_flight=4)])
    assert merged == Policy(cooldown_seconds=5, max_in_flight=4)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("requests_per_day", -1, "Requests per day must be from 0 to 100,000 (got -1)."),
        ("max_in_flight", 0, "Max in flight must be from 1 to 100 (got 0)."),
        ("cooldown_seconds", 100_000, "Cooldown seconds must be from 0 to 86,400 (got 100,000)."),
        ("chars_per_day", 2.5, "Chars per day must be a whole number from 0 to 10,000,000."),
        ("chars_per_day", True, "Chars per day must be a whole number"),
        ("colour", 3, "Unknown quota setting 'colour'"),
    ],
)
def test_bad_values_are_explained(name: str, value: object, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        validate_field(name, value)
    assert str(caught.value).startswith(message)


def test_limits_cover_every_field() -> None:
    assert set(FIELD_LIMITS) == set(Policy().as_dict())
    for name, (low, high) in FIELD_LIMITS.items():
        assert validate_field(name, low) == low and validate_field(name, high) == high
        assert validate_field(name, None) is None


@pytest.mark.parametrize(
    ("now", "hour", "start"),
    [
        (datetime(2026, 1, 1, 12, 0, tzinfo=UTC), 0, datetime(2026, 1, 1, 0, 0, tzinfo=UTC)),
        (datetime(2026, 1, 1, 5, 59, tzinfo=UTC), 6, datetime(2025, 12, 31, 6, 0, tzinfo=UTC)),
        (datetime(2026, 1, 1, 6, 0, tzinfo=UTC), 6, datetime(2026, 1, 1, 6, 0, tzinfo=UTC)),
    ],
)
def test_day_starts_at_the_reset_hour(now: datetime, hour: int, start: datetime) -> None:
    assert day_start(now, hour) == start
    assert (next_reset(now, hour) - start).days == 1


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "1 s"),
        (8, "8 s"),
        (59.5, "1 min"),
        (90, "2 min"),
        (3600, "1 h"),
        (3 * 3600 + 12 * 60, "3 h 12 min"),
        (3 * 3600 + 12 * 60 + 1, "3 h 13 min"),
    ],
)
def test_waits_read_naturally_and_round_up(seconds: float, text: str) -> None:
    assert format_wait(seconds) == text
