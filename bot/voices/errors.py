"""``VoiceError``: every refusal of the voice library, worded for the member who caused it.

``user_message`` is what the member sees (one sentence, no internals); ``code`` lets a caller
or a test tell refusals apart without matching on wording. The core never includes FFmpeg's
or the database's text here: that goes to the log.
"""

from __future__ import annotations

from bot.errors import UserFacingError


class VoiceError(UserFacingError):
    """A refusal with a message fit for the member (``user_message``, as every ``UserFacingError``)."""

    def __init__(self, code: str, user_message: str) -> None:
        super().__init__(user_message, user_message=user_message)
        self.code = code


class ClipRejected(VoiceError):
    """The uploaded clip cannot become a voice (not audio, too short, silent, clipped…)."""


class VoiceUnavailable(VoiceError):
    """The voice exists for nobody here: unknown, private, revoked, or deleted meanwhile."""
