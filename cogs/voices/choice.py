"""Which voice and tuning a ``/speak`` uses: the seam between ``/speak`` and the voice library.

Precedence, option by option: what the member typed > their ``/voices default`` > the saved
voice's own tuning (server voices carry one) > the built-in default (0.5 / 0.8 / 0.5). The
voice: ``voice:`` (a saved voice, picked from autocomplete or typed) > a one-off ``clip:``
attachment > the member's default voice > the built-in voice. ``voice`` and ``clip`` together
are refused: the member meant one of them and the bot should not guess which.

A saved voice goes into the job as the reference ``voice:<id>`` (``job_voice``), never as a
URL: the speech pipeline makes the clip's URL right before each POST (``bot.speech.voice_ref``),
so a job that waits longer than a signed URL lives still sends a fresh one. ``ready`` checks at
request time that the voice can be served (not revoked, somewhere to live), so a refusal costs
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.gateway.models import TTSParams
from bot.speech.voice_ref import voice_ref
from bot.voices import Voice, VoiceError, VoiceUnavailable
from bot.voices.library import voice_id_in_url
from cogs.common.guards import is_moderator
from cogs.voices.hosting import DiscordClipHost

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

BUILT_IN = TTSParams()
#: The autocomplete value offered to a member who has no voice to pick.
NO_VOICES_VALUE = "-"
NO_VOICES_TEXT = (
    "You have no saved voices you can use here yet: add one with `/voices add` (or attach a one-off `clip`)."
)


def voice_label(voice: Voice, user_id: int) -> str:
    """How a voice shows in autocomplete and lists: name and whose it is."""
    if voice.is_preset:
        whose = "server voice"
    elif voice.owner_id == user_id:
        whose = "yours, shared" if voice.scope == "server" else "yours, private"
    else:
        whose = "shared by a member"
    return f"{voice.name} ({whose})"


async def voice_choices(
    bot: ChatterboxBot, interaction: discord.Interaction[Any], current: str, *, own_only: bool = False
) -> list[app_commands.Choice[str]]:
    """Autocomplete for any ``voice``/``name`` option: one indexed query, at most 25 rows."""
    if interaction.guild_id is None:
        return []
    library = bot.core.voices
    if own_only:
        found = [
            v
            for v in await library.owned(interaction.guild_id, interaction.user.id)
            if v.name.casefold().startswith(current.casefold().strip())
        ][:25]
        if not found and not current and is_moderator(interaction):
            found = [
                v for v in await library.usable(interaction.guild_id, interaction.user.id) if v.is_preset
            ]
    else:
        found = await library.usable(interaction.guild_id, interaction.user.id, current)
    if not found and not current:
        return [
            app_commands.Choice(
                name="No saved voices here yet: add one with /voices add", value=NO_VOICES_VALUE
            )
        ]
    return [app_commands.Choice(name=voice_label(v, interaction.user.id)[:100], value=v.ref) for v in found]


BOTH_GIVEN = (
    "Pick either a saved `voice` or a one-off `clip`, not both: `voice` uses a voice from the "
    "library, `clip` clones the attached file just this once."
)


@dataclass(frozen=True, slots=True)
class SpeakVoice:
    """The saved voice (None: a one-off clip or the built-in voice) and the tuning to use."""

    voice: Voice | None
    exaggeration: float
    temperature: float
    cfg: float
    #: A note for the member (their default voice can't be used any more), else None.
    note: str | None = None


def _pick(*values: float | None) -> float:
    return next(v for v in values if v is not None)


async def choose(
    bot: ChatterboxBot,
    guild_id: int,
    user_id: int,
    *,
    voice: str | None,
    clip_given: bool,
    exaggeration: float | None,
    temperature: float | None,
    cfg: float | None,
) -> SpeakVoice:
    """Resolve ``/speak``'s voice options; ``VoiceError`` (a clear sentence) when it can't."""
    if voice is not None and clip_given:
        raise VoiceError("voice_and_clip", BOTH_GIVEN)
    library = bot.core.voices
    defaults = await library.defaults(guild_id, user_id)
    chosen: Voice | None = None
    note: str | None = None
    if voice is not None:
        if voice.strip() == NO_VOICES_VALUE:
            raise VoiceError("no_voices", NO_VOICES_TEXT)
        chosen = await library.resolve(guild_id, user_id, voice)
    elif not clip_given:
        chosen = defaults.voice
        if defaults.voice_problem:
            note = f"Your default voice was not used: {defaults.voice_problem}"
    return SpeakVoice(
        voice=chosen,
        exaggeration=_pick(
            exaggeration,
            defaults.exaggeration,
            chosen.exaggeration if chosen else None,
            BUILT_IN.exaggeration,
        ),
        temperature=_pick(
            temperature, defaults.temperature, chosen.temperature if chosen else None, BUILT_IN.temperature
        ),
        cfg=_pick(cfg, defaults.cfg, chosen.cfg if chosen else None, BUILT_IN.cfg),
        note=note,
    )


async def audio_url(bot: ChatterboxBot, voice: Voice) -> str:
    """An ``audio_url`` valid now (signed URL or a re-fetched Discord message). A job must not
    store it (it expires); give the job ``job_voice`` instead."""
    return await bot.core.voice_audio.audio_url(voice, DiscordClipHost(bot))


async def ready(bot: ChatterboxBot, voice: Voice) -> Voice:
    """The voice as it is now, if a job can use it; ``VoiceError`` (a clear sentence) if not."""
    return await bot.core.voice_audio.check(voice)


def job_voice(voice: Voice) -> str:
    """What a job stores as its ``voice_url`` for a saved voice: ``voice:<id>``."""
    return voice_ref(voice.id)


async def voice_name_of(bot: ChatterboxBot, url: str | None) -> str | None:
    """What a card calls an earlier job's voice: the saved voice's name (``voice:<id>``),
    else the clip's file name from its URL; None for the built-in voice."""
    if not url:
        return None
    voice_id = voice_id_in_url(url)
    if voice_id is not None:
        voice = await bot.core.voices.get(voice_id)
        return voice.name if voice is not None else "a deleted voice"
    return url.rsplit("/", 1)[-1].split("?", 1)[0]


async def voice_of_url(bot: ChatterboxBot, guild_id: int | None, url: str | None) -> Voice | None:
    """The saved voice behind an earlier job's ``voice_url`` (``voice:<id>``, or an older row's
    clip URL); Re-roll gives the new job the voice, not the old URL;
    None for a one-off clip or the built-in voice; ``VoiceError`` when that voice is gone."""
    voice_id = voice_id_in_url(url)
    if voice_id is None or guild_id is None:
        return None
    voice = await bot.core.voices.get(voice_id)
    if voice is None or voice.guild_id != guild_id:
        raise VoiceUnavailable("deleted", "The voice of this result was deleted, so it can't be re-rolled.")
    if voice.revoked:
        raise VoiceUnavailable(
            "revoked", f"The voice “{voice.name}” was revoked here, so it can't be re-rolled."
        )
    return voice
