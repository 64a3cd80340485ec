"""Who may run which ``/quota`` command, how replies go out, and the option types.

Moderator rights are checked by the bot itself (``moderator_only``), not left to Discord's
permission hint: the ``/quota`` group cannot carry ``default_permissions`` because
``/quota me`` is for everyone, and a stale or modified client can send any command. A
refusal is an ``app_commands.CheckFailure`` whose message the bot's tree error handler
sends ephemerally (``bot.app.ChatterboxBot.on_app_command_error``); it is also logged.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.quotas import FIELD_LIMITS
from bot.quotas.admin import MAX_DAILY_BUDGET
from cogs.quotas.inputs import REASON_MAX
from cogs.quotas.render import FIELD_LABELS

log = logging.getLogger("cogs.quotas")


# ---- option types (Discord's client enforces these; the bot checks again) -----------------------
class PolicyValue(app_commands.Transformer):
    """A whole-number option bounded by ``FIELD_LIMITS[field]``.

    Discord shows and enforces ``min_value``/``max_value``. The bot re-checks in one place,
    ``bot.quotas.policy.validate_field`` (through ``cogs.quotas.inputs.policy_changes``), because
    a modified client can send anything; its refusal names the field and the allowed range.
    """

    def __init__(self, field: str) -> None:
        self.field = field
        self.low, self.high = FIELD_LIMITS[field]

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.integer

    @property
    def min_value(self) -> int:
        return self.low

    @property
    def max_value(self) -> int:
        return self.high

    async def transform(self, interaction: discord.Interaction, value: Any, /) -> Any:
        return value  # range checked by validate_field, with every other policy rule


RequestsPerDay = app_commands.Transform[int, PolicyValue("requests_per_day")]
CharsPerDay = app_commands.Transform[int, PolicyValue("chars_per_day")]
CooldownSeconds = app_commands.Transform[int, PolicyValue("cooldown_seconds")]
MaxInFlight = app_commands.Transform[int, PolicyValue("max_in_flight")]
MaxCharsPerRequest = app_commands.Transform[int, PolicyValue("max_chars_per_request")]
Budget = app_commands.Range[int, 0, MAX_DAILY_BUDGET]
Reason = app_commands.Range[str, 1, REASON_MAX]
CostCap = app_commands.Range[str, 1, 20]

FIELD_OPTIONS = {
    "requests_per_day": "Requests per day (a long text split into N parts counts N)",
    "chars_per_day": "Characters of text per day",
    "cooldown_seconds": "Seconds to wait between two requests",
    "max_in_flight": "Requests that may be in progress at once",
    "max_chars_per_request": "Longest text one request may have, in characters",
}
FIELD_CHOICES = [app_commands.Choice(name=FIELD_LABELS[f], value=f) for f in FIELD_LIMITS]
REMOVE_CHOICES = [
    app_commands.Choice(name="request budget", value="requests"),
    app_commands.Choice(name="cost cap", value="cost_cap"),
    app_commands.Choice(name="both", value="both"),
]


# ---- access ---------------------------------------------------------------------------------
class NotModerator(app_commands.CheckFailure):
    """The member lacks Manage Server; the tree's error handler shows this message."""


def is_moderator(interaction: discord.Interaction) -> bool:
    """Manage Server (or Administrator) in this guild, from the member Discord sent along."""
    member = interaction.user
    if interaction.guild_id is None or not isinstance(member, discord.Member):
        return False
    perms = member.guild_permissions
    return perms.administrator or perms.manage_guild


def command_name(interaction: discord.Interaction) -> str:
    return interaction.command.qualified_name if interaction.command else "quota"


async def _moderator_check(interaction: discord.Interaction) -> bool:
    if is_moderator(interaction):
        return True
    command = command_name(interaction)
    log.warning(
        "refused /%s to user %s in guild %s: no Manage Server",
        command,
        interaction.user.id,
        interaction.guild_id,
    )
    raise NotModerator(f"Only moderators (Manage Server permission) can use /{command}.")


moderator_only = app_commands.check(_moderator_check)


class NotBotOwner(app_commands.CheckFailure):
    """Only the application's owner (or a member of its team) may do this."""


async def _bot_owner_check(interaction: discord.Interaction) -> bool:
    # ``Bot.is_owner`` reads the application's owner or team once from Discord and caches it.
    if await interaction.client.is_owner(interaction.user):  # type: ignore[attr-defined]
        return True
    log.warning(
        "refused /%s to user %s in guild %s: not the bot's owner",
        command_name(interaction), interaction.user.id, interaction.guild_id,
    )
    raise NotBotOwner(
        "Only the bot's owner can end the out-of-credit pause: it covers every server, and "
        "topping up the TTS account is theirs to do. /quota pause and /quota resume act on "
        "this server."
    )


#: For what affects every server (the bot-wide wallet pause): the application owner or team.
bot_owner_only = app_commands.check(_bot_owner_check)

