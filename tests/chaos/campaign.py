"""The kill campaign: pipeline processes SIGKILLed at seeded random moments, then the audit.

``run_campaign`` chains worker processes (``tests.chaos.worker``) on one database and one
gateway emulator: each starts a few new jobs and is killed with SIGKILL after a seeded random
delay (anywhere: during start-up, a reservation, a POST, a poll, a download, a post); the
next one takes over what the dead one left (once its leases expire) and starts its own; a
final worker runs until no job is open. ``audit`` then proves, from the database, the
emulator and the posts file:

- nothing lost or stranded: every job is closed (delivered or cancelled) and its quota
  reservation fully settled;
- nothing repeated: no job is posted twice, no part is POSTed twice;
- money: a part the emulator accepted is committed (never refunded);
- the gateway's faults (``campaign_emulator_config``) change none of that;
- every completed job was posted exactly once, except those stopped inside the delivery
  window (closed with ``UNCERTAIN_DELIVERY``: at most once), which are counted.

Used by tests/chaos/test_kill.py (a few points, in ``make test``) and bench/chaos.py
(``make chaos``: 50+ points per engine, counts printed).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from bot.gateway.emulator import EmulatorConfig, GatewayEmulator
from bot.speech.service import UNCERTAIN_DELIVERY
from bot.store import open_database
from bot.store.tables import job_parts, jobs, usage_ledger

ROOT = Path(__file__).resolve().parents[2]
CHARGED_PARTS = {"submitting", "submitted", "completed", "failed"}


def campaign_emulator_config(seed: int, *, faults: bool = True) -> EmulatorConfig:
    """The emulator of a campaign: fast jobs and (``faults``), besides the kills, the gateway's
    own seeded faults on submissions and status polls alike: 500s, connections dropped before
    or after the request was taken (a POST that may have been charged), slow answers and jobs
    that end FAILED (charged). No ERROR outcomes: the provider refunds those, which the audit's
    "a part the gateway accepted is committed" rule does not model."""
    config = EmulatorConfig(seed=seed, jitter=0.0, base_seconds=0.3, per_char_seconds=0.004,
                            webhook_duplicate_rate=0.0, balance=Decimal("1000"))
    if faults:
        config = replace(config, http500_rate=0.04, drop_rate=0.04, slow_rate=0.04, slow_seconds=0.5,
                         fail_rate=0.05)
    return config


@dataclass
class Audit:
    jobs: int = 0
    posted: int = 0
    uncertain: int = 0  # closed inside the delivery window (at most once, maybe not posted)
    failed: int = 0  # closed without audio (e.g. a POST interrupted: maybe charged)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.jobs} jobs: {self.posted} posted exactly once, {self.failed} closed without audio "
                f"(settled, member told), {self.uncertain} closed in the delivery window; "
                f"{len(self.problems)} problems")


def worker_command(
    *, db: str, schema: str | None, emulator: GatewayEmulator, deliveries: Path, tag: str, start: int,
    until_idle: bool = False, extra: tuple[str, ...] = (),
) -> list[str]:
    command = [sys.executable, "-m", "tests.chaos.worker", "--db", db, "--gateway", emulator.base_url,
               "--key", emulator.api_key, "--deliveries", str(deliveries), "--tag", tag,
               "--start", str(start), *extra]
    if schema:
        command += ["--schema", schema]
    if until_idle:
        command.append("--until-idle")
    return command


async def spawn(command: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def wait_ready(process: asyncio.subprocess.Process, *, limit: float = 60.0) -> None:
    """Until the worker printed ``ready`` (its services are open), or it ended."""
    assert process.stdout is not None
    async with asyncio.timeout(limit):
        while True:
            line = await process.stdout.readline()
            if not line or line.strip() == b"ready":
                return


async def finish(process: asyncio.subprocess.Process, *, limit: float = 90.0) -> tuple[int, str]:
    """Wait for the process (the limit guards against a hang); (exit status, stderr)."""
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=limit)
    except TimeoutError:
        process.kill()
        _, stderr = await process.communicate()
        return -999, stderr.decode(errors="replace")
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace")


async def run_campaign(
    *, db: str, schema: str | None, emulator: GatewayEmulator, workdir: Path, points: int, seed: int,
    jobs_per_worker: int = 2, max_delay: float = 2.5,
) -> Audit:
    rng = random.Random(seed)
    deliveries = workdir / "posts.txt"
    for point in range(points):
        process = await spawn(worker_command(db=db, schema=schema, emulator=emulator,
                                             deliveries=deliveries, tag=f"s{seed}p{point}",
                                             start=jobs_per_worker))
        delay = rng.uniform(0.0, max_delay)  # real time after start-up: the kill point
        await wait_ready(process)
        await asyncio.sleep(delay)
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await finish(process)
    final = await spawn(worker_command(db=db, schema=schema, emulator=emulator, deliveries=deliveries,
                                       tag=f"s{seed}final", start=1, until_idle=True))
    status, stderr = await finish(final)
    audit = await audit_run(db=db, schema=schema, emulator=emulator, deliveries=deliveries)
    if status != 0:
        audit.problems.append(f"the final worker exited {status}: {stderr[-2000:]}")
    return audit


async def audit_run(*, db: str, schema: str | None, emulator: GatewayEmulator, deliveries: Path) -> Audit:
    text = await asyncio.to_thread(lambda: deliveries.read_text() if deliveries.exists() else "")
    posts = Counter(text.split())
    database = await open_database(db, schema=schema)
    try:
        async with database.read() as conn:
            job_rows = (await conn.execute(select(jobs))).all()
            part_rows = (await conn.execute(select(job_parts))).all()
            ledger_rows = {r.id: r for r in (await conn.execute(select(usage_ledger))).all()}
    finally:
        await database.close()
    posted_texts = Counter(job.text for job in emulator.jobs.values())
    audit = Audit(jobs=len(job_rows))
    parts_of: dict[str, list[object]] = {}
    for part in part_rows:
        parts_of.setdefault(part.job_id, []).append(part)
    for job in job_rows:
        name = f"job {job.id} ({job.text[:30]!r})"
        if job.status not in ("delivered", "cancelled"):
            audit.problems.append(f"{name} is still {job.status}")
        reservation = ledger_rows.get(job.reservation_id)
        if reservation is None or reservation.state == "reserved":
            audit.problems.append(f"{name}: its reservation is not settled")
        elif reservation.committed_requests + reservation.refunded_requests != reservation.requests:
            audit.problems.append(f"{name}: reservation settled {reservation.committed_requests}"
                                  f"+{reservation.refunded_requests} of {reservation.requests}")
        committed = 0
        for part in parts_of.get(job.id, []):
            sent = posted_texts[part.text]  # type: ignore[attr-defined]
            if sent > 1:
                audit.problems.append(f"{name}: part {part.idx} was POSTed {sent} times")  # type: ignore[attr-defined]
            if sent and part.status not in CHARGED_PARTS:  # type: ignore[attr-defined]
                audit.problems.append(f"{name}: part {part.idx} reached the gateway but is "  # type: ignore[attr-defined]
                                      f"{part.status} (refunded)")  # type: ignore[attr-defined]
            committed += part.status in CHARGED_PARTS  # type: ignore[attr-defined]
        if reservation is not None and reservation.committed_requests != committed:
            audit.problems.append(
                f"{name}: {committed} charged parts, {reservation.committed_requests} committed")
        count = posts[job.id]
        if count > 1:
            audit.problems.append(f"{name} was posted {count} times")
        if job.status == "delivered" and job.error is None:
            if count == 1:
                audit.posted += 1
            else:
                audit.problems.append(f"{name} completed but was never posted")
        elif job.error == UNCERTAIN_DELIVERY:
            audit.uncertain += 1
        elif job.status == "delivered":
            audit.failed += 1
            if count:
                audit.problems.append(f"{name} failed ({job.error}) but was posted")
    return audit
