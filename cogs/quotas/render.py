"""Pure text rendering for ``/quota``: data from ``bot.quotas`` in, Discord message text out.

No ``discord`` import and no I/O, so every function is unit-tested on plain values.

Decisions:

- Times are Discord timestamps (``<t:UNIX:R>`` / ``<t:UNIX:f>``): each reader sees them in
  their own time zone and as a live "in 3 hours".
- Members, roles and channels appear as mentions (``<@id>``, ``<@&id>``, ``<#id>``), which
  Discord shows as names; the cog sends every reply with mentions disabled, so none pings.
- A message may hold at most 2,000 characters: long lists are cut with "… and N more" and
  ``fit`` trims anything still too long, so a server with hundreds of overrides still gets
  an answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from bot.formats import money, plural
from bot.quotas import (
    POLICY_FIELDS,
    AuditEntry,
    GuildSettings,
    GuildUsage,
    Policy,
    PolicyEntry,
    PolicyScope,
    ResolvedPolicy,
    UsageSummary,
    WalletState,
)

MESSAGE_LIMIT = 2000
LIST_LIMIT = 15

#: How each policy field reads in replies (and in option descriptions).
FIELD_LABELS: Mapping[str, str] = {
    "requests_per_day": "requests per day",
    "chars_per_day": "characters per day",
    "cooldown_seconds": "cooldown",
    "max_in_flight": "requests in progress at once",
    "max_chars_per_request": "characters per request",
}


# ---- small pieces ---------------------------------------------------------------------------
def timestamp(moment: datetime, style: str = "R") -> str:
    """A Discord timestamp; a naive ``moment`` is taken as UTC (the store's convention)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"<t:{int(moment.timestamp())}:{style}>"


def user(user_id: int) -> str:
    return f"<@{user_id}>"


def role(role_id: int) -> str:
    return f"<@&{role_id}>"


def channel(channel_id: int) -> str:
    return f"<#{channel_id}>"




def seconds(total: int) -> str:
    """An exact duration: ``0 s``, ``45 s``, ``1 min 30 s``, ``2 h``, ``1 h 5 min``."""
    if total <= 0:
        return "none"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{secs} s" if secs else ""]
    return " ".join(p for p in parts if p)


def field_value(name: str, value: int) -> str:
    """One field's value as a moderator reads it."""
    if name == "cooldown_seconds":
        return seconds(value)
    return f"{value:,}"


def describe_policy(policy: Policy) -> str:
    """The fields a policy sets, e.g. ``requests per day 5 · cooldown 30 s`` ("nothing set")."""
    parts = [
        f"{FIELD_LABELS[name]} {field_value(name, value)}"
        for name, value in policy.as_dict().items()
        if value is not None
    ]
    return " · ".join(parts) if parts else "nothing set"


def describe_resolved(policy: ResolvedPolicy) -> str:
    return " · ".join(
        f"{FIELD_LABELS[name]} {field_value(name, getattr(policy, name))}" for name in POLICY_FIELDS
    )


def limited(lines: Sequence[str], limit: int = LIST_LIMIT) -> list[str]:
    """At most ``limit`` lines; the rest summed up as "… and N more"."""
    if len(lines) <= limit:
        return list(lines)
    return [*lines[:limit], f"… and {len(lines) - limit:,} more"]


def fit(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut at a line boundary to fit one Discord message."""
    if len(text) <= limit:
        return text
    marker = "\n… (cut to fit one message)"
    head = text[: limit - len(marker)]
    if "\n" in head:
        head = head[: head.rindex("\n")]
    return head + marker


# ---- /quota me ------------------------------------------------------------------------------
def render_me(summary: UsageSummary, wallet: WalletState) -> str:
    policy = summary.policy
    lines = ["**Your text-to-speech quota on this server**"]
    if summary.blocked:
        lines.append("⛔ You are blocked from using text-to-speech on this server.")
    if summary.guild_paused:
        lines.append("⏸️ The moderators of this server have paused text-to-speech.")
    if wallet.paused:
        lines.append("⏸️ Text-to-speech is paused for the whole bot (the service is out of credit).")
    if summary.exempt:
        lines.append("✨ One of your roles is exempt from member limits (the server's budget still applies).")
        lines.append(f"Requests today: {summary.requests_used:,} used")
        lines.append(f"Characters today: {summary.characters_used:,} used")
        lines.append(f"In progress: {summary.in_flight:,}")
    else:
        lines.append(
            f"Requests today: {summary.requests_used:,} used, "
            f"{summary.requests_remaining or 0:,} of {policy.requests_per_day:,} left"
        )
        lines.append(
            f"Characters today: {summary.characters_used:,} used, "
            f"{summary.characters_remaining or 0:,} of {policy.chars_per_day:,} left"
        )
        lines.append(f"Longest text per request: {plural(policy.max_chars_per_request, 'character')}")
        lines.append(f"In progress: {summary.in_flight:,} of {policy.max_in_flight:,} at once")
        if policy.cooldown_seconds:
            ready = (
                f"next request {timestamp(summary.next_request_at)}"
                if summary.next_request_at is not None
                else "ready now"
            )
            lines.append(f"Cooldown: {seconds(policy.cooldown_seconds)} between requests, {ready}")
        else:
            lines.append("Cooldown: none")
    lines.append(f"Daily counts reset {timestamp(summary.resets_at)} ({timestamp(summary.resets_at, 'f')})")
    return fit("\n".join(lines))


# ---- /quota show ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyView:
    """Everything ``/quota show`` displays, gathered by the cog."""

    defaults: ResolvedPolicy  # the bot-wide built-in values (settings)
    entries: Sequence[PolicyEntry]
    guild: GuildSettings
    blocked: Sequence[int]
    wallet: WalletState
    usage: GuildUsage
    price_per_request: Decimal


def render_show(view: PolicyView) -> str:
    guild_entry = next((e for e in view.entries if e.scope is PolicyScope.GUILD), None)
    server_default = view.defaults.overlaid(guild_entry.policy if guild_entry else None)
    lines = ["**Text-to-speech quota policy of this server**"]
    lines.append(f"Server default: {describe_resolved(server_default)}")
    if guild_entry is None:
        lines.append("(all built-in values; change them with /quota set-default)")
    else:
        lines.append(f"(set here: {describe_policy(guild_entry.policy)}; the rest built in)")

    roles = [
        f"• {role(e.target_id or 0)}: {describe_policy(e.policy)}"
        for e in view.entries
        if e.scope is PolicyScope.ROLE
    ]
    lines.append("**Role policies** (a member gets the most generous of their roles):")
    lines.extend(limited(roles) or ["• none"])
    users = [
        f"• {user(e.target_id or 0)}: {describe_policy(e.policy)}"
        for e in view.entries
        if e.scope is PolicyScope.USER
    ]
    lines.append("**Member overrides** (beat role policies):")
    lines.extend(limited(users) or ["• none"])

    guild, usage = view.guild, view.usage
    budget = "none" if guild.daily_request_budget is None else plural(guild.daily_request_budget, "request")
    cap = "none" if guild.daily_cost_cap is None else money(guild.daily_cost_cap)
    lines.append(
        f"**Server budget per day:** {budget} · cost cap {cap} "
        f"(at {money(view.price_per_request)} per request) · "
        f"used today: {plural(usage.requests, 'request')}, {money(usage.cost)}"
    )
    exempt = ", ".join(role(r) for r in sorted(guild.exempt_role_ids)) or "none"
    lines.append(f"**Exempt roles** (no member limits): {exempt}")
    blocked = ", ".join(user(u) for u in view.blocked[:LIST_LIMIT]) or "none"
    if len(view.blocked) > LIST_LIMIT:
        blocked += f" … and {len(view.blocked) - LIST_LIMIT:,} more"
    lines.append(f"**Blocked members:** {blocked}")
    alerts = (
        "not set (use /quota alerts)" if guild.alert_channel_id is None else channel(guild.alert_channel_id)
    )
    lines.append(f"**Moderator alerts:** {alerts}")
    lines.append(f"**This server:** {_guild_status(guild)}")
    lines.append(f"**Whole bot:** {_wallet_status(view.wallet)}")
    lines.append(f"Daily counts reset {timestamp(usage.resets_at)}.")
    return fit("\n".join(lines))


def _guild_status(guild: GuildSettings) -> str:
    if not guild.paused:
        return "running"
    text = "⏸️ paused"
    if guild.paused_by is not None:
        text += f" by {user(guild.paused_by)}"
    if guild.paused_at is not None:
        text += f" {timestamp(guild.paused_at)}"
    if guild.pause_reason:
        text += f" (reason: {guild.pause_reason})"
    return text + "; /quota resume starts it again"


def _wallet_status(wallet: WalletState) -> str:
    if not wallet.paused:
        return "running"
    text = "⏸️ paused: the TTS service ran out of credit"
    if wallet.since is not None:
        text += f" {timestamp(wallet.since)}"
    if wallet.next_probe_at is not None:
        text += f"; the bot tries again {timestamp(wallet.next_probe_at)}"
    return text + "; after topping up, the bot's owner can resume it at once with /quota resume-wallet"


# ---- /quota usage ---------------------------------------------------------------------------
def render_usage(usage: GuildUsage) -> str:
    budget = "" if usage.daily_request_budget is None else f" of a budget of {usage.daily_request_budget:,}"
    cap = "" if usage.daily_cost_cap is None else f" of a cap of {money(usage.daily_cost_cap)}"
    lines = [
        f"**Today's text-to-speech usage** (resets {timestamp(usage.resets_at)})",
        f"Requests: {usage.requests:,}{budget} · characters: {usage.characters:,} · "
        f"cost: {money(usage.cost)}{cap}",
    ]
    if not usage.top_users:
        lines.append("Nobody has used text-to-speech today.")
    else:
        lines.append("**Top members:**")
        lines.extend(
            f"{rank}. {user(u.user_id)}: {plural(u.requests, 'request')} · "
            f"{plural(u.characters, 'character')} · {money(u.cost)}"
            for rank, u in enumerate(usage.top_users, start=1)
        )
    return fit("\n".join(lines))


# ---- confirmations --------------------------------------------------------------------------
def render_policy_change(target: str, before: Policy, after: Policy) -> str:
    """``target`` is e.g. "the server default" or "<@123>'s override"; lists each change."""
    changes = []
    for name in POLICY_FIELDS:
        old, new = getattr(before, name), getattr(after, name)
        if old == new:
            continue
        was = "inherited" if old is None else field_value(name, old)
        now = "inherited" if new is None else field_value(name, new)
        changes.append(f"• {FIELD_LABELS[name]}: {was} → {now}")
    if not changes:
        return f"No change: {target} already had those values ({describe_policy(after)})."
    lines = [f"Updated {target}:", *changes]
    lines.append(f"Now set there: {describe_policy(after)}.")
    return "\n".join(lines)


def describe_changes(changes: Mapping[str, int | None]) -> str:
    """For logs: ``requests_per_day=5, cooldown_seconds=None``."""
    return ", ".join(f"{k}={v}" for k, v in changes.items())


# ---- /quota history -------------------------------------------------------------------------
_ACTIONS: Mapping[str, str] = {
    "policy.set": "changed a policy",
    "policy.clear": "removed a policy",
    "usage.reset": "reset a member's usage",
    "user.block": "blocked a member",
    "user.unblock": "unblocked a member",
    "guild.budget": "set the request budget",
    "guild.cost_cap": "set the cost cap",
    "guild.reset_hour": "set the reset hour",
    "guild.alert_channel": "set the alert channel",
    "guild.exempt_add": "exempted a role",
    "guild.exempt_remove": "ended a role's exemption",
    "guild.pause": "paused text-to-speech",
    "guild.resume": "resumed text-to-speech",
}


def render_history(entries: Iterable[AuditEntry]) -> str:
    lines = ["**Recent quota changes on this server** (newest first)"]
    rows = [
        f"• {timestamp(e.at)} {user(e.actor_id) if e.actor_id else 'the bot'} "
        f"{_ACTIONS.get(e.action, e.action)}{_audit_details(e.details)}"
        for e in entries
    ]
    lines.extend(rows or ["• nothing yet"])
    return fit("\n".join(lines))


def _audit_details(details: Mapping[str, object]) -> str:
    parts: list[str] = []
    if details.get("scope") == PolicyScope.GUILD.value:
        parts.append("server default")
    elif details.get("scope") == PolicyScope.ROLE.value:
        parts.append(f"role {role(int(str(details['target_id'])))}")
    elif details.get("scope") == PolicyScope.USER.value:
        parts.append(f"member {user(int(str(details['target_id'])))}")
    if "user_id" in details and details["user_id"] is not None:
        parts.append(user(int(str(details["user_id"]))))
    if "role_id" in details and details["role_id"] is not None:
        parts.append(role(int(str(details["role_id"]))))
    changes = details.get("changes")
    if isinstance(changes, dict):
        parts.append(
            ", ".join(
                f"{FIELD_LABELS.get(k, k)} {'inherited' if v is None else v}" for k, v in changes.items()
            )
        )
    for key in ("daily_request_budget", "daily_cost_cap"):
        if key in details:
            parts.append("none" if details[key] is None else str(details[key]))
    if "alert_channel_id" in details:
        value = details["alert_channel_id"]
        parts.append("off" if value is None else channel(int(str(value))))
    if details.get("reason"):
        parts.append(f"reason: {details['reason']}")
    return f": {'; '.join(parts)}" if parts else ""


# ---- helpers for confirmations ------------------------------------------------------------------
def policy_of(entries: Iterable[PolicyEntry], scope: PolicyScope, target_id: int | None) -> Policy:
    """The stored policy of one scope/target among ``entries`` (empty if none)."""
    for entry in entries:
        if entry.scope is scope and (scope is PolicyScope.GUILD or entry.target_id == target_id):
            return entry.policy
    return Policy()


def budget_text(requests: int | None) -> str:
    return "none" if requests is None else plural(requests, "request")


def cap_text(amount: Decimal | None) -> str:
    return "none" if amount is None else money(amount)
