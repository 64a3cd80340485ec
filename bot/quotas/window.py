"""The quota day and how waiting times read.

A quota "day" runs from the reset hour (UTC, whole hour) to the same hour the next day; the
guild may override the bot-wide ``QUOTA_RESET_HOUR_UTC``. Waiting times are rounded UP
("resets in 3 h 13 min" rather than promising a minute too early).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta


def day_start(now: datetime, reset_hour: int) -> datetime:
    """The latest reset moment at or before ``now``."""
    now = now.astimezone(UTC)
    start = now.replace(hour=reset_hour, minute=0, second=0, microsecond=0)
    return start if start <= now else start - timedelta(days=1)


def next_reset(now: datetime, reset_hour: int) -> datetime:
    """The first reset moment after ``now``."""
    return day_start(now, reset_hour) + timedelta(days=1)


def format_wait(seconds: float) -> str:
    """``8 s``, ``45 min``, ``3 h 12 min``, ``2 h`` (always rounded up)."""
    total = max(1, math.ceil(seconds - 1e-9))
    if total < 60:
        return f"{total} s"
    minutes = math.ceil(total / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def format_until(moment: datetime, now: datetime) -> str:
    return format_wait((moment - now).total_seconds())
