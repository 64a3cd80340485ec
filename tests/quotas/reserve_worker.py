"""A second process for the cross-process concurrency test.

``python -m tests.quotas.reserve_worker URL SCHEMA COUNT [PARALLEL]``: opens the database
(already migrated by the test), prints ``ready``, waits for a line on stdin (so all processes
start together), fires COUNT concurrent reservations for one member whose daily limit is 10
(at most PARALLEL at a time, to stay within the shared server's connection limit), and prints
a JSON line ``{"granted": n, "refused": m}``.
"""

from __future__ import annotations

import asyncio
import json
import sys

from bot.clock import ManualClock
from bot.config import Settings
from bot.quotas import QuotaExceeded, QuotaService
from bot.store import open_database

GUILD, USER = 500, 600


def limited_settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, quota_requests_per_day=10, quota_cooldown_seconds=0, quota_max_in_flight=1000  # pyright: ignore[reportCallIssue]
    )


async def reserve_many(quotas: QuotaService, count: int, parallel: int | None = None) -> tuple[int, int]:
    gate = asyncio.Semaphore(parallel or count)

    async def one() -> bool:
        async with gate:
            try:
                await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=10)
            except QuotaExceeded:
                return False
            return True

    results = await asyncio.gather(*(one() for _ in range(count)))
    return results.count(True), results.count(False)


async def main(url: str, schema: str, count: int, parallel: int | None) -> None:
    db = await open_database(url, schema=schema, migrate=False)
    try:
        quotas = QuotaService(db, limited_settings(), ManualClock())
        await quotas.usage(GUILD, USER)  # connect before the start signal
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        granted, refused = await reserve_many(quotas, count, parallel)
        print(json.dumps({"granted": granted, "refused": refused}), flush=True)
    finally:
        await db.close()


if __name__ == "__main__":
    parallel = int(sys.argv[4]) if len(sys.argv) > 4 else None
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), parallel))
