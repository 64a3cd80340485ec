"""``/privacy forget-me``: a member deletes what the bot keeps about them (``bot.voices.privacy``).

It asks for ``confirm:True`` first, because it cannot be undone; without it the reply lists
what would go. Clips re-hosted in a storage channel are deleted from Discord as well. The reply
says what went, that hands-free reading stops reading the member, and that today's spending
rows stay linked until the quota day is over (so forgetting is no way around the limits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.voices import Forgotten, forget_member, longest_cooldown
from cogs.voices.hosting import DiscordClipHost

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

WHAT_GOES = (
    "your saved voices (in every server) with their clips and samples, your /speak defaults, "
    "your hands-free reading opt-ins, and the text, voice and your name on your past /speak jobs. "
    "The spending records stay for the servers' budgets, with your name removed (today's only once "
    "the quota day is over: they still count for your daily limits)."
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
        core = self.bot.core
        done = await forget_member(
            core.db, interaction.user.id, now=core.clock.now(), cooldown=longest_cooldown(core.settings)
        )
        for channel_id, message_id in done.storage_messages:
            await self.host.delete(channel_id, message_id)
        for sha in done.clip_hashes:
            await core.cache.forget_clip(sha)
        await interaction.followup.send(forgotten_reply(done), ephemeral=True)


def forgotten_reply(done: Forgotten) -> str:
    lines = [
        f"Done: deleted {done.voices} voice(s) and your defaults, and cleared {done.jobs} past job(s)."
    ]
    if done.autoread:
        lines.append(
            f"Hands-free reading no longer reads your messages (opt-in removed in {done.autoread} "
            "server(s); `/autoread me on` turns it back on)."
        )
    else:
        lines.append("Hands-free reading: you had not opted in anywhere.")
    if done.open_jobs:
        lines.append(
            f"{done.open_jobs} job(s) still running keep their text until they finish; run this "
            "again afterwards."
        )
    if done.money_kept:
        lines.append(
            "Today's spending records keep your name until the quota day is over, because they still "
            "count for your daily limits and cooldown; run this again after the reset (or the bot's "
            "regular clean-up, `db prune`, will) to anonymise them too."
        )
    return "\n".join(lines)
