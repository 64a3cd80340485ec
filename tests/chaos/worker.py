"""One pipeline process for the kill, outage and several-process tests (``python -m tests.chaos.worker``).

It is what ``chatterbox-bot run`` is, minus Discord: the same ``Services`` (instance lock on
SQLite, leases, reconciler) against the gateway emulator and a real database. "Posting to
Discord" is appending ``<job id>`` to the ``--deliveries`` file (``O_APPEND`` + ``fsync``,
so a line written before a SIGKILL is there afterwards): the test counts posts per job.

- ``--start N`` starts N two-part jobs (texts tagged with ``--tag``, so the test can match the
  emulator's submissions to parts) and delivers them live, as the /speak cog does:
  ``begin_delivery`` → post → ``mark_delivered``.
- The reconciler runs for the whole life of the process with the same deliverer.
- With ``--until-idle`` the process exits 0 once no job in the database is open; otherwise it
  runs until SIGTERM/SIGINT, which is the clean stop of ``chatterbox-bot run``.

Prints ``ready`` on stdout once its services are open, and ``delivered <id>`` per post.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.config import Settings
from bot.gateway.models import TTSParams
from bot.services import Services
from bot.speech.events import DeliveryTarget, Requester, ResumedJob, SpeechResult
from bot.speech.service import SpeechJob
from bot.store import open_database
from bot.store.tables import jobs

CHANNEL = 7001
GUILD = 5001 << 22  # shard 0 of any count (see the sharding test)


def part_texts(tag: str, index: int) -> tuple[str, str]:
    """The two chunks of job ``index`` of ``tag`` (each under the 60-character chunk size)."""
    return (f"Alpha {tag} job {index} says its first line here.",
            f"Beta {tag} job {index} says its second line.")


def settings_for(args: argparse.Namespace) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        chatterbox_gateway_url=args.gateway,
        chatterbox_api_key=args.key,
        chatterbox_allow_http=True,
        database_url=args.db,
        database_retry_seconds=args.db_retry,
        quota_cooldown_seconds=0,
        quota_max_in_flight=1000,
        quota_requests_per_day=100000,
        quota_chars_per_day=10**8,
        chatterbox_chunk_chars=60,
        chatterbox_http_timeout=5,
        job_lease_seconds=args.lease,
        job_reconcile_seconds=args.reconcile,
        shutdown_grace_seconds=5,
        discord_shard_count=args.shard_count,
        discord_shard_ids=args.shard_ids,
    )


class Poster:
    """The stand-in for posting to Discord: one fsynced line per post."""

    def __init__(self, path: str, delay: float) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._delay = delay

    async def __call__(self, job: ResumedJob, result: SpeechResult) -> None:
        await self.post(job.job_id)

    async def post(self, job_id: str) -> None:
        if self._delay:
            await asyncio.sleep(self._delay)  # a slow Discord: the SIGTERM test stops us here
        os.write(self._fd, f"{job_id}\n".encode())
        os.fsync(self._fd)
        print(f"delivered {job_id}", flush=True)


async def deliver_live(services: Services, job: SpeechJob, poster: Poster) -> None:
    try:
        await job.result()
    except Exception:
        return  # failed, or left open for the reconciler
    if await services.speech.begin_delivery(job.job_id):
        await poster.post(job.job_id)
        await services.speech.mark_delivered(job.job_id)


async def open_jobs(services: Services) -> int:
    """Open jobs in the database (retried through outages, like the bot's own reads)."""
    query = select(func.count()).select_from(jobs).where(jobs.c.status.not_in(["delivered", "cancelled"]))

    async def count(conn: AsyncConnection) -> int:
        return int((await conn.execute(query)).scalar_one())

    return await services.db.run_read(count)


async def main(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    db = await open_database(args.db, schema=args.schema, retry_seconds=args.db_retry)
    services = await Services.open(settings, database=db, instance_lock=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    poster = Poster(args.deliveries, args.post_delay)
    print("ready", flush=True)
    live: list[asyncio.Task[Any]] = []
    try:
        for index in range(args.start):
            first, second = part_texts(args.tag, index)
            job = await services.speech.start(
                Requester(user_id=100 + index % 5, display_name="worker", guild_id=GUILD),
                f"{first} {second}", voice_url=None, params=TTSParams(),
                target=DeliveryTarget(kind="file", channel_id=CHANNEL),
            )
            live.append(asyncio.create_task(deliver_live(services, job, poster)))
        services.speech.start_reconciler(poster)
        while not stop.is_set():
            if args.until_idle and all(t.done() for t in live) and await open_jobs(services) == 0:
                break
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.1)
            except TimeoutError:
                pass
        await services.speech.stop()  # the clean stop: deliveries in progress finish
    finally:
        await services.close()
        await db.close()
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--schema")
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--deliveries", required=True)
    parser.add_argument("--tag", default="t")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--until-idle", action="store_true")
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--reconcile", type=float, default=0.2)
    parser.add_argument("--db-retry", type=float, default=60.0)
    parser.add_argument("--post-delay", type=float, default=0.0)
    parser.add_argument("--shard-count", type=int)
    parser.add_argument("--shard-ids")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
