"""Voice chat: plays /speak results in the member's voice channel, one per-guild queue.

The extension ``cogs.voice``: ``setup`` adds :class:`VoiceCog` (see ``cogs.voice.cog``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.voice.cog import VoiceCog

if TYPE_CHECKING:
    from bot.app import ChatterboxBot


async def setup(bot: ChatterboxBot) -> None:
    await bot.add_cog(VoiceCog(bot, voice_cls=bot.voice_cls))
