"""The voice a member's messages are read in: their ``/voices default``, as ``/speak`` uses it.

``ReadVoices`` is the bot's ``VoiceLookup`` (``bot.autoread.voices``). It goes through the same
helpers as ``/speak`` with no options typed (``cogs.voices.choice``): ``choose`` for the saved
voice and the tuning (the member's default tuning > the voice's own > the built-in values),
``ready`` to check the voice can be used now and ``job_voice`` for what the job stores (the
reference ``voice:<id>``: the clip URL is made right before each POST, so a read that waits
in the queue never sends an expired link). A change to how ``/speak`` turns a saved voice
into a job's voice applies to reading as well.

Fallbacks (never a dropped message): no default voice → the built-in voice with the member's
default tuning; a default that was deleted (the database clears it), revoked or made private,
or whose clip cannot be hosted now (``VoiceError`` from ``ready``, e.g. no
``PUBLIC_BASE_URL`` and no ``/voices storage`` channel) → the built-in voice with the member's
tuning, and ``ReadVoice.problem`` says why (the reader logs it; ``/autoread me status`` shows
it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.autoread.voices import ReadVoice
from bot.gateway.models import TTSParams
from bot.voices import VoiceError
from cogs.voices import choice as _voices

if TYPE_CHECKING:
    from bot.app import ChatterboxBot


def _params(chosen: _voices.SpeakVoice) -> TTSParams:
    return TTSParams(exaggeration=chosen.exaggeration, temperature=chosen.temperature, cfg=chosen.cfg)


async def _defaults(
    bot: ChatterboxBot, guild_id: int, user_id: int, *, with_voice: bool = True
) -> _voices.SpeakVoice:
    """What ``/speak`` with no options would use. ``with_voice=False``: the member's tuning
    without a saved voice (as for a one-off clip: a voice's own tuning goes with the voice)."""
    return await _voices.choose(
        bot, guild_id, user_id, voice=None, clip_given=not with_voice,
        exaggeration=None, temperature=None, cfg=None,
    )


class ReadVoices:
    """``VoiceLookup`` over the voice library; see the module docstring."""

    def __init__(self, bot: ChatterboxBot) -> None:
        self.bot = bot

    async def __call__(self, guild_id: int, user_id: int) -> ReadVoice:
        bot = self.bot
        chosen = await _defaults(bot, guild_id, user_id)
        problem = chosen.note
        saved = chosen.voice
        if saved is not None:
            try:
                saved = await _voices.ready(bot, saved)
            except VoiceError as exc:
                problem = exc.user_message
            else:
                # The job stores the reference; its clip URL is made right before each POST.
                return ReadVoice(_voices.job_voice(saved), _params(chosen), name=saved.name,
                                 clip_sha256=saved.clip_sha256)
            chosen = await _defaults(bot, guild_id, user_id, with_voice=False)
        return ReadVoice(params=_params(chosen), problem=problem)

    async def describe(self, guild_id: int, user_id: int) -> str:
        """One line for ``/autoread me status``: which voice and tuning a message is read in
        (no clip URL is made for it)."""
        chosen = await _defaults(self.bot, guild_id, user_id)
        tuning = (
            f"exaggeration {chosen.exaggeration:g}, temperature {chosen.temperature:g}, cfg {chosen.cfg:g}"
        )
        if chosen.voice is not None:
            return f"They are read in your default voice “{chosen.voice.name}” ({tuning})."
        line = f"They are read in the built-in voice ({tuning})."
        if chosen.note:
            line += f" {chosen.note}"
        else:
            line += " `/voices default` picks one of your saved voices."
        return line
