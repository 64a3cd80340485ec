"""``/quota``: members see their own quota; moderators configure the server's.

The extension ``cogs.quotas``: ``setup`` adds :class:`QuotaCog` (see ``cogs.quotas.cog``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.quotas.cog import QuotaCog

if TYPE_CHECKING:
    from bot.app import ChatterboxBot


async def setup(bot: ChatterboxBot) -> None:
    await bot.add_cog(QuotaCog(bot))
