"""``/voices`` (the voice library), ``/privacy forget-me``, and the Report / Revoke buttons.

The extension ``cogs.voices``: ``setup`` adds :class:`VoicesCog` and :class:`PrivacyCog` and
registers the persistent buttons of ``cogs.voices.report``.
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
    from cogs.voices.privacy import PrivacyCog
    from cogs.voices.report import ReportButton, RevokeButton

    bot.add_dynamic_items(ReportButton, RevokeButton)
    await bot.add_cog(VoicesCog(bot))
    await bot.add_cog(PrivacyCog(bot))


async def teardown(bot: ChatterboxBot) -> None:
    from cogs.voices.report import ReportButton, RevokeButton

    bot.remove_dynamic_items(ReportButton, RevokeButton)
