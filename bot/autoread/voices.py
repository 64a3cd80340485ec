"""The seam to members' default voices: ``VoiceLookup(guild_id, user_id) -> ReadVoice``.

Until the voice library (``bot.voices``, "Saved voices with consent") is on this branch,
``builtin_voice`` answers for everyone: the provider's built-in voice with its default tuning.
Once it is, the cog passes a lookup built on the member's saved defaults instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.gateway.models import TTSParams


@dataclass(frozen=True)
class ReadVoice:
    """The voice a member's messages are read in: a reference clip URL (None: built-in)."""

    voice_url: str | None = None
    params: TTSParams = field(default_factory=TTSParams)
    name: str | None = None
    #: SHA-256 of the reference clip's bytes: the audio cache's key for this voice.
    clip_sha256: str | None = None


VoiceLookup = Callable[[int, int], Awaitable[ReadVoice]]


async def builtin_voice(guild_id: int, user_id: int) -> ReadVoice:
    return ReadVoice()
