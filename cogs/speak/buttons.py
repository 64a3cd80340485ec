"""The buttons on every /speak result: Re-roll and Play in voice.

Both are persistent ``DynamicItem``s (like the card's Cancel): the custom id names the
result's *take* (``bot.cache.Take``, stored in the database), so a click after a restart is
routed by its custom id alone, without a View kept per message. The cog does the work
(``SpeakCog.reroll_clicked`` / ``play_clicked``); these classes only route.

- **Re-roll** (the requester only): a new paid take of the same spoken text, voice and tuning,
  which replaces the cached one (``SpeechService.start(fresh=True)``).
- **Play in voice** (anyone): plays the same audio in the clicker's voice channel, from the
  cache, free (no request, no quota).
"""

from __future__ import annotations

from typing import Any

import discord

REROLL_TEMPLATE = r"speak:reroll:(?P<take>[0-9a-f]{32})"
PLAY_TEMPLATE = r"speak:play:(?P<take>[0-9a-f]{32})"


class RerollButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=REROLL_TEMPLATE):
    def __init__(self, take_id: str) -> None:
        super().__init__(discord.ui.Button(
            label="Re-roll", emoji="🎲", style=discord.ButtonStyle.secondary,
            custom_id=f"speak:reroll:{take_id}",
        ))
        self.take_id = take_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> RerollButton:
        return cls(match["take"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _route(interaction, "reroll_clicked", self.take_id)


class PlayButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=PLAY_TEMPLATE):
    def __init__(self, take_id: str) -> None:
        super().__init__(discord.ui.Button(
            label="Play in voice", emoji="🔊", style=discord.ButtonStyle.secondary,
            custom_id=f"speak:play:{take_id}",
        ))
        self.take_id = take_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> PlayButton:
        return cls(match["take"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _route(interaction, "play_clicked", self.take_id)


async def _route(interaction: discord.Interaction[Any], handler: str, take_id: str) -> None:
    cog = interaction.client.get_cog("Speak")  # type: ignore[attr-defined]
    if cog is None:
        await interaction.response.send_message("Text-to-speech is not available right now.", ephemeral=True)
        return
    await getattr(cog, handler)(interaction, take_id)


def result_view(take_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(take_id))
    view.add_item(PlayButton(take_id))
    return view


DYNAMIC_ITEMS = (RerollButton, PlayButton)
