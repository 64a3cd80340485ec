"""Typed errors of the Chatterbox gateway client.

Every error carries three facts the layers above need, so none of them parses messages:

- ``user_message``: one short sentence a Discord member understands: what happened, in plain
  words. It never contains a secret, a URL, the provider's own error text (that goes into
  ``str(error)``, for the log) or a stack trace, and it says nothing about money or trying
  again: the caller knows whether the quota was refunded and says so once (a charged failure
  must not invite a second, charged attempt).
- ``refund``: whether the quota reserved for this request should be given back (DESIGN rule 3).
  It is True only when the provider provably did not charge: the request was refused
  (400/401/402/403/429), rejected by our own validation, never left this machine (connection
  refused, DNS failure), or the job ended in ERROR. It is False whenever the job may have been
  charged: COMPLETED/FAILED, a POST that may have reached the gateway (timeout or reset after
  sending, 5xx), and any failure while polling or downloading an accepted job.
- ``status``: the HTTP status code when there was one.

``str(error)`` is a developer-facing line (for logs); it holds no secrets either.
"""

from __future__ import annotations

from typing import Any

from bot.errors import UserFacingError


class GatewayError(UserFacingError):
    """Base class: something went wrong talking to the Chatterbox gateway."""

    default_user_message = "Something went wrong with the TTS service."
    default_refund = False

    def __init__(
        self,
        message: str,
        *,
        user_message: str | None = None,
        refund: bool | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, user_message=user_message)
        self.message = message
        self.refund = self.default_refund if refund is None else refund
        self.status = status
        self.request_id = request_id

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"refund={self.refund!r}, request_id={self.request_id!r})"
        )


class InvalidTTSRequest(GatewayError):
    """The request broke a rule we check before any network call; nothing was sent.

    ``user_message`` names the field and the allowed range, e.g.
    "`exaggeration` must be between 0 and 1 (got 1.5)."
    """

    default_refund = True

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid {field}: {message}", user_message=message, refund=True)
        self.field = field

    def __repr__(self) -> str:
        return f"InvalidTTSRequest(field={self.field!r}, {self.message!r})"


class BadRequest(GatewayError):
    """400: the gateway refused the request (bad parameter, model not found). Not charged."""

    default_user_message = "The TTS service rejected this request (often the voice clip or a setting)."
    default_refund = True


class Unauthorized(GatewayError):
    """401: the API key is missing or wrong. An operator problem, not the member's."""

    default_user_message = (
        "The bot's TTS service account is not set up correctly; only the bot's owner can fix that."
    )
    default_refund = True


class InsufficientBalance(GatewayError):
    """402: the provider account is out of money. ``required`` is the amount it asked for, if given."""

    default_user_message = (
        "The bot's TTS account is out of credit; text-to-speech is paused on every server until "
        "its owner tops it up."
    )
    default_refund = True

    def __init__(self, message: str, *, required: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.required = required


class Forbidden(GatewayError):
    """403: the key is valid but not allowed to use this API."""

    default_user_message = "The TTS service refused access for this bot; only the bot's owner can fix that."
    default_refund = True


class RateLimited(GatewayError):
    """429: too many requests. ``retry_after`` (seconds, bounded) when the gateway said so."""

    default_refund = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        if "user_message" not in kwargs or kwargs["user_message"] is None:
            kwargs["user_message"] = rate_limited_user_message(retry_after)
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


def rate_limited_user_message(retry_after: float | None) -> str:
    if retry_after is None or retry_after < 1:
        return "The TTS service is busy right now; please try again in a moment."
    if retry_after < 90:
        return f"The TTS service is busy right now; please try again in about {round(retry_after)} seconds."
    return f"The TTS service is busy right now; please try again in about {round(retry_after / 60)} minutes."


class ServerError(GatewayError):
    """5xx: the gateway failed. Raised by ``submit`` it means the job may exist and be charged."""

    default_user_message = "The TTS service had an internal error."
    default_refund = False


class GatewayUnreachable(GatewayError):
    """A network failure. ``may_have_reached`` is False only when the request provably was
    never sent (connection refused, DNS failure, connect timeout); then it is refunded."""

    default_user_message = "Couldn't reach the TTS service."

    def __init__(self, message: str, *, may_have_reached: bool, **kwargs: Any) -> None:
        kwargs.setdefault("refund", not may_have_reached)
        super().__init__(message, **kwargs)
        self.may_have_reached = may_have_reached


class ProtocolError(GatewayError):
    """The gateway answered something we cannot understand (bad JSON, unknown status, ...)."""

    default_user_message = "The TTS service sent an answer the bot could not understand."
    default_refund = False


class JobFailed(GatewayError):
    """The job ended FAILED (bad input such as an unusable voice clip). The provider charges it."""

    default_user_message = (
        "The TTS service could not make this audio (often the voice clip: try another clip, or no clip)."
    )
    default_refund = False

    def __init__(self, message: str, *, error: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.error = error


class JobErrored(GatewayError):
    """The job ended ERROR (a system error at the provider). Not charged, so refunded."""

    default_user_message = "The TTS service had a system error."
    default_refund = True


class WaitTimeout(GatewayError):
    """The job did not finish within ``max_wait``. It may still finish and be charged."""

    default_user_message = "The TTS service took too long with this request."
    default_refund = False


class DownloadError(GatewayError):
    """The finished audio could not be fetched: too big, not audio, or the transfer failed.

    ``reason`` is one of "too_big", "wrong_type", "network", "http", "bad_url", "timeout".
    """

    default_user_message = "The audio was made but could not be downloaded."
    default_refund = False

    def __init__(self, message: str, *, reason: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason
