"""The **Report** button on every posted result, and the moderators' **Revoke** button.

Both are persistent ``DynamicItem`` buttons: the custom id carries what the click needs
(``voices:report:{job_id}``, ``voices:revoke:{voice_id}``), so they keep working after a
restart without a View per message. Anyone may report; only moderators may revoke.

Report asks the reporter first, in a modal (``ReportModal``), why: an optional choice
(impersonation, abuse, something else) and an optional short text (at most ``REASON_MAX``
characters; Discord's client enforces that, and the bot checks it again, since a hand-made
client could send more — it is refused, nothing is sent). The text is cleaned before anyone
sees it (``clean_reason``: control and invisible formatting characters removed, whitespace and
line breaks collapsed, Markdown and mentions escaped), so a reason cannot ping, format or fake
lines in the alert. The report then goes to the moderators' alert channel (the
``/quota alerts`` channel) with who reported and why, who asked, which voice, the text and a
Revoke button; it is also kept in the audit log (``voice.report``, with the reason).

The modal lives in memory for ``MODAL_TIMEOUT`` seconds (its custom id names the job and the
reporter, so two members reporting one result at once each get their own); a modal still open
when the bot restarts cannot be submitted, and the reporter presses Report again.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import TYPE_CHECKING, Any

import discord

from bot.voices import JobReport, VoiceError
from cogs.common.alerts import alert_moderators
from cogs.common.guards import is_moderator

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

log = logging.getLogger(__name__)

REPORT_TEMPLATE = r"voices:report:(?P<job>[0-9a-f]{32})"
REVOKE_TEMPLATE = r"voices:revoke:(?P<voice>[0-9a-f]{32})"
TEXT_PREVIEW = 600
#: The longest reason a reporter may type (the modal's ``max_length``, checked again here).
REASON_MAX = 300
MODAL_TIMEOUT = 15 * 60
#: The reporter's choice in the modal: value -> what the moderators read.
REASONS = {
    "impersonation": "Impersonation (a voice used without its owner's consent)",
    "abuse": "Abuse or harassment",
    "other": "Something else",
}
_SPACE = re.compile(r"\s+")


class ReportButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=REPORT_TEMPLATE):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Report", style=discord.ButtonStyle.secondary, custom_id=f"voices:report:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> ReportButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await report_clicked(interaction.client, interaction, self.job_id)


class ReportModal(discord.ui.Modal):
    """Why the reporter flags this result: an optional reason and an optional short text."""

    def __init__(self, bot: ChatterboxBot, job_id: str, reporter_id: int) -> None:
        super().__init__(title="Report this clip to the moderators", timeout=MODAL_TIMEOUT,
                         custom_id=f"voices:report-reason:{job_id}:{reporter_id}")
        self.bot = bot
        self.job_id = job_id
        self.kind: discord.ui.Select[Any] = discord.ui.Select(
            custom_id="kind", placeholder="Choose one (optional)", required=False, min_values=0,
            max_values=1,
            options=[discord.SelectOption(label=label, value=value) for value, label in REASONS.items()],
        )
        self.details: discord.ui.TextInput[Any] = discord.ui.TextInput(
            custom_id="details", style=discord.TextStyle.paragraph, required=False, max_length=REASON_MAX,
            placeholder="What is wrong with it? (optional)",
        )
        self.add_item(discord.ui.Label(text="Why are you reporting it?", component=self.kind))
        self.add_item(discord.ui.Label(
            text="Anything the moderators should know?", component=self.details,
            description=f"At most {REASON_MAX} characters. The moderators see your name.",
        ))

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        kind = self.kind.values[0] if self.kind.values else None
        details = self.details.value or ""
        await report_submitted(self.bot, interaction, self.job_id, kind=kind, details=details)


def clean_reason(text: str) -> str:
    """A reporter's text as the moderators see it: printable, one line, no markup or mentions."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text
                   if unicodedata.category(ch) not in ("Cf", "Co", "Cs", "Cn"))
    text = _SPACE.sub(" ", text).strip()
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def reason_line(kind: str | None, details: str) -> str:
    """The alert's reason line, from the modal's choice and the cleaned text."""
    said = REASONS.get(kind, "") if kind else ""
    if details:
        said = f"{said}: “{details}”" if said else f"“{details}”"
    return f"Reason: {said or 'not given'}"


class RevokeButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=REVOKE_TEMPLATE):
    def __init__(self, voice_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Revoke this voice",
                style=discord.ButtonStyle.danger,
                custom_id=f"voices:revoke:{voice_id}",
            )
        )
        self.voice_id = voice_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> RevokeButton:
        return cls(match["voice"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await revoke_clicked(interaction.client, interaction, self.voice_id)


def report_view(job_id: str) -> discord.ui.View:
    """The view posted with a result: one Report button for that job."""
    view = discord.ui.View(timeout=None)
    view.add_item(ReportButton(job_id))
    return view


def _quote(text: str) -> str:
    short = text if len(text) <= TEXT_PREVIEW else text[: TEXT_PREVIEW - 1] + "…"
    return "\n".join(f"> {discord.utils.escape_markdown(line)}" for line in short.splitlines() or [""])


def report_alert(report: JobReport, reporter_id: int, jump_url: str | None, reason: str = "Reason: not given"
                 ) -> str:
    if report.voice is None:
        voice = "no saved voice (the built-in voice or a one-off clip)"
    else:
        scope = {"preset": "server voice", "server": "shared", "private": "private"}[report.voice.scope]
        voice = f"“{report.voice.name}” (owner <@{report.voice.owner_id}>, {scope}"
        voice += ", already revoked)" if report.voice.revoked else ")"
    where = f" ({jump_url})" if jump_url else ""
    return (
        f"**Report:** <@{reporter_id}> flagged a /speak result{where}.\n{reason}\n"
        f"Asked by <@{report.user_id}> · voice: {voice}\n{_quote(report.text)}"
    )


async def _find_report(bot: ChatterboxBot, interaction: discord.Interaction[Any], job_id: str
                       ) -> JobReport | None:
    """The reported job, or None after telling the member why not."""
    if interaction.guild_id is None:
        await interaction.response.send_message("Reports work in servers only.", ephemeral=True)
        return None
    report = await bot.core.voices.job_report(job_id)
    if report is None or report.guild_id != interaction.guild_id:
        await interaction.response.send_message("I can't find that result any more.", ephemeral=True)
        return None
    return report


async def report_clicked(bot: ChatterboxBot, interaction: discord.Interaction[Any], job_id: str) -> None:
    """Report pressed: ask why (the modal); the alert goes out when it is submitted."""
    if await _find_report(bot, interaction, job_id) is None:
        return
    await interaction.response.send_modal(ReportModal(bot, job_id, interaction.user.id))


async def report_submitted(bot: ChatterboxBot, interaction: discord.Interaction[Any], job_id: str, *,
                           kind: str | None, details: str) -> None:
    """The modal came back: check the reason, then alert the moderators and keep it."""
    if kind is not None and kind not in REASONS:
        await interaction.response.send_message(
            "That reason is not one of the choices; nothing was sent. Press Report again.", ephemeral=True)
        return
    if len(details) > REASON_MAX:
        await interaction.response.send_message(
            f"The reason is {len(details)} characters; at most {REASON_MAX} fit. Nothing was sent: press "
            "Report again with a shorter one.", ephemeral=True)
        return
    report = await _find_report(bot, interaction, job_id)
    if report is None:
        return
    assert interaction.guild_id is not None
    cleaned = clean_reason(details)
    await interaction.response.defer(ephemeral=True, thinking=True)
    view = None
    if report.voice is not None and not report.voice.revoked:
        view = discord.ui.View(timeout=None)
        view.add_item(RevokeButton(report.voice.id))
    jump = interaction.message.jump_url if interaction.message is not None else None
    alert = report_alert(report, interaction.user.id, jump, reason_line(kind, cleaned))
    sent = await alert_moderators(bot, interaction.guild_id, alert, view=view)
    await bot.core.voices.record_report(
        interaction.guild_id,
        interaction.user.id,
        {
            "job_id": job_id,
            "voice_id": report.voice.id if report.voice else None,
            "reason": kind,
            "details": cleaned,
            "alerted": sent,
        },
    )
    if sent:
        message = "Thanks: the moderators have been told about this clip."
    else:
        message = (
            "Thanks: your report was recorded, but this server has no moderator alert channel, so "
            "please also tell a moderator directly."
        )
    await interaction.followup.send(message, ephemeral=True)


async def revoke_clicked(bot: ChatterboxBot, interaction: discord.Interaction[Any], voice_id: str) -> None:
    if interaction.guild_id is None or not is_moderator(interaction):
        await interaction.response.send_message(
            "Only moderators (Manage Server) can revoke a voice.", ephemeral=True
        )
        return
    try:
        voice = await bot.core.voices.revoke_by_id(
            interaction.guild_id, interaction.user.id, voice_id, reason="reported by a member"
        )
    except VoiceError as exc:
        await interaction.response.send_message(exc.user_message, ephemeral=True)
        return
    content = (
        interaction.message.content if interaction.message else ""
    ) + f"\n**Revoked** by <@{interaction.user.id}>."
    await interaction.response.edit_message(content=content, view=None)
    told = await tell_owner(
        bot,
        voice.owner_id,
        voice.name,
        "reported by a member",
        getattr(interaction.guild, "name", "this server"),
    )
    if not told:
        await interaction.followup.send(
            f"<@{voice.owner_id}> could not be messaged directly; they will see it is revoked when they use "
            "it or open `/voices list`.",
            ephemeral=True,
        )


async def tell_owner(bot: ChatterboxBot, owner_id: int, name: str, reason: str, guild_name: str) -> bool:
    """A direct message to the voice's owner; False when Discord refuses (DMs closed)."""
    text = (
        f"Your voice “{name}” was revoked by the moderators of {guild_name} ({reason}); it can't be "
        "used there any more. You can delete it with `/voices delete`."
    )
    try:
        user = bot.get_user(owner_id) or await bot.fetch_user(owner_id)
        await user.send(text)
    except discord.HTTPException as exc:
        log.info("could not DM the owner %s of a revoked voice: %s", owner_id, exc)
        return False
    return True
