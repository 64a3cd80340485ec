"""The ``/help`` and ``/about`` commands (texts in ``cogs.help.texts``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.version import version
from cogs.common.guards import role_ids
from cogs.help.texts import HelpFacts, about_text, help_text
from cogs.speak.cog import TEXT_OPTION_MAX

if TYPE_CHECKING:
    from bot.app import ChatterboxBot


class HelpCog(commands.Cog, name="Help"):
    def __init__(self, bot: ChatterboxBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="help", description="What this bot does, your limits here, and how voices work"
    )
    async def help(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        settings = self.bot.settings
        policy, exempt = None, False
        if interaction.guild_id is not None:
            summary = await self.bot.core.quotas.usage(
                interaction.guild_id, interaction.user.id, role_ids(interaction.user)
            )
            policy, exempt = summary.policy, summary.exempt
        facts = HelpFacts(
            max_text_chars=min(settings.chatterbox_max_text_chars, TEXT_OPTION_MAX),
            voice_max_seconds=settings.voice_ref_max_seconds,
            voice_max_mb=round(settings.voice_ref_max_bytes / (1024 * 1024), 1),
            policy=policy,
            exempt=exempt,
        )
        await interaction.followup.send(help_text(facts), ephemeral=True)

    @app_commands.command(name="about", description="This bot's version, what it stores, and its source")
    async def about(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            about_text(version(), self.bot.settings.about_source_url), ephemeral=True
        )
