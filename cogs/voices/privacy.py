"""``/privacy forget-me``: a member deletes what the bot keeps about them (``bot.voices.privacy``).

It asks for ``confirm:True`` first, because it cannot be undone; without it the reply lists
what would go. Clips re-hosted in a storage channel are deleted from Discord as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.voices import forget_member
from cogs.voices.hosting import DiscordClipHost

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

WHAT_GOES = (
    "your saved voices (in every server) with their clips and samples, your /speak defaults, "
    "and the text, voice and your name on your past /speak jobs. The spending records stay for the "
    "servers' budgets, with your name removed."
)


class PrivacyCog(commands.GroupCog, group_name="privacy", description="What the bot keeps about you"):
    def __init__(self, bot: ChatterboxBot) -> None:
        self.bot = bot
        self.host = DiscordClipHost(bot)
        super().__init__()

    @app_commands.command(
        name="forget-me", description="Delete your voices, defaults and the text of your jobs"
    )
    @app_commands.describe(confirm="True to delete now (this cannot be undone)")
    async def forget_me(self, interaction: discord.Interaction[Any], confirm: bool = False) -> None:
        if not confirm:
            await interaction.response.send_message(
                f"This deletes {WHAT_GOES} Run `/privacy forget-me confirm:True` to do it.", ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        done = await forget_member(self.bot.core.db, interaction.user.id)
        for channel_id, message_id in done.storage_messages:
            await self.host.delete(channel_id, message_id)
        for sha in done.clip_hashes:
            await self.bot.core.cache.forget_clip(sha)
        still = (
            f" {done.open_jobs} job(s) still running keep their text until they finish; run this "
            "again afterwards."
            if done.open_jobs
            else ""
        )
        await interaction.followup.send(
            f"Done: deleted {done.voices} voice(s) and your defaults, and cleared {done.jobs} past job(s)."
            f"{still}",
            ephemeral=True,
        )
