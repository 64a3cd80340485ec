"""Quota policies and how the one that applies to a member is found.

Five fields, each an ``int`` or ``None`` (= not set here, inherit):

- ``requests_per_day``: gateway requests per quota day (a long text split into N chunks is N).
- ``chars_per_day``: characters of text per quota day (counted once per text).
- ``cooldown_seconds``: time between the starts of two requests.
- ``max_in_flight``: requests of the member that may be unfinished at once.
- ``max_chars_per_request``: the longest text one request may have.

Resolution, per field: the member's own override, else the most generous value among the
policies of the member's roles that set it, else the guild default, else the bot-wide default
from the settings (``QUOTA_*``). "Most generous" is the largest value, except for
``cooldown_seconds`` where it is the smallest (a shorter wait is more generous).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from bot.config import Settings
from bot.quotas.errors import PolicyError

#: The limits a policy can set, in the order moderators see them. ``quota_policies`` has one
#: nullable column per name (None = inherit from the next level).
POLICY_FIELDS = (
    "requests_per_day",
    "chars_per_day",
    "cooldown_seconds",
    "max_in_flight",
    "max_chars_per_request",
)


class PolicyScope(StrEnum):
    GUILD = "guild"
    ROLE = "role"
    USER = "user"


# Allowed range of each field (inclusive), for moderators' settings.
FIELD_LIMITS: Mapping[str, tuple[int, int]] = {
    "requests_per_day": (0, 100_000),
    "chars_per_day": (0, 10_000_000),
    "cooldown_seconds": (0, 86_400),
    "max_in_flight": (1, 100),
    "max_chars_per_request": (1, 100_000),
}
# Fields where a smaller value is the more generous one.
_SMALLER_IS_GENEROUS = frozenset({"cooldown_seconds"})


@dataclass(frozen=True)
class Policy:
    """One level's settings; ``None`` fields inherit."""

    requests_per_day: int | None = None
    chars_per_day: int | None = None
    cooldown_seconds: int | None = None
    max_in_flight: int | None = None
    max_chars_per_request: int | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[Any, Any]) -> Policy:
        return cls(**{name: values.get(name) for name in POLICY_FIELDS})

    def as_dict(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in POLICY_FIELDS}

    @property
    def is_empty(self) -> bool:
        return all(value is None for value in self.as_dict().values())


@dataclass(frozen=True)
class ResolvedPolicy:
    """The limits that apply to one member: every field decided."""

    requests_per_day: int
    chars_per_day: int
    cooldown_seconds: int
    max_in_flight: int
    max_chars_per_request: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ResolvedPolicy:
        return cls(
            requests_per_day=settings.quota_requests_per_day,
            chars_per_day=settings.quota_chars_per_day,
            cooldown_seconds=settings.quota_cooldown_seconds,
            max_in_flight=settings.quota_max_in_flight,
            max_chars_per_request=settings.max_chars_per_request,
        )

    def overlaid(self, policy: Policy | None) -> ResolvedPolicy:
        """This policy with every field ``policy`` sets replaced."""
        if policy is None:
            return self
        return replace(self, **{k: v for k, v in policy.as_dict().items() if v is not None})


def most_generous(policies: Iterable[Policy]) -> Policy:
    """Per field, the most generous value any of ``policies`` sets (None if none sets it)."""
    chosen: dict[str, int | None] = dict.fromkeys(POLICY_FIELDS)
    for policy in policies:
        for name, value in policy.as_dict().items():
            if value is None:
                continue
            current = chosen[name]
            if current is None:
                chosen[name] = value
            elif name in _SMALLER_IS_GENEROUS:
                chosen[name] = min(current, value)
            else:
                chosen[name] = max(current, value)
    return Policy(**chosen)


def resolve(
    defaults: ResolvedPolicy,
    *,
    guild: Policy | None = None,
    roles: Iterable[Policy] = (),
    user: Policy | None = None,
) -> ResolvedPolicy:
    """user override > most generous role > guild default > built-in defaults, per field."""
    return defaults.overlaid(guild).overlaid(most_generous(roles)).overlaid(user)


class PolicySource(StrEnum):
    """Which level decided a field (for refusals that say who sets the limit)."""

    USER = "user"
    ROLE = "role"
    GUILD = "guild"
    BOT = "bot"


def source_of(
    name: str, *, guild: Policy | None = None, roles: Iterable[Policy] = (), user: Policy | None = None
) -> PolicySource:
    """The level ``resolve`` takes field ``name`` from."""
    if user is not None and getattr(user, name) is not None:
        return PolicySource.USER
    if any(getattr(role, name) is not None for role in roles):
        return PolicySource.ROLE
    if guild is not None and getattr(guild, name) is not None:
        return PolicySource.GUILD
    return PolicySource.BOT


def label(name: str) -> str:
    return name.replace("_", " ")


def validate_field(name: str, value: object) -> int | None:
    """A checked field value (``None`` clears it); ``PolicyError`` says what is allowed."""
    if name not in FIELD_LIMITS:
        known = ", ".join(f.name for f in fields(Policy))
        raise PolicyError(f"Unknown quota setting {name!r}; the settings are: {known}.")
    if value is None:
        return None
    low, high = FIELD_LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{label(name).capitalize()} must be a whole number from {low:,} to {high:,}.")
    if not low <= value <= high:
        raise PolicyError(
            f"{label(name).capitalize()} must be from {low:,} to {high:,} (got {value:,})."
        )
    return value
