"""``forget_member`` and ``prune_jobs`` on both databases: what goes, what stays anonymised."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.clock import ManualClock
from bot.quotas import QuotaService
from bot.store import Database, JobsRepository, JobState, NewJob
from bot.store.tables import job_parts, jobs, usage_ledger, voice_defaults, voices
from bot.voices import VoiceLibrary, forget_member, prune_jobs
from tests.quotas.conftest import make_settings
from tests.voices.conftest import ALICE, BOB, GUILD, MO, clip_of


async def _job(db: Database, clock: ManualClock, user: int, text: str, *, finish: bool) -> str:
    quotas = QuotaService(db, make_settings(quota_cooldown_seconds=0, quota_max_in_flight=5), clock)
    job = NewJob(
        user_id=user,
        user_display=f"user{user}",
        guild_id=GUILD,
        channel_id=5,
        text=text,
        parts=[text],
        voice_url="https://cdn.example/clip.wav",
    )
    reservation = await quotas.reserve(
        guild_id=GUILD, user_id=user, requests=1, characters=len(text), job=job
    )
    if finish:
        repo = JobsRepository(db, clock)
        assert await repo.transition(job.id, JobState.RESERVED, JobState.SUBMITTED)
        assert await repo.transition(job.id, JobState.SUBMITTED, JobState.COMPLETED)
        assert await repo.transition(job.id, JobState.COMPLETED, JobState.DELIVERED)
        await quotas.commit(reservation.id)
    return job.id


async def test_forget_me_removes_voices_defaults_and_job_text(
    library: VoiceLibrary, db: Database, clock: ManualClock
) -> None:
    mine = await library.add(GUILD, ALICE, "Mine", clip_of(), consent=True)
    await library.share(GUILD, ALICE, "mine", "server")
    await library.add(GUILD + 1, ALICE, "Elsewhere", clip_of(), consent=True)
    await library.add(GUILD, MO, "Preset", clip_of(), consent=True, preset=True, is_moderator=True)
    await library.add(GUILD, BOB, "Bobs", clip_of(), consent=True)
    await library.set_defaults(GUILD, ALICE, voice="mine", exaggeration=0.9)
    await library.set_defaults(GUILD, BOB, voice=mine.ref)
    done = await _job(db, clock, ALICE, "my secret words", finish=True)
    running = await _job(db, clock, ALICE, "still going", finish=False)
    bobs = await _job(db, clock, BOB, "bob's words", finish=True)

    forgotten = await forget_member(db, ALICE)

    assert (forgotten.voices, forgotten.defaults, forgotten.jobs, forgotten.open_jobs) == (2, 1, 1, 1)
    async with db.read() as conn:
        names = {r.name for r in await conn.execute(select(voices.c.name))}
        defaults = {(r.user_id, r.voice_id) for r in await conn.execute(select(voice_defaults))}
        job_rows = {r.id: r for r in await conn.execute(select(jobs))}
        parts = {r.job_id: r.text for r in await conn.execute(select(job_parts))}
        ledger = {r.job_id: r.user_id for r in await conn.execute(select(usage_ledger))}
    assert names == {"Preset", "Bobs"}
    assert defaults == {(BOB, None)}  # bob's default pointed at alice's voice: cleared
    gone = job_rows[done]
    assert (gone.text, gone.user_display, gone.voice_url, gone.user_id) == ("", "", None, 0)
    assert parts[done] == "" and ledger[done] == 0  # the money row stays, anonymised
    assert job_rows[running].text == "still going" and job_rows[running].user_id == ALICE
    assert job_rows[bobs].text == "bob's words" and ledger[bobs] == BOB


async def test_prune_clears_text_of_old_finished_jobs_only(db: Database, clock: ManualClock) -> None:
    old = await _job(db, clock, ALICE, "old words", finish=True)
    clock.advance(40 * 86400)
    recent = await _job(db, clock, BOB, "new words", finish=True)
    running = await _job(db, clock, BOB, "running", finish=False)
    cutoff = clock.now() - timedelta(days=30)
    assert await prune_jobs(db, finished_before=cutoff) == 1
    assert await prune_jobs(db, finished_before=cutoff) == 0
    async with db.read() as conn:
        rows = {r.id: r for r in await conn.execute(select(jobs))}
        parts = {r.job_id: r.text for r in await conn.execute(select(job_parts))}
    assert (rows[old].text, rows[old].voice_url, parts[old]) == ("", None, "")
    assert rows[old].status == "delivered" and rows[old].user_id == ALICE
    assert rows[recent].text == "new words" and rows[running].text == "running"
