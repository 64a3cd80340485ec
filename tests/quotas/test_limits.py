"""Every limit, the override order, the messages and the reset times (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.quotas import (
    GuildPaused,
    PolicyError,
    PolicyScope,
    QuotaExceeded,
    QuotaService,
    Reservation,
)
from bot.store import Database, JobsRepository, JobState, NewJob
from bot.store.tables import jobs as jobs_table
from tests.quotas.conftest import make_settings

GUILD, USER, OTHER, MOD = 500, 600, 601, 900
ROLE_A, ROLE_B, EXEMPT = 700, 701, 702
EVENING = datetime(2026, 1, 1, 20, 48, tzinfo=UTC)  # 3 h 12 min before the midnight reset


async def take(
    quotas: QuotaService,
    *,
    guild_id: int | None = GUILD,
    user_id: int = USER,
    role_ids: Sequence[int] = (),
    requests: int = 1,
    characters: int = 10,
) -> Reservation:
    return await quotas.reserve(
        guild_id=guild_id, user_id=user_id, role_ids=role_ids, requests=requests, characters=characters
    )


async def refused(quotas: QuotaService, **kwargs: object) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as caught:
        await take(quotas, **kwargs)  # type: ignore[arg-type]
    return caught.value


@pytest.fixture
async def no_cooldown(quotas: QuotaService) -> QuotaService:
    await quotas.admin.set_guild_default(GUILD, actor_id=MOD, cooldown_seconds=0, max_in_flight=100)
    return quotas


async def test_daily_requests_then_reset_at_midnight(no_cooldown: QuotaService, clock: ManualClock) -> None:
    clock.set(EVENING)
    for _ in range(20):
        await take(no_cooldown)
    error = await refused(no_cooldown)
    assert error.reason == "You have used 20/20 requests today; resets in 3 h 12 min."
    assert error.code == "requests_per_day" and error.user_message == error.reason
    assert error.resets_at == datetime(2026, 1, 2, 0, 0, tzinfo=UTC)
    assert (await no_cooldown.usage(GUILD, USER)).requests_remaining == 0
    clock.set(datetime(2026, 1, 1, 23, 59, 59, tzinfo=UTC))
    assert (await refused(no_cooldown)).reason.endswith("resets in 1 s.")
    clock.advance(1)
    await take(no_cooldown)  # a new day


async def test_a_long_text_needing_more_requests_than_left(
    no_cooldown: QuotaService, clock: ManualClock
) -> None:
    clock.set(EVENING)
    await take(no_cooldown, requests=18)
    error = await refused(no_cooldown, requests=3)
    assert error.reason == "This text needs 3 requests but you have 2 of 20 left today; resets in 3 h 12 min."
    await take(no_cooldown, requests=2)


async def test_daily_characters(no_cooldown: QuotaService, clock: ManualClock) -> None:
    clock.set(EVENING)
    for _ in range(5):
        await take(no_cooldown, characters=960)
    error = await refused(no_cooldown, characters=300)
    assert error.reason == (
        "This text is 300 characters but you have 200 of 5,000 left today; resets in 3 h 12 min."
    )
    await take(no_cooldown, characters=200)
    error = await refused(no_cooldown, characters=1)
    assert error.reason == "You have used 5,000/5,000 characters today; resets in 3 h 12 min."
    assert error.code == "chars_per_day"


async def test_cooldown_between_requests(quotas: QuotaService, clock: ManualClock) -> None:
    first = await take(quotas)
    await quotas.commit(first.id)
    clock.advance(2)
    error = await refused(quotas)
    assert error.reason == "Slow down: you can speak again in 8 s."
    assert error.code == "cooldown" and error.resets_at == first.created_at + timedelta(seconds=10)
    assert (await quotas.usage(GUILD, USER)).next_request_at == error.resets_at
    clock.advance(8)
    await take(quotas)


async def test_a_refunded_request_starts_no_cooldown(quotas: QuotaService) -> None:
    first = await take(quotas)
    await quotas.refund(first.id)
    await take(quotas)


async def test_requests_in_flight(no_cooldown: QuotaService) -> None:
    await no_cooldown.admin.set_guild_default(GUILD, actor_id=MOD, max_in_flight=2)
    first = await take(no_cooldown)
    await take(no_cooldown)
    error = await refused(no_cooldown)
    assert error.reason == "You already have 2 requests in progress; wait for one to finish."
    assert error.code == "max_in_flight" and error.resets_at is None
    await no_cooldown.commit(first.id)
    await take(no_cooldown)


async def test_stale_unsettled_reservations_stop_counting_in_flight(
    no_cooldown: QuotaService, clock: ManualClock
) -> None:
    await no_cooldown.admin.set_guild_default(GUILD, actor_id=MOD, max_in_flight=1)
    await take(no_cooldown)  # its job "crashed" and never settled
    await refused(no_cooldown)
    clock.advance(2 * 600 + 600)  # 2 x CHATTERBOX_MAX_WAIT_SECONDS + 10 min
    await take(no_cooldown)


async def test_characters_per_request_default_is_what_speak_accepts(quotas: QuotaService) -> None:
    await take(quotas, characters=2000)  # QUOTA_MAX_CHARS_PER_REQUEST defaults to CHATTERBOX_MAX_TEXT_CHARS
    error = await refused(quotas, user_id=OTHER, characters=2001)
    assert error.reason == (
        "This text is 2,001 characters; the limit the bot's operator set is 2,000 characters per request."
    )
    assert error.resets_at is None and error.code == "max_chars_per_request"


@pytest.mark.parametrize(
    ("level", "whose"),
    [
        ("guild", "the limit this server's moderators set"),
        ("role", "the limit the moderators set for your role on this server"),
        ("user", "the limit the moderators set for you on this server"),
    ],
)
async def test_a_moderator_can_lower_characters_per_request(
    quotas: QuotaService, level: str, whose: str
) -> None:
    admin = quotas.admin
    if level == "guild":
        await admin.set_guild_default(GUILD, actor_id=MOD, max_chars_per_request=1000)
    elif level == "role":
        await admin.set_role_policy(GUILD, ROLE_A, actor_id=MOD, max_chars_per_request=1000)
    else:
        await admin.set_user_policy(GUILD, USER, actor_id=MOD, max_chars_per_request=1000)
    error = await refused(quotas, role_ids=[ROLE_A], characters=1200)
    assert error.reason == f"This text is 1,200 characters; {whose} is 1,000 characters per request."


async def test_guild_daily_budget_counts_everyone(no_cooldown: QuotaService, clock: ManualClock) -> None:
    clock.set(EVENING)
    await no_cooldown.admin.set_daily_budget(GUILD, 3, actor_id=MOD)
    await take(no_cooldown, user_id=USER, requests=2)
    error = await refused(no_cooldown, user_id=OTHER, requests=2)
    assert error.reason == (
        "This server has 1 of its 3 daily requests left and this text needs 2; resets in 3 h 12 min."
    )
    await take(no_cooldown, user_id=OTHER)
    error = await refused(no_cooldown, user_id=OTHER + 1)
    assert error.reason == "This server has used its daily budget of 3 requests; resets in 3 h 12 min."
    assert error.code == "guild_budget"


async def test_guild_cost_cap(no_cooldown: QuotaService) -> None:
    await no_cooldown.admin.set_cost_cap(GUILD, "0.03", actor_id=MOD)
    first = await take(no_cooldown, requests=2)
    assert first.cost == Decimal("0.02") and first.price_per_request == Decimal("0.01")
    error = await refused(no_cooldown, user_id=OTHER, requests=2)
    assert error.reason.startswith(
        "This would take this server past its daily spending cap of $0.03 ($0.02 spent today)"
    )
    await take(no_cooldown, user_id=OTHER)
    error = await refused(no_cooldown, user_id=OTHER + 1)
    assert error.reason.startswith("This server has reached its daily spending cap of $0.03; resets in")
    assert error.code == "cost_cap"
    await no_cooldown.refund(first.id)  # refunded money is not spent
    await take(no_cooldown, user_id=OTHER + 1, requests=2)


async def test_blocked_members_are_always_refused(quotas: QuotaService) -> None:
    assert await quotas.admin.block(GUILD, USER, actor_id=MOD, reason="spam")
    assert not await quotas.admin.block(GUILD, USER, actor_id=MOD)
    await quotas.admin.add_exempt_role(GUILD, EXEMPT, actor_id=MOD)
    error = await refused(quotas, role_ids=[EXEMPT])
    assert error.reason == "You are blocked from using the bot on this server." and error.code == "blocked"
    await take(quotas, guild_id=GUILD + 1)  # blocked on one server only
    assert await quotas.admin.blocked(GUILD) == [USER]
    assert await quotas.admin.unblock(GUILD, USER, actor_id=MOD)
    await take(quotas)


async def test_exempt_roles_skip_member_limits_but_not_the_server_budget(quotas: QuotaService) -> None:
    await quotas.admin.set_guild_default(GUILD, actor_id=MOD, requests_per_day=1)
    assert await quotas.admin.add_exempt_role(GUILD, EXEMPT, actor_id=MOD)
    for _ in range(3):  # no cooldown, in-flight or daily limit for them
        await take(quotas, role_ids=[ROLE_A, EXEMPT], characters=5000)
    summary = await quotas.usage(GUILD, USER, [EXEMPT])
    assert summary.exempt and summary.requests_remaining is None and summary.requests_used == 3
    await quotas.admin.set_daily_budget(GUILD, 4, actor_id=MOD)
    await take(quotas, role_ids=[EXEMPT])
    assert (await refused(quotas, role_ids=[EXEMPT])).code == "guild_budget"
    assert await quotas.admin.remove_exempt_role(GUILD, EXEMPT, actor_id=MOD)
    assert not await quotas.admin.remove_exempt_role(GUILD, EXEMPT, actor_id=MOD)


async def test_override_order_user_then_roles_then_guild_then_builtin(no_cooldown: QuotaService) -> None:
    quotas, admin = no_cooldown, no_cooldown.admin
    assert (await quotas.usage(GUILD, USER)).policy.requests_per_day == 20  # built-in
    await admin.set_guild_default(GUILD, actor_id=MOD, requests_per_day=2)
    await admin.set_role_policy(GUILD, ROLE_A, actor_id=MOD, requests_per_day=4)
    await admin.set_role_policy(GUILD, ROLE_B, actor_id=MOD, requests_per_day=3, max_chars_per_request=50)
    assert (await quotas.usage(GUILD, USER)).policy.requests_per_day == 2
    with_roles = (await quotas.usage(GUILD, USER, [ROLE_A, ROLE_B])).policy
    assert (with_roles.requests_per_day, with_roles.max_chars_per_request) == (4, 50)
    await admin.set_user_policy(GUILD, USER, actor_id=MOD, requests_per_day=1)
    assert (await quotas.usage(GUILD, USER, [ROLE_A])).policy.requests_per_day == 1
    assert (await quotas.usage(GUILD, OTHER, [ROLE_A])).policy.requests_per_day == 4
    # and the limits are enforced, not just reported
    await take(quotas, user_id=OTHER, role_ids=[ROLE_B])
    await take(quotas, user_id=OTHER, role_ids=[ROLE_B], requests=2)
    assert (await refused(quotas, user_id=OTHER, role_ids=[ROLE_B])).code == "requests_per_day"
    await take(quotas, user_id=OTHER, role_ids=[ROLE_A, ROLE_B])
    # clearing a field inherits again; clearing the whole policy too
    await admin.set_user_policy(GUILD, USER, actor_id=MOD, requests_per_day=None)
    assert (await quotas.usage(GUILD, USER, [ROLE_A])).policy.requests_per_day == 4
    assert await admin.clear_policy(GUILD, PolicyScope.ROLE, ROLE_A, actor_id=MOD)
    assert not await admin.clear_policy(GUILD, PolicyScope.ROLE, ROLE_A, actor_id=MOD)
    assert (await quotas.usage(GUILD, USER, [ROLE_A])).policy.requests_per_day == 2
    entries = await admin.policies(GUILD)
    assert [(e.scope, e.target_id) for e in entries] == [
        (PolicyScope.GUILD, None),
        (PolicyScope.ROLE, ROLE_B),
    ]


async def test_zero_requests_per_day_turns_it_off(quotas: QuotaService) -> None:
    await quotas.admin.set_user_policy(GUILD, USER, actor_id=MOD, requests_per_day=0)
    error = await refused(quotas)
    assert "daily limit is 0" in error.reason and error.resets_at is None


async def test_guild_reset_hour_override(no_cooldown: QuotaService, clock: ManualClock) -> None:
    await no_cooldown.admin.set_reset_hour(GUILD, 6, actor_id=MOD)
    await no_cooldown.admin.set_guild_default(GUILD, actor_id=MOD, requests_per_day=1)
    clock.set(datetime(2026, 1, 2, 5, 0, tzinfo=UTC))
    await take(no_cooldown)
    error = await refused(no_cooldown)
    assert error.resets_at == datetime(2026, 1, 2, 6, 0, tzinfo=UTC)
    assert error.reason.endswith("resets in 1 h.")
    clock.advance(3600)
    await take(no_cooldown)
    assert (await no_cooldown.usage(GUILD, USER)).resets_at == datetime(2026, 1, 3, 6, 0, tzinfo=UTC)


async def test_bot_wide_reset_hour_setting(db: Database, clock: ManualClock) -> None:
    quotas = QuotaService(db, make_settings(quota_reset_hour_utc=13, quota_requests_per_day=1), clock)
    await take(quotas)
    assert (await refused(quotas)).resets_at == datetime(2026, 1, 1, 13, 0, tzinfo=UTC)


async def test_cli_requester_uses_builtin_defaults(db: Database, clock: ManualClock) -> None:
    quotas = QuotaService(db, make_settings(quota_requests_per_day=2, quota_cooldown_seconds=0), clock)
    await quotas.admin.set_guild_default(GUILD, actor_id=MOD, requests_per_day=50)  # not for the CLI
    await take(quotas, guild_id=None, user_id=0)
    await take(quotas, guild_id=None, user_id=0)
    assert (await refused(quotas, guild_id=None, user_id=0)).code == "requests_per_day"
    assert (await quotas.usage(None, 0)).requests_used == 2


async def test_guild_pause_is_separate_and_explained(quotas: QuotaService) -> None:
    await quotas.assert_guild_open(GUILD)
    assert await quotas.admin.pause(GUILD, actor_id=MOD, reason="Maintenance.")
    assert not await quotas.admin.pause(GUILD, actor_id=MOD)
    with pytest.raises(GuildPaused) as caught:
        await take(quotas)
    assert caught.value.user_message == (
        "The moderators of this server have paused text-to-speech. Reason: Maintenance."
    )
    with pytest.raises(GuildPaused):
        await quotas.assert_guild_open(GUILD)
    settings = await quotas.admin.guild_settings(GUILD)
    assert settings.paused and settings.paused_by == MOD and settings.pause_reason == "Maintenance."
    assert (await quotas.usage(GUILD, USER)).guild_paused
    await take(quotas, guild_id=GUILD + 1)  # other servers unaffected
    assert await quotas.admin.resume(GUILD, actor_id=MOD)
    assert not await quotas.admin.resume(GUILD, actor_id=MOD)
    await take(quotas)


async def test_reset_usage_forgives_the_member_but_not_the_server(no_cooldown: QuotaService) -> None:
    quotas = no_cooldown
    await quotas.admin.set_guild_default(GUILD, actor_id=MOD, requests_per_day=2)
    await quotas.admin.set_daily_budget(GUILD, 3, actor_id=MOD)
    await take(quotas, requests=2)
    assert (await refused(quotas)).code == "requests_per_day"
    assert await quotas.admin.reset_usage(GUILD, USER, actor_id=MOD) == 1
    assert (await quotas.usage(GUILD, USER)).requests_used == 0
    await take(quotas)
    assert (await refused(quotas)).code == "guild_budget"  # the server spent 3 today
    usage = await quotas.guild_usage(GUILD)
    assert usage.requests == 3 and usage.cost == Decimal("0.03")


async def test_usage_reports(no_cooldown: QuotaService, clock: ManualClock) -> None:
    quotas = no_cooldown
    clock.set(EVENING)
    await quotas.admin.set_cost_cap(GUILD, Decimal("5"), actor_id=MOD)
    a = await take(quotas, user_id=USER, requests=3, characters=700)
    await take(quotas, user_id=OTHER, requests=1, characters=50)
    b = await take(quotas, user_id=OTHER + 1, requests=2, characters=30)
    await quotas.settle(a.id, committed=2, refunded=1)
    await quotas.refund(b.id)
    me = await quotas.usage(GUILD, USER)
    assert (me.requests_used, me.characters_used, me.in_flight) == (2, 700, 0)
    assert (me.requests_remaining, me.characters_remaining) == (18, 4300)
    assert me.resets_at == datetime(2026, 1, 2, tzinfo=UTC) and me.next_request_at is None
    server = await quotas.guild_usage(GUILD)
    assert (server.requests, server.characters, server.cost) == (3, 750, Decimal("0.03"))
    assert server.daily_cost_cap == Decimal("5.0000") and server.daily_request_budget is None
    assert [(u.user_id, u.requests, u.cost) for u in server.top_users] == [
        (USER, 2, Decimal("0.02")),
        (OTHER, 1, Decimal("0.01")),
    ]
    clock.advance(4 * 3600)  # next day
    assert (await quotas.guild_usage(GUILD)).requests == 0


async def test_moderator_changes_are_validated_and_audited(quotas: QuotaService) -> None:
    admin = quotas.admin
    with pytest.raises(PolicyError, match="Requests per day must be from 0 to 100,000"):
        await admin.set_user_policy(GUILD, USER, actor_id=MOD, requests_per_day=-5)
    with pytest.raises(PolicyError, match="Name at least one"):
        await admin.set_guild_default(GUILD, actor_id=MOD)
    with pytest.raises(PolicyError, match="cost cap must be an amount in dollars"):
        await admin.set_cost_cap(GUILD, "lots", actor_id=MOD)
    with pytest.raises(PolicyError, match=r"from \$0 to"):
        await admin.set_cost_cap(GUILD, "-1", actor_id=MOD)
    with pytest.raises(PolicyError, match="reset hour must be a whole hour from 0 to 23"):
        await admin.set_reset_hour(GUILD, 24, actor_id=MOD)
    with pytest.raises(PolicyError, match="daily request budget"):
        await admin.set_daily_budget(GUILD, -1, actor_id=MOD)
    with pytest.raises(PolicyError, match="needs the role"):
        await admin.set_policy(GUILD, PolicyScope.ROLE, None, actor_id=MOD, requests_per_day=1)
    assert await admin.audit(GUILD) == []  # nothing changed

    await admin.set_user_policy(GUILD, USER, actor_id=MOD, requests_per_day=7)
    await admin.set_cost_cap(GUILD, "$2.50", actor_id=MOD + 1)
    settings = await admin.set_alert_channel(GUILD, 4242, actor_id=MOD)
    assert settings.alert_channel_id == 4242 and settings.daily_cost_cap == Decimal("2.5")
    entries = await admin.audit(GUILD)
    assert [(e.action, e.actor_id) for e in entries] == [
        ("guild.alert_channel", MOD),
        ("guild.cost_cap", MOD + 1),
        ("policy.set", MOD),
    ]
    assert entries[1].details == {"daily_cost_cap": "2.5000"}
    assert entries[2].details["changes"] == {"requests_per_day": 7}


async def test_reserving_with_a_job_writes_both_or_neither(db: Database, quotas: QuotaService,
                                                          clock: ManualClock) -> None:
    job = NewJob(user_id=USER, user_display="Ann", guild_id=GUILD, channel_id=1, text="Hello there.",
                 parts=["Hello there."])
    reservation = await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=12, job=job)
    assert reservation.job_id == job.id
    stored = await JobsRepository(db, clock).get(job.id)
    assert stored is not None and stored.reservation_id == reservation.id
    assert stored.status is JobState.RESERVED

    too_long = NewJob(user_id=USER, user_display="Ann", guild_id=GUILD, channel_id=1, text="x" * 1200,
                      parts=["x" * 1200])
    with pytest.raises(QuotaExceeded):
        await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=1200, job=too_long)
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(jobs_table))).scalar_one() == 1


async def test_check_predicts_without_recording(quotas: QuotaService) -> None:
    await quotas.check(guild_id=GUILD, user_id=USER, requests=1, characters=10)
    with pytest.raises(QuotaExceeded, match="2,200 characters"):
        await quotas.check(guild_id=GUILD, user_id=USER, requests=1, characters=2200)
    assert (await quotas.usage(GUILD, USER)).requests_used == 0
    assert quotas.price(3) == Decimal("0.03")
