"""``/voices`` (the voice library), ``/privacy forget-me``, and the Report / Revoke buttons.

The extension ``cogs.voices``: ``setup`` adds :class:`VoicesCog` and :class:`PrivacyCog`,
registers the persistent buttons of ``cogs.voices.report``, and hands the core its Discord
clip host (``VoiceAudio.use_host``): without ``PUBLIC_BASE_URL`` the speech pipeline makes a
saved voice's URL from the storage channel right before each POST, including for jobs the
bot resumes after a restart (the extensions load in ``setup_hook``, before any resume).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import ChatterboxBot


# The imports are inside: ``cogs.speak`` imports ``cogs.voices.choice`` and ``cogs.voices.report``
# (the seam for saved voices and the Report button), and importing a submodule runs this file
# first; importing the cogs here would import ``cogs.speak`` back before it is complete.
async def setup(bot: ChatterboxBot) -> None:
    from cogs.voices.cog import VoicesCog
    from cogs.voices.hosting import DiscordClipHost
    from cogs.voices.privacy import PrivacyCog
    from cogs.voices.report import ReportButton, RevokeButton

    if bot.services is not None:  # None only for `chatterbox-bot sync` (commands, no core)
        bot.core.voice_audio.use_host(DiscordClipHost(bot))
    bot.add_dynamic_items(ReportButton, RevokeButton)
    await bot.add_cog(VoicesCog(bot))
    await bot.add_cog(PrivacyCog(bot))


async def teardown(bot: ChatterboxBot) -> None:
    from cogs.voices.report import ReportButton, RevokeButton

    if bot.services is not None:
        bot.core.voice_audio.use_host(None)
    bot.remove_dynamic_items(ReportButton, RevokeButton)
