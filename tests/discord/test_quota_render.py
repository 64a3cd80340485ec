"""Unit tests of the pure ``/quota`` helpers: rendering (``cogs.quotas.render``) and input
checks (``cogs.quotas.inputs``). No Discord, no database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.quotas import (
    AuditEntry,
    GuildSettings,
    GuildUsage,
    Policy,
    PolicyEntry,
    PolicyError,
    PolicyScope,
    ResolvedPolicy,
    UsageSummary,
    UserUsage,
    WalletState,
)
from cogs.quotas import render
from cogs.quotas.inputs import check_budget, check_reason, parse_dollars, policy_changes

NOW = datetime(2026, 5, 22, 13, 0, tzinfo=UTC)
RESET = datetime(2026, 5, 23, 0, 0, tzinfo=UTC)
DEFAULTS = ResolvedPolicy(
    requests_per_day=20, chars_per_day=5000, cooldown_seconds=10, max_in_flight=2, max_chars_per_request=1000
)
RUNNING = WalletState(paused=False, since=None, reason=None, paused_by=None)


def summary(**changes: object) -> UsageSummary:
    values: dict[str, object] = {
        "guild_id": 1,
        "user_id": 2,
        "policy": DEFAULTS,
        "exempt": False,
        "blocked": False,
        "guild_paused": False,
        "requests_used": 3,
        "characters_used": 120,
        "in_flight": 1,
        "requests_remaining": 17,
        "characters_remaining": 4880,
        "next_request_at": None,
        "resets_at": RESET,
    }
    values.update(changes)
    return UsageSummary(**values)  # type: ignore[arg-type]


def guild_usage(**changes: object) -> GuildUsage:
    values: dict[str, object] = {
        "guild_id": 1,
        "requests": 7,
        "characters": 900,
        "cost": Decimal("0.07"),
        "daily_request_budget": None,
        "daily_cost_cap": None,
        "resets_at": RESET,
        "top_users": (),
    }
    values.update(changes)
    return GuildUsage(**values)  # type: ignore[arg-type]


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


# ---- small pieces ---------------------------------------------------------------------------
def test_timestamp_is_a_discord_timestamp_and_treats_naive_times_as_utc() -> None:
    assert render.timestamp(RESET) == f"<t:{unix(RESET)}:R>"
    assert render.timestamp(RESET.replace(tzinfo=None), "f") == f"<t:{unix(RESET)}:f>"


@pytest.mark.parametrize(
    ("total", "text"),
    [(0, "none"), (45, "45 s"), (90, "1 min 30 s"), (3600, "1 h"), (3900, "1 h 5 min"), (86_400, "24 h")],
)
def test_seconds_reads_exactly(total: int, text: str) -> None:
    assert render.seconds(total) == text


def test_fit_cuts_at_a_line_and_says_so() -> None:
    text = "\n".join(f"line {i:04d} " + "x" * 50 for i in range(100))
    cut = render.fit(text)
    assert len(cut) <= render.MESSAGE_LIMIT
    assert cut.endswith("(cut to fit one message)")
    assert render.fit("short") == "short"


# ---- /quota me ------------------------------------------------------------------------------
def test_me_shows_used_remaining_in_flight_and_the_reset_time() -> None:
    text = render.render_me(summary(), RUNNING)
    assert "Requests today: 3 used, 17 of 20 left" in text
    assert "Characters today: 120 used, 4,880 of 5,000 left" in text
    assert "In progress: 1 of 2 at once" in text
    assert "Cooldown: 10 s between requests, ready now" in text
    assert f"<t:{unix(RESET)}:R>" in text
    assert "blocked" not in text and "paused" not in text


def test_me_shows_a_running_cooldown_as_a_timestamp() -> None:
    ready = NOW + timedelta(seconds=8)
    text = render.render_me(summary(next_request_at=ready), RUNNING)
    assert f"next request <t:{unix(ready)}:R>" in text


def test_me_for_an_exempt_blocked_member_while_everything_is_paused() -> None:
    wallet = WalletState(paused=True, since=NOW, reason="Insufficient Balance", paused_by="gateway (402)")
    text = render.render_me(
        summary(
            exempt=True, blocked=True, guild_paused=True, requests_remaining=None, characters_remaining=None
        ),
        wallet,
    )
    assert "You are blocked" in text
    assert "moderators of this server have paused" in text
    assert "paused for the whole bot" in text
    assert "exempt from member limits" in text
    assert "of 20 left" not in text


# ---- /quota show ----------------------------------------------------------------------------
def view(**changes: object) -> render.PolicyView:
    values: dict[str, object] = {
        "defaults": DEFAULTS,
        "entries": [],
        "guild": GuildSettings(guild_id=1),
        "blocked": [],
        "wallet": RUNNING,
        "usage": guild_usage(),
        "price_per_request": Decimal("0.01"),
    }
    values.update(changes)
    return render.PolicyView(**values)  # type: ignore[arg-type]


def entry(scope: PolicyScope, target: int | None, **fields: int) -> PolicyEntry:
    return PolicyEntry(scope=scope, target_id=target, policy=Policy(**fields), updated_by=9, updated_at=NOW)


def test_show_with_nothing_configured() -> None:
    text = render.render_show(view())
    assert "Server default: requests per day 20 · characters per day 5,000 · cooldown 10 s" in text
    assert "all built-in values" in text
    assert text.count("• none") == 2
    assert "cost cap none" in text and "$0.01 per request" in text
    assert "Exempt roles** (no member limits): none" in text
    assert "Blocked members:** none" in text
    assert "not set (use /quota alerts)" in text
    assert "This server:** running" in text and "Whole bot:** running" in text


def test_show_everything_configured() -> None:
    guild = GuildSettings(
        guild_id=1,
        alert_channel_id=55,
        paused=True,
        paused_by=9,
        paused_at=NOW,
        pause_reason="maintenance",
        daily_request_budget=500,
        daily_cost_cap=Decimal("5.00"),
        exempt_role_ids=frozenset({77}),
    )
    wallet = WalletState(
        paused=True,
        since=NOW,
        reason="Insufficient Balance",
        paused_by="gateway (402)",
        next_probe_at=NOW + timedelta(minutes=10),
    )
    entries = [
        entry(PolicyScope.GUILD, None, requests_per_day=50),
        entry(PolicyScope.ROLE, 77, requests_per_day=100, cooldown_seconds=0),
        entry(PolicyScope.USER, 2, requests_per_day=1),
    ]
    text = render.render_show(view(entries=entries, guild=guild, wallet=wallet, blocked=[3, 4]))
    assert "Server default: requests per day 50 ·" in text
    assert "set here: requests per day 50" in text
    assert "• <@&77>: requests per day 100 · cooldown none" in text
    assert "• <@2>: requests per day 1" in text
    assert "500 requests · cost cap $5.00" in text
    assert "Exempt roles** (no member limits): <@&77>" in text
    assert "Blocked members:** <@3>, <@4>" in text
    assert "Moderator alerts:** <#55>" in text
    assert f"paused by <@9> <t:{unix(NOW)}:R> (reason: maintenance)" in text
    assert "out of credit" in text and "/quota resume-wallet" in text


def test_show_cuts_long_lists_and_fits_one_message() -> None:
    entries = [
        entry(PolicyScope.USER, 1000 + i, requests_per_day=i, chars_per_day=i * 10) for i in range(300)
    ]
    text = render.render_show(view(entries=entries, blocked=list(range(100, 400))))
    assert len(text) <= render.MESSAGE_LIMIT
    assert "… and 285 more" in text


# ---- /quota usage ---------------------------------------------------------------------------
def test_usage_ranks_top_users_with_budget_and_cap() -> None:
    usage = guild_usage(
        daily_request_budget=100,
        daily_cost_cap=Decimal("2.00"),
        top_users=(UserUsage(5, 4, 300, Decimal("0.04")), UserUsage(6, 1, 12, Decimal("0.01"))),
    )
    text = render.render_usage(usage)
    assert "Requests: 7 of a budget of 100 · characters: 900 · cost: $0.07 of a cap of $2.00" in text
    assert re.search(
        r"1\. <@5>: 4 requests · 300 characters · \$0\.04\n2\. <@6>: 1 request · 12 characters", text
    )


def test_usage_of_a_quiet_day() -> None:
    assert "Nobody has used text-to-speech today." in render.render_usage(guild_usage(requests=0))


# ---- confirmations and history ------------------------------------------------------------------
def test_policy_change_lists_each_change_before_and_after() -> None:
    text = render.render_policy_change(
        "the override of <@2>", Policy(requests_per_day=5), Policy(requests_per_day=1, cooldown_seconds=90)
    )
    assert "Updated the override of <@2>:" in text
    assert "• requests per day: 5 → 1" in text
    assert "• cooldown: inherited → 1 min 30 s" in text
    cleared = render.render_policy_change("x", Policy(requests_per_day=5), Policy())
    assert "• requests per day: 5 → inherited" in cleared and "nothing set" in cleared
    assert render.render_policy_change("x", Policy(max_in_flight=2), Policy(max_in_flight=2)).startswith(
        "No change"
    )


def test_history_names_the_actor_and_the_change() -> None:
    entries = [
        AuditEntry(
            2, 1, 9, "policy.set", {"scope": "user", "target_id": 2, "changes": {"requests_per_day": 1}}, NOW
        ),
        AuditEntry(1, 1, 9, "user.block", {"user_id": 3, "reason": "spam"}, NOW),
        AuditEntry(0, 1, 9, "guild.alert_channel", {"alert_channel_id": None}, NOW),
    ]
    text = render.render_history(entries)
    assert "<@9> changed a policy: member <@2>; requests per day 1" in text
    assert "<@9> blocked a member: <@3>; reason: spam" in text
    assert "set the alert channel: off" in text
    assert "nothing yet" in render.render_history([])


# ---- input checks ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("2.50", Decimal("2.50")),
        ("$3", Decimal(3)),
        (" .5 ", Decimal("0.5")),
        ("1,000", Decimal(1000)),
        ("0", Decimal(0)),
        ("off", None),
        ("None", None),
    ],
)
def test_parse_dollars_accepts_amounts_and_off(text: str, amount: Decimal | None) -> None:
    assert parse_dollars(text) == amount


@pytest.mark.parametrize("text", ["1e3", "-1", "2.505", "nan", "inf", "two", "$", "", "100001"])
def test_parse_dollars_refuses_other_spellings_and_too_much(text: str) -> None:
    with pytest.raises(PolicyError, match="cost cap"):
        parse_dollars(text)


def test_policy_changes_needs_one_valid_field() -> None:
    assert policy_changes({"requests_per_day": 1, "cooldown_seconds": None}) == {"requests_per_day": 1}
    with pytest.raises(PolicyError, match="at least one"):
        policy_changes({"requests_per_day": None})
    with pytest.raises(PolicyError, match="from 1 to 100"):
        policy_changes({"requests_per_day": 3, "max_in_flight": 0})


def test_budget_and_reason_checks() -> None:
    assert check_budget(None) is None and check_budget(0) == 0
    with pytest.raises(PolicyError, match="budget"):
        check_budget(-1)
    assert check_reason("  too   loud ") == "too loud"
    assert check_reason("   ") is None
    with pytest.raises(PolicyError, match="at most 200"):
        check_reason("x" * 201)
