"""Errors of the speech pipeline itself (the gateway's own are in ``bot.gateway.errors``).

``SpeechJob.result()`` raises the error that ended the job: a ``GatewayError`` subclass when
the gateway said no or the job failed there, or one of these. Like every error a member may
see, each has a ``user_message`` without secrets.
"""

from __future__ import annotations

from bot.errors import UserFacingError


class SpeechError(UserFacingError):
    """Base class; ``user_message`` is fit for Discord and the CLI."""

    default_user_message = "Something went wrong while making the audio."


class SpeechCancelled(SpeechError):
    """The requester cancelled the job."""

    default_user_message = "Cancelled."


class SpeechInterrupted(SpeechError):
    """The service closed while the job ran; a submitted job is resumed at the next start."""

    default_user_message = "The bot is restarting; submitted audio is delivered when it is back."


class SpeechFailed(SpeechError):
    """The job failed for a reason outside the gateway (unreadable audio, a bug)."""
