"""Hands-free reading: opted-in members' messages in one channel read aloud in voice.

The extension ``cogs.autoread``: ``setup`` adds :class:`AutoreadCog` (see ``cogs.autoread.cog``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.autoread.cog import AutoreadCog

if TYPE_CHECKING:
    from bot.app import ChatterboxBot


async def setup(bot: ChatterboxBot) -> None:
    await bot.add_cog(AutoreadCog(bot))
