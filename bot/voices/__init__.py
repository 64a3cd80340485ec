"""Saved voices: clips with consent, sharing, defaults, revoking, signed clip URLs, forgetting.

* ``library`` — ``VoiceLibrary``: the voices table and its rules (consent, limits, scopes).
* ``clips`` — checking and normalising an uploaded clip with FFmpeg.
* ``urls`` — a fresh ``audio_url`` right before each POST (jobs store ``voice:<id>``): signed
  ``/clips/…`` URLs or a Discord message.
* ``web`` — the ``/clips`` sub-application for the bot's HTTP server.
* ``privacy`` — ``/privacy forget-me`` and ``db prune``.

No discord import here: the Discord side (``ClipHost``) lives in ``cogs.voices``.
"""

from bot.voices.clips import NormalisedClip, normalise_clip
from bot.voices.errors import ClipRejected, VoiceError, VoiceUnavailable
from bot.voices.library import (
    AUTOCOMPLETE_LIMIT,
    JobReport,
    MemberDefaults,
    Voice,
    VoiceLibrary,
    VoiceLimits,
)
from bot.voices.privacy import (
    Forgotten,
    anonymise_forgotten_money,
    forget_member,
    longest_cooldown,
    prune_jobs,
)
from bot.voices.urls import ClipHost, ClipSigner, VoiceAudio

__all__ = [
    "AUTOCOMPLETE_LIMIT",
    "ClipHost",
    "ClipRejected",
    "ClipSigner",
    "Forgotten",
    "JobReport",
    "MemberDefaults",
    "NormalisedClip",
    "Voice",
    "VoiceAudio",
    "VoiceError",
    "VoiceLibrary",
    "VoiceLimits",
    "VoiceUnavailable",
    "anonymise_forgotten_money",
    "forget_member",
    "longest_cooldown",
    "normalise_clip",
    "prune_jobs",
]
