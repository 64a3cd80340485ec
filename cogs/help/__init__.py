"""``/help`` and ``/about``: what the bot does, this server's limits, voices and consent;
the version, what is stored, and where the source is.

The extension ``cogs.help``: ``setup`` adds :class:`HelpCog` (see ``cogs.help.cog``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.help.cog import HelpCog

if TYPE_CHECKING:
    from bot.app import ChatterboxBot


async def setup(bot: ChatterboxBot) -> None:
    await bot.add_cog(HelpCog(bot))
