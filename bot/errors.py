"""``UserFacingError``: the base of every refusal or failure a member (or the CLI's user) sees.

The families derive from it — ``bot.gateway.errors.GatewayError``, the quota refusals in
``bot.quotas`` (``QuotaExceeded``, ``PolicyError``, ``SubmissionsPaused``), the speech
pipeline's ``bot.speech.errors.SpeechError``, ``bot.audio.AudioError`` and the voice
library's ``bot.voices.errors.VoiceError`` — so a front end renders any of them the same
way: ``user_message`` is one sentence fit to show, without secrets; ``str(error)`` is the
developer's line for the log. Anything that is not a
``UserFacingError`` is a bug: the member gets an apology with an error id, the log the trace.
"""

from __future__ import annotations


class UserFacingError(Exception):
    """A failure whose ``user_message`` may be shown as it is."""

    default_user_message = "Something went wrong; please try again later."

    def __init__(self, message: str | None = None, *, user_message: str | None = None) -> None:
        self.user_message = user_message or self.default_user_message
        super().__init__(message or self.user_message)
