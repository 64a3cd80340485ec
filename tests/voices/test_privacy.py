"""``forget_member``, ``prune_jobs`` and ``anonymise_forgotten_money`` on both databases: what
goes, what stays anonymised, and that forgetting neither breaks the quota counters
(``counters.verify``) nor hands the member a fresh day (limits, cooldown, in flight)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.autoread.store import AutoreadStore
from bot.clock import ManualClock
from bot.config import Settings
from bot.quotas import QuotaExceeded, QuotaService, counters
from bot.store import Database, JobsRepository, JobState, NewJob
from bot.store.tables import audit_log, job_parts, jobs, quota_members, usage_ledger, voice_defaults, voices
from bot.voices import (
    Forgotten,
    VoiceLibrary,
    anonymise_forgotten_money,
    forget_member,
    longest_cooldown,
    prune_jobs,
)
from tests.quotas.conftest import make_settings
from tests.voices.conftest import ALICE, BOB, GUILD, MO, clip_of

OTHER_GUILD = GUILD + 1


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"quota_cooldown_seconds": 0, "quota_max_in_flight": 5}
    values.update(overrides)
    return make_settings(**values)


async def _job(
    db: Database, clock: ManualClock, user: int, text: str, *, finish: bool,
    quotas: QuotaService | None = None, guild: int = GUILD,
) -> tuple[str, str]:
    """A /speak job of ``user`` with its reservation; finished (delivered, committed) or in flight.
    Returns (job id, reservation id)."""
    quotas = quotas or QuotaService(db, _settings(), clock)
    job = NewJob(
        user_id=user,
        user_display=f"user{user}",
        guild_id=guild,
        channel_id=5,
        text=text,
        parts=[text],
        voice_url="https://cdn.example/clip.wav",
    )
    reservation = await quotas.reserve(
        guild_id=guild, user_id=user, requests=1, characters=len(text), job=job
    )
    if finish:
        await _finish(db, clock, quotas, job.id, reservation.id)
    return job.id, reservation.id


async def _finish(
    db: Database, clock: ManualClock, quotas: QuotaService, job_id: str, reservation_id: str
) -> None:
    repo = JobsRepository(db, clock)
    assert await repo.transition(job_id, JobState.RESERVED, JobState.SUBMITTED)
    assert await repo.transition(job_id, JobState.SUBMITTED, JobState.COMPLETED)
    await quotas.commit(reservation_id)
    assert await repo.transition(job_id, JobState.COMPLETED, JobState.DELIVERED)


async def _verify(db: Database) -> list[str]:
    async with db.read() as conn:
        return await counters.verify(conn)


async def _ledger_users(db: Database) -> dict[str, int]:
    """Reservation id → the user id its money row names."""
    async with db.read() as conn:
        rows = await conn.execute(select(usage_ledger.c.id, usage_ledger.c.user_id))
        return {r.id: r.user_id for r in rows}


async def _refusal(quotas: QuotaService, user: int = ALICE, text: str = "one more") -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as caught:
        await quotas.reserve(guild_id=GUILD, user_id=user, requests=1, characters=len(text))
    return caught.value


async def _forget(
    db: Database, clock: ManualClock, user: int = ALICE, settings: Settings | None = None
) -> Forgotten:
    cooldown = longest_cooldown(settings or _settings())
    return await forget_member(db, user, now=clock.now(), cooldown=cooldown)


async def test_forget_me_removes_voices_defaults_and_job_text(
    library: VoiceLibrary, db: Database, clock: ManualClock
) -> None:
    mine = await library.add(GUILD, ALICE, "Mine", clip_of(), consent=True)
    await library.share(GUILD, ALICE, "mine", "server")
    await library.rename(GUILD, ALICE, "mine", "My Real Name")
    await library.add(OTHER_GUILD, ALICE, "Elsewhere", clip_of(), consent=True)
    await library.add(GUILD, MO, "Preset", clip_of(), consent=True, preset=True, is_moderator=True)
    await library.add(GUILD, BOB, "Bobs", clip_of(), consent=True)
    await library.set_defaults(GUILD, ALICE, voice="my real name", exaggeration=0.9)
    await library.set_defaults(GUILD, BOB, voice=mine.ref)
    done, _ = await _job(db, clock, ALICE, "my secret words", finish=True)
    running, _ = await _job(db, clock, ALICE, "still going", finish=False)
    bobs, _ = await _job(db, clock, BOB, "bob's words", finish=True)

    forgotten = await _forget(db, clock)

    assert (forgotten.voices, forgotten.defaults, forgotten.jobs, forgotten.open_jobs) == (2, 1, 1, 1)
    async with db.read() as conn:
        names = {r.name for r in await conn.execute(select(voices.c.name))}
        defaults = {(r.user_id, r.voice_id) for r in await conn.execute(select(voice_defaults))}
        job_rows = {r.id: r for r in await conn.execute(select(jobs))}
        parts = {r.job_id: r.text for r in await conn.execute(select(job_parts))}
        audit = [(r.actor_id, r.action, r.details) for r in await conn.execute(select(audit_log))]
    assert names == {"Preset", "Bobs"}
    assert defaults == {(BOB, None)}  # bob's default pointed at alice's voice: cleared
    gone = job_rows[done]
    assert (gone.text, gone.user_display, gone.voice_url, gone.user_id) == ("", "", None, 0)
    assert parts[done] == ""
    assert job_rows[running].text == "still going" and job_rows[running].user_id == ALICE
    assert job_rows[bobs].text == "bob's words"
    # Her voice actions lost her id and the names she typed; the moderator's and bob's did not.
    hers = [(actor, details) for actor, action, details in audit if action in ("voice.add", "voice.rename")
            and details.get("voice_id") in (mine.id,)]
    assert hers and all(actor is None for actor, _ in hers)
    assert not any({"name", "from", "to"} & set(details) for _, details in hers)
    assert {(actor, details["name"]) for actor, action, details in audit
            if action == "voice.add" and actor is not None} == {(MO, "Preset"), (BOB, "Bobs")}
    assert await _verify(db) == []


async def test_forget_me_keeps_todays_limits_and_anonymises_earlier_days(
    db: Database, clock: ManualClock
) -> None:
    settings = _settings(quota_requests_per_day=3, quota_chars_per_day=1000)
    quotas = QuotaService(db, settings, clock)
    yesterday = []
    for i in range(2):
        yesterday.append(await _job(db, clock, ALICE, f"yesterday {i}", finish=True, quotas=quotas))
        clock.advance(10)
    elsewhere = await _job(
        db, clock, ALICE, "in another server", finish=True, quotas=quotas, guild=OTHER_GUILD
    )
    bob = await _job(db, clock, BOB, "bob yesterday", finish=True, quotas=quotas)
    clock.advance(86400)  # the next quota day (reset at 00:00 UTC; the clock is at 12:00)
    today = []
    for i in range(2):
        today.append(await _job(db, clock, ALICE, f"today {i}", finish=True, quotas=quotas))
        clock.advance(10)  # each its own start: only the newest one starts the cooldown
    in_flight_job, in_flight = await _job(db, clock, ALICE, "still running", finish=False, quotas=quotas)
    refused_before = await _refusal(quotas)
    assert refused_before.code == "requests_per_day"
    before = await quotas.usage(GUILD, ALICE)
    server_before = await quotas.guild_usage(GUILD)
    assert await _verify(db) == []

    forgotten = await _forget(db, clock, settings=settings)

    assert await _verify(db) == []
    users = await _ledger_users(db)
    # Earlier days: anonymised, in every server; today's and the one in flight still count for her.
    assert [users[r] for _, r in yesterday] == [0, 0] and users[elsewhere[1]] == 0
    assert [users[r] for _, r in today] == [ALICE, ALICE] and users[in_flight] == ALICE
    assert users[bob[1]] == BOB
    assert (forgotten.money_rows, forgotten.money_kept, forgotten.jobs, forgotten.open_jobs) == (3, 3, 5, 1)
    # Her allowance for today did not change: the same refusal, the same counts, the same server day.
    after = await quotas.usage(GUILD, ALICE)
    assert (after.requests_used, after.characters_used, after.in_flight, after.requests_remaining) == (
        before.requests_used, before.characters_used, before.in_flight, before.requests_remaining)
    assert (after.requests_used, after.in_flight) == (3, 1)
    assert (await _refusal(quotas)).reason == refused_before.reason
    server_after = await quotas.guild_usage(GUILD)
    assert (server_after.requests, server_after.characters, server_after.cost) == (
        server_before.requests, server_before.characters, server_before.cost)

    # The job in flight settles as it would have: the counters follow the ledger.
    await _finish(db, clock, quotas, in_flight_job, in_flight)
    assert await _verify(db) == []
    settled = await quotas.usage(GUILD, ALICE)
    assert (settled.requests_used, settled.in_flight) == (3, 0)
    assert (await _refusal(quotas)).code == "requests_per_day"

    # The day ends: prune anonymises the rows forget-me had to keep (the job that was still
    # running then was not forgotten: it stays hers until she asks again).
    clock.advance(86400 + 3600)
    anonymised = await anonymise_forgotten_money(db, now=clock.now(), cooldown=longest_cooldown(settings))
    assert anonymised == 2
    assert await _verify(db) == []
    users = await _ledger_users(db)
    assert [users[r] for _, r in today] == [0, 0] and users[in_flight] == ALICE
    assert await anonymise_forgotten_money(db, now=clock.now(), cooldown=longest_cooldown(settings)) == 0
    # A new day: her full allowance, as for anyone.
    fresh = await quotas.usage(GUILD, ALICE)
    assert (fresh.requests_used, fresh.requests_remaining) == (0, 3)

    again = await _forget(db, clock, settings=settings)
    assert (again.money_rows, again.money_kept) == (1, 0)
    assert await _verify(db) == []
    assert set((await _ledger_users(db)).values()) == {0, BOB}
    async with db.read() as conn:
        members = {(r.guild_key, r.user_id) for r in await conn.execute(select(quota_members))}
    assert members == {(GUILD, BOB)}  # nothing counts for her any more: no counter row either
    await _job(db, clock, ALICE, "back again", finish=True, quotas=quotas)
    assert await _verify(db) == []


async def test_forget_me_keeps_the_cooldown_also_across_the_reset(db: Database) -> None:
    settings = _settings(quota_cooldown_seconds=60)
    clock = ManualClock(datetime(2026, 1, 1, 23, 59, 30, tzinfo=UTC))
    quotas = QuotaService(db, settings, clock)
    _, last = await _job(db, clock, ALICE, "just before midnight", finish=True, quotas=quotas)
    clock.advance(40)  # 00:00:10: a new quota day, but the cooldown runs until 00:00:30
    assert (await _refusal(quotas)).code == "cooldown"

    forgotten = await _forget(db, clock, settings=settings)

    assert await _verify(db) == []
    assert (await _refusal(quotas)).code == "cooldown"
    assert (await _ledger_users(db))[last] == ALICE and forgotten.money_kept == 1
    clock.advance(30)
    await _job(db, clock, ALICE, "after the cooldown", finish=True, quotas=quotas)
    assert await _verify(db) == []
    # Once the cooldown cannot run any more, the next forget-me anonymises that row too.
    clock.advance(86400)
    await _forget(db, clock, settings=settings)
    assert set((await _ledger_users(db)).values()) == {0}
    assert await _verify(db) == []


async def test_forget_me_racing_reservations_keeps_the_counters_true(
    db: Database, clock: ManualClock
) -> None:
    """Forget-me locks the member's counter row: reservations and settlements running at the
    same time are either counted before it recounts or after, never lost (both databases)."""
    settings = _settings(quota_requests_per_day=100, quota_max_in_flight=50)
    quotas = QuotaService(db, settings, clock)
    for i in range(5):
        await _job(db, clock, ALICE, f"yesterday {i}", finish=True, quotas=quotas)
    clock.advance(86400)

    async def speak(i: int) -> None:
        _, reservation = await _job(db, clock, ALICE, f"today {i}", finish=False, quotas=quotas)
        if i % 3:
            await quotas.commit(reservation)
        else:
            await quotas.refund(reservation)

    await asyncio.gather(*(speak(i) for i in range(12)), _forget(db, clock), _forget(db, clock))

    assert await _verify(db) == []
    used = await quotas.usage(GUILD, ALICE)
    assert (used.requests_used, used.in_flight) == (8, 0)  # 12 asked, 4 refunded
    users = await _ledger_users(db)
    assert sorted(users.values()).count(0) == 5  # yesterday's, whichever forget-me did it


async def test_forget_me_ends_hands_free_reading(db: Database, clock: ManualClock) -> None:
    store = AutoreadStore(db, clock)
    for guild in (GUILD, OTHER_GUILD):
        assert await store.set_opt_in(guild, ALICE, True)
    assert await store.set_opt_in(GUILD, BOB, True)

    forgotten = await _forget(db, clock)

    assert forgotten.autoread == 2
    assert not await store.opted_in(GUILD, ALICE) and not await store.opted_in(OTHER_GUILD, ALICE)
    assert await store.opted_in(GUILD, BOB)
    assert (await _forget(db, clock)).autoread == 0


async def test_prune_clears_text_of_old_finished_jobs_only(db: Database, clock: ManualClock) -> None:
    old, _ = await _job(db, clock, ALICE, "old words", finish=True)
    clock.advance(40 * 86400)
    recent, _ = await _job(db, clock, BOB, "new words", finish=True)
    running, _ = await _job(db, clock, BOB, "running", finish=False)
    cutoff = clock.now() - timedelta(days=30)
    assert await prune_jobs(db, finished_before=cutoff) == 1
    assert await prune_jobs(db, finished_before=cutoff) == 0
    async with db.read() as conn:
        rows = {r.id: r for r in await conn.execute(select(jobs))}
        parts = {r.job_id: r.text for r in await conn.execute(select(job_parts))}
    assert (rows[old].text, rows[old].voice_url, parts[old]) == ("", None, "")
    assert rows[old].status == "delivered" and rows[old].user_id == ALICE
    assert rows[recent].text == "new words" and rows[running].text == "running"
    # Nobody asked to be forgotten: prune leaves every money row linked.
    assert await anonymise_forgotten_money(db, now=clock.now()) == 0
    assert set((await _ledger_users(db)).values()) == {ALICE, BOB}
