"""A saved voice in a speech job: stored as a reference, made into a URL right before each POST.

A saved voice's ``audio_url`` does not last: a signed ``/clips`` URL expires after
``VOICE_CLIP_URL_TTL_SECONDS`` (15 minutes by default), a Discord CDN link within about a
day. A job can wait longer than that before one of its parts is sent (the shared rate guard,
the chunk slots, a restart and the reconciler's resume), and a provider that cannot fetch the
clip fails the request *and charges for it*. So a job made with a saved voice does not store
a URL: its ``jobs.voice_url`` column holds the reference ``voice:<voice id>`` (no migration:
the column is free text), and the runner asks the ``VoiceUrlResolver`` for a fresh URL right
before each POST (``bot.speech.runner``, the submit step) — also for parts of jobs resumed
after a restart. The resolver is ``bot.voices.urls.VoiceAudio``, injected by
``bot.services``; nothing here knows how a clip is hosted.

A voice revoked or deleted between the request and a part's POST: the resolver raises
``VoiceUnusable``, that part (and every later one) is not sent, and the job fails with the
resolver's sentence; unsent parts are refunded (DESIGN rule 3).

One-off clips (``/speak clip:``, a Discord attachment URL) and the CLI's ``--voice-url`` are
real URLs and are stored and sent as they are.
"""

from __future__ import annotations

import re
from typing import Protocol

from bot.speech.errors import SpeechError

PREFIX = "voice:"
_REF = re.compile(r"voice:([0-9a-f]{32})")


def voice_ref(voice_id: str) -> str:
    """The value a job stores in ``voice_url`` for a saved voice."""
    if not _REF.fullmatch(PREFIX + voice_id):
        raise ValueError(f"not a voice id: {voice_id!r}")
    return PREFIX + voice_id


def referenced_voice(value: str | None) -> str | None:
    """The saved voice's id when ``value`` is a ``voice:<id>`` reference, else None."""
    match = _REF.fullmatch(value or "")
    return match.group(1) if match else None


def is_reference(value: str | None) -> bool:
    """True for anything starting with ``voice:`` (a well-formed reference or not)."""
    return (value or "").startswith(PREFIX)


class VoiceUnusable(SpeechError):
    """The saved voice of a job can't be used any more (deleted, revoked, nowhere to live);
    ``user_message`` names it when known. Raised before the POST: nothing was sent."""

    default_user_message = "The saved voice of this request can't be used any more."


class VoiceUrlResolver(Protocol):
    """Makes a saved voice's ``audio_url`` at the moment a part is sent."""

    async def fresh_audio_url(self, voice_id: str, *, name: str | None = None) -> str:
        """A URL the provider can fetch now; ``VoiceUnusable`` when the voice was deleted or
        revoked, or has nowhere to live. ``name``: the voice's name as the request knew it
        (for the message when the voice is gone; None for a resumed job)."""
        ...
