"""``/quota`` through the Discord sandbox, the real bot and a real SQLite database.

Each moderator command is run as a person would run it; the database is then read back
through ``QuotaAdmin`` / ``QuotaService`` (the same API the bot uses) and the audit log.
Tests that need no ``/speak`` load only ``cogs.quotas``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.quotas import Policy, PolicyScope
from cogs.quotas import chart
from tests.discord.harness import Harness, open_harness
from tests.sandbox import Member, Message, Overwrite, Permission

QUOTA_ONLY = ("cogs.quotas",)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path, cogs=QUOTA_ONLY) as harness:
        yield harness


async def quota(
    h: Harness,
    sub: str,
    user: Member,
    options: Mapping[str, Any] | None = None,
    *,
    validate: bool = True,
) -> Message:
    """Run ``/quota <sub>`` and return the bot's (single, ephemeral) answer."""
    handle = await h.sandbox.slash(f"quota {sub}", user=user, options=options or {}, validate=validate)
    message = await handle.wait_for_original()
    assert message.ephemeral, message
    assert not any(message.pings().values()), f"a /quota reply would ping: {message.pings()}"
    return message


async def audit_actions(h: Harness) -> list[tuple[str, int | None]]:
    entries = await h.bot.core.quotas.admin.audit(h.guild.id, limit=100)
    return [(e.action, e.actor_id) for e in reversed(entries)]


async def snapshot(h: Harness) -> tuple[object, ...]:
    """Every moderator-controlled fact of the guild, to show that a refusal changed nothing."""
    admin = h.bot.core.quotas.admin
    return (
        await admin.policies(h.guild.id),
        await admin.guild_settings(h.guild.id),
        await admin.blocked(h.guild.id),
        await admin.audit(h.guild.id, limit=100),
        await h.bot.core.wallet.state(),
    )


# ---- members ---------------------------------------------------------------------------------
async def test_me_for_a_fresh_member(h: Harness) -> None:
    reply = await quota(h, "me", h.alice)
    text = reply.content
    assert "Requests today: 0 used, 20 of 20 left" in text
    assert "Characters today: 0 used, 5,000 of 5,000 left" in text
    assert "In progress: 0 of 3 at once" in text
    usage = await h.bot.core.quotas.usage(h.guild.id, h.alice.id)
    assert f"<t:{int(usage.resets_at.timestamp())}:R>" in text
    assert reply.allowed_mentions == {"parse": []}


async def test_me_refuses_nothing_and_changes_nothing_for_anyone(h: Harness) -> None:
    before = await snapshot(h)
    await quota(h, "me", h.bob)
    await quota(h, "me", h.mo)
    assert await snapshot(h) == before


# ---- who may moderate ------------------------------------------------------------------------
async def test_a_non_moderators_set_user_is_refused_by_the_bot(h: Harness) -> None:
    before = await snapshot(h)
    handle = await h.sandbox.slash(
        "quota set-user", user=h.bob, options={"user": h.alice, "requests_per_day": 100}, validate=False
    )
    refusal = await handle.wait_for_original()
    assert refusal.ephemeral
    assert "Only moderators (Manage Server permission) can use /quota set-user" in refusal.content
    assert await snapshot(h) == before
    assert (await h.bot.core.quotas.admin.policies(h.guild.id)) == []


@pytest.mark.parametrize(
    ("sub", "options"),
    [
        ("show", {}),
        ("usage", {}),
        ("pause", {}),
        ("block", {"user": "alice"}),
        ("budget", {"requests": 5}),
    ],
)
async def test_every_moderator_command_is_refused_to_members(
    h: Harness, sub: str, options: dict[str, Any]
) -> None:
    await h.bot.core.wallet.record_insufficient_balance("Insufficient Balance")
    before = await snapshot(h)
    values = {k: getattr(h, v) if k == "user" else v for k, v in options.items()}
    reply = await quota(h, sub, h.alice, values, validate=False)
    assert f"Only moderators (Manage Server permission) can use /quota {sub}" in reply.content
    assert await snapshot(h) == before


async def test_an_administrator_without_the_mods_role_may_moderate(tmp_path: Path) -> None:
    async with open_harness(tmp_path, cogs=QUOTA_ONLY, start=False) as h:
        admins = h.guild.add_role("Admins", permissions=Permission.ADMINISTRATOR)
        boss = h.guild.add_member("boss", roles=[admins])
        await h.start_bot()
        reply = await quota(h, "set-default", boss, {"requests_per_day": 7})
        assert "requests per day: inherited → 7" in reply.content
        assert await audit_actions(h) == [("policy.set", boss.id)]


