"""``chatterbox-bot db prune --older-than 30d`` as an operator runs it (a real subprocess)."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot.clock import ManualClock
from bot.quotas import QuotaService, counters
from bot.store import JobsRepository, JobState, NewJob, open_database
from bot.store.tables import jobs, usage_ledger
from bot.voices import forget_member
from tests.quotas.conftest import make_settings


async def _run(tmp_path: Path, url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATTERBOX_", "DISCORD_"))}
    env["DATABASE_URL"] = url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "db",
        "prune",
        *args,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_prune_clears_old_finished_jobs(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    db = await open_database(url)
    try:
        ids = []
        for age_days in (40, 1):
            clock = ManualClock(datetime.now(UTC) - timedelta(days=age_days))
            repo = JobsRepository(db, clock)
            record = await repo.create(
                NewJob(
                    user_id=1,
                    user_display="ann",
                    guild_id=2,
                    channel_id=3,
                    text=f"said {age_days} days ago",
                    parts=["x"],
                    voice_url="https://cdn.example/v.wav",
                )
            )
            await repo.transition(record.id, JobState.RESERVED, JobState.CANCELLED)
            ids.append(record.id)
    finally:
        await db.close()

    code, out, err = await _run(tmp_path, url, "--older-than", "30d")
    assert (code, out.splitlines(), err) == (0, [
        "cleared the text and voice URL of 1 finished job",
        "anonymised 0 spending rows of members who asked to be forgotten",
    ], "")

    db = await open_database(url)
    try:
        async with db.read() as conn:
            rows = {r.id: r for r in await conn.execute(select(jobs))}
    finally:
        await db.close()
    assert (rows[ids[0]].text, rows[ids[0]].voice_url) == ("", None)
    assert rows[ids[1]].text == "said 1 days ago"


async def test_prune_anonymises_what_forget_me_had_to_keep(tmp_path: Path) -> None:
    """Forget-me on the day of a request keeps its money row linked (it still counts for the
    member's daily limits); once that day is over, prune anonymises it and the counters agree."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    db = await open_database(url)
    try:
        clock = ManualClock(datetime.now(UTC) - timedelta(days=3))
        quotas = QuotaService(db, make_settings(), clock)
        job = NewJob(user_id=1, user_display="ann", guild_id=2, channel_id=3, text="hello there",
                     parts=["hello there"], voice_url=None)
        reservation = await quotas.reserve(guild_id=2, user_id=1, requests=1, characters=11, job=job)
        repo = JobsRepository(db, clock)
        await repo.transition(job.id, JobState.RESERVED, JobState.CANCELLED)
        await quotas.refund(reservation.id)
        forgotten = await forget_member(db, 1, now=clock.now())
        assert (forgotten.money_rows, forgotten.money_kept) == (0, 1)
    finally:
        await db.close()

    code, out, err = await _run(tmp_path, url, "--older-than", "30d")
    assert (code, out.splitlines()[1], err) == (
        0, "anonymised 1 spending row of members who asked to be forgotten", "")

    db = await open_database(url)
    try:
        async with db.read() as conn:
            assert [r.user_id for r in await conn.execute(select(usage_ledger))] == [0]
            assert await counters.verify(conn) == []
    finally:
        await db.close()


async def test_a_bad_age_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, out, err = await _run(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", "--older-than", "30x")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "like 30d" in err
    assert not (tmp_path / "bot.db").exists()
