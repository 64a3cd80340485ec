"""``/speak``: text in, speech out — with a live job card, a Cancel button and safe delivery.

The extension ``cogs.speak``: ``setup`` adds :class:`SpeakCog` (see ``cogs.speak.cog``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.speak.cog import SpeakCog

if TYPE_CHECKING:
    from bot.app import ChatterboxBot


async def setup(bot: ChatterboxBot) -> None:
    await bot.add_cog(SpeakCog(bot))
