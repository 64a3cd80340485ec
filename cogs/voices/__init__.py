"""``/voices`` (the voice library), ``/privacy forget-me``, and the Report / Revoke buttons.

The extension ``cogs.voices``: ``setup`` adds :class:`VoicesCog` and :class:`PrivacyCog` and
registers the persistent buttons of ``cogs.voices.report``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.voices.cog import VoicesCog
from cogs.voices.privacy import PrivacyCog
from cogs.voices.report import ReportButton, RevokeButton

if TYPE_CHECKING:
    from bot.app import ChatterboxBot


async def setup(bot: ChatterboxBot) -> None:
    bot.add_dynamic_items(ReportButton, RevokeButton)
    await bot.add_cog(VoicesCog(bot))
    await bot.add_cog(PrivacyCog(bot))


async def teardown(bot: ChatterboxBot) -> None:
    bot.remove_dynamic_items(ReportButton, RevokeButton)
