"""Several bot processes on one PostgreSQL, and the clean stop (SIGTERM) during a delivery."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.gateway.emulator import GatewayEmulator
from bot.store import open_database
from bot.store.tables import jobs
from tests.chaos.campaign import audit_run, finish, spawn, wait_ready, worker_command
from tests.store.dbkit import DbTarget


@pytest.mark.postgres
async def test_two_processes_on_one_postgresql_deliver_twenty_jobs_exactly_once(
    postgres_target: DbTarget, emulator: GatewayEmulator, tmp_path: Path
) -> None:
    """Nothing is killed, so every one of the twenty jobs must be posted (none failed, none
    closed uncertain), each exactly once. A first process reserves ten jobs and stops cleanly
    (SIGTERM) with them in flight: POSTs on the wire finish and are recorded, its leases are
    released. Two processes then start side by side, each with five jobs of its own, and race
    to take over the first one's (which of them takes which is up to ``SKIP LOCKED``). Their
    leases are long (30 s), so a job of their own cannot be taken from them: each delivers its
    own five by construction, so both deliver."""
    posts = tmp_path / "posts.txt"
    common = {"db": postgres_target.url, "schema": postgres_target.schema, "emulator": emulator,
              "deliveries": posts}
    first = await spawn(worker_command(**common, tag="a", start=10))
    await wait_ready(first)
    await _wait_for_jobs(postgres_target, 10)
    first.send_signal(signal.SIGTERM)
    status, stderr = await finish(first)
    assert status == 0, stderr[-2000:]
    side_by_side = {tag: await spawn(worker_command(**common, tag=tag, start=5, until_idle=True,
                                                    extra=("--lease", "30")))
                    for tag in ("b", "c")}
    delivered_by: dict[str, set[str]] = {}
    for tag, process in side_by_side.items():
        status, stdout, stderr = await _finish_with_output(process)
        assert status == 0, stderr[-2000:]
        delivered_by[tag] = {line.split()[1] for line in stdout.splitlines() if line.startswith("delivered ")}
    audit = await audit_run(db=postgres_target.url, schema=postgres_target.schema, emulator=emulator,
                            deliveries=posts)
    assert audit.problems == [], audit.summary()
    assert (audit.jobs, audit.posted, audit.failed, audit.uncertain) == (20, 20, 0, 0), audit.summary()
    lines = Counter((await asyncio.to_thread(posts.read_text)).split())
    assert len(lines) == 20 and all(count == 1 for count in lines.values())
    own = await _jobs_by_tag(postgres_target)
    assert own["b"] <= delivered_by["b"] and own["c"] <= delivered_by["c"]
    assert not delivered_by["b"] & delivered_by["c"]
    assert set(lines) == own["a"] | own["b"] | own["c"]  # the first one's: by any of the three


@pytest.mark.parametrize("post_delay", [1.0, 8.0], ids=["within-grace", "past-grace"])
async def test_sigterm_during_delivery_never_posts_twice(
    db_target: DbTarget, emulator: GatewayEmulator, tmp_path: Path, post_delay: float
) -> None:
    """SIGTERM while the audio is being posted: within SHUTDOWN_GRACE_SECONDS (5 s in the
    worker) the post finishes and is recorded, exit 0; past it the job is closed unposted-or-
    posted-once by the next process. Either way nothing is posted again."""
    posts = tmp_path / "posts.txt"
    common = {"db": db_target.url, "schema": db_target.schema, "emulator": emulator, "deliveries": posts}
    worker = await spawn(worker_command(**common, tag="term", start=1,
                                        extra=("--post-delay", str(post_delay))))
    await wait_ready(worker)
    await _wait_for_status(db_target, "delivering")
    worker.send_signal(signal.SIGTERM)
    status, stderr = await finish(worker)
    assert status == 0, stderr[-2000:]  # a clean stop even when the grace ran out

    after = await spawn(worker_command(**common, tag="after", start=0, until_idle=True))
    status, stderr = await finish(after)
    assert status == 0, stderr[-2000:]
    audit = await audit_run(db=db_target.url, schema=db_target.schema, emulator=emulator, deliveries=posts)
    assert audit.problems == [], audit.summary()
    text = await asyncio.to_thread(posts.read_text) if posts.exists() else ""
    if post_delay < 5:
        assert len(text.split()) == 1 and audit.posted == 1  # finished inside the grace
    else:
        assert text.split() == [] and audit.uncertain == 1  # cut off: closed, not re-posted


async def _wait_for_status(target: DbTarget, status: str, limit: float = 60.0) -> None:
    db = await open_database(target.url, schema=target.schema, migrate=False)
    try:
        async with asyncio.timeout(limit):
            while True:
                async with db.read() as conn:
                    found = (await conn.execute(select(jobs.c.id).where(jobs.c.status == status))).first()
                if found is not None:
                    return
                await asyncio.sleep(0.05)
    finally:
        await db.close()


async def _finish_with_output(
    process: asyncio.subprocess.Process, limit: float = 90.0
) -> tuple[int, str, str]:
    """Like ``campaign.finish``, keeping stdout (the worker prints ``delivered <id>`` per post)."""
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=limit)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        return -999, stdout.decode(errors="replace"), stderr.decode(errors="replace")
    assert process.returncode is not None
    return process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")


async def _jobs_by_tag(target: DbTarget) -> dict[str, set[str]]:
    """Job ids by the tag of the worker that started them (``worker.part_texts``)."""
    db = await open_database(target.url, schema=target.schema, migrate=False)
    try:
        async with db.read() as conn:
            rows = (await conn.execute(select(jobs.c.id, jobs.c.text))).all()
    finally:
        await db.close()
    found: dict[str, set[str]] = {}
    for job_id, text in rows:
        found.setdefault(text.split()[1], set()).add(job_id)
    return found


async def _wait_for_jobs(target: DbTarget, count: int, limit: float = 60.0) -> None:
    db = await open_database(target.url, schema=target.schema, migrate=False)
    try:
        async with asyncio.timeout(limit):
            while True:
                async with db.read() as conn:
                    found = len((await conn.execute(select(jobs.c.id))).all())
                if found >= count:
                    return
                await asyncio.sleep(0.05)
    finally:
        await db.close()
