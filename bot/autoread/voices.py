"""The seam to members' default voices: ``VoiceLookup(guild_id, user_id) -> ReadVoice``.

Every read asks the lookup at its turn (just before its job starts, so a default changed in
the meantime counts and a clip URL is fresh). The bot's lookup is ``cogs.autoread.voices``:
the member's ``/voices default`` voice and tuning, chosen and turned into an ``audio_url`` by
the same helpers as ``/speak`` (``cogs.voices.choice``). A default voice that cannot be used
(deleted, revoked, made private, nowhere to host its clip) gives the built-in voice with the
member's own tuning and says why in ``problem``; the reader logs it and reads anyway.
``builtin_voice`` answers the built-in voice for everyone (the service's default, for the
benchmark and for a bot without the voice library).
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
    #: Why the member's default voice is not used (None: it is, or they have none).
    problem: str | None = None


VoiceLookup = Callable[[int, int], Awaitable[ReadVoice]]


async def builtin_voice(guild_id: int, user_id: int) -> ReadVoice:
    return ReadVoice()