# ---- policies --------------------------------------------------------------------------------
async def test_set_user_changes_the_override_and_says_what_changed(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.quotas.cog")
    reply = await quota(h, "set-user", h.mo, {"user": h.alice, "requests_per_day": 3, "cooldown_seconds": 90})
    assert f"Updated the override of <@{h.alice.id}>:" in reply.content
    assert "• requests per day: inherited → 3" in reply.content
    assert "• cooldown: inherited → 1 min 30 s" in reply.content
    assert f"In effect for <@{h.alice.id}> now: requests per day 3" in reply.content
    assert f"<@{h.alice.id}>" in reply.content and not reply.pings()["users"]

    admin = h.bot.core.quotas.admin
    [entry] = await admin.policies(h.guild.id)
    assert (entry.scope, entry.target_id, entry.updated_by) == (PolicyScope.USER, h.alice.id, h.mo.id)
    assert entry.policy == Policy(requests_per_day=3, cooldown_seconds=90)
    assert (await h.bot.core.quotas.usage(h.guild.id, h.alice.id)).policy.requests_per_day == 3
    assert await audit_actions(h) == [("policy.set", h.mo.id)]
    assert any(
        f"by user {h.mo.id}" in r.getMessage() and "requests_per_day=3" in r.getMessage()
        for r in caplog.records
    )

    again = await quota(h, "set-user", h.mo, {"user": h.alice, "requests_per_day": 5})
    assert "• requests per day: 3 → 5" in again.content
    assert "cooldown" not in again.content.split("Now set there")[0]


async def test_set_default_and_set_role_resolve_for_members(h: Harness) -> None:
    await quota(h, "set-default", h.mo, {"requests_per_day": 4, "max_chars_per_request": 300})
    reply = await quota(h, "set-role", h.mo, {"role": h.mods, "requests_per_day": 50})
    assert f"Updated the policy of <@&{h.mods.id}>:" in reply.content
    assert not reply.pings()["roles"]

    quotas = h.bot.core.quotas
    entries = {(e.scope, e.target_id): e.policy for e in await quotas.admin.policies(h.guild.id)}
    assert entries == {
        (PolicyScope.GUILD, None): Policy(requests_per_day=4, max_chars_per_request=300),
        (PolicyScope.ROLE, h.mods.id): Policy(requests_per_day=50),
    }
    alice = await quotas.usage(h.guild.id, h.alice.id)
    mo = await quotas.usage(h.guild.id, h.mo.id, [h.mods.id])
    assert (alice.policy.requests_per_day, alice.policy.max_chars_per_request) == (4, 300)
    assert (mo.policy.requests_per_day, mo.policy.max_chars_per_request) == (50, 300)
    me = await quota(h, "me", h.mo)
    assert "0 used, 50 of 50 left" in me.content


async def test_clear_one_field_then_the_whole_policy(h: Harness) -> None:
    admin = h.bot.core.quotas.admin
    await quota(h, "set-user", h.mo, {"user": h.bob, "requests_per_day": 2, "chars_per_day": 99})
    one = await quota(h, "clear-user", h.mo, {"user": h.bob, "field": "chars_per_day"})
    assert "• characters per day: 99 → inherited" in one.content
    [entry] = await admin.policies(h.guild.id)
    assert entry.policy == Policy(requests_per_day=2)

    whole = await quota(h, "clear-user", h.mo, {"user": h.bob})
    assert f"Removed the override of <@{h.bob.id}>" in whole.content
    assert await admin.policies(h.guild.id) == []
    nothing = await quota(h, "clear-user", h.mo, {"user": h.bob})
    assert nothing.content.startswith("No change")

    await quota(h, "set-role", h.mo, {"role": h.mods, "max_in_flight": 5})
    await quota(h, "set-default", h.mo, {"max_in_flight": 3})
    await quota(h, "clear-role", h.mo, {"role": h.mods})
    await quota(h, "clear-default", h.mo)
    assert await admin.policies(h.guild.id) == []
    assert [a for a, _ in await audit_actions(h)] == [
        "policy.set",
        "policy.set",
        "policy.clear",
        "policy.set",
        "policy.set",
        "policy.clear",
        "policy.clear",
    ]


# ---- invalid values --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sub", "options", "message"),
    [
        ("set-user", {"user": "alice", "requests_per_day": -5}, "Requests per day must be from 0 to 100,000"),
        ("set-user", {"user": "alice", "max_in_flight": 0}, "Max in flight must be from 1 to 100"),
        ("set-user", {"user": "alice"}, "Give at least one setting"),
        ("set-default", {"cooldown_seconds": 86_401}, "Cooldown seconds must be from 0 to 86,400"),
        ("set-role", {"role": "mods", "requests_per_day": 5, "chars_per_day": -1}, "Chars per day must be"),
        ("set-role", {"role": "everyone", "requests_per_day": 5}, "use /quota set-default"),
        ("clear-user", {"user": "alice", "field": "colour"}, "Unknown setting 'colour'"),
        ("budget", {}, "Give requests, cost_cap or remove"),
        ("budget", {"requests": 10, "cost_cap": "1e3"}, "The cost cap must be an amount in dollars"),
        ("budget", {"requests": 10, "cost_cap": "-2"}, "The cost cap must be an amount in dollars"),
        ("budget", {"requests": 10, "cost_cap": "200000"}, "The cost cap must be from $0 to $100,000"),
        ("budget", {"requests": -1, "cost_cap": "2"}, "The daily request budget must be"),
        ("budget", {"requests": 5, "remove": "requests"}, "cannot set and remove the same limit"),
        ("exempt", {"role": "everyone", "on": True}, "@everyone cannot be exempt"),
        ("block", {"user": "alice", "reason": "x" * 201}, "at most 200 characters"),
        ("pause", {"reason": "y" * 300}, "at most 200 characters"),
    ],
)
async def test_invalid_values_are_refused_and_change_nothing(
    h: Harness, sub: str, options: dict[str, Any], message: str
) -> None:
    await quota(h, "set-default", h.mo, {"requests_per_day": 9})  # something to keep
    before = await snapshot(h)
    names = {"alice": h.alice, "mods": h.mods, "everyone": h.guild.everyone}
    values = {k: names.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
    reply = await quota(h, sub, h.mo, values, validate=False)
    assert message in reply.content
    assert await snapshot(h) == before


# ---- members: reset, block ------------------------------------------------------------------
async def test_reset_user_forgives_todays_usage(h: Harness) -> None:
    quotas = h.bot.core.quotas
    reservation = await quotas.reserve(guild_id=h.guild.id, user_id=h.alice.id, requests=1, characters=40)
    await quotas.commit(reservation.id)
    assert (await quotas.usage(h.guild.id, h.alice.id)).requests_used == 1

    reply = await quota(h, "reset-user", h.mo, {"user": h.alice})
    assert f"Reset <@{h.alice.id}>'s usage today" in reply.content
    usage = await quotas.usage(h.guild.id, h.alice.id)
    assert (usage.requests_used, usage.characters_used) == (0, 0)
    assert (await quotas.guild_usage(h.guild.id)).requests == 1  # the server's budget still counts it
    assert await audit_actions(h) == [("usage.reset", h.mo.id)]
    again = await quota(h, "reset-user", h.mo, {"user": h.alice})
    assert "nothing to reset" in again.content


async def test_block_and_unblock(h: Harness) -> None:
    admin = h.bot.core.quotas.admin
    reply = await quota(h, "block", h.mo, {"user": h.bob, "reason": "spamming   @everyone"})
    assert reply.content == f"Blocked <@{h.bob.id}> (reason: spamming @everyone)."
    assert await admin.blocked(h.guild.id) == [h.bob.id]
    assert (await h.bot.core.quotas.usage(h.guild.id, h.bob.id)).blocked
    assert "You are blocked" in (await quota(h, "me", h.bob)).content
    assert "was blocked already" in (await quota(h, "block", h.mo, {"user": h.bob})).content

    assert (await quota(h, "unblock", h.mo, {"user": h.bob})).content == f"Unblocked <@{h.bob.id}>."
    assert await admin.blocked(h.guild.id) == []
    assert "was not blocked" in (await quota(h, "unblock", h.mo, {"user": h.bob})).content
    entries = await admin.audit(h.guild.id)
    assert [(e.action, e.actor_id, e.details.get("reason")) for e in reversed(entries)] == [
        ("user.block", h.mo.id, "spamming @everyone"),
        ("user.unblock", h.mo.id, None),
    ]


# ---- server settings -------------------------------------------------------------------------
async def test_budget_sets_and_removes_the_request_budget_and_cost_cap(h: Harness) -> None:
    admin = h.bot.core.quotas.admin
    reply = await quota(h, "budget", h.mo, {"requests": 500, "cost_cap": "$2.50"})
    assert "• request budget: none → 500 requests" in reply.content
    assert "• cost cap: none → $2.50" in reply.content
    settings = await admin.guild_settings(h.guild.id)
    assert (settings.daily_request_budget, settings.daily_cost_cap) == (500, Decimal("2.50"))

    off = await quota(h, "budget", h.mo, {"cost_cap": "off"})
    assert "• cost cap: $2.50 → none" in off.content and "request budget" not in off.content
    await quota(h, "budget", h.mo, {"remove": "requests"})
    settings = await admin.guild_settings(h.guild.id)
    assert (settings.daily_request_budget, settings.daily_cost_cap) == (None, None)
    assert [a for a, _ in await audit_actions(h)] == [
        "guild.budget",
        "guild.cost_cap",
        "guild.cost_cap",
        "guild.budget",
    ]


async def test_exempt_role_on_and_off(h: Harness) -> None:
    admin, quotas = h.bot.core.quotas.admin, h.bot.core.quotas
    reply = await quota(h, "exempt", h.mo, {"role": h.mods, "on": True})
    assert f"<@&{h.mods.id}> is now exempt" in reply.content
    assert (await admin.guild_settings(h.guild.id)).exempt_role_ids == {h.mods.id}
    assert (await quotas.usage(h.guild.id, h.mo.id, [h.mods.id])).exempt
    assert "exempt from member limits" in (await quota(h, "me", h.mo)).content
    assert "already exempt" in (await quota(h, "exempt", h.mo, {"role": h.mods, "on": True})).content

    await quota(h, "exempt", h.mo, {"role": h.mods, "on": False})
    assert (await admin.guild_settings(h.guild.id)).exempt_role_ids == frozenset()
    assert await audit_actions(h) == [("guild.exempt_add", h.mo.id), ("guild.exempt_remove", h.mo.id)]


async def test_alerts_channel_set_and_turned_off(h: Harness) -> None:
    admin = h.bot.core.quotas.admin
    reply = await quota(h, "alerts", h.mo, {"channel": h.alerts})
    assert f"now go to <#{h.alerts.id}>" in reply.content
    assert (await admin.guild_settings(h.guild.id)).alert_channel_id == h.alerts.id
    assert f"Moderator alerts:** <#{h.alerts.id}>" in (await quota(h, "show", h.mo)).content

    off = await quota(h, "alerts", h.mo)
    assert "alerts are off" in off.content
    assert (await admin.guild_settings(h.guild.id)).alert_channel_id is None
    assert await audit_actions(h) == [("guild.alert_channel", h.mo.id), ("guild.alert_channel", h.mo.id)]


async def test_alerts_refuse_a_channel_the_bot_cannot_post_in(tmp_path: Path) -> None:
    async with open_harness(tmp_path, cogs=QUOTA_ONLY, start=False) as h:
        locked = h.guild.add_text_channel(
            "locked", overwrites={h.guild.bot_member: Overwrite(deny=Permission.SEND_MESSAGES)}
        )
        await h.start_bot()
        before = await snapshot(h)
        reply = await quota(h, "alerts", h.mo, {"channel": locked})
        assert f"I cannot post in <#{locked.id}>" in reply.content
        assert await snapshot(h) == before


async def test_pause_and_resume_the_server(h: Harness) -> None:
    admin = h.bot.core.quotas.admin
    reply = await quota(h, "pause", h.mo, {"reason": "server event"})
    assert "Paused text-to-speech on this server" in reply.content and "server event" in reply.content
    settings = await admin.guild_settings(h.guild.id)
    assert (settings.paused, settings.paused_by, settings.pause_reason) == (True, h.mo.id, "server event")
    assert "paused by" in (await quota(h, "show", h.mo)).content
    assert "paused already" in (await quota(h, "pause", h.mo)).content

    resumed = await quota(h, "resume", h.mo)
    assert resumed.content == "Resumed text-to-speech on this server."
    assert not (await admin.guild_settings(h.guild.id)).paused
    assert "was not paused" in (await quota(h, "resume", h.mo)).content
    assert await audit_actions(h) == [("guild.pause", h.mo.id), ("guild.resume", h.mo.id)]


async def test_resume_points_to_the_wallet_pause_and_resume_wallet_ends_it(h: Harness) -> None:
    h.sandbox.set_application_owner(h.bob)  # the application's owner: bob, not a moderator here
    wallet = h.bot.core.wallet
    await wallet.record_insufficient_balance("Insufficient Balance. Required: $0.01")
    show = await quota(h, "show", h.mo)
    assert "Whole bot:** ⏸️ paused: the TTS service ran out of credit" in show.content
    assert "paused for the whole bot" in (await quota(h, "me", h.alice)).content

    resume = await quota(h, "resume", h.mo)
    assert "The bot's owner ends that by topping up (or with /quota resume-wallet)." in resume.content
    assert (await wallet.state()).paused

    # A server's moderators cannot lift a pause that covers every server; the bot's owner can.
    refused = await quota(h, "resume-wallet", h.mo)
    assert refused.content.startswith("Only the bot's owner can end the out-of-credit pause")
    assert (await wallet.state()).paused
    reply = await quota(h, "resume-wallet", h.bob)
    assert reply.content.startswith("Resumed submissions for the whole bot.")
    assert not (await wallet.state()).paused
    bot_wide = await h.bot.core.quotas.admin.audit(None)
    assert bot_wide[0].action == "wallet.resume"
    assert bot_wide[0].details == {"by": f"user:{h.bob.id} guild:{h.guild.id}"}
    assert "was not paused" in (await quota(h, "resume-wallet", h.bob)).content


async def test_show_gathers_the_whole_policy(h: Harness) -> None:
    await quota(h, "set-default", h.mo, {"requests_per_day": 8})
    await quota(h, "set-role", h.mo, {"role": h.mods, "requests_per_day": 40})
    await quota(h, "set-user", h.mo, {"user": h.alice, "chars_per_day": 100})
    await quota(h, "budget", h.mo, {"requests": 300, "cost_cap": "3"})
    await quota(h, "exempt", h.mo, {"role": h.mods, "on": True})
    await quota(h, "block", h.mo, {"user": h.bob})
    text = (await quota(h, "show", h.mo)).content
    assert "Server default: requests per day 8 ·" in text
    assert f"• <@&{h.mods.id}>: requests per day 40" in text
    assert f"• <@{h.alice.id}>: characters per day 100" in text
    assert "300 requests · cost cap $3.00" in text
    assert f"Exempt roles** (no member limits): <@&{h.mods.id}>" in text
    assert f"Blocked members:** <@{h.bob.id}>" in text
    assert "This server:** running" in text

    history = (await quota(h, "history", h.mo)).content
    assert f"<@{h.mo.id}> blocked a member: <@{h.bob.id}>" in history
    assert history.count(f"<@{h.mo.id}>") == 7


async def test_usage_shows_the_top_users(h: Harness) -> None:
    quotas = h.bot.core.quotas
    for user, characters in ((h.bob, 10), (h.alice, 30), (h.alice, 20)):
        reservation = await quotas.reserve(
            guild_id=h.guild.id, user_id=user.id, requests=1, characters=characters
        )
        await quotas.commit(reservation.id)
    message = await quota(h, "usage", h.mo)
    text = message.content
    assert "Requests: 3 · characters: 60 · cost: $0.03" in text
    assert f"1. <@{h.alice.id}>: 2 requests · 50 characters · $0.02" in text
    assert f"2. <@{h.bob.id}>: 1 request · 10 characters · $0.01" in text
    # The 30-day chart arrives with it: a real PNG of the size the renderer draws.
    (picture,) = message.attachments
    assert picture.filename == "quota-usage.png"
    image = Image.open(io.BytesIO(picture.data))
    image.verify()
    assert (image.format, image.size) == ("PNG", (chart.WIDTH, chart.HEIGHT))
    assert picture.data[:8] == b"\x89PNG\r\n\x1a\n"


async def test_usage_history_feeds_the_chart(h: Harness) -> None:
    quotas = h.bot.core.quotas
    await quotas.admin.set_daily_budget(h.guild.id, 9, actor_id=h.mo.id)
    for user, requests in ((h.bob, 1), (h.alice, 3)):
        await quotas.commit((await quotas.reserve(
            guild_id=h.guild.id, user_id=user.id, requests=requests, characters=5)).id)
    history = await quotas.usage_history(h.guild.id)
    assert len(history.days) == 30 and history.requests[-1] == 4 and sum(history.requests) == 4
    assert [user for user, _ in history.top_members] == [h.alice.id, h.bob.id]
    assert history.top_members[0][1][-1] == 3 and history.daily_request_budget == 9


def test_the_chart_labels_forgotten_members_as_such() -> None:
    from bot.voices.privacy import FORGOTTEN_USER

    names = chart.member_names([7, FORGOTTEN_USER, 8], {7: "alice"}.get)
    assert names == {7: "alice", FORGOTTEN_USER: chart.FORGOTTEN_LABEL}  # 8: not cached, id label
