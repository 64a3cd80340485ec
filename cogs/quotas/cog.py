"""``/quota``: members see their own quota; moderators configure the server's.

Commands (one ``GroupCog``, guild only; every reply is ephemeral and sent with mentions off):

- everyone: ``/quota me``.
- moderators (Manage Server): ``show``, ``usage``, ``history``, ``set-default``,
  ``set-role``, ``set-user``, ``clear-default``, ``clear-role``, ``clear-user``,
  ``reset-user``, ``block``, ``unblock``, ``budget``, ``exempt``, ``alerts``, ``pause``,
  ``resume``, ``resume-wallet``.

Decisions:

- Moderator rights are checked by the bot on every moderator command (Manage Server, which
  Administrator implies), not left to Discord's permission hint: the group cannot carry
  ``default_permissions`` because ``/quota me`` is for everyone, and a stale or modified
  client can send any command. The refusal is a check failure the bot answers ephemerally.
- Clearing: ``set-*`` only sets the fields given. ``clear-default`` / ``clear-role`` /
  ``clear-user`` remove a whole policy, or with ``field:`` just that one field, so it
  inherits again (user override > most generous role > server default > built-in).
- ``budget``: ``requests`` (whole number) and ``cost_cap`` (dollars, "2.50"; "off" removes
  the cap); ``remove:`` takes the request budget and/or cost cap away. Everything given is
  checked before anything is written, so a bad value changes nothing.
- ``pause`` / ``resume`` act on this server only. The bot-wide pause after a 402 (out of
  credit) is resumed with the separate ``/quota resume-wallet``: it affects every server, so
  it gets its own deliberate command, and only the application's owner (or its team) may use
  it — a server's moderators can neither top up the account nor decide for other servers;
  ``/quota resume`` and ``/quota show`` point to it while it is on.
- ``@everyone`` cannot get a role policy or be exempt: the server default is that policy.
- Every change is logged (``log.info`` with the moderator's id) and recorded in the
  ``audit_log`` table by ``QuotaAdmin`` in the same transaction (``/quota history`` shows it),
  and the reply says exactly what changed (before → after).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import send_ephemeral
from bot.formats import plural
from bot.quotas import FIELD_LIMITS, PolicyError, PolicyScope, ResolvedPolicy
from cogs.common.guards import role_ids
from cogs.quotas import render
from cogs.quotas.access import (
    FIELD_CHOICES,
    FIELD_OPTIONS,
    REMOVE_CHOICES,
    Budget,
    CharsPerDay,
    CooldownSeconds,
    CostCap,
    MaxCharsPerRequest,
    MaxInFlight,
    Reason,
    RequestsPerDay,
    bot_owner_only,
    command_name,
    moderator_only,
)
from cogs.quotas.inputs import check_budget, check_reason, parse_dollars, policy_changes
from cogs.speak.checks import require_resolved_options

if TYPE_CHECKING:
    from bot.app import ChatterboxBot
    from bot.services import Services

log = logging.getLogger(__name__)

TOP_USERS = 10
HISTORY_ENTRIES = 15


@app_commands.guild_only()
class QuotaCog(commands.GroupCog, group_name="quota", group_description="Text-to-speech quotas"):
    """The ``/quota`` group (see the module docstring)."""

    def __init__(self, bot: ChatterboxBot) -> None:
        self.bot = bot
        super().__init__()

    @property
    def core(self) -> Services:
        return self.bot.core

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return require_resolved_options(interaction)

    async def _run(
        self, interaction: discord.Interaction, work: Callable[[int, int], Awaitable[str]]
    ) -> None:
        """Acknowledge, do ``work(guild_id, actor_id)``, answer with its text or the PolicyError."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild_id = interaction.guild_id
        if guild_id is None:  # guild_only; a DM cannot get here through Discord
            await send_ephemeral(interaction, "Use this command in a server.")
            return
        try:
            text = await work(guild_id, interaction.user.id)
        except PolicyError as exc:
            log.info(
                "refused /%s from user %s in guild %s: %s",
                command_name(interaction),
                interaction.user.id,
                guild_id,
                exc,
            )
            text = str(exc)
        await send_ephemeral(interaction, render.fit(text))

    @staticmethod
    def _changed(interaction: discord.Interaction, what: str) -> None:
        log.info("quota change in guild %s by user %s: %s", interaction.guild_id, interaction.user.id, what)

    # ---- members --------------------------------------------------------------------------
    @app_commands.command(name="me", description="Your text-to-speech quota: used, left, and when it resets")
    async def me(self, interaction: discord.Interaction) -> None:
        async def work(guild_id: int, user_id: int) -> str:
            summary = await self.core.quotas.usage(guild_id, user_id, role_ids(interaction.user))
            return render.render_me(summary, await self.core.wallet.state())

        await self._run(interaction, work)

    # ---- reading --------------------------------------------------------------------------
    @app_commands.command(name="show", description="Moderators: the server's quota policy and pause state")
    @moderator_only
    async def show(self, interaction: discord.Interaction) -> None:
        async def work(guild_id: int, _actor: int) -> str:
            admin = self.core.quotas.admin
            view = render.PolicyView(
                defaults=ResolvedPolicy.from_settings(self.bot.settings),
                entries=await admin.policies(guild_id),
                guild=await admin.guild_settings(guild_id),
                blocked=await admin.blocked(guild_id),
                wallet=await self.core.wallet.state(),
                usage=await self.core.quotas.guild_usage(guild_id, top=0),
                price_per_request=self.core.quotas.price_per_request,
            )
            return render.render_show(view)

        await self._run(interaction, work)

    @app_commands.command(name="usage", description="Moderators: today's usage: top members, requests, cost")
    @moderator_only
    async def usage(self, interaction: discord.Interaction) -> None:
        async def work(guild_id: int, _actor: int) -> str:
            return render.render_usage(await self.core.quotas.guild_usage(guild_id, top=TOP_USERS))

        await self._run(interaction, work)

    @app_commands.command(name="history", description="Moderators: recent quota changes and who made them")
    @moderator_only
    async def history(self, interaction: discord.Interaction) -> None:
        async def work(guild_id: int, _actor: int) -> str:
            return render.render_history(await self.core.quotas.admin.audit(guild_id, limit=HISTORY_ENTRIES))

        await self._run(interaction, work)

    # ---- policies -------------------------------------------------------------------------
    @app_commands.command(name="set-default", description="Moderators: set the server's default limits")
    @app_commands.describe(**FIELD_OPTIONS)
    @moderator_only
    async def set_default(
        self,
        interaction: discord.Interaction,
        requests_per_day: RequestsPerDay | None = None,
        chars_per_day: CharsPerDay | None = None,
        cooldown_seconds: CooldownSeconds | None = None,
        max_in_flight: MaxInFlight | None = None,
        max_chars_per_request: MaxCharsPerRequest | None = None,
    ) -> None:
        fields = _fields(requests_per_day, chars_per_day, cooldown_seconds, max_in_flight,
                         max_chars_per_request)
        await self._set_policy(interaction, PolicyScope.GUILD, None, "the server default", fields)

    @app_commands.command(name="set-role", description="Moderators: set limits for members with a role")
    @app_commands.describe(role="The role these limits apply to", **FIELD_OPTIONS)
    @moderator_only
    async def set_role(
        self,
        interaction: discord.Interaction,
        role: discord.Role,
        requests_per_day: RequestsPerDay | None = None,
        chars_per_day: CharsPerDay | None = None,
        cooldown_seconds: CooldownSeconds | None = None,
        max_in_flight: MaxInFlight | None = None,
        max_chars_per_request: MaxCharsPerRequest | None = None,
    ) -> None:
        fields = _fields(requests_per_day, chars_per_day, cooldown_seconds, max_in_flight,
                         max_chars_per_request)
        if role.is_default():
            await send_ephemeral(
                interaction, "For @everyone use /quota set-default: the server default is that policy."
            )
            return
        await self._set_policy(
            interaction, PolicyScope.ROLE, role.id, f"the policy of {render.role(role.id)}", fields
        )

    @app_commands.command(
        name="set-user", description="Moderators: set one member's own limits (beats roles)"
    )
    @app_commands.describe(user="The member these limits apply to", **FIELD_OPTIONS)
    @moderator_only
    async def set_user(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        requests_per_day: RequestsPerDay | None = None,
        chars_per_day: CharsPerDay | None = None,
        cooldown_seconds: CooldownSeconds | None = None,
        max_in_flight: MaxInFlight | None = None,
        max_chars_per_request: MaxCharsPerRequest | None = None,
    ) -> None:
        fields = _fields(requests_per_day, chars_per_day, cooldown_seconds, max_in_flight,
                         max_chars_per_request)
        await self._set_policy(
            interaction,
            PolicyScope.USER,
            user.id,
            f"the override of {render.user(user.id)}",
            fields,
            member=user,
        )

    async def _set_policy(
        self,
        interaction: discord.Interaction,
        scope: PolicyScope,
        target_id: int | None,
        target: str,
        fields: dict[str, int | None],
        *,
        member: discord.User | discord.Member | None = None,
    ) -> None:
        async def work(guild_id: int, actor_id: int) -> str:
            changes = policy_changes(fields)
            admin = self.core.quotas.admin
            before = render.policy_of(await admin.policies(guild_id), scope, target_id)
            after = await admin.set_policy(guild_id, scope, target_id, actor_id=actor_id, **changes)
            self._changed(
                interaction, f"{scope.value} policy {target_id or ''} set {render.describe_changes(changes)}"
            )
            return render.render_policy_change(target, before, after) + await self._effective(
                guild_id, member
            )

        await self._run(interaction, work)

    async def _effective(self, guild_id: int, member: discord.User | discord.Member | None) -> str:
        """For a member's change: what now applies to them (their roles included)."""
        if not isinstance(member, discord.Member):
            return ""
        summary = await self.core.quotas.usage(guild_id, member.id, role_ids(member))
        note = " (exempt role: member limits do not apply)" if summary.exempt else ""
        return (
            f"\nIn effect for {render.user(member.id)} now: {render.describe_resolved(summary.policy)}{note}."
        )

    @app_commands.command(name="clear-default", description="Moderators: back to built-in server defaults")
    @app_commands.describe(field="Only this setting (default: all of them)")
    @app_commands.choices(field=FIELD_CHOICES)
    @moderator_only
    async def clear_default(self, interaction: discord.Interaction, field: str | None = None) -> None:
        await self._clear_policy(interaction, PolicyScope.GUILD, None, "the server default", field)

    @app_commands.command(name="clear-role", description="Moderators: remove a role's limits")
    @app_commands.describe(role="The role whose limits to remove", field="Only this setting (default: all)")
    @app_commands.choices(field=FIELD_CHOICES)
    @moderator_only
    async def clear_role(
        self, interaction: discord.Interaction, role: discord.Role, field: str | None = None
    ) -> None:
        await self._clear_policy(
            interaction, PolicyScope.ROLE, role.id, f"the policy of {render.role(role.id)}", field
        )

    @app_commands.command(name="clear-user", description="Moderators: remove a member's own limits")
    @app_commands.describe(
        user="The member whose override to remove", field="Only this setting (default: all)"
    )
    @app_commands.choices(field=FIELD_CHOICES)
    @moderator_only
    async def clear_user(
        self, interaction: discord.Interaction, user: discord.User, field: str | None = None
    ) -> None:
        await self._clear_policy(
            interaction, PolicyScope.USER, user.id, f"the override of {render.user(user.id)}", field
        )

    async def _clear_policy(
        self,
        interaction: discord.Interaction,
        scope: PolicyScope,
        target_id: int | None,
        target: str,
        field: str | None,
    ) -> None:
        async def work(guild_id: int, actor_id: int) -> str:
            admin = self.core.quotas.admin
            if field is not None:
                if field not in FIELD_LIMITS:
                    raise PolicyError(
                        f"Unknown setting {field!r}; the settings are: {', '.join(FIELD_LIMITS)}."
                    )
                before = render.policy_of(await admin.policies(guild_id), scope, target_id)
                after = await admin.set_policy(guild_id, scope, target_id, actor_id=actor_id, **{field: None})
                self._changed(interaction, f"{scope.value} policy {target_id or ''} cleared {field}")
                return render.render_policy_change(target, before, after)
            removed = await admin.clear_policy(guild_id, scope, target_id, actor_id=actor_id)
            if not removed:
                return f"No change: {target} had nothing set."
            self._changed(interaction, f"{scope.value} policy {target_id or ''} removed")
            return f"Removed {target}; everything it set is inherited again."

        await self._run(interaction, work)

    # ---- members --------------------------------------------------------------------------
    @app_commands.command(name="reset-user", description="Moderators: forgive a member's usage today")
    @app_commands.describe(user="The member whose daily counts and cooldown start over")
    @moderator_only
    async def reset_user(self, interaction: discord.Interaction, user: discord.User) -> None:
        async def work(guild_id: int, actor_id: int) -> str:
            forgiven = await self.core.quotas.admin.reset_usage(guild_id, user.id, actor_id=actor_id)
            self._changed(interaction, f"reset usage of user {user.id} ({forgiven} reservations)")
            if forgiven == 0:
                return f"{render.user(user.id)} has not used anything today; nothing to reset."
            return (
                f"Reset {render.user(user.id)}'s usage today ({plural(forgiven, 'request record')}): "
                "their daily counts and cooldown start over. The server's budget still counts it."
            )

        await self._run(interaction, work)

    @app_commands.command(name="block", description="Moderators: stop a member from using text-to-speech")
    @app_commands.describe(user="The member to block", reason="Why (shown to moderators in /quota history)")
    @moderator_only
    async def block(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        reason: Reason | None = None,
    ) -> None:
        async def work(guild_id: int, actor_id: int) -> str:
            why = check_reason(reason)
            if user.bot:
                raise PolicyError("Bots cannot use text-to-speech; there is nothing to block.")
            done = await self.core.quotas.admin.block(guild_id, user.id, actor_id=actor_id, reason=why)
            if not done:
                return f"No change: {render.user(user.id)} was blocked already."
            self._changed(interaction, f"blocked user {user.id} (reason: {why})")
            return f"Blocked {render.user(user.id)}" + (f" (reason: {why})." if why else ".")

        await self._run(interaction, work)

    @app_commands.command(
        name="unblock", description="Moderators: let a blocked member use text-to-speech again"
    )
    @app_commands.describe(user="The member to unblock")
    @moderator_only
    async def unblock(self, interaction: discord.Interaction, user: discord.User) -> None:
        async def work(guild_id: int, actor_id: int) -> str:
            done = await self.core.quotas.admin.unblock(guild_id, user.id, actor_id=actor_id)
            if not done:
                return f"No change: {render.user(user.id)} was not blocked."
            self._changed(interaction, f"unblocked user {user.id}")
            return f"Unblocked {render.user(user.id)}."

        await self._run(interaction, work)

    # ---- server settings ------------------------------------------------------------------
    @app_commands.command(
        name="budget", description="Moderators: the server's daily request budget and cost cap"
    )
    @app_commands.describe(
        requests="Requests per day for all members together",
        cost_cap='Dollars per day for all members together, like 2.50 ("off": no cap)',
        remove="Take away the request budget and/or the cost cap",
    )
    @app_commands.choices(remove=REMOVE_CHOICES)
    @moderator_only
    async def budget(
        self,
        interaction: discord.Interaction,
        requests: Budget | None = None,
        cost_cap: CostCap | None = None,
        remove: str | None = None,
    ) -> None:
        async def work(guild_id: int, actor_id: int) -> str:
            if requests is None and cost_cap is None and remove is None:
                raise PolicyError(
                    "Give requests, cost_cap or remove (see /quota show for the current values)."
                )
            if remove not in (None, "requests", "cost_cap", "both"):
                raise PolicyError("remove must be one of: requests, cost_cap, both.")
            remove_requests = remove in ("requests", "both")
            remove_cap = remove in ("cost_cap", "both")
            if (requests is not None and remove_requests) or (cost_cap is not None and remove_cap):
                raise PolicyError("You cannot set and remove the same limit at once.")
            # Check everything before writing anything.
            budget = check_budget(requests)
            cap = parse_dollars(cost_cap) if cost_cap is not None else None
            admin = self.core.quotas.admin
            before = await admin.guild_settings(guild_id)
            lines = []
            if requests is not None or remove_requests:
                after = await admin.set_daily_budget(guild_id, budget, actor_id=actor_id)
                lines.append(
                    f"• request budget: {render.budget_text(before.daily_request_budget)} → "
                    f"{render.budget_text(after.daily_request_budget)}"
                )
            if cost_cap is not None or remove_cap:
                after = await admin.set_cost_cap(guild_id, cap, actor_id=actor_id)
                was, now = render.cap_text(before.daily_cost_cap), render.cap_text(after.daily_cost_cap)
                lines.append(f"• cost cap: {was} → {now}")
            self._changed(interaction, f"budget requests={budget} cost_cap={cap} remove={remove}")
            return "\n".join(["Updated the server's daily limits:", *lines])

        await self._run(interaction, work)

    @app_commands.command(
        name="exempt", description="Moderators: free a role from member limits (or end that)"
    )
    @app_commands.describe(role="The role", on="True: exempt from member limits; False: limits apply again")
    @moderator_only
    async def exempt(self, interaction: discord.Interaction, role: discord.Role, on: bool) -> None:
        async def work(guild_id: int, actor_id: int) -> str:
            if role.is_default():
                raise PolicyError(
                    "@everyone cannot be exempt; raise the limits with /quota set-default instead."
                )
            admin = self.core.quotas.admin
            if on:
                changed = await admin.add_exempt_role(guild_id, role.id, actor_id=actor_id)
                text = (
                    f"{render.role(role.id)} is now exempt from member limits "
                    "(the server's budget and cost cap still apply)."
                )
            else:
                changed = await admin.remove_exempt_role(guild_id, role.id, actor_id=actor_id)
                text = f"{render.role(role.id)} is no longer exempt; member limits apply again."
            if not changed:
                return f"No change: {render.role(role.id)} was {'already' if on else 'not'} exempt."
            self._changed(interaction, f"exempt role {role.id} {'on' if on else 'off'}")
            return text

        await self._run(interaction, work)

    @app_commands.command(
        name="alerts", description="Moderators: where the bot alerts moderators (out of credit, budget)"
    )
    @app_commands.describe(channel="The channel for alerts (leave empty to turn alerts off)")
    @moderator_only
    async def alerts(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        async def work(guild_id: int, actor_id: int) -> str:
            if channel is not None:
                me = channel.guild.me
                if me is not None:
                    perms = channel.permissions_for(me)
                    if not (perms.view_channel and perms.send_messages):
                        raise PolicyError(
                            f"I cannot post in {render.channel(channel.id)}; allow me to view it and send "
                            "messages there first, or pick another channel."
                        )
            await self.core.quotas.admin.set_alert_channel(
                guild_id, None if channel is None else channel.id, actor_id=actor_id
            )
            self._changed(interaction, f"alert channel {None if channel is None else channel.id}")
            if channel is None:
                return "Moderator alerts are off (the bot still refuses requests; it just tells nobody)."
            return f"Moderator alerts (out of credit, budget reached) now go to {render.channel(channel.id)}."

        await self._run(interaction, work)

    @app_commands.command(name="pause", description="Moderators: stop all text-to-speech on this server")
    @app_commands.describe(reason="Shown to members who try /speak while paused")
    @moderator_only
    async def pause(self, interaction: discord.Interaction, reason: Reason | None = None) -> None:
        async def work(guild_id: int, actor_id: int) -> str:
            why = check_reason(reason)
            if not await self.core.quotas.admin.pause(guild_id, actor_id=actor_id, reason=why):
                return "No change: text-to-speech was paused already (/quota resume starts it)."
            self._changed(interaction, f"paused the guild (reason: {why})")
            return "Paused text-to-speech on this server: new requests are refused until /quota resume" + (
                f" (reason shown to members: {why})." if why else "."
            )

        await self._run(interaction, work)

    @app_commands.command(name="resume", description="Moderators: allow text-to-speech on this server again")
    @moderator_only
    async def resume(self, interaction: discord.Interaction) -> None:
        async def work(guild_id: int, actor_id: int) -> str:
            resumed = await self.core.quotas.admin.resume(guild_id, actor_id=actor_id)
            if resumed:
                self._changed(interaction, "resumed the guild")
            text = (
                "Resumed text-to-speech on this server."
                if resumed
                else "No change: text-to-speech was not paused on this server."
            )
            wallet = await self.core.wallet.state()
            if wallet.paused:
                since = f" since {render.timestamp(wallet.since)}" if wallet.since else ""
                text += (
                    f"\nNote: the whole bot is paused{since} because its TTS account is out of "
                    "credit. The bot's owner ends that by topping up (or with /quota resume-wallet)."
                )
            return text

        await self._run(interaction, work)

    @app_commands.command(
        name="resume-wallet", description="Bot owner: end the bot-wide pause after topping up credit"
    )
    @bot_owner_only
    async def resume_wallet(self, interaction: discord.Interaction) -> None:
        async def work(guild_id: int, actor_id: int) -> str:
            resumed = await self.core.wallet.resume(by=f"user:{actor_id} guild:{guild_id}")
            if not resumed:
                return "No change: the bot was not paused for credit."
            self._changed(interaction, "resumed the bot-wide wallet pause")
            return (
                "Resumed submissions for the whole bot. If the TTS account still has no credit, "
                "the next request pauses it again and moderators are alerted."
            )

        await self._run(interaction, work)


def _fields(
    requests_per_day: int | None,
    chars_per_day: int | None,
    cooldown_seconds: int | None,
    max_in_flight: int | None,
    max_chars_per_request: int | None,
) -> dict[str, int | None]:
    """The policy options of set-default / set-role / set-user, by field name (discord.py
    needs each option spelled out in every command's signature; this keeps one mapping)."""
    return {
        "requests_per_day": requests_per_day,
        "chars_per_day": chars_per_day,
        "cooldown_seconds": cooldown_seconds,
        "max_in_flight": max_in_flight,
        "max_chars_per_request": max_chars_per_request,
    }

