"""Checking moderators' ``/quota`` input before anything is written (pure, no ``discord``).

Discord's client enforces the option ranges we declare, but a stale or hostile client can
send anything, so every value is checked again here and by ``bot.quotas.admin``. A command
that changes several things validates all of them first, so a bad value changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from bot.quotas import FIELD_LIMITS, PolicyError
from bot.quotas.admin import MAX_COST_CAP, MAX_DAILY_BUDGET
from bot.quotas.policy import validate_field

#: Words that switch a budget or cap off.
OFF_WORDS = frozenset({"off", "none", "no", "unlimited"})
_DOLLARS = re.compile(r"^\$?\s*(?:\d{1,9}(?:\.\d{0,2})?|\.\d{1,2})$")
REASON_MAX = 200


def policy_changes(values: Mapping[str, int | None]) -> dict[str, int]:
    """The fields a moderator gave (None = not given), each checked; at least one."""
    given = {name: value for name, value in values.items() if value is not None}
    if not given:
        names = ", ".join(FIELD_LIMITS)
        raise PolicyError(f"Give at least one setting to change: {names}.")
    checked: dict[str, int] = {}
    for name, value in given.items():
        result = validate_field(name, value)
        if result is not None:
            checked[name] = result
    return checked


def parse_dollars(text: str) -> Decimal | None:
    """``"2.50"``, ``"$2.50"``, ``"3"``, ``".5"`` → dollars; ``"off"`` → None (no cap).

    Refuses other spellings (``"1e3"``, ``"-1"``, ``"2.505"``, ``"nan"``) with a sentence
    that shows the expected form, and amounts above the allowed cap.
    """
    cleaned = text.strip().replace(",", "")
    if cleaned.lower() in OFF_WORDS:
        return None
    if not _DOLLARS.match(cleaned):
        raise PolicyError(
            f"The cost cap must be an amount in dollars with at most two decimals, like 2.50 "
            f'(or "off" for no cap); got {text.strip()[:40]!r}.'
        )
    amount = Decimal(cleaned.lstrip("$").strip())
    if amount > MAX_COST_CAP:
        raise PolicyError(f"The cost cap must be from $0 to ${MAX_COST_CAP:,} per day (got ${amount:,}).")
    return amount


def check_budget(requests: int | None) -> int | None:
    if requests is None:
        return None
    if isinstance(requests, bool) or not isinstance(requests, int) or not 0 <= requests <= MAX_DAILY_BUDGET:
        raise PolicyError(f"The daily request budget must be a whole number from 0 to {MAX_DAILY_BUDGET:,}.")
    return requests


def check_reason(reason: str | None) -> str | None:
    """A block or pause reason: trimmed, empty → None, at most ``REASON_MAX`` characters."""
    if reason is None or not reason.strip():
        return None
    reason = " ".join(reason.split())
    if len(reason) > REASON_MAX:
        raise PolicyError(f"The reason can be at most {REASON_MAX} characters (got {len(reason)}).")
    return reason
