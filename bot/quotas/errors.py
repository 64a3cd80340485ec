"""Refusals the quota layer raises. Each carries a message a Discord member understands.

``QuotaExceeded.reason`` (also ``str(exc)`` and ``.user_message``) says which limit was hit and
when it frees up; ``resets_at`` is that moment (None when waiting does not help, e.g. a text
longer than the per-request limit). ``code`` names the limit for programs (tests, logs).
"""

from __future__ import annotations

from datetime import datetime

from bot.errors import UserFacingError


class QuotaExceeded(UserFacingError):
    """``reserve`` refused: a limit would be exceeded (nothing was recorded)."""

    def __init__(self, reason: str, resets_at: datetime | None = None, *, code: str = "quota") -> None:
        super().__init__(reason, user_message=reason)
        self.reason = reason
        self.resets_at = resets_at
        self.code = code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r}, "
            f"resets_at={self.resets_at!r})"
        )


class GuildPaused(QuotaExceeded):
    """A moderator paused the bot on this server."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, None, code="guild_paused")


class PolicyError(UserFacingError, ValueError):
    """A moderator's setting is out of range; the message says the allowed range."""

    def __init__(self, message: str) -> None:
        super().__init__(message, user_message=message)


class UnknownReservation(LookupError):
    """No reservation with that id."""


class SettlementError(ValueError):
    """Settlement totals that contradict the reservation (more than reserved, or going back)."""
