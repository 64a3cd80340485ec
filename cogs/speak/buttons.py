"""The buttons on every /speak result: Re-roll and Play in voice (and Report, from cogs.voices).

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

from typing import TYPE_CHECKING, Any, ClassVar, Self

import discord

from cogs.voices.report import ReportButton

if TYPE_CHECKING:
    from cogs.speak.cog import SpeakCog

REROLL_TEMPLATE = r"speak:reroll:(?P<take>[0-9a-f]{32})"
PLAY_TEMPLATE = r"speak:play:(?P<take>[0-9a-f]{32})"


class _TakeButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"speak:(?:reroll|play):(?P<take>[0-9a-f]{32})"
):
    """What Re-roll and Play in voice share: a button whose custom id is ``speak:<action>:<take>``.

    discord.py wants a ``template`` per class, so each button names its own (this base is never
    registered); a subclass gives its action, label and emoji, and the cog's handler to call.
    """

    ACTION: ClassVar[str]
    LABEL: ClassVar[str]
    EMOJI: ClassVar[str]

    def __init__(self, take_id: str) -> None:
        super().__init__(discord.ui.Button(
            label=self.LABEL, emoji=self.EMOJI, style=discord.ButtonStyle.secondary,
            custom_id=f"speak:{self.ACTION}:{take_id}",
        ))
        self.take_id = take_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> Self:
        return cls(match["take"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        from cogs.speak.cog import SpeakCog  # here, not at the top: the cog imports this module

        cog = interaction.client.get_cog("Speak")
        if not isinstance(cog, SpeakCog):
            await interaction.response.send_message(
                "Text-to-speech is not available right now.", ephemeral=True
            )
            return
        await self.clicked(cog, interaction)

    async def clicked(self, cog: SpeakCog, interaction: discord.Interaction[Any]) -> None:
        raise NotImplementedError


class RerollButton(_TakeButton, template=REROLL_TEMPLATE):
    ACTION, LABEL, EMOJI = "reroll", "Re-roll", "🎲"

    async def clicked(self, cog: SpeakCog, interaction: discord.Interaction[Any]) -> None:
        await cog.reroll_clicked(interaction, self.take_id)


class PlayButton(_TakeButton, template=PLAY_TEMPLATE):
    ACTION, LABEL, EMOJI = "play", "Play in voice", "🔊"

    async def clicked(self, cog: SpeakCog, interaction: discord.Interaction[Any]) -> None:
        await cog.play_clicked(interaction, self.take_id)


def result_view(take_id: str) -> discord.ui.View:
    """Re-roll, Play in voice, and Report (``cogs.voices.report``: the take id is the job id)."""
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(take_id))
    view.add_item(PlayButton(take_id))
    view.add_item(ReportButton(take_id))
    return view


DYNAMIC_ITEMS = (RerollButton, PlayButton)
